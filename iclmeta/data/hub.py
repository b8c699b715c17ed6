"""Hugging Face datasets (hub ids such as ``clinc_oos`` or ``PolyAI/banking77``, or local folders).

Kept apart from ``sources.py`` because importing ``datasets`` is slow; only this path needs it.

>>> ds = load_hf_dataset("PolyAI/banking77")  # needs the hub  # doctest: +SKIP
>>> len(ds.labels())  # doctest: +SKIP
77
"""
from __future__ import annotations

from pathlib import Path

from iclmeta.data.example import Example, LabelledDataset
from iclmeta.data.fields import BUILTINS, LABEL_FIELDS, TEXT_FIELDS, pick_field
from iclmeta.errors import UserError

# The hub's split names mapped onto the ones the episode sampler understands.

# The hub's split names mapped onto the ones the episode sampler understands.

# The hub's split names mapped onto the ones the episode sampler understands.
SPLIT_NAMES = {"train": "train", "validation": "val", "valid": "val", "val": "val",
               "dev": "val", "test": "test"}


def _open(source: str, hf_config: str | None):
    import datasets

    folder = Path(source)
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


def load_hf_dataset(source: str, text_field: str | None = None, label_field: str | None = None,
                    hf_config: str | None = None) -> LabelledDataset:
    """Every split of a hub dataset (or local dataset folder) as one labelled dataset."""
    loaded = _open(source, hf_config)
    first = next(iter(loaded.values()))
    sample = [dict(zip(first.column_names, [None] * len(first.column_names)))]
    tf = pick_field(sample, text_field, TEXT_FIELDS, "text", source, "--text-field")
    lf = pick_field(sample, label_field, LABEL_FIELDS, "label", source, "--label-field")
    feature = first.features[lf]
    names = getattr(feature, "names", None)  # ClassLabel columns store integers
    name = Path(source).name if Path(source).exists() else source.split("/")[-1]
    examples = []
    for split, data in loaded.items():
        for i, row in enumerate(data.select_columns([tf, lf])):
            label = names[row[lf]] if names is not None else str(row[lf])
            examples.append(Example(str(row[tf]), label, f"{name}:{split}:{i}",
                                    SPLIT_NAMES.get(split, split)))
    if not examples:
        raise UserError(f"dataset {source!r} is empty")
    return LabelledDataset(name, examples)
