"""Episodic meta-training of the metric baselines' learned parts, and their checkpoints.

``MetricNet`` is everything a metric method can learn: a projection head over the frozen
sentence embeddings (residual, starting at the identity), a similarity scale and, for
``relation``, the relation module. An untrained ``MetricNet`` *is* the frozen method, so
training starts from the frozen baseline and meta-val accuracy decides whether it improved.

Every meta-train and meta-val text is embedded once (through the embedder's on-disk cache);
training then runs on tensors, one episode per step. A checkpoint is a folder holding
``config.json`` and a content-named ``model-<sha>.safetensors``.

>>> cfg = MetricTrainConfig(method="protonet", dataset="trec-50", ways=5, shots=[1, 5],
...                         queries=4, steps=300, out="checkpoints/protonet")
>>> path = train_metric(cfg)  # doctest: +SKIP
>>> net, meta = load_checkpoint(path)  # doctest: +SKIP
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, get_args

import torch
import torch.nn.functional as F

from .config import write_atomic
from .data import load_dataset
from .episodes import Episode, EpisodePlan, meta_splits, sample_episodes
from .errors import UserError
from .metric_nets import MetricNet

Head = Literal["linear", "mlp", "none"]
Distance = Literal["cosine", "euclidean"]
TRAINABLE = ("protonet", "matching", "relation")
FORMAT = 1


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


def trainable_plan(ds, cfg: MetricTrainConfig, split: str, echo=None) -> EpisodePlan:
    """Episodes over a class-disjoint meta-split, leaving out classes too small to sample.

    ``plan_episodes`` rejects a split holding any class smaller than pool + queries; a
    long-tailed meta-train split (TREC-50 has a 4-example class) needs only *enough* classes.
    """
    pool, need = max(cfg.shots), max(cfg.shots) + cfg.queries
    groups = ds.by_label()
    names = meta_splits(ds.labels(), cfg.split_seed)[split]
    keep = [c for c in names if len(groups.get(c, [])) >= need]
    if len(keep) < cfg.ways:
        raise UserError(f"only {len(keep)} {split} classes of {ds.name} have {need} examples "
                        f"(pool {pool} + queries {cfg.queries}); lower --ways, --shots or --queries")
    if echo and len(keep) < len(names):
        echo(f"{split}: {len(names) - len(keep)} of {len(names)} classes have fewer than {need} "
             "examples and are left out")
    return EpisodePlan("disjoint", split, cfg.ways, pool, cfg.queries, None, None, tuple(keep))


class EpisodeTensors:
    """Episodes over pre-embedded texts: ``batch(episode, shots)`` -> (xs, ys, xq, yq)."""

    def __init__(self, ds, plan: EpisodePlan, embedder, n: int, seed: int):
        groups = ds.by_label()
        self.classes = plan.classes
        examples = [e for c in plan.classes for e in groups[c]]
        self.row = {e.id: i for i, e in enumerate(examples)}
        self.x = torch.from_numpy(embedder.encode([e.text for e in examples]).copy())
        self.episodes = sample_episodes(ds, plan, n, seed)

    def batch(self, episode: Episode, shots: int):
        index = {c: i for i, c in enumerate(episode.classes)}
        support = episode.support_set(shots)

        def pack(examples):
            rows = torch.tensor([self.row[e.id] for e in examples])
            return self.x[rows], torch.tensor([index[e.label] for e in examples])

        return (*pack(support), *pack(episode.query))


def episodic_loss(net: MetricNet, data: EpisodeTensors, shots: int, episodes=None) -> float:
    """Mean cross-entropy of ``net`` over ``data``'s episodes (or the given ones) at ``shots``."""
    with torch.no_grad():
        losses = []
        for ep in episodes if episodes is not None else data.episodes:
            xs, ys, xq, yq = data.batch(ep, shots)
            losses.append(F.cross_entropy(net(xs, ys, len(ep.classes), xq), yq).item())
    return sum(losses) / len(losses)


def episodic_accuracy(net: MetricNet, data: EpisodeTensors, shots_list: list[int]) -> float:
    """Mean query accuracy over every episode and shot count."""
    net.eval()
    with torch.no_grad():
        scores = []
        for ep in data.episodes:
            for shots in shots_list:
                xs, ys, xq, yq = data.batch(ep, shots)
                pred = net(xs, ys, len(ep.classes), xq).argmax(1)
                scores.append((pred == yq).float().mean().item())
    net.train()
    return sum(scores) / len(scores)


