"""What every config field carries besides its type and default: help, group, who uses it.

``opt(default, help, **meta)`` is ``dataclasses.field`` with the command-line facts in its
metadata, so the CLI generates each flag from the field itself (``iclmeta.cli.flags``):

- ``help``: the flag's help; ``default_text``: how to show a default the value cannot (a None
  that means "the checkpoint's", "guessed", ...); other defaults are shown as they are;
- ``group``: the help section (``data``, ``episodes``, ``models``, ...); none: top level;
- ``used_by``: the methods that read the field; a flag no selected method uses is an error;
- ``flag``: the flag's name when it is not ``--field-name``; ``repeat``: given once per value;
- ``none``: the word that means None on the command line (``--queries all``).

>>> from dataclasses import dataclass, fields
>>> @dataclass
... class C:
...     shots: list[int] = opt([0, 1], "shot counts", group="episodes")
>>> fields(C)[0].metadata["help"], C().shots
('shot counts', [0, 1])
"""
from __future__ import annotations

import dataclasses
from typing import Literal, get_args, get_origin, get_type_hints

from iclmeta.errors import UserError

Device = Literal["auto", "cpu", "cuda", "mps"]
DType = Literal["auto", "float32", "bfloat16", "float16"]
Distance = Literal["cosine", "euclidean"]

# Method families, as the harness registry names them (tests/test_cli.py checks they match).
PROMPTING = ("zero-shot", "icl", "retrieval", "instruct")
METRIC = ("knn", "protonet", "matching", "relation")
GRADIENT = ("finetune", "multitask", "maml", "fomaml", "reptile")
LM_METHODS = PROMPTING + GRADIENT


def opt(default=None, help: str = "", **meta):
    """A dataclass field with its help and CLI metadata; a list default is copied per instance."""
    meta["help"] = help
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


# Fields that eval and both trainers share carry one help text, written once here.
SHARED_HELP = {
    "dataset": "builtin name (trec, trec-50, snips), a .jsonl/.csv file, or a Hugging Face "
               "dataset id or folder",
    "text_field": "field holding the text",
    "label_field": "field holding the label",
    "split_field": "field naming each example's split",
    "hf_config": "configuration of a Hugging Face dataset, e.g. plus",
    "model": "LM: smollm2 (embedded), gemma3-270m, a Hugging Face id, a local folder or a "
             ".gguf file",
    "embedder": "sentence-transformers model: minilm (embedded), a Hugging Face id or a local "
                "folder",
    "template": "prompt template name in prompts/ or a YAML file",
    "device": "where the LM runs",
    "dtype": "precision of the LM's weights (auto: float32 on the CPU, where it keeps "
             "predictions independent of batch size and prefix reuse; bfloat16 on GPUs)",
    "cache_dir": "model and embedding cache",
    "split_seed": "seed of the class split",
    "lora_rank": "LoRA rank of a fresh adapter",
    "lora_alpha": "LoRA alpha",
    "lora_targets": "comma-separated module names to adapt",
}
SHARED_DEFAULT_TEXT = {"text_field": "guessed", "label_field": "guessed",
                       "split_field": "'split' when present", "model": "smollm2",
                       "embedder": "minilm", "template": "by dataset",
                       "cache_dir": "$ICLMETA_CACHE or ~/.cache/iclmeta"}


def shared(name: str, default=None, **meta):
    """``opt`` with the shared help of ``name`` (a field of several configs)."""
    if name in SHARED_DEFAULT_TEXT:
        meta.setdefault("default_text", SHARED_DEFAULT_TEXT[name])
    return opt(default, SHARED_HELP[name], **meta)


def check_choices(config) -> None:
    """Every ``Literal`` field (or ``Literal | None``) holds one of its choices.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class C:
    ...     device: Device = "cpu"
    >>> check_choices(C(device="gpu"))
    Traceback (most recent call last):
    ...
    iclmeta.errors.UserError: unknown device 'gpu'; choose one of: auto, cpu, cuda, mps
    """
    for name, hint in get_type_hints(type(config)).items():
        choices = literal_choices(hint)
        value = getattr(config, name)
        if choices and value not in choices and not (value is None and _optional(hint)):
            raise UserError(f"unknown {name} {value!r}; choose one of: "
                            f"{', '.join(map(str, choices))}")


def literal_choices(hint) -> tuple:
    """The values of a ``Literal`` or ``Literal | None`` hint; () for any other type."""
    if get_origin(hint) is Literal:
        return get_args(hint)
    inner = [a for a in get_args(hint) if a is not type(None)]
    if len(inner) == 1 and get_origin(inner[0]) is Literal and _optional(hint):
        return get_args(inner[0])
    return ()


def _optional(hint) -> bool:
    return type(None) in get_args(hint)
