"""Can every class in play supply an episode's labelled budget and its queries?

``plan_episodes`` asks before any episode is drawn, ``sample_episodes`` again per class as it
draws. A class that falls short makes the run refuse, naming the class and what to lower, unless
the run asked for short classes to be left out (``--drop-short-classes``): then they are left
out and named, with the examples each one has, in the episode rule the run prints and records.

>>> b = Budget(max_shots=4, queries=None, support_from="train", query_from="test")
>>> shortfall(b, "NUM:ord", n_sup=3, n_qry=0)
"class 'NUM:ord' has 3 'train' examples, fewer than 4 shots; lower --shots"
>>> shortfall(b, "ENTY:word", n_sup=26, n_qry=0)
"class 'ENTY:word' has no 'test' examples to query"
"""
from __future__ import annotations

from dataclasses import dataclass

from iclmeta.data.example import LabelledDataset

TRAIN_SPLITS = ("train",)
QUERY_SPLITS = ("test", "validation", "val", "dev")
DROP_HINT = " (--drop-short-classes leaves out, and names, every class that falls short)"


@dataclass(frozen=True)
class Budget:
    """What each class must supply (an ``EpisodePlan`` has the same fields and works too)."""

    max_shots: int
    queries: int | None  # None: every query example of the class
    support_from: str | None  # the dataset's own split the support comes from (None: any)
    query_from: str | None
    all_shots: bool = False  # --shots all: at least one support example is needed


def source_splits(ds: LabelledDataset, class_split: str) -> tuple[str | None, str | None]:
    """With all classes in play, honour the dataset's own train/test split when it has one."""
    if class_split == "disjoint":
        return None, None
    splits = ds.splits()
    train = next((s for s in TRAIN_SPLITS if s in splits), None)
    test = next((s for s in QUERY_SPLITS if s in splits), None)
    return (train, test) if train and test else (None, None)


def class_groups(ds: LabelledDataset, budget) -> tuple[dict, dict]:
    """Support candidates and query candidates of every class, by label."""
    if budget.support_from:
        return ds.by_label(budget.support_from), ds.by_label(budget.query_from)
    groups = ds.by_label()
    return groups, groups


def shortfall(budget, c: str, n_sup: int, n_qry: int) -> str | None:
    """Why class ``c`` cannot supply the budget and queries (None when it can)."""
    need = max(budget.max_shots, 1 if budget.all_shots else 0)
    if budget.support_from:
        if n_sup < need:
            return (f"class {c!r} has {n_sup} '{budget.support_from}' examples, fewer than "
                    f"{need} shots; lower --shots")
        if n_qry < max(budget.queries or 1, 1):
            if n_qry == 0:
                return f"class {c!r} has no '{budget.query_from}' examples to query"
            return (f"class {c!r} has {n_qry} '{budget.query_from}' examples, fewer than "
                    f"--queries {budget.queries}; lower --queries")
        return None
    if n_sup < need + budget.queries:
        return (f"class {c!r} has {n_sup} examples, fewer than {need} shots + "
                f"{budget.queries} queries; lower --shots or --queries")
    return None


def short_classes(ds: LabelledDataset, budget, classes) -> dict[str, tuple[str, str]]:
    """Each class of ``classes`` that falls short: (why, what it has), in ``classes`` order.

    What it has reads ``"3 train / 0 test"`` (or ``"5 examples"`` when support and queries come
    from the same examples).
    """
    sup, qry = class_groups(ds, budget)
    short = {}
    for c in classes:
        n_sup, n_qry = len(sup.get(c, [])), len(qry.get(c, []))
        why = shortfall(budget, c, n_sup, n_qry)
        if why:
            short[c] = (why, f"{n_sup} {budget.support_from} / {n_qry} {budget.query_from}"
                        if budget.support_from else f"{n_sup} examples")
    return short
