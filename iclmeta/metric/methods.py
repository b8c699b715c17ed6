"""Metric-based few-shot baselines over sentence embeddings: knn, protonet, matching, relation.

Each query is embedded (through the embedder's on-disk cache) and compared with the episode's
K-shot support set:

- ``knn``: the label of the nearest support example;
- ``protonet``: the nearest class mean (prototype);
- ``matching``: softmax attention over the support examples, summed per class;
- ``relation``: a learned relation module scores each (query, prototype) pair.

``--distance cosine|euclidean`` picks the similarity. ``protonet`` and ``matching`` run on the
frozen embedder, or through a projection head trained with ``iclmeta train``; ``relation``
always needs a trained checkpoint. A run may pass several ``--checkpoint`` folders: each
method uses the one trained for it. At 0 shots the readable label names stand in for the
support examples (one per class), so the methods give a label-name similarity baseline.

With ``--log-scores`` each query's row holds the per-class scores the decision is the best of
(``MetricNet``'s logits): ``knn`` the scaled similarity of the class's nearest support example
(cosine, or negative squared Euclidean distance), ``protonet`` the scaled similarity to the
class prototype, ``matching`` the log of the attention mass on the class, ``relation`` the
relation module's score.

>>> from iclmeta.config import EvalConfig
>>> from iclmeta import evaluate
>>> evaluate(EvalConfig(methods=["knn", "protonet"], dataset="trec-50", shots=[1, 5],
...                     class_split="disjoint", queries=4))  # doctest: +SKIP
"""
from __future__ import annotations

import torch

from iclmeta.data.episodes import Episode
from iclmeta.errors import UserError
from iclmeta.metric.nets import MetricNet
from iclmeta.metric.checkpoints import load_checkpoint, read_checkpoint_config
from iclmeta.models import DEFAULT_EMBEDDER
from iclmeta.prompts import EmbedText
from iclmeta.data.prediction import Prediction, label_scores

DEFAULT_DISTANCE = "cosine"


def find_checkpoint(method: str, paths: list[str]) -> str | None:
    """The one checkpoint among ``paths`` trained for ``method`` (others belong to others)."""
    mine = []
    for path in paths:
        meta = read_checkpoint_config(path)
        if meta.get("family") == "metric" and meta.get("method") == method:
            mine.append(path)
    if len(mine) > 1:
        raise UserError(f"{len(mine)} checkpoints for {method} ({', '.join(mine)}); "
                        "pass only one per method")
    return mine[0] if mine else None


class MetricMethod:
    """One metric method over the run's embedder (see the module docstring)."""

    def __init__(self, name: str, resources):
        self.name = name
        self.res = resources
        cfg = resources.config
        self.options = {"embedder": cfg.embedder or DEFAULT_EMBEDDER,
                        "distance": cfg.distance or DEFAULT_DISTANCE,
                        "head": "none", "checkpoint": None}
        if cfg.embed_template is not None:  # recorded only when set: default rows stay as before
            self.options["embed_template"] = cfg.embed_template
        self.embed_text = EmbedText(cfg.embed_template)
        self._net: MetricNet | None = None
        self.trained_on: dict | None = None  # the checkpoint's training data (leakage guard)

    def fit(self) -> None:
        """Learned parts come from ``iclmeta train``; this loads and checks the checkpoint."""
        self.embed_text.check(self.res.dataset)
        if self.res.config.template:  # a task's verbalizers name the classes at 0 shots
            self.res.builder.check(self.res.dataset)
        self.net()

    def net(self) -> MetricNet:
        if self._net is None:
            self._net = self._load()
            self.options.update(distance=self._net.distance, head=self._net.head_kind)
        return self._net

    def _load(self) -> MetricNet:
        cfg = self.res.config
        path = find_checkpoint(self.name, list(cfg.checkpoints or []))
        if path is None and self.name == "relation":
            raise UserError("relation needs a trained relation module: run 'iclmeta train "
                            "--method relation --dataset ... --out DIR' and pass "
                            "--checkpoint DIR")
        embedder = self.res.embedder  # loaded only once the checkpoint question is settled
        if path is None:
            return MetricNet(self.name, embedder.dim,
                             distance=cfg.distance or DEFAULT_DISTANCE).eval()
        net, meta = load_checkpoint(path)
        if meta.get("embedder") != embedder.name or net.dim != embedder.dim:
            raise UserError(f"checkpoint {path} was trained on embedder {meta.get('embedder')} "
                            f"({net.dim}-d), this run uses {embedder.name}; pass --embedder "
                            f"{meta.get('embedder')} or retrain")
        if cfg.distance and cfg.distance != net.distance:
            raise UserError(f"checkpoint {path} was trained with --distance {net.distance}; "
                            f"drop --distance or pass --distance {net.distance}")
        trained = (meta.get("train") or {}).get("embed_template")
        if trained != cfg.embed_template:
            raise UserError(f"checkpoint {path} was trained on embedder texts from "
                            f"--embed-template {trained!r}, this run uses {cfg.embed_template!r}; "
                            "pass the same --embed-template or retrain")
        self.options["checkpoint"] = str(path)
        self.trained_on = meta.get("trained_on")
        return net

    def predict(self, episode: Episode, shots: int) -> Prediction:
        net = self.net()
        classes = list(episode.classes)
        support = episode.support_set(shots) if shots > 0 else []
        if support:
            texts = [self.embed_text(e) for e in support]
            ys = [classes.index(e.label) for e in support]
        else:  # 0 shots: the label words (a task's verbalizers) stand in for each class
            texts, ys = [self._word(c) for c in classes], list(range(len(classes)))
        vectors = self.res.embedder.encode(texts + [self.embed_text(q) for q in episode.query])
        xs, xq = torch.from_numpy(vectors[:len(texts)]), torch.from_numpy(vectors[len(texts):])
        ys_t = torch.tensor(ys)
        with torch.no_grad():
            # --log-scores: the per-class logits (what each one means: the module docstring)
            scores = label_scores(net(xs, ys_t, len(classes), xq).tolist(), classes) \
                if getattr(self.res.config, "log_scores", False) else []
            if self.name == "knn":
                nearest = net.nearest(xs, xq).tolist()
                labels = [classes[ys[i]] for i in nearest]
                demo_ids = [[support[i].id] if support else [] for i in nearest]
                return Prediction(labels, demo_ids, scores=scores)
            pred = net(xs, ys_t, len(classes), xq).argmax(dim=1).tolist()
        used = [e.id for e in support]
        return Prediction([classes[i] for i in pred], [list(used) for _ in episode.query],
                          scores=scores)


    def _word(self, label: str) -> str:
        words = self.res.builder.template.verbalizers if self.res.config.template else {}
        return words.get(label) or self.res.dataset.label_names.get(label, label)


def build(name: str, resources) -> MetricMethod:
    """Factory registered in ``METHODS`` for knn, protonet, matching and relation."""
    return MetricMethod(name, resources)
