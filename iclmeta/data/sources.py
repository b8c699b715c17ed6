"""Labelled text datasets: builtin (TREC, SNIPS), local JSONL/CSV files, Hugging Face datasets.

>>> ds = load_dataset("trec")
>>> len(ds.labels()), ds.label_names["NUM"]
(6, 'number')
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

from iclmeta.config.source import DataSource
from iclmeta.data.example import Example, LabelledDataset, deduplicate
from iclmeta.data.fields import BUILTINS, LABEL_FIELDS, TEXT_FIELDS, pick_field
from iclmeta.errors import UserError

BUILTIN_DIR = Path(__file__).parent / "builtin"

TREC_COARSE = {"ABBR": "abbreviation", "DESC": "description", "ENTY": "entity",
               "HUM": "human", "LOC": "location", "NUM": "number"}
# Readable names for the 50 fine TREC classes (Li & Roth's taxonomy), used as verbalizers.
TREC_FINE = {
    "ABBR:abb": "abbreviation", "ABBR:exp": "expansion of an abbreviation",
    "DESC:def": "definition", "DESC:desc": "description", "DESC:manner": "manner",
    "DESC:reason": "reason", "ENTY:animal": "animal", "ENTY:body": "body part",
    "ENTY:color": "color", "ENTY:cremat": "creative work", "ENTY:currency": "currency",
    "ENTY:dismed": "disease or medicine", "ENTY:event": "event", "ENTY:food": "food",
    "ENTY:instru": "musical instrument", "ENTY:lang": "language", "ENTY:letter": "letter",
    "ENTY:other": "other entity", "ENTY:plant": "plant", "ENTY:product": "product",
    "ENTY:religion": "religion", "ENTY:sport": "sport", "ENTY:substance": "substance",
    "ENTY:symbol": "symbol", "ENTY:techmeth": "technique or method",
    "ENTY:termeq": "equivalent term", "ENTY:veh": "vehicle", "ENTY:word": "word",
    "HUM:desc": "description of a person", "HUM:gr": "group or organization",
    "HUM:ind": "individual person", "HUM:title": "title of a person", "LOC:city": "city",
    "LOC:country": "country", "LOC:mount": "mountain", "LOC:other": "other location",
    "LOC:state": "state", "NUM:code": "code", "NUM:count": "count", "NUM:date": "date",
    "NUM:dist": "distance", "NUM:money": "price", "NUM:ord": "rank", "NUM:other": "other number",
    "NUM:perc": "percentage", "NUM:period": "period of time", "NUM:speed": "speed",
    "NUM:temp": "temperature", "NUM:volsize": "size", "NUM:weight": "weight",
}


def load_dataset(source: str, text_field: str | None = None, label_field: str | None = None,
                 split_field: str | None = None, hf_config: str | None = None) -> LabelledDataset:
    """Load a builtin name, a .jsonl/.json/.csv file, or a Hugging Face dataset id / folder.

    Exact duplicate texts are dropped (see ``deduplicate``; the count is in
    ``duplicates_removed``), so no query can be shown its own copy as a demonstration.

    >>> load_dataset("snips").labels()[:2]
    ['add_to_playlist', 'book_restaurant']
    """
    return deduplicate(_load(source, text_field, label_field, split_field, hf_config))


def load_source(source: DataSource) -> LabelledDataset:
    """``load_dataset`` for a config's data fields (any ``DataSource``: eval or training)."""
    return load_dataset(source.dataset, source.text_field, source.label_field,
                        source.split_field, source.hf_config)


def _load(source, text_field, label_field, split_field, hf_config) -> LabelledDataset:
    if source in BUILTINS:
        return _load_builtin(source, label_field)
    path = Path(source).expanduser()
    if path.suffix.lower() in (".jsonl", ".json", ".csv"):
        if not path.is_file():
            raise UserError(f"dataset file {source} not found; check the path")
        rows = _read_rows(path)
        return _from_rows(path.stem, rows, str(path), text_field, label_field, split_field)
    from iclmeta.data.hub import load_hf_dataset  # heavy: only for hub ids and dataset folders
    return load_hf_dataset(source, text_field, label_field, hf_config)


def _load_builtin(name: str, label_field: str | None) -> LabelledDataset:
    if name == "snips":
        rows = _read_rows(BUILTIN_DIR / "snips.jsonl")
        return _from_rows("snips", rows, "snips", "text", label_field or "label", None)
    fine = name == "trec-50" or label_field == "fine"
    rows = _read_rows(BUILTIN_DIR / "trec.jsonl")
    ds = _from_rows("trec-50" if fine else "trec-6", rows, "trec", "text",
                    "fine" if fine else "coarse", "split")
    ds.label_names.update(TREC_FINE if fine else TREC_COARSE)
    return ds


def _read_rows(path: Path) -> list[dict]:
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8") as handle:
            try:
                return list(csv.DictReader(handle))
            except csv.Error as exc:
                raise UserError(f"{path}: malformed CSV ({exc}); fix the file") from None
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json" and text.lstrip().startswith("["):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: malformed JSON ({exc.msg} at line {exc.lineno})") from None
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{number}: malformed JSON line ({exc.msg}); "
                            "each line must be one JSON object") from None
        if not isinstance(row, dict):
            raise UserError(f"{path}:{number}: expected a JSON object per line")
        if "_canary" not in row:
            rows.append(row)
    return rows


def _from_rows(name: str, rows: list[dict], source: str, text_field: str | None,
               label_field: str | None, split_field: str | None) -> LabelledDataset:
    if not rows:
        raise UserError(f"{source}: the dataset is empty")
    tf = pick_field(rows, text_field, TEXT_FIELDS, "text", source, "--text-field")
    lf = pick_field(rows, label_field, LABEL_FIELDS, "label", source, "--label-field")
    sf = split_field if split_field is not None else ("split" if "split" in rows[0] else None)
    if sf is not None and sf not in rows[0]:
        raise UserError(f"{source}: no split field {sf!r}; available fields: "
                        f"{', '.join(rows[0])} (pass --split-field)")
    examples = []
    for i, row in enumerate(rows):
        text, label = row.get(tf), row.get(lf)
        if text in (None, "") or label in (None, ""):
            raise UserError(f"{source}: row {i + 1} has no {tf!r} or {lf!r}; every row needs both")
        split = str(row[sf]) if sf and row.get(sf) not in (None, "") else None
        examples.append(Example(str(text), str(label), f"{name}:{i}", split))
    return LabelledDataset(name, examples)
