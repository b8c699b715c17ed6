"""Class-disjoint meta-splits and seeded N-way K-shot episodes with one labelled budget.

Episode ``i`` draws its classes and queries first, from their own stream seeded by
``(seed, i)``; then each class gets one seeded permutation of its remaining examples and the
K-shot support is the first K of it. So the queries are the same for any shot list or method
set, the 1-shot support is inside the 4-shot one, and ``support_set(K)`` never depends on which
other shot counts were asked for: at ``shots = K`` every method has exactly K labelled
examples per class and nothing more.

>>> from iclmeta.data.sources import load_dataset
>>> ds = load_dataset("snips")
>>> plan = plan_episodes(ds, ways=None, shots=[1, 4], queries=5)
>>> eps = sample_episodes(ds, plan, n=2, seed=0)
>>> len(eps[0].classes), len(eps[0].support_set(4)), len(eps[0].query)
(7, 28, 35)
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, asdict
from typing import Literal

from iclmeta.data.budget import (DROP_HINT, QUERY_SPLITS, TRAIN_SPLITS, Budget,  # noqa: F401
                                 class_groups, short_classes, shortfall, source_splits)
from iclmeta.data.example import Example, LabelledDataset
from iclmeta.errors import UserError

ClassSplit = Literal["auto", "disjoint", "all"]
MetaSplit = Literal["meta-train", "meta-val", "meta-test"]
META_SPLITS = ("meta-train", "meta-val", "meta-test")
# Below this many classes a meta-split would leave too few classes per split, so "auto" evaluates
# over all classes (support from the dataset's train split, queries from its test split).
MIN_CLASSES_FOR_DISJOINT = 20
SPLIT_FRACTIONS = (0.6, 0.2, 0.2)
ALL_QUERIES_NEED_SPLITS = ("--queries all needs a dataset with its own train and test splits "
                           "(here support and queries come from the same examples, so 'the "
                           "rest' would change with --shots); give a number, e.g. --queries 5")


ALL = "all"  # --shots all: every support example of each class in play
ALL_SHOTS = 10**6  # how "all" sorts and aggregates in report frames (after every number)


def shot_key(shots) -> int:
    """A sort key for shot counts where ``"all"`` comes after every number.

    >>> sorted([4, "all", 0], key=shot_key)
    [0, 4, 'all']
    """
    return ALL_SHOTS if shots in (ALL, ALL_SHOTS) else int(shots)


def shot_text(shots) -> str:
    """``"4"`` or ``"all"`` (a report frame's ``ALL_SHOTS`` included)."""
    return ALL if shots in (ALL, ALL_SHOTS) else str(int(shots))


def query_hash(ids) -> str:
    """A short fingerprint of a query set (order-free): rows with equal hashes saw the same queries.

    >>> query_hash(["b", "a"]) == query_hash(["a", "b"]), len(query_hash(["a"]))
    (True, 12)
    """
    return hashlib.sha256("\n".join(sorted(map(str, ids))).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Episode:
    """N classes, each class's support (nested: ``support_set(K)`` is its first K), the queries.

    ``support[c]`` holds the largest budget the plan asked for; a method at K sees only
    ``support_set(K)``.
    """

    id: int
    classes: tuple[str, ...]
    support: dict[str, list[Example]]
    query: list[Example]
    seed: int

    def support_set(self, shots: int) -> list[Example]:
        """The first ``shots`` support examples of every class, interleaved class by class.

        With ``--shots all`` classes may hold different numbers: then ``shots`` up to
        ``all_shots`` takes the first ``min(shots, n)`` of a class of ``n``, and
        ``support_set(all_shots)`` is the whole support.
        """
        if shots > self.all_shots:
            raise ValueError(f"episode support holds {self.max_shots} per class, asked for {shots}")
        return [self.support[c][i] for i in range(shots) for c in self.classes
                if i < len(self.support[c])]

    @property
    def max_shots(self) -> int:
        """Support examples every class has (the K of a K-shot episode)."""
        return min((len(v) for v in self.support.values()), default=0)

    @property
    def all_shots(self) -> int:
        """Support examples of the largest class: what ``--shots all`` passes to a method."""
        return max((len(v) for v in self.support.values()), default=0)

    @property
    def query_hash(self) -> str:
        return query_hash(q.id for q in self.query)


@dataclass(frozen=True)
class EpisodePlan:
    """The resolved sampling rule; printed by the CLI and stored in ``config.yaml``."""

    class_split: Literal["disjoint", "all"]
    split: str
    ways: int
    max_shots: int  # support examples kept per class; support@K is their first K
    queries: int | None  # None: every query example of the class (needs the dataset's splits)
    support_from: str | None  # the dataset's own split the support comes from (None: any)
    query_from: str | None
    classes: tuple[str, ...]
    split_seed: int = 0
    all_shots: bool = False  # --shots all: each class keeps every support example it has
    left_out: tuple[tuple[str, str], ...] = ()  # --drop-short-classes: (class, what it has)

    def describe(self) -> str:
        source = (f"support from the '{self.support_from}' split, queries from "
                  f"'{self.query_from}'" if self.support_from else "support and queries from "
                  "the same examples (disjoint)")
        scope = (f"{self.split} classes ({len(self.classes)} of a class-disjoint meta-split)"
                 if self.class_split == "disjoint" else f"all {len(self.classes)} classes")
        q = "all" if self.queries is None else self.queries
        return (f"episodes: {self.ways}-way over {scope}; {q} queries per class drawn first; "
                f"K-shot support = first K of one permutation per class (nested, up to "
                f"{'every example' if self.all_shots else self.max_shots}); {source}"
                + self.left_out_text())

    def left_out_text(self) -> str:
        """``""``, or which classes were too small for the budget and what each one has."""
        if not self.left_out:
            return ""
        return (f"; {len(self.left_out)} classes left out, too small for this budget: "
                + ", ".join(f"{c} ({has})" for c, has in self.left_out))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["classes"] = list(self.classes)
        d["left_out"] = dict(self.left_out)
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


def plan_episodes(ds: LabelledDataset, ways: int | str | None, shots: list[int],
                  queries: int | None,
                  split: str = "meta-test", class_split: ClassSplit = "auto",
                  split_seed: int = 0, drop_short: bool | None = None) -> EpisodePlan:
    """Decide the sampling rule explicitly (see ``EpisodePlan.describe``).

    Every class of the split must supply ``max(shots)`` support examples and ``queries``
    queries; otherwise this raises rather than sampling fewer, or, with ``drop_short``, leaves
    those classes out and names them in ``left_out`` (``None``: the caller offers no such flag).
    """
    labels = ds.labels()
    if class_split == "auto":
        class_split = "all" if len(labels) < MIN_CLASSES_FOR_DISJOINT else "disjoint"
    if class_split == "disjoint":
        if split not in META_SPLITS:
            raise UserError(f"unknown split {split!r}; choose one of: {', '.join(META_SPLITS)}")
        classes = meta_splits(labels, split_seed)[split]
    else:
        classes = labels
    numeric = [k for k in shots if k != ALL]
    if any(not isinstance(k, int) or k < 0 for k in numeric):
        raise UserError("--shots must be non-negative integers or 'all', e.g. --shots 0,1,4,all")
    support_from, query_from = source_splits(ds, class_split)
    if queries is None and not support_from:
        raise UserError(ALL_QUERIES_NEED_SPLITS)
    budget = Budget(max(numeric, default=0), queries, support_from, query_from, ALL in shots)
    short = short_classes(ds, budget, classes)
    if drop_short:
        classes = [c for c in classes if c not in short]
    ways = _resolve_ways(ds, ways, classes, class_split, short if drop_short else {})
    if short and not drop_short:
        raise UserError(next(iter(short.values()))[0] + (DROP_HINT if drop_short is False else ""))
    return EpisodePlan(class_split, split if class_split == "disjoint" else "all", ways,
                       budget.max_shots, queries, support_from, query_from, tuple(classes),
                       split_seed, budget.all_shots,
                       tuple((c, has) for c, (_, has) in short.items()) if drop_short else ())


def _resolve_ways(ds, ways, classes: list[str], class_split: str, dropped: dict) -> int:
    if ways == "all":
        ways = len(classes)
    ways = ways if ways is not None else (len(classes) if class_split == "all" else 5)
    if dropped and len(classes) < 2:
        raise UserError(f"only {len(classes)} of {ds.name}'s classes can supply this budget "
                        f"({len(dropped)} fall short, e.g. {next(iter(dropped.values()))[0]})")
    if ways < 2 or ways > len(classes):
        left = f" ({len(dropped)} too small for the budget were left out)" if dropped else ""
        raise UserError(f"--ways {ways} is impossible: {ds.name} has {len(classes)} classes in "
                        f"this split{left}; choose --ways between 2 and {len(classes)}")
    return ways


def sample_episodes(ds: LabelledDataset, plan: EpisodePlan, n: int, seed: int) -> list[Episode]:
    """``n`` seeded episodes; episode ``i`` depends only on (seed, i) and the class rule.

    Classes and queries come from the stream ``"{seed}:{i}:query"``, each class's support
    permutation from ``"{seed}:{i}:support:{class}"``: neither sees the shot list.
    """
    if plan.queries is None and not plan.support_from:
        raise UserError(ALL_QUERIES_NEED_SPLITS)
    sup, qry = class_groups(ds, plan)
    episodes = []
    for i in range(n):
        rng = random.Random(f"{seed}:{i}:query")
        classes = tuple(rng.sample(list(plan.classes), plan.ways))
        support, query = {}, []
        for c in classes:
            drawn = qry[c] if plan.queries is None else rng.sample(qry[c], plan.queries)
            taken = {e.id for e in drawn}
            rest = [e for e in sup[c] if e.id not in taken]
            problem = shortfall(plan, c, len(rest) + (0 if plan.support_from else len(drawn)),
                                 len(qry[c]))
            if problem:
                raise UserError(problem)
            random.Random(f"{seed}:{i}:support:{c}").shuffle(rest)
            support[c] = rest if plan.all_shots else rest[:plan.max_shots]
            query.extend(drawn)
        rng.shuffle(query)
        episodes.append(Episode(i, classes, support, query, seed))
    return episodes
