"""The two training configs behind ``iclmeta train``: metric methods and LoRA meta-learning.

``--method`` picks the config; ``iclmeta.cli`` generates the flags from both, and a flag of the
other family is an error that names the family using it.

>>> MetaTrainConfig(method="maml").out, MetricTrainConfig(method="relation").out
('adapters/maml', 'checkpoints/relation')
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from iclmeta.config.fields import Device, Distance, DType, check_choices, opt, shared
from iclmeta.config.source import DataSource
from iclmeta.errors import UserError

Head = Literal["linear", "mlp", "none"]
MetricMethod = Literal["protonet", "matching", "relation"]
MetaMethod = Literal["maml", "fomaml", "reptile", "multitask", "retrieve-adapt"]
TRAINABLE = ("protonet", "matching", "relation")
META_METHODS = ("maml", "fomaml", "reptile", "multitask", "retrieve-adapt")
# Reptile's meta-lr is an interpolation step size in (0, 1]; the others' is an Adam learning rate.
DEFAULT_META_LR = {"maml": 1e-3, "fomaml": 1e-3, "multitask": 1e-3, "reptile": 0.5,
                   "retrieve-adapt": 1e-3}

_SHOTS = "comma-separated shot counts, cycled over training tasks"
_QUERIES = "query examples per class in a training episode"
_SEED = "seed of episodes and initialisation"
_VAL = "meta-val episodes at each check"
_EVERY = "steps between meta-val checks"
_OUT = "folder the best step is saved to"


@dataclass
class MetricTrainConfig(DataSource):
    """How to meta-train one metric method (saved inside the checkpoint's ``config.json``)."""

    method: MetricMethod = "protonet"
    embedder: str | None = shared("embedder")
    cache_dir: str | None = shared("cache_dir", group="models")
    ways: int = opt(5, "classes per episode", group="training")
    shots: list[int] = opt([1, 5], _SHOTS, group="training")
    queries: int = opt(5, _QUERIES, group="training")
    steps: int = opt(500, "training episodes", group="training")
    lr: float = opt(1e-3, "Adam learning rate")
    seed: int = opt(0, _SEED, group="training")
    head: Head = opt("linear", "projection head over the embeddings")
    distance: Distance = opt("cosine", "similarity of embeddings")
    hidden: int = opt(256, "hidden width of MLPs")
    val_episodes: int = opt(50, _VAL, group="training")
    eval_every: int = opt(50, _EVERY, group="training")
    split_seed: int = shared("split_seed", 0, group="training")
    out: str | None = opt(None, _OUT, group="training",
                          default_text="checkpoints/METHOD")

    def __post_init__(self) -> None:
        if self.out is None:
            self.out = f"checkpoints/{self.method}"

    def validate(self) -> None:
        if self.method not in TRAINABLE:
            raise UserError(f"method {self.method!r} has nothing to train; choose one of: "
                            f"{', '.join(TRAINABLE)}")
        check_choices(self)
        if min(self.shots, default=0) < 1 or self.queries < 1 or self.ways < 2:
            raise UserError("training needs --ways >= 2, --shots >= 1 and --queries >= 1")
        if self.steps < 1 or self.lr <= 0 or self.val_episodes < 1 or self.eval_every < 1:
            raise UserError("--steps, --lr, --val-episodes and --eval-every must be positive")


@dataclass
class MetaTrainConfig(DataSource):
    """Everything that decides a meta-training run; saved as ``train.yaml`` in ``out``."""

    method: MetaMethod = "reptile"
    model: str | None = shared("model")
    template: str | None = shared("template")
    scoring: Literal["direct", "normalized"] = opt("normalized", "label score the task loss uses")
    ways: int = opt(5, "classes per episode", group="training")
    shots: list[int] = opt([1, 4], _SHOTS, group="training")
    queries: int = opt(3, _QUERIES, group="training")
    split_seed: int = shared("split_seed", 0, group="training")
    seed: int = opt(0, _SEED, group="training")
    steps: int = opt(50, "meta-steps", group="training")
    inner_steps: int = opt(2, "SGD steps on each task's support")
    inner_lr: float = opt(0.1, "inner SGD learning rate")
    meta_lr: float | None = opt(None, "Adam learning rate (maml, fomaml, multitask) or "
                                "Reptile's interpolation step in (0, 1]",
                                default_text=f"{DEFAULT_META_LR['maml']:g}; reptile "
                                f"{DEFAULT_META_LR['reptile']:g}")
    meta_batch: int = opt(2, "tasks per meta-step")
    k: int | None = opt(None, "retrieve-adapt: each query's inner loop adapts on its k nearest "
                        "support examples", default_text="ways")
    embedder: str | None = shared("embedder")
    lora_rank: int = shared("lora_rank", 8)
    lora_alpha: float = shared("lora_alpha", 16.0)
    lora_targets: list[str] = shared("lora_targets", ["q_proj", "v_proj"])
    eval_every: int = opt(10, _EVERY, group="training")
    val_episodes: int = opt(4, _VAL, group="training")
    val_queries: int = opt(5, "query examples per class in a meta-val episode")
    device: Device = shared("device", "auto")
    dtype: DType = shared("dtype", "auto")
    cache_dir: str | None = shared("cache_dir", group="models")
    out: str | None = opt(None, _OUT, group="training",
                          default_text="adapters/METHOD")

    def __post_init__(self) -> None:
        if self.out is None:
            self.out = f"adapters/{self.method}"

    def resolved_meta_lr(self) -> float:
        return DEFAULT_META_LR[self.method] if self.meta_lr is None else self.meta_lr

    def validate(self) -> None:
        if self.method not in META_METHODS:
            raise UserError(f"unknown meta-training method {self.method!r}; choose one of: "
                            f"{', '.join(META_METHODS)}")
        check_choices(self)
        for name in ("steps", "meta_batch", "eval_every", "val_episodes", "val_queries",
                     "queries", "ways", "lora_rank"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1")
        if self.inner_steps < 1 and self.method != "multitask":
            raise UserError(f"--inner-steps must be at least 1 for {self.method}")
        if self.k is not None and (self.method != "retrieve-adapt" or self.k < 1):
            raise UserError(f"--k {self.k}: only retrieve-adapt takes --k (its inner loop's "
                            "nearest support examples per query), and it must be at least 1")
        if self.embedder is not None and self.method != "retrieve-adapt":
            raise UserError(f"--embedder does not apply to 'train --method {self.method}'; among "
                            "the LoRA meta-learners only retrieve-adapt embeds (to find neighbours)")
        if self.inner_lr <= 0 or self.resolved_meta_lr() <= 0:
            raise UserError("--inner-lr and --meta-lr must be positive")
        if self.method == "reptile" and self.resolved_meta_lr() > 1:
            raise UserError("--meta-lr for reptile is an interpolation step size; use (0, 1]")
        if not self.shots or min(self.shots) < 1:
            raise UserError("--shots for meta-training must be positive, e.g. 1,4")
