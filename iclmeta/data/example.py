"""The data model every family shares: one labelled example, and a labelled dataset."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Mapping


@dataclass(frozen=True)
class Example:
    """One labelled input. ``id`` is stable across runs; ``split`` is the dataset's own split.

    A single-text example is just ``text``. A multi-field one (premise + hypothesis, sentence +
    head + tail, ...) also carries ``fields``, its named inputs in order, and ``text`` is their
    default joined form (``join_fields``), which is what anything unaware of fields (dedup,
    leakage hashes, a ``{{text}}`` template, the default embedder text) sees.

    >>> ex = Example.from_fields({"premise": "A dog runs.", "hypothesis": "An animal moves."},
    ...                          "entailment", "nli:0")
    >>> print(ex.text)
    premise: A dog runs.
    hypothesis: An animal moves.
    >>> sorted(ex.inputs)
    ['hypothesis', 'premise', 'text']
    >>> Example("hi", "greet", "0").inputs
    {'text': 'hi'}
    """

    text: str
    label: str
    id: str
    split: str | None = None
    meta: Mapping = field(default_factory=dict, compare=False, hash=False)
    fields: Mapping[str, str] | None = field(default=None, compare=False, hash=False)

    @classmethod
    def from_fields(cls, fields: Mapping[str, str], label: str, id: str,
                    split: str | None = None, **kw) -> "Example":
        """An example from named inputs; one field named ``text`` makes a plain example."""
        fields = {str(k): str(v) for k, v in fields.items()}
        if list(fields) == ["text"]:
            return cls(fields["text"], label, id, split, **kw)
        return cls(join_fields(fields), label, id, split, fields=fields, **kw)

    @property
    def inputs(self) -> dict[str, str]:
        """What a template may name: every field, plus ``text`` (the joined form) unless a field
        is itself named ``text``."""
        return {"text": self.text, **(self.fields or {})}


def join_fields(fields: Mapping[str, str]) -> str:
    """The default text of a multi-field input: one ``name: value`` line per field; a single
    field is its value alone."""
    if len(fields) == 1:
        return str(next(iter(fields.values())))
    return "\n".join(f"{name}: {value}" for name, value in fields.items())


@dataclass
class LabelledDataset:
    """A named list of examples plus a readable name (verbalizer) for every label."""

    name: str
    examples: list[Example]
    label_names: dict[str, str] = field(default_factory=dict)
    duplicates_removed: int = 0  # exact duplicate texts dropped by ``deduplicate``

    def __post_init__(self):
        for label in self.labels():
            self.label_names.setdefault(label, readable(label))

    def labels(self) -> list[str]:
        return sorted({ex.label for ex in self.examples})

    def splits(self) -> list[str]:
        return sorted({ex.split for ex in self.examples if ex.split})

    def by_label(self, split: str | None = None) -> dict[str, list[Example]]:
        groups: dict[str, list[Example]] = defaultdict(list)
        for ex in self.examples:
            if split is None or ex.split == split:
                groups[ex.label].append(ex)
        return dict(groups)


def readable(label: str) -> str:
    """``book_flight`` -> ``book flight``: the default verbalizer of a label."""
    return label.replace("_", " ").replace("-", " ").strip()


# A copy in one of these splits is the one kept: the benchmark's queries stay as published.
KEEP_FIRST = ("test", "validation", "val", "dev")


def deduplicate(ds: LabelledDataset) -> LabelledDataset:
    """Drop exact duplicate texts (after trimming whitespace), so no query meets its own copy.

    Of each group of copies one survives: the first in a query split (test, validation) if any,
    else the first. The count of dropped examples is kept in ``duplicates_removed``.

    >>> ds = LabelledDataset("toy", [Example("hi ", "a", "0", "train"), Example("hi", "a", "1", "test"),
    ...                              Example("yo", "b", "2", "train")])
    >>> out = deduplicate(ds)
    >>> [e.id for e in out.examples], out.duplicates_removed
    (['1', '2'], 1)
    """
    keep: dict[str, Example] = {}
    for ex in ds.examples:
        key = " ".join(ex.text.split())
        held = keep.get(key)
        if held is None or (ex.split in KEEP_FIRST and held.split not in KEEP_FIRST):
            keep[key] = ex
    kept = {id(ex) for ex in keep.values()}
    examples = [ex for ex in ds.examples if id(ex) in kept]
    return LabelledDataset(ds.name, examples, dict(ds.label_names),
                           ds.duplicates_removed + len(ds.examples) - len(examples))
