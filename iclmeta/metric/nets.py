"""The torch side of the metric baselines: projection head, relation module, episode scoring.

``MetricNet(method, dim)(xs, ys, n_classes, xq)`` turns support embeddings ``xs`` (labels
``ys`` as class indices) and query embeddings ``xq`` into per-class logits ``[len(xq),
n_classes]``. Untrained, it is the frozen method: the head starts at the identity.

>>> import torch
>>> net = MetricNet("protonet", dim=2)
>>> xs = torch.tensor([[1.0, 0.0], [0.0, 1.0]]); ys = torch.tensor([0, 1])
>>> net(xs, ys, 2, torch.tensor([[0.9, 0.1]])).argmax(1).tolist()
[0]
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

METHODS = ("knn", "protonet", "matching", "relation")
INIT_SCALE = 10.0  # cosine similarities live in [-1, 1]; softmax over them needs a sharper scale


class Projection(nn.Module):
    """``x + f(x)`` with ``f``'s last layer zeroed, so the untrained head is the identity."""

    def __init__(self, dim: int, kind: str = "none", hidden: int = 256):
        super().__init__()
        if kind == "linear":
            self.f = nn.Linear(dim, dim)
            last = self.f
        elif kind == "mlp":
            self.f = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))
            last = self.f[-1]
        elif kind == "none":
            self.f = None
            return
        else:
            raise ValueError(f"unknown head {kind!r}; choose linear, mlp or none")
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.f is None else x + self.f(x)


class RelationModule(nn.Module):
    """Scores every (query, prototype) pair from ``[q, p, |q - p|, q * p]`` with an MLP."""

    def __init__(self, dim: int, hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4 * dim, hidden), nn.ReLU(),
                                 nn.Linear(hidden, hidden // 2), nn.ReLU(),
                                 nn.Linear(hidden // 2, 1))

    def forward(self, q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        qe = q[:, None, :].expand(-1, p.shape[0], -1)
        pe = p[None, :, :].expand(q.shape[0], -1, -1)
        pairs = torch.cat([qe, pe, (qe - pe).abs(), qe * pe], dim=-1)
        return self.net(pairs).squeeze(-1)


class MetricNet(nn.Module):
    """Head + similarity scale (+ relation module): everything a metric method learns.

    ``method``: knn | protonet | matching | relation; ``distance``: cosine | euclidean
    (negative squared distance); ``head``: linear | mlp | none.
    """

    def __init__(self, method: str, dim: int, head: str = "none", distance: str = "cosine",
                 hidden: int = 256):
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"unknown metric method {method!r}; choose one of {METHODS}")
        if distance not in ("cosine", "euclidean"):
            raise ValueError(f"unknown distance {distance!r}; choose cosine or euclidean")
        self.method, self.dim, self.head_kind = method, dim, head
        self.distance, self.hidden = distance, hidden
        self.head = Projection(dim, head, hidden)
        self.log_scale = nn.Parameter(torch.tensor(math.log(INIT_SCALE)))
        self.relation = RelationModule(dim, hidden) if method == "relation" else None

    def spec(self) -> dict:
        """Constructor arguments, stored in checkpoints."""
        return {"method": self.method, "dim": self.dim, "head": self.head_kind,
                "distance": self.distance, "hidden": self.hidden}

    def similarity(self, q: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """Scaled similarity ``[len(q), len(s)]``: higher is closer."""
        if self.distance == "cosine":
            sim = F.normalize(q, dim=-1) @ F.normalize(s, dim=-1).T
        else:
            sim = -torch.cdist(q, s).pow(2)
        return sim * self.log_scale.exp()

    def nearest(self, xs: torch.Tensor, xq: torch.Tensor) -> torch.Tensor:
        """Index of each query's nearest support example."""
        return self.similarity(self.head(xq), self.head(xs)).argmax(dim=1)

    def forward(self, xs: torch.Tensor, ys: torch.Tensor, n_classes: int,
                xq: torch.Tensor) -> torch.Tensor:
        zs, zq = self.head(xs), self.head(xq)
        if self.method in ("knn", "matching"):
            sim = self.similarity(zq, zs)
            if self.method == "knn":  # a class scores as its nearest support example
                full = sim.new_full((len(zq), n_classes), float("-inf"))
                return full.scatter_reduce(1, ys.expand(len(zq), -1), sim, "amax")
            attention = sim.softmax(dim=1)  # matching: attention over the support set
            probs = attention @ F.one_hot(ys, n_classes).to(attention.dtype)
            return probs.clamp_min(1e-12).log()
        protos = zs.new_zeros(n_classes, zs.shape[1]).index_add_(0, ys, zs)
        protos = protos / torch.bincount(ys, minlength=n_classes).clamp_min(1)[:, None]
        if self.method == "relation":
            return self.relation(zq, protos)
        return self.similarity(zq, protos)
