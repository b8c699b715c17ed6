"""The data model every family shares: one labelled example, and a labelled dataset."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Mapping


@dataclass(frozen=True)
class Example:
    """One labelled text. ``id`` is stable across runs; ``split`` is the dataset's own split."""

    text: str
    label: str
    id: str
    split: str | None = None
    meta: Mapping = field(default_factory=dict, compare=False, hash=False)


@dataclass
class LabelledDataset:
    """A named list of examples plus a readable name (verbalizer) for every label."""

    name: str
    examples: list[Example]
    label_names: dict[str, str] = field(default_factory=dict)

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