def fit_net(cfg: MetricTrainConfig, ds, embedder, progress: bool = True, echo=None):
    """Train a ``MetricNet``; returns (the best-on-meta-val net, the training record)."""
    from tqdm.auto import tqdm

    torch.manual_seed(cfg.seed)
    train = EpisodeTensors(ds, trainable_plan(ds, cfg, "meta-train", echo), embedder,
                           cfg.steps, cfg.seed)
    val = EpisodeTensors(ds, trainable_plan(ds, cfg, "meta-val", echo), embedder,
                         cfg.val_episodes, cfg.seed)
    net = MetricNet(cfg.method, train.x.shape[1], cfg.head, cfg.distance, cfg.hidden)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    best = (episodic_accuracy(net, val, cfg.shots), 0, copy.deepcopy(net.state_dict()))
    history, window, start = [{"step": 0, "val_accuracy": best[0]}], [], time.perf_counter()
    bar = tqdm(train.episodes, desc=f"train {cfg.method}", unit="ep", disable=not progress)
    for step, ep in enumerate(bar, 1):
        xs, ys, xq, yq = train.batch(ep, cfg.shots[step % len(cfg.shots)])
        loss = F.cross_entropy(net(xs, ys, len(ep.classes), xq), yq)
        opt.zero_grad()
        loss.backward()
        opt.step()
        window.append(loss.item())
        if step % cfg.eval_every == 0 or step == cfg.steps:
            acc = episodic_accuracy(net, val, cfg.shots)
            history.append({"step": step, "loss": sum(window) / len(window), "val_accuracy": acc})
            window = []
            if acc > best[0]:
                best = (acc, step, copy.deepcopy(net.state_dict()))
            bar.set_postfix(loss=f"{history[-1]['loss']:.3f}", val=f"{acc:.3f}")
    net.load_state_dict(best[2])
    net.eval()
    record = {"best_val_accuracy": best[0], "best_step": best[1], "history": history,
              "train_seconds": round(time.perf_counter() - start, 2),
              "train_classes": len(train.classes), "val_classes": len(val.classes)}
    return net, record


def train_metric(cfg: MetricTrainConfig, embedder=None, progress: bool = True,
                 echo=lambda msg: print(msg, file=sys.stderr)) -> Path:
    """Meta-train ``cfg.method`` on meta-train episodes, keep the best on meta-val, save it.

    ``embedder`` defaults to ``Embedder(cfg.embedder)``; anything with ``name``, ``dim`` and
    ``encode(texts)`` works. Returns the checkpoint folder.
    """
    cfg.validate()
    started = time.perf_counter()
    ds = load_dataset(cfg.dataset, cfg.text_field, cfg.label_field, cfg.split_field,
                      cfg.hf_config)
    if embedder is None:
        from .embed import Embedder
        cache = None if cfg.cache_dir is None else Path(cfg.cache_dir) / "embeddings"
        embedder = Embedder(cfg.embedder, cache_dir=cache)
    net, record = fit_net(cfg, ds, embedder, progress, echo)
    record["total_seconds"] = round(time.perf_counter() - started, 2)
    out = Path(cfg.out or f"checkpoints/{cfg.method}")
    meta = {"train": asdict(cfg), "dataset": ds.name, "embedder": embedder.name, **record}
    save_checkpoint(net, out, meta)
    echo(f"best meta-val accuracy {record['best_val_accuracy']:.4f} at step "
         f"{record['best_step']} of {cfg.steps}; trained in {record['train_seconds']} s "
         f"({record['total_seconds']} s with embedding)")
    return out


def save_checkpoint(net: MetricNet, out: str | os.PathLike, meta: dict) -> Path:
    """Write ``net`` + ``meta`` to folder ``out``; the config switches in one atomic rename."""
    from safetensors.torch import save_file

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".model.", suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, tmp)
        digest = hashlib.sha256(Path(tmp).read_bytes()).hexdigest()
        weights = f"model-{digest[:16]}.safetensors"
        os.replace(tmp, folder / weights)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    config = {"format": FORMAT, "family": "metric", "method": net.method, "net": net.spec(),
              "weights": weights, "weights_sha256": digest, **meta}
    write_atomic(folder / "config.json", json.dumps(config, indent=2))
    for stale in folder.glob("model-*.safetensors"):
        if stale.name != weights:
            stale.unlink(missing_ok=True)
    return folder


def read_checkpoint_config(path: str | os.PathLike) -> dict:
    """The ``config.json`` of a checkpoint folder (no torch needed)."""
    file = Path(path) / "config.json"
    if not file.is_file():
        raise UserError(f"no checkpoint at {path} (config.json missing); train one with "
                        f"'iclmeta train --method protonet --out {path}' or fix --checkpoint")
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"cannot read {file} ({err.__class__.__name__}); retrain the "
                        "checkpoint") from None


def load_checkpoint(path: str | os.PathLike) -> tuple[MetricNet, dict]:
    """(net in eval mode, its config) from a folder written by ``save_checkpoint``."""
    from safetensors.torch import load_file

    meta = read_checkpoint_config(path)
    if meta.get("family") != "metric" or meta.get("format") != FORMAT:
        raise UserError(f"{path} is not a metric checkpoint (family {meta.get('family')!r}); "
                        "pass one written by 'iclmeta train --method protonet|matching|relation'")
    weights = Path(path) / meta["weights"]
    if not weights.is_file() or hashlib.sha256(weights.read_bytes()).hexdigest() != meta[
            "weights_sha256"]:
        raise UserError(f"checkpoint {path} is incomplete or damaged ({meta['weights']}); "
                        "retrain it")
    net = MetricNet(**meta["net"])
    net.load_state_dict(load_file(str(weights)))
    return net.eval(), meta
