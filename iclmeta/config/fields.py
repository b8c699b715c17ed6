"""What every config field carries besides its type and default: help, group, who uses it.

``opt(default, help, **meta)`` is ``dataclasses.field`` with the command-line facts in its
metadata, so the CLI generates each flag from the field itself (``iclmeta.cli.flags``):

- ``help``: the flag's help; ``default_text``: how to show a default the value cannot (a None
  that means "the checkpoint's", "guessed", ...); other defaults are shown as they are;
- ``group``: the help section (``data``, ``episodes``, ``models``, ...); none: top level;
- ``used_by``: the methods that read the field; a flag no selected method uses is an error;
- ``flag``: the flag's name when it is not ``--field-name``; ``repeat``: given once per value
  (``comma``: or several per flag, comma-separated);
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
import re
from typing import Annotated, Literal, get_args, get_origin, get_type_hints

from iclmeta.errors import UserError


@dataclasses.dataclass(frozen=True)
class Pattern:
    """The form a string field must have, as ``Annotated[str, Pattern(regex, choices)]``; the
    CLI and ``check_choices`` both check it, and ``choices`` is what errors offer instead.

    >>> Pattern(r"cuda(:[0-9]+)?", "cuda or cuda:N").matches("cuda:1")
    True
    """

    regex: str
    choices: str

    def matches(self, value) -> bool:
        return isinstance(value, str) and re.fullmatch(self.regex, value) is not None


# cuda:N picks one GPU; whether it exists is checked where the model loads (iclmeta.devices).
Device = Annotated[str, Pattern(r"auto|cpu|mps|cuda(:[0-9]+)?", "auto, cpu, mps, cuda or cuda:N")]
DType = Literal["auto", "float32", "bfloat16", "float16"]
Distance = Literal["cosine", "euclidean"]

# Method families, as the harness registry names them (tests/test_cli.py checks they match).
PROMPTING = ("zero-shot", "icl", "retrieval", "instruct")
METRIC = ("knn", "protonet", "matching", "relation")
GRADIENT = ("finetune", "multitask", "maml", "fomaml", "reptile", "retrieve-adapt")
LM_METHODS = PROMPTING + GRADIENT


def opt(default=None, help: str = "", **meta):
    """A dataclass field with its help and CLI metadata; a list default is copied per instance."""
    meta["help"] = help
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


# Fields that eval and both trainers share carry one help text, written once here.
SHARED_HELP = {
    "dataset": "builtin name (trec, trec-50, snips, presup-nli), a .csv/.tsv/.json/.jsonl/"
               ".parquet file, or a Hugging Face dataset id or folder; with --data-files, "
               "a name for the data",
    "text_field": "field holding the text, or comma-separated fields for multi-field inputs "
                  "(premise,hypothesis)",
    "label_field": "field holding the label",
    "split_field": "field naming each example's split",
    "hf_config": "configuration of a Hugging Face dataset, e.g. plus",
    "data_files": "one file per split, comma-separated SPLIT=FILE pairs "
                  "(train=a.csv,test=b.csv[,validation=c.csv]); each file's rows take its split",
    "encoding": "text encoding of CSV/TSV/JSON files (a UTF-8 BOM is skipped)",
    "model": "LM: smollm2 (embedded), gemma3-270m, a Hugging Face id, a local folder or a "
             ".gguf file",
    "embedder": "sentence-transformers model: minilm (embedded), a Hugging Face id or a local "
                "folder",
    "template": "prompt template name in prompts/ or a YAML file",
    "task": "a task file (YAML) or a shipped task name ('iclmeta ls tasks'): data, fields, "
            "template, verbalizers and defaults in one; flags given beside it override it",
    # Help goes through str.format: four braces show as two.
    "embed_template": "what the embedder reads (retrieval, metric methods): a template over "
                      "the input fields, e.g. '{{{{premise}}}}'",
    "device": "where the LM runs: auto (the first CUDA GPU when there is one, else the CPU), "
              "cpu, mps, cuda or cuda:N (GPU number N)",
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
                       "embed_template": "a single field as it is; several as "
                                         "'name: value' lines",
                       "cache_dir": "$ICLMETA_CACHE or ~/.cache/iclmeta"}


def shared(name: str, default=None, **meta):
    """``opt`` with the shared help of ``name`` (a field of several configs)."""
    if name in SHARED_DEFAULT_TEXT:
        meta.setdefault("default_text", SHARED_DEFAULT_TEXT[name])
    return opt(default, SHARED_HELP[name], **meta)


def check_choices(config) -> None:
    """Every ``Literal`` field (or ``Literal | None``) holds one of its choices, and every
    ``Pattern`` field has its form.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class C:
    ...     device: Device = "cpu"
    >>> check_choices(C(device="gpu"))
    Traceback (most recent call last):
    ...
    iclmeta.errors.UserError: unknown device 'gpu'; choose one of: auto, cpu, mps, cuda or cuda:N
    """
    for name, hint in get_type_hints(type(config), include_extras=True).items():
        choices = literal_choices(hint)
        value = getattr(config, name)
        if (pattern := pattern_of(hint)) and not pattern.matches(value):
            raise UserError(f"unknown {name} {value!r}; choose one of: {pattern.choices}")
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


def pattern_of(hint) -> Pattern | None:
    """The ``Pattern`` of an ``Annotated[str, Pattern(...)]`` hint; None for any other type."""
    if get_origin(hint) is Annotated:
        return next((m for m in hint.__metadata__ if isinstance(m, Pattern)), None)
    return None


def _optional(hint) -> bool:
    return type(None) in get_args(hint)
