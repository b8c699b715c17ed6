"""Typed run configuration, saved as ``config.yaml`` beside every run's results.

>>> cfg = EvalConfig(methods=["icl"], shots=[0, 1])
>>> EvalConfig.from_dict(cfg.to_dict()) == cfg
True
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Literal, get_args

from iclmeta.errors import UserError

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
    seed: int = 0
    split: str = "meta-test"
    split_seed: int = 0
    class_split: ClassSplitChoice = "auto"
    scoring: Scoring = "normalized"  # see iclmeta.lm.modes
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


# -- metric training (iclmeta train --method protonet|matching|relation) --------------------
Head = Literal["linear", "mlp", "none"]
Distance = Literal["cosine", "euclidean"]
TRAINABLE = ("protonet", "matching", "relation")


@dataclass
class MetricTrainConfig:
    """How to meta-train one metric method (saved inside the checkpoint's ``config.json``)."""

    method: str = "protonet"
    dataset: str = "snips"
    text_field: str | None = None
    label_field: str | None = None
    split_field: str | None = None
    hf_config: str | None = None
    embedder: str | None = None  # None: the embedded default (minilm)
    cache_dir: str | None = None
    ways: int = 5
    shots: list[int] = field(default_factory=lambda: [1, 5])  # steps cycle through these
    queries: int = 5  # per class and episode
    steps: int = 500
    lr: float = 1e-3
    seed: int = 0
    head: Head = "linear"
    distance: Distance = "cosine"
    hidden: int = 256
    val_episodes: int = 50
    eval_every: int = 50
    split_seed: int = 0
    out: str | None = None  # None: checkpoints/<method>

    def validate(self) -> None:
        if self.method not in TRAINABLE:
            raise UserError(f"method {self.method!r} has nothing to train; choose one of: "
                            f"{', '.join(TRAINABLE)}")
        for name, literal in (("head", Head), ("distance", Distance)):
            if getattr(self, name) not in get_args(literal):
                raise UserError(f"unknown {name} {getattr(self, name)!r}; choose one of: "
                                f"{', '.join(get_args(literal))}")
        if min(self.shots, default=0) < 1 or self.queries < 1 or self.ways < 2:
            raise UserError("training needs --ways >= 2, --shots >= 1 and --queries >= 1")
        if self.steps < 1 or self.lr <= 0 or self.val_episodes < 1 or self.eval_every < 1:
            raise UserError("--steps, --lr, --val-episodes and --eval-every must be positive")


# -- LoRA meta-training (iclmeta train --method maml|fomaml|reptile|multitask) ------------
MetaMethod = Literal["maml", "fomaml", "reptile", "multitask"]
META_METHODS = ("maml", "fomaml", "reptile", "multitask")
# Reptile's meta-lr is an interpolation step size in (0, 1]; the others' is an Adam learning rate.
DEFAULT_META_LR = {"maml": 1e-3, "fomaml": 1e-3, "multitask": 1e-3, "reptile": 0.5}


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
