"""Rows (dicts read from a file or a hub dataset) into examples, and the checks every labelled
dataset must pass whatever its source.

>>> rows = [{"premise": "A dog runs.", "hypothesis": "An animal moves.", "label": " yes"},
...         {"premise": "A cat naps.", "hypothesis": "A dog runs.", "label": "no"}]
>>> ds = dataset_from_rows("nli", rows, "nli.jsonl", "premise,hypothesis", None, None)
>>> ds.labels(), ds.examples[0].fields["hypothesis"]
(['no', 'yes'], 'An animal moves.')
"""
from __future__ import annotations

from iclmeta.data.example import Example, LabelledDataset, readable
from iclmeta.data.fields import LABEL_FIELDS, pick_field, pick_inputs
from iclmeta.errors import UserError


def dataset_from_rows(name: str, rows: list[dict], source: str, text_field, label_field,
                      split_field: str | None, split: str | None = None) -> LabelledDataset:
    """One example per row. ``split`` (a whole file's split) wins over a split field;
    several text fields make multi-field examples, one field a plain one."""
    if not rows:
        raise UserError(f"{source}: the dataset is empty")
    inputs = pick_inputs(rows, text_field, source)
    lf = pick_field(rows, label_field, LABEL_FIELDS, "label", source, "--label-field")
    sf = None if split is not None else (
        split_field if split_field is not None else ("split" if "split" in rows[0] else None))
    if sf is not None and sf not in rows[0]:
        raise UserError(f"{source}: no split field {sf!r}; available fields: "
                        f"{', '.join(rows[0])} (pass --split-field)")
    prefix = f"{name}:{split}" if split is not None else name
    examples = []
    for i, row in enumerate(rows):
        for key in (*inputs, lf):
            _check_value(row.get(key), key, key == lf, i + 1, source, inputs, lf)
        label = str(row[lf]).strip()
        row_split = split if split is not None else (
            str(row[sf]) if sf and row.get(sf) not in (None, "") else None)
        examples.append(make_example({k: row[k] for k in inputs}, label, f"{prefix}:{i}",
                                     row_split))
    return LabelledDataset(name, examples)


def _check_value(value, key: str, is_label: bool, number: int, source: str, inputs, lf) -> None:
    if value is None or value == "" or (is_label and not str(value).strip()):
        raise UserError(f"{source}: row {number} has no {key!r}; every row needs "
                        f"{', '.join(map(repr, inputs))} and {lf!r}")
    if isinstance(value, (dict, list, tuple)):  # str() would make up a text or a class
        raise UserError(f"{source}: row {number}: {key!r} holds a {type(value).__name__}, not "
                        "text; choose fields holding plain text (--text-field, --label-field)")


def make_example(inputs: dict, label: str, id: str, split: str | None) -> Example:
    """A plain example for one input field (as before fields existed), else a multi-field one."""
    if len(inputs) == 1:
        return Example(str(next(iter(inputs.values()))), label, id, split)
    return Example.from_fields(inputs, label, id, split)


def check_labels(ds: LabelledDataset, source: str) -> None:
    """At least two classes, and no two labels that a prompt would show alike.

    >>> ds = LabelledDataset("d", [Example("a", "Weather", "0"), Example("b", "weather", "1")])
    >>> check_labels(ds, "d.csv")
    Traceback (most recent call last):
    ...
    iclmeta.errors.UserError: d.csv: labels 'Weather' and 'weather' read the same ('weather') in a prompt; merge them into one label in the data, or rename one
    """
    labels = ds.labels()
    if len(labels) < 2:
        found = f"only {labels[0]!r}" if labels else "none"
        raise UserError(f"{source}: a classification dataset needs at least 2 classes, found "
                        f"{found}; check the data or --label-field")
    seen: dict[str, str] = {}
    for label in labels:
        key = " ".join(readable(ds.label_names[label]).casefold().split())
        if key in seen:
            raise UserError(f"{source}: labels {seen[key]!r} and {label!r} read the same "
                            f"({key!r}) in a prompt; merge them into one label in the data, "
                            "or rename one")
        seen[key] = label
