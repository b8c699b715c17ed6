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
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F

from iclmeta.data.sources import load_source
from iclmeta.data.episodes import Episode, EpisodePlan, meta_splits, sample_episodes
from iclmeta.config import MetricTrainConfig
from iclmeta.data.leakage import training_record
from iclmeta.errors import UserError
from iclmeta.metric.checkpoints import save_checkpoint
from iclmeta.metric.nets import MetricNet
from iclmeta.prompts import EmbedText

def trainable_plan(ds, cfg: MetricTrainConfig, split: str, echo=None) -> EpisodePlan:
    """Episodes over a class-disjoint meta-split, leaving out classes too small to sample.

    ``plan_episodes`` rejects a split holding any class smaller than max(shots) + queries; a
    long-tailed meta-train split (TREC-50 has a 4-example class) needs only *enough* classes.
    """
    budget, need = max(cfg.shots), max(cfg.shots) + cfg.queries
    groups = ds.by_label()
    names = meta_splits(ds.labels(), cfg.split_seed)[split]
    keep = [c for c in names if len(groups.get(c, [])) >= need]
    if len(keep) < cfg.ways:
        raise UserError(f"only {len(keep)} {split} classes of {ds.name} have {need} examples "
                        f"({budget} shots + {cfg.queries} queries); lower --ways, --shots or --queries")
    if echo and len(keep) < len(names):
        echo(f"{split}: {len(names) - len(keep)} of {len(names)} classes have fewer than {need} "
             "examples and are left out")
    return EpisodePlan("disjoint", split, cfg.ways, max_shots=budget, queries=cfg.queries,
                       support_from=None, query_from=None, classes=tuple(keep),
                       split_seed=cfg.split_seed)


class EpisodeTensors:
    """Episodes over pre-embedded texts: ``batch(episode, shots)`` -> (xs, ys, xq, yq)."""

    def __init__(self, ds, plan: EpisodePlan, embedder, n: int, seed: int, text_of=None):
        groups = ds.by_label()
        self.classes = plan.classes
        examples = [e for c in plan.classes for e in groups[c]]
        self.row = {e.id: i for i, e in enumerate(examples)}
        texts = [(text_of or EmbedText())(e) for e in examples]  # what eval embeds, too
        self.x = torch.from_numpy(embedder.encode(texts).copy())
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
    text_of = EmbedText(cfg.embed_template)
    train = EpisodeTensors(ds, trainable_plan(ds, cfg, "meta-train", echo), embedder,
                           cfg.steps, cfg.seed, text_of)
    val = EpisodeTensors(ds, trainable_plan(ds, cfg, "meta-val", echo), embedder,
                         cfg.val_episodes, cfg.seed, text_of)
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
    ds = load_source(cfg)
    EmbedText(cfg.embed_template).check(ds)  # before any embedding or writing
    if embedder is None:
        from iclmeta.retrieval.embedder import Embedder
        cache = None if cfg.cache_dir is None else Path(cfg.cache_dir) / "embeddings"
        embedder = Embedder(cfg.embedder, cache_dir=cache)
    net, record = fit_net(cfg, ds, embedder, progress, echo)
    record["total_seconds"] = round(time.perf_counter() - started, 2)
    out = Path(cfg.out or f"checkpoints/{cfg.method}")
    splits = meta_splits(ds.labels(), cfg.split_seed)  # meta-val picks the step: it is seen too
    seen = training_record(ds, splits["meta-train"] + splits["meta-val"], cfg.split_seed, "disjoint")
    meta = {"train": asdict(cfg), "dataset": ds.name, "embedder": embedder.name,
            "trained_on": seen, **record}
    save_checkpoint(net, out, meta)
    echo(f"best meta-val accuracy {record['best_val_accuracy']:.4f} at step "
         f"{record['best_step']} of {cfg.steps}; trained in {record['train_seconds']} s "
         f"({record['total_seconds']} s with embedding)")
    return out


