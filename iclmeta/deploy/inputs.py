"""What a predictor reads and writes: texts or field dicts as queries, labelled examples as
JSONL, and the JSONL stream ``iclmeta predict`` answers.

A single-text predictor takes plain strings (or ``{"text": ...}``); a multi-field one takes
dicts naming every input field (``{"premise": ..., "hypothesis": ...}``).

>>> to_query({"premise": "A dog runs.", "hypothesis": "It moves."}, ["premise", "hypothesis"],
...          0, "yes").fields["hypothesis"]
'It moves.'
>>> to_query("hello", ["text"], 3, "a").id
'query:3'
>>> list(read_lines(['{"text": "hi", "id": 7}', "plain words", ""], ["text"]))
[({'id': 7, 'text': 'hi'}, 'hi'), ({'text': 'plain words'}, 'plain words')]
"""
from __future__ import annotations

import json
from itertools import islice
from pathlib import Path
from typing import Iterable, Iterator

from iclmeta.data.example import Example
from iclmeta.errors import UserError


def input_fields(example: Example, text_field: list[str] | None = None) -> list[str]:
    """The input fields queries need, named as the data names them: a multi-field example's
    fields, else the one text field (``text`` unless the data called it otherwise)."""
    if example.fields:
        return list(example.fields)
    return [text_field[0]] if text_field and len(text_field) == 1 else ["text"]


def _fields_of(item: dict, fields: list[str], where: str) -> dict[str, str]:
    """The input fields of a dict, in the predictor's order (a multi-field text joins them in
    that order); a single-text predictor also takes the key ``text``."""
    if len(fields) == 1:
        key = next((k for k in (fields[0], "text") if k in item), fields[0])
        names, out = [key], ["text"]
    else:
        names = out = fields
    missing = [f for f in names if f not in item]
    if missing:
        raise UserError(f"{where} has no {missing[0]!r} field; each input needs "
                        f"{', '.join(map(repr, fields))}")
    for f in names:
        if not isinstance(item[f], str):
            raise UserError(f"{where}: {f!r} holds a {type(item[f]).__name__}, not text")
    return {o: item[f] for o, f in zip(out, names)}


def to_query(item, fields: list[str], i: int, label: str, where: str | None = None) -> Example:
    """Query ``i`` as an ``Example``. Its ``label`` is never read when predicting it; methods
    that build a training batch from any example need one of the classes there."""
    where = where or f"input {i + 1}"
    if isinstance(item, Example):
        return Example(item.text, label, f"query:{i}", fields=item.fields)
    if isinstance(item, str):
        if len(fields) > 1:
            raise UserError(f"{where} is plain text, but this predictor takes the fields "
                            f"{', '.join(map(repr, fields))}; pass a dict of them")
        return Example(item, label, f"query:{i}")
    if not isinstance(item, dict):
        raise UserError(f"{where} is a {type(item).__name__}; pass a text or a dict of fields")
    return Example.from_fields(_fields_of(item, fields, where), label, f"query:{i}")


def to_example(item, fields: list[str], classes: list[str], id: str) -> Example:
    """A labelled example to add: an ``Example``, ``(text, label)`` or a dict with ``label``."""
    if isinstance(item, Example):
        text, label = (dict(item.fields) if item.fields else item.text), item.label
    elif isinstance(item, tuple) and len(item) == 2:
        text, label = item
    elif isinstance(item, dict) and "label" in item:
        text, label = item, item["label"]
    else:
        raise UserError(f"cannot add {item!r}: give an Example, (text, label) or a dict with "
                        "'label' and the input fields")
    label = str(label).strip()
    if label not in classes:
        raise UserError(f"label {label!r} is not one of this predictor's classes "
                        f"({', '.join(classes)}); re-export with examples of it")
    query = to_query(text, fields, 0, label, f"example {id}")
    return Example(query.text, label, id, fields=query.fields)


def write_examples(path: Path, examples: Iterable[Example]) -> None:
    from iclmeta.io import write_atomic
    lines = []
    for ex in examples:
        row = {"id": ex.id, "label": ex.label}
        row.update({"fields": dict(ex.fields)} if ex.fields else {"text": ex.text})
        if ex.split is not None:
            row["split"] = ex.split
        lines.append(json.dumps(row, ensure_ascii=False) + "\n")
    write_atomic(path, "".join(lines))


def read_examples(path: Path) -> list[Example]:
    examples = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            row = json.loads(line)
            if "fields" in row:
                examples.append(Example.from_fields(row["fields"], row["label"], row["id"],
                                                    row.get("split")))
            else:
                examples.append(Example(row["text"], row["label"], row["id"], row.get("split")))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise UserError(f"{path} line {n} is not a labelled example; re-export the "
                            "predictor") from None
    return examples


def read_lines(lines: Iterable[str], fields: list[str]) -> Iterator[tuple[dict, object]]:
    """``(what to echo, the input)`` per non-blank line: a JSON object (its input fields, and
    ``id`` when given) or, for a single-text predictor, a plain line of text."""
    for n, line in enumerate(lines, 1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            try:
                item = json.loads(line)
            except ValueError:
                raise UserError(f"stdin line {n} is not valid JSON; give one JSON object or "
                                "one plain text per line") from None
            inputs = _fields_of(item, fields, f"stdin line {n}")
            echo = {"id": item["id"]} if "id" in item else {}
            yield {**echo, **inputs}, (inputs["text"] if len(fields) == 1 else inputs)
        else:
            if len(fields) > 1:
                raise UserError(f"stdin line {n} is plain text, but this predictor takes the "
                                f"fields {', '.join(map(repr, fields))}; give JSON lines")
            yield {"text": line}, line


def predict_stream(predictor, lines: Iterable[str], batch_size: int = 32,
                   scores: bool = True) -> Iterator[dict]:
    """One output row per input line, predicted ``batch_size`` lines at a time (so a long
    stream is answered as it comes): the echoed input, ``label`` and, unless turned off,
    ``scores`` (``{label: score}``, higher is more likely)."""
    if batch_size < 1:
        raise UserError(f"--batch-size {batch_size} must be at least 1")
    items = read_lines(lines, predictor.fields)
    while chunk := list(islice(items, batch_size)):
        labels, found = predictor.predict([item for _, item in chunk])
        for (echo, _), label, score in zip(chunk, labels, found):
            yield {**echo, "label": label, **({"scores": score} if scores else {})}
