"""LoRA adapter folders: ``adapter.json`` / ``checkpoint.json`` naming their safetensors file.

Loading checks a folder before any of it is used, and refuses a damaged one in one line that
names the file and the fix: the index must be a JSON object with the keys (and types) of
``FIELDS``; the weights file must be the very file the index names (its sha256); its tensors
must be the LoRA pairs the index's ``lora`` describes (targets, rank), with finite values; and
``adapter_weights`` checks their shapes against the model they are loaded into.

Every adapter folder is also a PEFT LoRA adapter: ``export_peft`` writes ``adapter_config.json``
and ``adapter_model.safetensors`` (tensors named as PEFT names them, ``base_model.model.`` +
the module path + ``.lora_A.weight``) from ``adapter.json``, so
``peft.PeftModel.from_pretrained(base_model, folder)`` loads it; ``adapter.json`` keeps
iclmeta's own record (algorithm, data fingerprint, meta-train classes, steps). A folder saved
before these files existed still loads, and ``export_peft`` adds them to it.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from iclmeta.errors import UserError
from iclmeta.io import read_json_object, read_verified, write_atomic, write_checkpoint

FORMAT = "iclmeta-lora/1"
_NUMBER = (int, float)
# What loading reads from an index and the JSON type it must have (dotted: inside an object).
FIELDS = {"method": str, "step": int, "weights": str, "lora": dict,
          "lora.rank": int, "lora.alpha": _NUMBER, "lora.targets": list, "train": dict,
          "train.inner_steps": int, "train.inner_lr": _NUMBER}
# Adapters saved before weights were content-named carry no sha256: their tensors still get
# every check below but the checksum.
OPTIONAL = {"weights_sha256": str, "lora.seed": int, "model": (str, type(None)),
            "trained_on": (dict, type(None))}
_LORA_KEY = re.compile(r"(.+)\.lora_([AB])\.weight")
PEFT_CONFIG = "adapter_config.json"
PEFT_WEIGHTS = "adapter_model.safetensors"
PEFT_PREFIX = "base_model.model."  # what PeftModelForCausalLM puts before the model's own names


def save_adapter(folder: Path, kind: str, tensors: dict, meta: dict,
                 extra_tensors: dict | None = None) -> None:
    """Write ``KIND-SHA16.safetensors`` then, atomically, ``adapter.json`` (kind ``best``) or
    ``checkpoint.json`` naming it, and prune older weights (``io.write_checkpoint``)."""
    from safetensors.torch import save_file
    weights = {**tensors, **(extra_tensors or {})}
    index = "adapter.json" if kind == "best" else "checkpoint.json"
    write_checkpoint(folder, kind, "safetensors", lambda tmp: save_file(weights, tmp), index, meta)


def load_adapter(path: str | Path, index: str = "adapter.json") -> tuple[dict, dict]:
    """``(tensors, meta)`` of an adapter folder written by ``meta_train``, checked whole."""
    from safetensors import SafetensorError
    from safetensors.torch import load
    file = Path(path) / index
    if not file.is_file():
        raise UserError(f"{Path(path)} holds no {index}; pass a folder written by 'iclmeta train'")
    meta = read_index(file)
    try:
        data = read_verified(file.parent, meta["weights"], meta.get("weights_sha256"))
    except ValueError as err:
        raise damaged(file, f"its weights file {err}") from None
    try:
        tensors = load(data)
    except SafetensorError as err:
        raise damaged(file, f"its weights file {meta['weights']} is unreadable ({err})") from None
    problem = layout_problem({k: v for k, v in tensors.items() if not k.startswith("optimizer.")},
                             meta["lora"])
    if problem:
        raise damaged(file, f"its weights disagree with its metadata: {problem}")
    return tensors, meta


def read_index(file: Path) -> dict:
    """The metadata of ``adapter.json`` / ``checkpoint.json``, with every key loading reads."""
    try:
        meta = read_json_object(file)
    except ValueError as err:
        raise damaged(file, str(err)) from None
    if meta.get("format") != FORMAT:
        raise UserError(f"{file} is not an iclmeta LoRA adapter (format {meta.get('format')!r}); "
                        "pass a folder written by 'iclmeta train'")
    for key, kind in {**FIELDS, **OPTIONAL}.items():
        *outer, name = key.split(".")
        holder = meta[outer[0]] if outer else meta
        if name not in holder:
            if key in OPTIONAL:
                continue
            raise damaged(file, f"has no {key!r}")
        value = holder[name]
        if isinstance(value, bool) or not isinstance(value, kind):
            raise damaged(file, f"has {key!r} = {value!r} of the wrong type")
    lora = meta["lora"]
    if lora["rank"] < 1 or not lora["targets"] or not all(
            isinstance(t, str) and t for t in lora["targets"]):
        raise damaged(file, f"has an impossible 'lora' ({lora})")
    if Path(meta["weights"]).name != meta["weights"]:
        raise damaged(file, f"names weights {meta['weights']!r} outside its folder")
    return meta


def layout_problem(tensors: dict, lora: dict) -> str | None:
    """What is wrong with ``tensors`` as the LoRA pairs of ``lora`` (targets, rank), or None."""
    import torch
    pairs: dict[str, dict] = {}
    for key, value in tensors.items():
        match = _LORA_KEY.fullmatch(key)
        if not match:
            return f"tensor {key!r} is not a LoRA weight"
        pairs.setdefault(match[1], {})[match[2]] = value
    adapted = sorted({module.rsplit(".", 1)[-1] for module in pairs})
    if adapted != sorted(set(lora["targets"])):
        return f"it adapts {adapted}, the metadata says targets {lora['targets']}"
    rank = lora["rank"]
    for module, pair in sorted(pairs.items()):  # the same first problem whatever the file order
        if set(pair) != {"A", "B"}:
            return f"{module} has lora_{''.join(pair)} without its partner"
        a, b = pair["A"], pair["B"]
        if a.dim() != 2 or b.dim() != 2 or a.shape[0] != rank or b.shape[1] != rank:
            return (f"{module} has lora_A {list(a.shape)} and lora_B {list(b.shape)}, not "
                    f"rank {rank}")
        if not (a.is_floating_point() and b.is_floating_point()):
            return f"{module} holds {a.dtype} / {b.dtype} values, not floating point"
        if not (bool(torch.isfinite(a).all()) and bool(torch.isfinite(b).all())):
            return f"{module} holds non-finite values"
    return None


def peft_config(meta: dict) -> dict:
    """The ``adapter_config.json`` of an adapter's ``meta``: PEFT's own ``LoraConfig`` fields,
    so ``scaling = alpha / rank`` and the targets are what iclmeta trained with."""
    from peft import LoraConfig
    lora = meta["lora"]
    config = LoraConfig(r=lora["rank"], lora_alpha=lora["alpha"],
                        target_modules=sorted(lora["targets"]), lora_dropout=0.0, bias="none",
                        task_type="CAUSAL_LM", inference_mode=True,
                        base_model_name_or_path=meta.get("model")).to_dict()
    return {k: sorted(v) if isinstance(v, set) else v for k, v in config.items()}


def export_peft(folder: str | Path) -> Path:
    """Write (or refresh) the PEFT files of the adapter folder ``folder`` from its
    ``adapter.json``; each replaces its old copy atomically. Returns the folder.

    >>> export_peft("adapters/fomaml")                                 # doctest: +SKIP
    >>> PeftModel.from_pretrained(base_model, "adapters/fomaml")        # doctest: +SKIP
    """
    from safetensors.torch import save
    folder = Path(folder)
    tensors, meta = load_adapter(folder)
    weights = {PEFT_PREFIX + k: v.contiguous() for k, v in tensors.items()
               if not k.startswith("optimizer.")}
    write_atomic(folder / PEFT_CONFIG, json.dumps(peft_config(meta), indent=2, sort_keys=True))
    write_atomic(folder / PEFT_WEIGHTS, save(weights, metadata={"format": "pt"}))
    return folder


def adapter_weights(lora, tensors: dict, file: Path, model: str):
    """``lora.from_portable(tensors)``, or one line naming ``file`` if they do not fit the model
    (a different base model: other hidden sizes or layers)."""
    try:
        return lora.from_portable(tensors)
    except ValueError as err:
        raise damaged(file, f"it does not fit model {model} ({err}); its base model differs") \
            from None


def damaged(file: Path, problem: str) -> UserError:
    """The one-line refusal of a damaged adapter file, with the fix that fits its index."""
    fix = ("retrain it with 'iclmeta train' or pass the right --adapter" if
           file.name != "checkpoint.json" else "this run cannot resume from it: train into a "
           "new --out")
    return UserError(f"adapter file {file}: {problem}; {fix}")


def adapter_method(path: str | Path) -> str | None:
    """The method an adapter folder was trained with (``None`` if it holds no adapter.json);
    a damaged ``adapter.json`` is refused here, before anything else is loaded."""
    file = Path(path) / "adapter.json"
    return read_index(file)["method"] if file.is_file() else None


def flatten_optimizer(opt) -> tuple[dict, dict]:
    """Optimizer state as flat tensors (for safetensors) plus JSON-able hyper-parameters."""
    state = opt.state_dict()
    tensors = {f"optimizer.{i}.{key}": value.detach().clone().contiguous().reshape(value.shape)
               for i, slot in state["state"].items() for key, value in slot.items()}
    return tensors, {"param_groups": state["param_groups"]}


def load_optimizer(opt, tensors: dict, meta: dict) -> None:
    """Inverse of ``flatten_optimizer``: restore ``opt`` from its flat tensors and ``meta``."""
    state: dict = {}
    for key, value in tensors.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


class TrainLog:
    """``log.jsonl``: one line per step, appended and flushed as it comes; lines past a
    resumed step are dropped, so every step has exactly one line."""

    def __init__(self, path: Path):
        self.path = path

    def truncate_after(self, step: int) -> None:
        if not self.path.exists():
            return
        keep = [line for line in self.path.read_text(encoding="utf-8").splitlines()
                if _line_step(line) is not None and _line_step(line) <= step]
        write_atomic(self.path, "".join(line + "\n" for line in keep))

    def append(self, row: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")


def _line_step(line: str) -> int | None:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None
