"""Meta-training of LoRA initialisations: MAML, first-order MAML, Reptile, multi-task.

``meta_train(config)`` writes to ``config.out``:

- ``adapter.json`` + ``best-STEP.safetensors``: the initialisation with the best meta-val
  accuracy, with everything needed to reload it (LoRA layout, model, template, scoring,
  training settings). ``adapter.json`` is replaced atomically after its weights file is on
  disk, so it always names a complete checkpoint.
- ``checkpoint.json`` + ``last-STEP.safetensors``: the latest state (weights, optimiser state,
  step), written the same way; a rerun with the same settings resumes from it.
- ``log.jsonl``: one line per meta-step (loss, seconds) and per validation (accuracy).

A non-finite loss or meta-gradient stops training with a ``UserError`` before any update or
save, so the last good checkpoint and best adapter stay as they were.

>>> cfg = MetaTrainConfig(method="reptile", dataset="clinc150.jsonl", steps=50,
...                       out="adapters/reptile")                      # doctest: +SKIP
>>> meta_train(cfg)                                                   # doctest: +SKIP
"""
from __future__ import annotations

import json
import math
import random
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from .config import atomic_path, load_yaml, save_yaml, write_atomic
from .errors import UserError

MetaMethod = Literal["maml", "fomaml", "reptile", "multitask"]
META_METHODS = ("maml", "fomaml", "reptile", "multitask")
# Reptile's meta-lr is an interpolation step size in (0, 1]; the others' is an Adam learning rate.
DEFAULT_META_LR = {"maml": 1e-3, "fomaml": 1e-3, "multitask": 1e-3, "reptile": 0.5}
FORMAT = "iclmeta-lora/1"


@dataclass
class MetaTrainConfig:
    """Everything that decides a meta-training run; saved as ``train.yaml`` in ``out``."""

    method: MetaMethod = "reptile"
    dataset: str = "snips"
    text_field: str | None = None
    label_field: str | None = None
    split_field: str | None = None
    hf_config: str | None = None
    model: str | None = None
    template: str | None = None
    scoring: Literal["direct", "normalized"] = "normalized"
    ways: int = 5
    shots: list[int] = field(default_factory=lambda: [1, 4])  # each task draws one of these
    queries: int = 3  # query examples per class in a meta-train task
    split_seed: int = 0
    seed: int = 0
    steps: int = 50
    inner_steps: int = 2
    inner_lr: float = 0.1
    meta_lr: float | None = None  # None: DEFAULT_META_LR[method]
    meta_batch: int = 2
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    eval_every: int = 10
    val_episodes: int = 4
    val_queries: int = 5  # query examples per class in a meta-val episode
    device: str = "auto"
    dtype: str = "auto"
    cache_dir: str | None = None
    out: str = "adapters/latest"

    def resolved_meta_lr(self) -> float:
        return DEFAULT_META_LR[self.method] if self.meta_lr is None else self.meta_lr

    def validate(self) -> None:
        if self.method not in META_METHODS:
            raise UserError(f"unknown meta-training method {self.method!r}; choose one of: "
                            f"{', '.join(META_METHODS)}")
        for name in ("steps", "meta_batch", "eval_every", "val_episodes", "val_queries",
                     "queries", "ways", "lora_rank"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1")
        if self.inner_steps < 1 and self.method != "multitask":
            raise UserError(f"--inner-steps must be at least 1 for {self.method}")
        if self.inner_lr <= 0 or self.resolved_meta_lr() <= 0:
            raise UserError("--inner-lr and --meta-lr must be positive")
        if self.method == "reptile" and self.resolved_meta_lr() > 1:
            raise UserError("--meta-lr for reptile is an interpolation step size; use (0, 1]")
        if not self.shots or min(self.shots) < 1:
            raise UserError("--shots for meta-training must be positive, e.g. 1,4")


def save_adapter(folder: Path, kind: str, step: int, tensors: dict, meta: dict,
                 extra_tensors: dict | None = None) -> None:
    """Write ``KIND-STEP.safetensors`` then, atomically, ``KIND.json`` naming it; prune older."""
    from safetensors.torch import save_file
    folder.mkdir(parents=True, exist_ok=True)
    weights = f"{kind}-{step:06d}.safetensors"
    with atomic_path(folder / weights) as tmp:
        save_file({**tensors, **(extra_tensors or {})}, tmp)
    index = "adapter.json" if kind == "best" else "checkpoint.json"
    write_atomic(folder / index, json.dumps({**meta, "weights": weights}, indent=1))
    for old in folder.glob(f"{kind}-*.safetensors"):
        if old.name != weights:
            old.unlink(missing_ok=True)


def load_adapter(path: str | Path, index: str = "adapter.json") -> tuple[dict, dict]:
    """``(tensors, meta)`` of an adapter folder written by ``meta_train``."""
    from safetensors.torch import load_file
    folder = Path(path)
    if not (folder / index).is_file():
        raise UserError(f"{folder} holds no {index}; pass a folder written by 'iclmeta train'")
    try:
        meta = json.loads((folder / index).read_text(encoding="utf-8"))
        tensors = load_file(str(folder / meta["weights"]))
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"cannot read the adapter in {folder} ({exc.__class__.__name__}); "
                        "retrain it with 'iclmeta train'") from None
    if meta.get("format") != FORMAT:
        raise UserError(f"{folder} is not an iclmeta LoRA adapter (format {meta.get('format')!r})")
    return tensors, meta


def adapter_method(path: str | Path) -> str | None:
    """The method an adapter folder was trained with (``None`` if it holds no adapter)."""
    try:
        return json.loads((Path(path) / "adapter.json").read_text(encoding="utf-8")).get("method")
    except (OSError, ValueError):
        return None


class TrainLog:
    """``log.jsonl``: appended and flushed line by line; lines past a resumed step are dropped."""

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


def meta_train(config: MetaTrainConfig, progress: bool = True,
               echo=lambda msg: print(msg, file=sys.stderr)) -> dict:
    """Run (or resume) meta-training; returns the best adapter's metadata."""
    from .meta_loop import MetaTrainer
    config.validate()
    out = Path(config.out)
    _check_resume(config, out)
    trainer = MetaTrainer(config, echo)
    return trainer.run(progress)


def _check_resume(config: MetaTrainConfig, out: Path) -> None:
    saved = out / "train.yaml"
    if saved.exists():
        previous = load_yaml(saved)
        changed = sorted(k for k, v in asdict(config).items()
                         if k != "steps" and previous.get(k) != v)
        if changed:
            raise UserError(f"{out} holds a run with different settings ({', '.join(changed)});"
                            " use the same settings to resume, or a new --out")
    save_yaml(asdict(config), saved)


def finite(value: float) -> bool:
    return not (math.isnan(value) or math.isinf(value))


def task_rng(seed: int, step: int) -> random.Random:
    return random.Random(f"meta-train:{seed}:{step}")
