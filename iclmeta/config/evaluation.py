"""``EvalConfig``: everything that decides an evaluation's rows, saved in ``config.yaml``.

Each field's metadata holds its command-line help and the methods that use it
(``iclmeta.cli`` generates ``iclmeta eval``'s flags from them).

>>> cfg = EvalConfig(methods=["icl"], shots=[0, 1])
>>> EvalConfig.from_dict(cfg.to_dict()) == cfg
True
>>> EvalConfig.from_recorded({"config": cfg.to_dict(), "provenance": {}}, out="runs/b").shots
[0, 1]
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Literal

from iclmeta.config.fields import (GRADIENT, LM_METHODS, METRIC, PROMPTING, Device, Distance,
                                   DType, check_choices, opt, shared)
from iclmeta.config.source import DataSource
from iclmeta.errors import UserError

Scoring = Literal["direct", "normalized", "calibrated", "channel", "generate"]
DemoSource = Literal["random", "retrieval"]
ChatFormat = Literal["turns", "packed"]
ClassSplitChoice = Literal["auto", "disjoint", "all"]
Order = Literal["nearest-last", "nearest-first"]
IndexKind = Literal["flat", "ivf", "hnsw"]
Split = Literal["meta-train", "meta-val", "meta-test"]
MAX_EPISODES = 100_000  # sampled up front; more would exhaust memory before the first row
RETRIEVING = ("retrieval", "instruct")  # instruct with --demos retrieval
META_LEARNED = ("multitask", "maml", "fomaml", "reptile")
FRESH_LORA = ("finetune", "retrieve-adapt")  # start from a new LoRA (retrieve-adapt: no --adapter)


@dataclass
class EvalConfig(DataSource):
    """Everything that decides an evaluation's rows. Strings are parsed once, at the CLI."""

    methods: list[str] = opt(["retrieval"], "repeatable or comma-separated; one of: {methods}",
                             flag="--method", repeat=True, comma=True, metavar="METHOD")
    # model and embedder are recorded in every row, so every method counts as using them.
    model: str | None = shared("model", group="models")
    embedder: str | None = shared("embedder", group="models")
    template: str | None = shared("template", group="prompting", used_by=LM_METHODS)
    ways: int | Literal["all"] | None = opt(
        None, "classes per episode, or 'all': every class of the split in every episode (all "
        "150 CLINC150 intents with --class-split all)", group="episodes",
        default_text="5, or every class when evaluating over all classes")
    shots: list[int | Literal["all"]] = opt(
        [0, 1, 4], "comma-separated shot counts (labelled examples per class); 'all': every "
        "support example of the classes in play, e.g. 1,4,16,all", group="episodes")
    # Defaults sized for a first run of a few minutes on 2 CPU cores (about a minute in bf16).
    queries: int | None = opt(2, "query examples per class, or 'all'; the defaults keep a first "
                              "run to a few minutes on 2 CPU cores, raise them for tighter CIs",
                              group="episodes", none="all")
    drop_short_classes: bool = opt(
        False, "leave out the classes too small for the largest shot count plus the queries "
        "(each is named, with what it has, when the run starts and in config.yaml) instead of "
        "refusing the run", group="episodes")
    episodes: int = opt(5, "episodes", group="episodes")
    seed: int = opt(0, "episode seed", group="episodes")
    split: Split = opt("meta-test", "which classes a class-disjoint split evaluates on",
                       group="episodes")
    split_seed: int = shared("split_seed", 0, group="episodes")
    class_split: ClassSplitChoice = opt(
        "auto", "disjoint: class-disjoint meta-splits; all: every class, support from the train "
        "split and queries from the test split when the dataset has them; auto: 'all' below 20 "
        "classes", group="episodes")
    scoring: Scoring = opt(
        "normalized", "label score: summed (direct) or per-token (normalized) log-likelihood, "
        "contextual calibration, channel p(text | label), or generation parsed onto the labels "
        "(see iclmeta.lm.modes)", group="prompting", used_by=LM_METHODS)
    demos: DemoSource = opt("random", "instruct: which demonstrations", group="prompting",
                            used_by=("instruct",))
    chat_format: ChatFormat = opt("turns", "instruct: demonstrations as user/assistant turns or "
                                  "packed into one user turn", group="prompting",
                                  used_by=("instruct",))
    log_prompts: bool = opt(False, "store each query's prompt text in its result row "
                            "('prompts')", used_by=PROMPTING)
    log_scores: bool = opt(False, "store each query's score for every candidate label in its "
                           "result row ('label_scores', higher is more likely: the scores the "
                           "prediction took the best of)", used_by=PROMPTING + METRIC + GRADIENT)
    k: int | None = opt(None, "demonstrations per prompt", group="prompting",
                        used_by=("icl", "retrieval", "instruct", "retrieve-adapt"),
                        default_text="ways x shots; retrieve-adapt: the support examples each "
                        "query adapts on, default ways")
    balance: bool = opt(False, "retrieval: same count per label", group="prompting",
                        used_by=RETRIEVING)
    mmr: float | None = opt(None, "retrieval: MMR lambda in [0, 1] for diversity (1 is pure "
                            "similarity)", group="prompting", used_by=RETRIEVING)
    order: Order = opt("nearest-last", "retrieval: where the nearest demonstration goes",
                       group="prompting", used_by=RETRIEVING)
    index: IndexKind = opt("flat", "retrieval: how a support of 1024 or more examples is "
                           "searched: exact inner product (flat), or approximate ivf / hnsw; "
                           "built once per support and kept beside the embedding cache",
                           group="prompting", used_by=RETRIEVING)
    device: Device = shared("device", "auto", group="models", used_by=LM_METHODS)
    dtype: DType = shared("dtype", "auto", group="models", used_by=LM_METHODS)
    batch_size: int | Literal["auto"] = opt(8, "prompts per forward, or 'auto' to fill a CUDA "
                                            "device", group="models", used_by=LM_METHODS)
    cache_dir: str | None = shared("cache_dir", group="models")
    trust_remote_code: bool = opt(False, "allow a hub model's own code to run (off by default)",
                                  group="models", used_by=LM_METHODS)
    out: str | None = opt(None, "run folder, made once every check has passed; only an empty "
                          "folder or one iclmeta made is written to; --resume without --out "
                          "continues the newest run, runs/latest",
                          default_text="a new runs/DATE_TIME folder per run, runs/latest links "
                          "to the newest")
    distance: Distance | None = opt(None, "similarity of embeddings", group="metric",
                                    used_by=METRIC, default_text="the checkpoint's, else cosine")
    checkpoints: list[str] = opt(
        [], "repeatable; a folder written by 'iclmeta train'; each method uses the one trained "
        "for it (relation requires one)", group="metric", used_by=METRIC, flag="--checkpoint",
        repeat=True, metavar="DIR")
    adapters: list[str] = opt(
        [], "repeatable; a LoRA folder written by 'iclmeta train'; each method uses the one "
        "trained for it (retrieve-adapt: any one adapter, else a fresh LoRA)", group="gradient",
        used_by=META_LEARNED + ("retrieve-adapt",), flag="--adapter", repeat=True,
        metavar="DIR")
    allow_overlap: bool = opt(
        False, "evaluate even when a checkpoint or adapter was trained on evaluated classes or "
        "texts (a leak: every row records the overlap)", group="metric",
        used_by=("protonet", "matching", "relation", "retrieve-adapt") + META_LEARNED)
    adapt_steps: int | None = opt(None, "SGD steps on each episode's support set; 0 evaluates "
                                  "the initialisation itself", group="gradient", used_by=GRADIENT,
                                  default_text="the adapter's inner steps; finetune: 3")
    adapt_lr: float | None = opt(None, "SGD learning rate of those steps", group="gradient",
                                 used_by=GRADIENT,
                                 default_text="the adapter's inner lr; finetune: 0.1")
    # finetune's fresh LoRA; meta-learned adapters carry their own layout.
    lora_rank: int = shared("lora_rank", 8, group="gradient", used_by=FRESH_LORA)
    lora_alpha: float = shared("lora_alpha", 16.0, group="gradient", used_by=FRESH_LORA)
    lora_targets: list[str] = shared("lora_targets", ["q_proj", "v_proj"], group="gradient",
                                     used_by=FRESH_LORA)

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

    @classmethod
    def from_recorded(cls, recorded: dict, **overrides) -> "EvalConfig":
        """Rerun a recorded run: the ``config`` part of its ``config.yaml`` (provenance and the
        episode rule beside it are ignored; a plain mapping of fields works too), with
        ``overrides`` on top. The recorded ``out`` is dropped: a rerun writes a new folder."""
        data = recorded.get("config", recorded) if isinstance(recorded, dict) else None
        if not isinstance(data, dict):
            raise UserError("a config file holds a mapping of settings (or a 'config' section "
                            "of one, as a run's config.yaml does)")
        kept = {k: v for k, v in data.items() if k != "out"}
        return cls.from_dict({**kept, **overrides})

    def validate(self) -> None:
        check_choices(self)
        for flag, values in (("--shots", self.shots), ("--method", self.methods)):
            repeated = sorted({str(v) for v in values if values.count(v) > 1})
            if repeated:  # each would write every row twice
                raise UserError(f"{flag} repeats {', '.join(repeated)}; give each value once")
        if self.batch_size != "auto" and (not isinstance(self.batch_size, int)
                                          or self.batch_size < 1):
            raise UserError(f"--batch-size {self.batch_size!r} must be a positive integer or 'auto'")
        if self.episodes < 1:
            raise UserError("--episodes must be at least 1")
        if self.episodes > MAX_EPISODES:
            raise UserError(f"--episodes {self.episodes} is more than {MAX_EPISODES}; split the "
                            "work into several runs with different --seed values")
        if self.queries is not None and self.queries < 1:
            raise UserError("--queries must be at least 1 (or 'all')")
        if (self.adapt_steps or 0) < 0 or (self.adapt_lr or 0) < 0 or self.lora_rank < 1:
            raise UserError("--adapt-steps and --adapt-lr must be non-negative, --lora-rank >= 1")
        if self.k is not None and self.k < 0:
            raise UserError(f"--k {self.k} is negative; give the number of demonstrations "
                            "per prompt (0 or more)")
        if self.mmr is not None and not 0.0 <= self.mmr <= 1.0:
            raise UserError(f"--mmr {self.mmr} is outside [0, 1]; 1 is pure similarity")
