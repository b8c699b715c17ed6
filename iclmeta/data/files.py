"""Rows of a local data file: CSV, TSV, JSON (an array, or one object per line), JSON lines
and Parquet. Every problem is one line naming the file, the line or item, and the fix.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "d.tsv"
>>> _ = path.write_bytes(b"\\xef\\xbb\\xbftext\\tlabel\\nhi\\tgreet\\n")  # a BOM, stripped
>>> read_rows(path)
[{'text': 'hi', 'label': 'greet'}]
"""
from __future__ import annotations

import codecs
import csv
import json
from pathlib import Path

from iclmeta.errors import UserError

SUPPORTED = (".csv", ".tsv", ".json", ".jsonl", ".parquet")
SUPPORTED_TEXT = "CSV (.csv), TSV (.tsv), JSON (.json), JSON lines (.jsonl) or Parquet (.parquet)"


def check_suffix(path: Path) -> None:
    if path.suffix.lower() not in SUPPORTED:
        raise UserError(f"{path}: unsupported file type {path.suffix or '(none)'!r}; give "
                        f"{SUPPORTED_TEXT}, e.g. convert it to CSV with a text and a label column")


def check_encoding(encoding: str) -> str:
    """The codec's canonical name; an unknown encoding is one line."""
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise UserError(f"unknown encoding {encoding!r}; give a Python codec name such as "
                        "utf-8, utf-16, latin-1 or cp1252 (--encoding)") from None


def read_rows(path: Path, encoding: str = "utf-8") -> list[dict]:
    """The rows of ``path`` as dicts; a BIG-bench canary line (``_canary``) is skipped."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"dataset file {path} not found; check the path")
    check_suffix(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return _read_parquet(path)
    text = _decode(path, encoding)
    if suffix in (".csv", ".tsv"):
        return _read_delimited(path, text, "\t" if suffix == ".tsv" else ",")
    if suffix == ".json" and text.lstrip().startswith("["):
        return _read_array(path, text)
    return _read_lines(path, text)


def _decode(path: Path, encoding: str) -> str:
    name = check_encoding(encoding)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig" if name == "utf-8" else name)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UserError(f"{path}:{line}: not valid {encoding} text (byte 0x{data[exc.start]:02x}); "
                        "pass the file's encoding, e.g. --encoding latin-1 or --encoding "
                        "cp1252, or save it as UTF-8") from None
    return text[1:] if text.startswith("\ufeff") else text


def _read_delimited(path: Path, text: str, delimiter: str) -> list[dict]:
    kind = "TSV" if delimiter == "\t" else "CSV"
    reader = csv.DictReader(text.splitlines(keepends=True), delimiter=delimiter)
    rows = []
    try:
        header = reader.fieldnames or []
        repeated = sorted({name for name in header if header.count(name) > 1})
        if repeated:  # a later column would silently replace the earlier one
            raise UserError(f"{path}:1: the {kind} header names column {repeated[0]!r} twice; "
                            "give every column its own name")
        for row in reader:
            if None in row:
                raise UserError(f"{path}:{reader.line_num}: {kind} row has more columns than "
                                f"the header ({len(header)}); quote values holding a "
                                f"{'tab' if delimiter == chr(9) else 'comma'}, or fix the row")
            if any(row.values()):  # a line of bare delimiters is blank
                rows.append(row)
    except csv.Error as exc:
        raise UserError(f"{path}:{reader.line_num}: malformed {kind} ({exc}); fix the file") from None
    return rows


def _read_array(path: Path, text: str) -> list[dict]:
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: malformed JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(rows, list):
        raise UserError(f"{path}: expected a JSON array of objects")
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise UserError(f"{path}: item {index} of the JSON array is a "
                            f"{type(row).__name__}, not an object; every item must be one "
                            "object such as {\"text\": ..., \"label\": ...}")
    return [row for row in rows if "_canary" not in row]


def _read_lines(path: Path, text: str) -> list[dict]:
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            if number == 1 and _is_one_object(text):
                raise UserError(f"{path}: holds one JSON object spread over lines; give an "
                                "array of row objects, or one row object per line") from None
            raise UserError(f"{path}:{number}: malformed JSON line ({exc.msg}); "
                            "each line must be one JSON object") from None
        if not isinstance(row, dict):
            raise UserError(f"{path}:{number}: expected a JSON object per line")
        if "_canary" not in row:
            rows.append(row)
    return rows


def _is_one_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except json.JSONDecodeError:
        return False


def _read_parquet(path: Path) -> list[dict]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UserError(f"{path}: reading Parquet needs pyarrow; pip install pyarrow "
                        "(or 'iclmeta[models]')") from None
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a broken file
        first = (str(exc).splitlines() or [exc.__class__.__name__])[0]
        raise UserError(f"{path}: not a readable Parquet file ({first})") from None
    rows = table.to_pylist()
    for column, names in class_names(table.schema.metadata).items():
        for row in rows:  # Hugging Face ClassLabel integers -> names; -1 means unlabelled
            value = row.get(column)
            if isinstance(value, int):
                row[column] = names[value] if 0 <= value < len(names) else None
    return rows


def class_names(metadata: dict | None) -> dict[str, list[str]]:
    """The ``ClassLabel`` columns recorded by ``datasets`` in a Parquet file's metadata."""
    try:
        info = json.loads((metadata or {}).get(b"huggingface", b"{}"))
        features = info.get("info", {}).get("features", {})
        return {name: list(f["names"]) for name, f in features.items()
                if isinstance(f, dict) and f.get("_type") == "ClassLabel"}
    except (ValueError, AttributeError, KeyError, TypeError):
        return {}
