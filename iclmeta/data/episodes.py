"""Class-disjoint meta-splits and seeded, nested N-way K-shot episodes.

Every method and every shot count sees the same episodes: the support pool of each class is
drawn once (``pool`` examples per class) and the K-shot support is its first K examples, so
the 1-shot support is inside the 4-shot support; the queries are shared by all shot counts.

>>> from iclmeta.data.sources import load_dataset
>>> ds = load_dataset("snips")
>>> plan = plan_episodes(ds, ways=None, shots=[1, 4], queries=5)
>>> eps = sample_episodes(ds, plan, n=2, seed=0)
>>> len(eps[0].classes), len(eps[0].support_set(4)), len(eps[0].query)
(7, 28, 35)
"""
from __future__ import annotations

import random
from dataclasses import dataclass, asdict
from typing import Literal

from iclmeta.data.example import Example, LabelledDataset
from iclmeta.errors import UserError

ClassSplit = Literal["auto", "disjoint", "all"]
MetaSplit = Literal["meta-train", "meta-val", "meta-test"]
META_SPLITS = ("meta-train", "meta-val", "meta-test")
# Below this many classes a meta-split would leave too few classes per split, so "auto" evaluates
# over all classes (support from the dataset's train split, queries from its test split).
MIN_CLASSES_FOR_DISJOINT = 20
SPLIT_FRACTIONS = (0.6, 0.2, 0.2)
TRAIN_SPLITS = ("train",)
QUERY_SPLITS = ("test", "validation", "val", "dev")


@dataclass(frozen=True)
class Episode:
    """N classes, a nested support pool per class, and the shared queries."""

    id: int
    classes: tuple[str, ...]
    support: dict[str, list[Example]]
    query: list[Example]
    seed: int

    def support_set(self, shots: int) -> list[Example]:
        """The first ``shots`` pool examples of every class, interleaved class by class."""
        if shots > self.pool_size:
            raise ValueError(f"episode pool holds {self.pool_size} per class, asked for {shots}")
        return [self.support[c][i] for i in range(shots) for c in self.classes]

    def pool(self) -> list[Example]:
        return self.support_set(self.pool_size)

    @property
    def pool_size(self) -> int:
        return min(len(v) for v in self.support.values())


