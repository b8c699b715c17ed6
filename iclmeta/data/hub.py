"""Hugging Face datasets (hub ids such as ``clinc_oos`` or ``PolyAI/banking77``, or local folders).

Kept apart from ``sources.py`` because importing ``datasets`` is slow; only this path needs it.
No code runs from data: a folder holding a loading script is refused.

>>> ds = load_hf_dataset("PolyAI/banking77")  # needs the hub  # doctest: +SKIP
>>> len(ds.labels())  # doctest: +SKIP
77
"""
from __future__ import annotations

from pathlib import Path

from iclmeta.data.example import LabelledDataset
from iclmeta.data.fields import BUILTINS, LABEL_FIELDS, field_list, pick_field, pick_inputs
from iclmeta.data.rows import make_example
from iclmeta.errors import UserError

# The hub's split names mapped onto the ones the episode sampler understands.
SPLIT_NAMES = {"train": "train", "validation": "val", "valid": "val", "val": "val",
               "dev": "val", "test": "test"}


def _refuse_scripts(folder: Path) -> None:
    scripts = sorted(p.name for p in folder.glob("*.py")) if folder.is_dir() else []
    if scripts:
        raise UserError(f"{folder}: the dataset folder holds a loading script ({scripts[0]}); "
                        "iclmeta runs no code from data: give its data files instead "
                        "(CSV, TSV, JSON, JSON lines or Parquet, e.g. with --data-files)")


def _open(source: str, hf_config: str | None):
    folder = Path(source)
    _refuse_scripts(folder)
    import datasets

    if (folder / "dataset_dict.json").is_file() or (folder / "dataset_info.json").is_file():
        loaded = datasets.load_from_disk(str(folder))  # a folder written by save_to_disk
        return datasets.DatasetDict({"train": loaded}) if isinstance(loaded, datasets.Dataset) \
            else loaded
    try:
        loaded = datasets.load_dataset(source, hf_config)
    except FileNotFoundError:
        raise UserError(f"unknown dataset {source!r}: not a builtin ({', '.join(BUILTINS)}), "
                        "not a file, and not a Hugging Face dataset that can be reached; check "
                        "the name, or download it and pass a local path") from None
    except (ConnectionError, OSError) as exc:
        raise UserError(f"unknown dataset {source!r}: not a builtin ({', '.join(BUILTINS)}), "
                        f"not a file, and the Hugging Face hub could not load it "
                        f"({exc.__class__.__name__}); check the name and your network") from None
    except ValueError as exc:
        first = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise UserError(f"cannot load Hugging Face dataset {source!r}: {first}") from None
    if isinstance(loaded, datasets.Dataset):
        loaded = datasets.DatasetDict({"train": loaded})
    return loaded


def load_hf_dataset(source: str, text_field=None, label_field: str | None = None,
                    hf_config: str | None = None) -> LabelledDataset:
    """Every split of a hub dataset (or local dataset folder) as one labelled dataset.

    ``ClassLabel`` integers become their class names; unlabelled rows (no label, or -1, the
    hub's mark for one, as in GLUE's test splits) are left out.
    """
    loaded = _open(source, hf_config)
    first = next(iter(loaded.values()))
    sample = [dict(zip(first.column_names, [None] * len(first.column_names)))]
    inputs = pick_inputs(sample, field_list(text_field), source)
    lf = pick_field(sample, label_field, LABEL_FIELDS, "label", source, "--label-field")
    names = getattr(first.features[lf], "names", None)  # ClassLabel columns store integers
    name = Path(source).name if Path(source).exists() else source.split("/")[-1]
    examples = []
    for split, data in loaded.items():
        for i, row in enumerate(data.select_columns([*inputs, lf])):
            if row[lf] is None or (names is not None and not 0 <= row[lf] < len(names)):
                continue
            label = names[row[lf]] if names is not None else str(row[lf]).strip()
            examples.append(make_example({k: row[k] for k in inputs}, label,
                                         f"{name}:{split}:{i}", SPLIT_NAMES.get(split, split)))
    if not examples:
        raise UserError(f"dataset {source!r} is empty")
    return LabelledDataset(name, examples)
