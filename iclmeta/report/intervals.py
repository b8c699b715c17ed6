"""95% intervals over episodes: exact Student-t quantiles, mean and paired t-intervals.

The t distribution's CDF comes from the regularized incomplete beta function (Lentz's
continued fraction) and its quantile from bisection, so any degrees of freedom get the exact
value without scipy. One value has no interval: the half-width is NaN (shown as "n/a").
Small-sample intervals are honest but wide; ``FEW_EPISODES`` is where reports start warning.

>>> round(t_quantile(0.975, 4), 4), round(t_quantile(0.975, 100), 4)
(2.7764, 1.984)
>>> mean, half = mean_ci([0.5, 0.7, 0.9])
>>> round(mean, 3), round(half, 3)
(0.7, 0.497)
"""
from __future__ import annotations

import math

FEW_EPISODES = 10  # below this many episodes a cell's interval is flagged as unreliable
_EPS, _TINY = 1e-15, 1e-300


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b) (modified Lentz), converging for x < (a+1)/(a+b+2)."""
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, 10_000):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + num / c
            c = c if abs(c) > _TINY else _TINY
            h *= d * c
        if abs(d * c - 1.0) < _EPS:
            break
    return h


def betainc(a: float, b: float, x: float, y: float | None = None) -> float:
    """The regularized incomplete beta function I_x(a, b) for a, b > 0 and 0 <= x <= 1.

    ``y`` is 1 - x when the caller knows it more precisely than ``1 - x`` rounds to.
    """
    y = 1.0 - x if y is None else y
    if x <= 0.0 or y <= 0.0:
        return 0.0 if x <= 0.0 else 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log(y))
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, y) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom."""
    tail = 0.5 * betainc(df / 2, 0.5, df / (df + t * t), t * t / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` > 0 degrees of freedom (CDF bisection)."""
    if not 0.0 < p < 1.0 or df <= 0:
        raise ValueError(f"t_quantile needs 0 < p < 1 and df > 0 (got p={p}, df={df})")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    if p == 0.5:
        return 0.0
    high = 2.0
    while t_cdf(high, df) < p:
        high *= 2.0
    low = 0.0
    for _ in range(200):
        mid = (low + high) / 2
        low, high = (mid, high) if t_cdf(mid, df) < p else (low, mid)
        if high - low <= 1e-12 * high:
            break
    return (low + high) / 2


def t95(df: int) -> float:
    """The two-sided 95% critical value t(0.975, df)."""
    return t_quantile(0.975, df)


def mean_ci(values) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval (NaN for a single value)."""
    values = [float(v) for v in values]
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, t95(n - 1) * sd / math.sqrt(n)


def paired_t_interval(diffs) -> tuple[float, float]:
    """95% t-interval of the mean of paired per-episode differences (NaN for one episode).

    >>> [round(v, 4) for v in paired_t_interval([0.1, 0.1, 0.1])]
    [0.1, 0.1]
    """
    mean, half = mean_ci(diffs)
    return mean - half, mean + half


def format_ci(mean: float, half: float, scale: float = 100.0) -> str:
    """``"62.5 ± 4.1"``, or ``"62.5 ± n/a"`` when there is no interval (one episode)."""
    width = "n/a" if math.isnan(half) else f"{scale * half:.1f}"
    return f"{scale * mean:.1f} ± {width}"


def few_episodes_note(counts) -> str | None:
    """A warning line when any cell rests on fewer than ``FEW_EPISODES`` episodes."""
    counts = [int(c) for c in counts]
    if not counts or min(counts) >= FEW_EPISODES:
        return None
    return (f"Warning: fewer than {FEW_EPISODES} episodes in some cells (min {min(counts)}): "
            "intervals are wide and unstable; use --episodes 10 or more to compare methods.")