@dataclass(frozen=True)
class EpisodePlan:
    """The resolved sampling rule; printed by the CLI and stored in ``config.yaml``."""

    class_split: Literal["disjoint", "all"]
    split: str
    ways: int
    pool: int
    queries: int | None  # None: every available query example of the episode's classes
    support_from: str | None  # the dataset's own split the support pool comes from (None: any)
    query_from: str | None
    classes: tuple[str, ...]

    def describe(self) -> str:
        source = (f"support from the '{self.support_from}' split, queries from "
                  f"'{self.query_from}'" if self.support_from else "support and queries from "
                  "the same examples (disjoint)")
        scope = (f"{self.split} classes ({len(self.classes)} of a class-disjoint meta-split)"
                 if self.class_split == "disjoint" else f"all {len(self.classes)} classes")
        q = "all" if self.queries is None else self.queries
        return (f"episodes: {self.ways}-way over {scope}; pool {self.pool} per class; "
                f"{q} queries per class; {source}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["classes"] = list(self.classes)
        return d


def meta_splits(labels: list[str], seed: int) -> dict[str, list[str]]:
    """Seeded class-disjoint split of ``labels`` into meta-train / meta-val / meta-test (60/20/20)."""
    order = sorted(labels)
    random.Random(f"meta-split:{seed}").shuffle(order)
    n_train = round(len(order) * SPLIT_FRACTIONS[0])
    n_val = round(len(order) * SPLIT_FRACTIONS[1])
    return {"meta-train": sorted(order[:n_train]),
            "meta-val": sorted(order[n_train:n_train + n_val]),
            "meta-test": sorted(order[n_train + n_val:])}


def plan_episodes(ds: LabelledDataset, ways: int | None, shots: list[int], queries: int | None,
                  split: str = "meta-test", class_split: ClassSplit = "auto",
                  pool: int | None = None, split_seed: int = 0) -> EpisodePlan:
    """Decide the sampling rule explicitly (see ``EpisodePlan.describe``)."""
    labels = ds.labels()
    if class_split == "auto":
        class_split = "all" if len(labels) < MIN_CLASSES_FOR_DISJOINT else "disjoint"
    if class_split == "disjoint":
        if split not in META_SPLITS:
            raise UserError(f"unknown split {split!r}; choose one of: {', '.join(META_SPLITS)}")
        classes = meta_splits(labels, split_seed)[split]
    else:
        classes = labels
    ways = ways if ways is not None else (len(classes) if class_split == "all" else 5)
    if ways < 2 or ways > len(classes):
        raise UserError(f"--ways {ways} is impossible: {ds.name} has {len(classes)} classes in "
                        f"this split; choose --ways between 2 and {len(classes)}")
    if any(k < 0 for k in shots):
        raise UserError("--shots must be non-negative integers, e.g. --shots 0,1,4")
    pool = pool if pool is not None else max(shots + [1])
    if pool < max(shots + [0]):
        raise UserError(f"--pool {pool} is smaller than the largest shot count {max(shots)}")
    support_from, query_from = _source_splits(ds, class_split)
    plan = EpisodePlan(class_split, split if class_split == "disjoint" else "all", ways, pool,
                       queries, support_from, query_from, tuple(classes))
    _check_counts(ds, plan)
    return plan


def _source_splits(ds: LabelledDataset, class_split: str) -> tuple[str | None, str | None]:
    """With all classes in play, honour the dataset's own train/test split when it has one."""
    if class_split == "disjoint":
        return None, None
    splits = ds.splits()
    train = next((s for s in TRAIN_SPLITS if s in splits), None)
    test = next((s for s in QUERY_SPLITS if s in splits), None)
    return (train, test) if train and test else (None, None)


def _class_pools(ds: LabelledDataset, plan: EpisodePlan) -> tuple[dict, dict]:
    if plan.support_from:
        return ds.by_label(plan.support_from), ds.by_label(plan.query_from)
    groups = ds.by_label()
    return groups, groups


def _check_counts(ds: LabelledDataset, plan: EpisodePlan) -> None:
    sup, qry = _class_pools(ds, plan)
    for c in plan.classes:
        n_sup, n_qry = len(sup.get(c, [])), len(qry.get(c, []))
        if plan.support_from:
            if n_sup < plan.pool:
                raise UserError(f"class {c!r} has {n_sup} '{plan.support_from}' examples, fewer "
                                f"than the pool of {plan.pool}; lower --shots/--pool")
            if n_qry < max(plan.queries or 1, 1):
                raise UserError(f"class {c!r} has {n_qry} '{plan.query_from}' examples, fewer "
                                f"than --queries {plan.queries}; lower --queries")
        elif n_sup < plan.pool + (plan.queries or 1):
            raise UserError(f"class {c!r} has {n_sup} examples, fewer than pool {plan.pool} + "
                            f"queries {plan.queries or 1}; lower --shots, --pool or --queries")


def sample_episodes(ds: LabelledDataset, plan: EpisodePlan, n: int, seed: int) -> list[Episode]:
    """``n`` seeded episodes; episode ``i`` depends only on (seed, i), not on ``n``."""
    sup, qry = _class_pools(ds, plan)
    episodes = []
    for i in range(n):
        rng = random.Random(f"episode:{seed}:{i}")
        classes = tuple(rng.sample(list(plan.classes), plan.ways))
        support, query = {}, []
        for c in classes:
            if plan.support_from:
                support[c] = rng.sample(sup[c], plan.pool)
                pool_q = qry[c] if plan.queries is None else rng.sample(qry[c], plan.queries)
            else:
                take = len(sup[c]) if plan.queries is None else plan.pool + plan.queries
                drawn = rng.sample(sup[c], take)
                support[c], pool_q = drawn[:plan.pool], drawn[plan.pool:]
            query.extend(pool_q)
        rng.shuffle(query)
        episodes.append(Episode(i, classes, support, query, seed))
    return episodes
