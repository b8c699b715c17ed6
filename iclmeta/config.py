"""Typed run configuration, saved as ``config.yaml`` beside every run's results.

>>> cfg = EvalConfig(methods=["icl"], shots=[0, 1])
>>> EvalConfig.from_dict(cfg.to_dict()) == cfg
True
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Literal, get_args

import yaml

from .errors import UserError

Scoring = Literal["direct", "normalized", "calibrated", "channel", "generate"]
DemoSource = Literal["random", "retrieval"]
ChatFormat = Literal["turns", "packed"]
Device = Literal["auto", "cpu", "cuda", "mps"]
DType = Literal["auto", "float32", "bfloat16", "float16"]
ClassSplitChoice = Literal["auto", "disjoint", "all"]
Order = Literal["nearest-last", "nearest-first"]


@dataclass
class EvalConfig:
    """Everything that decides an evaluation's rows. Strings are parsed once, at the CLI."""

    methods: list[str] = field(default_factory=lambda: ["retrieval"])
    dataset: str = "snips"
    text_field: str | None = None
    label_field: str | None = None
    split_field: str | None = None
    hf_config: str | None = None
    model: str | None = None  # None: the embedded default LM
    embedder: str | None = None  # None: the embedded default embedder
    template: str | None = None  # None: chosen from the dataset name
    ways: int | None = None  # None: 5, or every class when evaluating over all classes
    shots: list[int] = field(default_factory=lambda: [0, 1, 4])
    # Defaults sized so the bare `iclmeta eval` takes about a minute on 2 CPU cores;
    # raise both for tighter confidence intervals.
    queries: int | None = 2  # per class; None: every available query example
    episodes: int = 5
    pool: int | None = None  # support pool per class; None: the largest shot count
    seed: int = 0
    split: str = "meta-test"
    split_seed: int = 0
    class_split: ClassSplitChoice = "auto"
    scoring: Scoring = "normalized"  # see iclmeta.scoring_modes
    demos: DemoSource = "random"  # instruct: random (icl-like) or retrieved demonstrations
    chat_format: ChatFormat = "turns"  # instruct: demos as user/assistant turns or one packed turn
    log_prompts: bool = False  # store each query's prompt text in its row ("prompts")
    k: int | None = None  # demonstrations per prompt for icl/retrieval; None: ways x shots
    balance: bool = False  # retrieval: equal demonstrations per label
    mmr: float | None = None  # retrieval: MMR trade-off lambda in [0, 1]
    order: Order = "nearest-last"
    device: Device = "auto"
    dtype: DType = "auto"
    batch_size: int | Literal["auto"] = 8  # "auto": fill a CUDA device
    cache_dir: str | None = None
    trust_remote_code: bool = False
    out: str = "runs/latest"
    distance: Literal["cosine", "euclidean"] | None = None  # metric methods; None: checkpoint's, else cosine
    checkpoints: list[str] = field(default_factory=list)  # trained folders; each method takes its own
    adapters: list[str] = field(default_factory=list)  # LoRA folders from 'iclmeta train'; each method takes its own
    adapt_steps: int | None = None  # gradient methods: SGD steps on the support; None: the adapter's inner steps (finetune: 3)
    adapt_lr: float | None = None  # None: the adapter's inner lr (finetune: 0.1)
    lora_rank: int = 8  # finetune's fresh LoRA (meta-learned adapters carry their own layout)
    lora_alpha: float = 16.0
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "EvalConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise UserError(f"unknown config key(s) {sorted(unknown)}; allowed: "
                            f"{', '.join(sorted(known))}")
        cfg = cls(**data)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        for name, literal in _CHOICES.items():
            choices = get_args(literal)
            if getattr(self, name) not in choices:
                raise UserError(f"unknown {name} {getattr(self, name)!r}; choose one of: "
                                f"{', '.join(choices)}")
        if self.batch_size != "auto" and (not isinstance(self.batch_size, int)
                                          or self.batch_size < 1):
            raise UserError(f"--batch-size {self.batch_size!r} must be a positive integer or 'auto'")
        if self.episodes < 1:
            raise UserError("--episodes must be at least 1")
        if self.queries is not None and self.queries < 1:
            raise UserError("--queries must be at least 1 (or 'all')")
        if (self.adapt_steps or 0) < 0 or (self.adapt_lr or 0) < 0 or self.lora_rank < 1:
            raise UserError("--adapt-steps and --adapt-lr must be non-negative, --lora-rank >= 1")
        if self.mmr is not None and not 0.0 <= self.mmr <= 1.0:
            raise UserError(f"--mmr {self.mmr} is outside [0, 1]; 1 is pure similarity")
        if self.distance not in (None, "cosine", "euclidean"):
            raise UserError(f"unknown distance {self.distance!r}; choose one of: cosine, euclidean")


_CHOICES = {"scoring": Scoring, "demos": DemoSource, "chat_format": ChatFormat,
            "device": Device, "dtype": DType, "class_split": ClassSplitChoice, "order": Order}


def save_yaml(data: dict, path: str | Path) -> None:
    """Write YAML atomically: a crash never leaves a half-written file behind."""
    write_atomic(path, yaml.safe_dump(data, sort_keys=False))


def load_yaml(path: str | Path) -> dict:
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"cannot read {path}: {exc.__class__.__name__}; check the file") from None


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename.

    Whatever the body writes there (text, ``savefig``, safetensors) either lands whole with the
    usual permissions or, if the body fails, is removed: a crash never leaves a torn file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write text (UTF-8) or bytes to ``path`` atomically (see ``atomic_path``)."""
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
