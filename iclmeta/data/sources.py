"""Labelled text datasets: builtin ones, the user's files (one file, or one per split), and
Hugging Face datasets.

>>> ds = load_dataset("trec")
>>> len(ds.labels()), ds.label_names["NUM"]
(6, 'number')
"""
from __future__ import annotations

import re
from pathlib import Path

from iclmeta.config.source import DataSource
from iclmeta.data.example import LabelledDataset, deduplicate
from iclmeta.data.fields import BUILTINS, suggest
from iclmeta.data.files import SUPPORTED, check_suffix, read_rows
from iclmeta.data.rows import check_labels, dataset_from_rows
from iclmeta.data.shipped import load_builtin
from iclmeta.errors import UserError

# The split names --data-files takes (what the episode sampler reads as train and query splits).
FILE_SPLITS = ("train", "test", "validation", "val", "dev")
# Suffixes that name a file, never a hub dataset: a missing one is reported as a missing file.
FILE_SUFFIXES = SUPPORTED + (".txt", ".tab", ".xlsx", ".xls", ".ndjson", ".xml", ".arrow",
                             ".gz", ".zip", ".pkl", ".yaml", ".yml")


def load_dataset(source: str, text_field=None, label_field: str | None = None,
                 split_field: str | None = None, hf_config: str | None = None, *,
                 data_files: dict[str, str] | None = None,
                 encoding: str = "utf-8") -> LabelledDataset:
    """Load a builtin name, a data file, one file per split, or a Hugging Face id / folder.

    ``text_field`` names the input field, or several (a list or ``"premise,hypothesis"``) for
    multi-field examples. ``data_files`` maps splits to files (``{"train": "a.csv", "test":
    "b.csv"}``); ``source`` then only names the data. Exact duplicate texts are dropped (see
    ``deduplicate``; the count is in ``duplicates_removed``), so no query can be shown its own
    copy as a demonstration. A dataset needs two classes that read differently in a prompt.

    >>> load_dataset("snips").labels()[:2]
    ['add_to_playlist', 'book_restaurant']
    """
    if not data_files and not str(source).strip():
        raise UserError("--dataset is empty; pass a builtin name (see 'iclmeta ls datasets'), "
                        "a data file or a Hugging Face dataset id")
    if data_files:
        ds = _load_files(source, data_files, text_field, label_field, split_field, encoding)
    else:
        ds = _load(source, text_field, label_field, split_field, hf_config, encoding)
    ds = deduplicate(ds)
    check_labels(ds, source if not data_files else ds.name)
    return ds


def load_source(source: DataSource) -> LabelledDataset:
    """``load_dataset`` for a config's data fields (any ``DataSource``: eval or training)."""
    return load_dataset(source.dataset, source.text_field, source.label_field,
                        source.split_field, source.hf_config,
                        data_files=source.data_files, encoding=source.encoding)


def _load(source, text_field, label_field, split_field, hf_config, encoding) -> LabelledDataset:
    if source in BUILTINS:
        return load_builtin(source, label_field, text_field)
    path = Path(source).expanduser()
    if path.is_file() or (not path.exists() and path.suffix.lower() in FILE_SUFFIXES):
        rows = read_rows(path, encoding)
        return dataset_from_rows(path.stem, rows, str(path), text_field, label_field,
                                 split_field)
    if not path.exists() and "/" not in source and "\\" not in source:
        suggest(source, BUILTINS)  # a typo of a builtin, not a hub id
    from iclmeta.data.hub import load_hf_dataset  # heavy: only for hub ids and dataset folders
    return load_hf_dataset(source, text_field, label_field, hf_config)


def _load_files(source, data_files, text_field, label_field, split_field,
                encoding) -> LabelledDataset:
    """One file per split: each file's rows take that split."""
    if not isinstance(data_files, dict):
        raise UserError(f"data_files must map splits to files, e.g. {{train: a.csv, test: "
                        f"b.csv}} (--data-files train=a.csv,test=b.csv); got {data_files!r}")
    if split_field is not None:
        raise UserError("--split-field does not apply with --data-files (each file is one "
                        "split); leave it out")
    unknown = sorted(set(data_files) - set(FILE_SPLITS))
    if unknown:
        raise UserError(f"--data-files: unknown split {unknown[0]!r}; use "
                        f"{', '.join(FILE_SPLITS)}, e.g. train=a.csv,test=b.csv")
    paths = {split: Path(str(p)).expanduser() for split, p in data_files.items()}
    for split, path in paths.items():
        if not path.is_file():
            raise UserError(f"--data-files: the {split} file {path} does not exist; "
                            "check the path")
        check_suffix(path)
    name = _files_name(source, paths)
    parts = [dataset_from_rows(name, read_rows(path, encoding), str(path), text_field,
                               label_field, None, split=split) for split, path in paths.items()]
    return LabelledDataset(name, [ex for part in parts for ex in part.examples])


def _files_name(source: str, paths: dict[str, Path]) -> str:
    """``--dataset`` names per-split files unless it is a builtin (the default); then the
    file names do: their common stem without the split words, else their folder."""
    if source and source not in BUILTINS:
        if Path(source).exists() or "/" in source or Path(source).suffix.lower() in FILE_SUFFIXES:
            raise UserError(f"--dataset {source} and --data-files both give data; with "
                            "--data-files, --dataset only names it (a plain name) or is left out")
        return source
    words = "|".join(FILE_SPLITS)
    stems = {re.sub(rf"(^|[-_.])({words})($|[-_.])", r"\1\3", p.stem).strip("-_.")
             for p in paths.values()}
    if len(stems) == 1 and stems != {""}:
        return stems.pop()
    folder = next(iter(paths.values())).resolve().parent.name
    return folder or "data"
