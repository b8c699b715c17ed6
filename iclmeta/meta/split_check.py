"""Whether a dataset can be meta-split class-disjointly for ``--ways``, said before training."""
from __future__ import annotations

from iclmeta.errors import UserError


def check_meta_split(name: str, n_classes: int, ways: int) -> None:
    """Refuse, in one line, a dataset whose class-disjoint meta-train or meta-val split would
    hold fewer than ``ways`` classes, and say where meta-training can happen instead.

    >>> check_meta_split("snips", 7, 5)
    Traceback (most recent call last):
    ...
    iclmeta.errors.UserError: snips has 7 classes, too few for a class-disjoint meta-split: --ways 5 needs at least 23 (60% meta-train, 20% meta-val); meta-train on a dataset with more classes, e.g. --dataset clinc150.jsonl, then evaluate here with --adapter
    """
    from iclmeta.data.episodes import SPLIT_FRACTIONS, meta_splits

    def room(n: int) -> int:  # the most ways both meta-train and meta-val can hold
        parts = meta_splits([str(i) for i in range(n)], 0)  # sizes do not depend on the seed
        return min(len(parts["meta-train"]), len(parts["meta-val"]))
    if room(n_classes) >= ways:
        return
    if room(n_classes) >= 2:
        raise UserError(f"--ways {ways} is too many for {name}'s meta-val split "
                        f"({room(n_classes)} of its {n_classes} classes); choose --ways between 2 "
                        f"and {room(n_classes)}")
    need = next(n for n in range(n_classes + 1, 100 * ways) if room(n) >= ways)
    raise UserError(f"{name} has {n_classes} classes, too few for a class-disjoint meta-split: "
                    f"--ways {ways} needs at least {need} ({SPLIT_FRACTIONS[0]:.0%} meta-train, "
                    f"{SPLIT_FRACTIONS[1]:.0%} meta-val); "
                    "meta-train on a dataset with more classes, e.g. --dataset clinc150.jsonl, "
                    "then evaluate here with --adapter")
