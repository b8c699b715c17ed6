"""Racing methods by successive elimination, with intervals that stay valid under repeated looks.

``iclmeta recommend`` runs every surviving method on the same episode each round and looks at
the per-episode scores after some rounds. At look ``r`` (``r = 1, 2, ...``) it forms, for every
pair of surviving methods, a Student-t interval of the mean paired difference over the
episodes so far, at level ``1 - alpha_r`` with

    alpha_r = alpha * 6 / (pi^2 r^2) / P,     P = pairs of methods at the start.

The ``alpha_r`` sum to at most ``alpha`` over all looks and pairs (``sum 1/r^2 = pi^2/6``), so
by the union (Bonferroni) bound every difference interval ever formed holds at once with
probability at least ``1 - alpha``, whenever the race stops and whichever method leads: dropping a method
only when another is confidently better keeps the best one with that probability. Each
interval assumes the per-episode differences are roughly normal, like every interval in the
reports. Looks happen after rounds ``LOOKS`` (about 1.5x apart), so few looks spend the
``alpha``; the first is after five episodes: earlier, a t-interval at these levels has so few
degrees of freedom (t is about 26 at three episodes, 7 at five) that a look would only spend
the error it needs later. Each method's own mean is shown with an interval
from a second family built the same way over methods instead of pairs (``mean_level``), so
those intervals, too, hold together with probability ``1 - alpha``.

A method is **dropped** when some surviving method is confidently better (the interval of
their difference lies above 0). The race **stops** when one method is left (a clear winner),
when every survivor's interval against the leader lies inside ``[-tie_margin, +tie_margin]``
(tied: any of them will do), or when the budget or the episodes run out.

>>> scores = {"a": [0.9, 0.8, 0.85, 0.9], "b": [0.2, 0.3, 0.25, 0.2]}
>>> look = decide(scores, alpha=0.05, look=3, pairs=1, tie_margin=0.01)
>>> look.dropped, look.status
(['b'], 'winner')
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

from iclmeta.report.intervals import t_quantile as _t_quantile

t_quantile = lru_cache(maxsize=4096)(_t_quantile)  # a race asks for few distinct levels

LOOKS = (5, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)


def is_look(round_: int) -> bool:
    """Whether the race looks at the scores after this many rounds (``LOOKS``, then every 64).

    >>> [r for r in range(1, 20) if is_look(r)]
    [5, 8, 12, 16]
    """
    return round_ in LOOKS or (round_ > LOOKS[-1] and round_ % 64 == 0)


def look_alpha(alpha: float, look: int, pairs: int) -> float:
    """The two-sided error spent on one interval at look ``look`` (1-based) when ``pairs``
    intervals are formed at each look.

    >>> round(look_alpha(0.05, 1, 1) / 0.05, 4)
    0.6079
    >>> sum(look_alpha(0.05, r, 3) for r in range(1, 10**5)) * 3 <= 0.05
    True
    """
    return alpha * 6.0 / (math.pi ** 2 * look ** 2) / max(pairs, 1)


def paired_interval(a: list[float], b: list[float], level_alpha: float,
                    sd_floor: float = 0.0) -> tuple[float, float, float]:
    """Mean of ``a - b`` over paired episodes and its ``1 - level_alpha`` t-interval.

    ``sd_floor`` is the least standard deviation assumed: scores are counts over a few
    queries, so two methods that differ by the same amount in every episode so far are not
    thereby known exactly (the race passes half a query's worth of score).

    >>> [round(v, 3) for v in paired_interval([0.5, 0.7], [0.5, 0.5], 0.05)]
    [0.1, -1.171, 1.371]
    """
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    n = len(diffs)
    mean = sum(diffs) / n
    if n < 2:
        return mean, -math.inf, math.inf
    sd = max(math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1)), sd_floor)
    half = t_quantile(1.0 - level_alpha / 2.0, n - 1) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def mean_interval(values: list[float], level_alpha: float,
                  sd_floor: float = 0.0) -> tuple[float, float, float]:
    """Mean of ``values`` and its ``1 - level_alpha`` t-interval (``sd_floor`` as in
    ``paired_interval``).

    >>> [round(v, 3) for v in mean_interval([0.8, 0.9, 0.85], 0.05)]
    [0.85, 0.726, 0.974]
    """
    return paired_interval(values, [0.0] * len(values), level_alpha, sd_floor)


def prediction_interval(values: list[float], level_alpha: float) -> tuple[float, float]:
    """Where one more episode's score falls with probability ``1 - level_alpha`` (t prediction
    interval: the spread of single episodes, not of their mean).

    >>> [round(v, 3) for v in prediction_interval([0.8, 0.9, 0.85], 0.05)]
    [0.602, 1.098]
    """
    n = len(values)
    if n < 2:
        return -math.inf, math.inf
    m = sum(values) / n
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1))
    half = t_quantile(1.0 - level_alpha / 2.0, n - 1) * sd * math.sqrt(1 + 1 / n)
    return m - half, m + half


def family_size(methods: int) -> int:
    """Difference intervals per look: one per pair of methods."""
    return max(methods * (methods - 1) // 2, 1)


def mean_level(alpha: float, look: int, methods: int) -> float:
    """The error of one method's mean interval at look ``look`` (a family over methods)."""
    return look_alpha(alpha, look, methods)


@dataclass
class Look:
    """What one look decided: the leader, each survivor's interval against it, who is dropped."""

    look: int
    rounds: int
    alpha: float  # the per-pair error spent at this look
    leader: str
    versus_leader: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    dropped_by: dict[str, str] = field(default_factory=dict)
    status: str = "racing"  # racing | winner | tied

    def to_dict(self) -> dict:
        return {"look": self.look, "rounds": self.rounds, "alpha": self.alpha,
                "leader": self.leader, "status": self.status, "dropped": self.dropped,
                "dropped_by": self.dropped_by,
                "versus_leader": {m: list(v) for m, v in self.versus_leader.items()}}


def mean(values: list[float]) -> float:
    """The mean, or NaN for no values (a method that ran no round)."""
    return sum(values) / len(values) if values else math.nan


def spread_floor(queries: int, rounds: int) -> float:
    """Half a query's worth of score (``sd_floor``) for ``queries`` over ``rounds`` episodes."""
    return 0.5 * rounds / max(queries, 1)


def decide(scores: dict[str, list[float]], alpha: float, look: int, pairs: int,
           tie_margin: float, sd_floor: float = 0.0) -> Look:
    """One look at the survivors' paired per-episode ``scores`` (equal lengths, same episodes);
    ``sd_floor`` as in ``paired_interval``.

    Ties in the mean go to the method listed first.
    """
    names = list(scores)
    rounds = len(scores[names[0]])
    level = look_alpha(alpha, look, pairs)
    leader = max(names, key=lambda m: mean(scores[m]))
    result = Look(look, rounds, level, leader)
    for m in names:
        if m == leader:
            continue
        result.versus_leader[m] = paired_interval(scores[m], scores[leader], level, sd_floor)
        # Dropped when any survivor is confidently better (not only the leader).
        for other in names:
            if other != m and paired_interval(scores[other], scores[m], level, sd_floor)[1] > 0:
                result.dropped.append(m)
                result.dropped_by[m] = other
                break
    left = [m for m in names if m not in result.dropped]
    if len(left) == 1:
        result.status = "winner"
    elif all(-tie_margin <= result.versus_leader[m][1] and result.versus_leader[m][2] <= tie_margin
             for m in left if m != leader):
        result.status = "tied"
    return result
