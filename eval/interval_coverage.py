"""Coverage of 95% intervals for a paired accuracy difference over few episodes: the old
percentile bootstrap over episodes against the paired t-interval ``iclmeta report`` now uses.

    python eval/interval_coverage.py [--reps 4000] [--boot 2000] [--seed 0]

Each replication is one small benchmark: ``n`` episodes, two methods, one accuracy
difference per episode, drawn from a model whose true mean difference is known. Coverage is
the share of replications whose interval contains that truth; a 95% interval should be near
0.95. Two models (the same as ``tests/test_intervals.py``):

- ``normal``: differences ~ N(0.03, 0.08^2);
- ``beta``: each episode has a difficulty p ~ Beta(6, 3); method B gets each of 20 queries
  right with probability p, method A with min(p + 0.05, 1), so differences are bounded,
  discrete and skewed like real per-episode accuracies.

The bootstrap is reimplemented here as it was in ``iclmeta.report.stats`` (resample the
episodes with replacement, percentile 2.5/97.5 of the resampled means); the t-interval is
``iclmeta.report.intervals.paired_t_interval`` (mean ± t(0.975, n-1) sd / sqrt(n)), vectorised.
"""
from __future__ import annotations

import argparse
import math

import numpy as np

from iclmeta.report.intervals import t_quantile

EPISODES = (3, 5, 10, 50)


def simulate_differences(n_episodes: int, reps: int, seed: int, model: str):
    """``reps`` x ``n_episodes`` paired differences and their true mean under ``model``."""
    rng = np.random.default_rng(seed)
    if model == "normal":
        return rng.normal(0.03, 0.08, size=(reps, n_episodes)), 0.03
    p = rng.beta(6, 3, size=(reps, n_episodes))
    a = rng.binomial(20, np.minimum(p + 0.05, 1.0)) / 20
    b = rng.binomial(20, p) / 20
    grid = np.linspace(0, 1, 200_001)  # E[min(p + .05, 1) - p] under Beta(6, 3), by quadrature
    density = grid ** 5 * (1 - grid) ** 2 / (math.gamma(6) * math.gamma(3) / math.gamma(9))
    return a - b, float(np.trapezoid(np.minimum(0.05, 1 - grid) * density, grid))


def t_coverage(d: np.ndarray, truth: float) -> float:
    n = d.shape[1]
    half = t_quantile(0.975, n - 1) * d.std(axis=1, ddof=1) / math.sqrt(n)
    return float((np.abs(d.mean(axis=1) - truth) <= half).mean())


def bootstrap_coverage(d: np.ndarray, truth: float, n_boot: int, seed: int) -> float:
    """The old interval: percentile bootstrap of the mean, resampling episodes (chunked)."""
    rng = np.random.default_rng(seed)
    reps, n = d.shape
    hits = 0
    for start in range(0, reps, 50):
        block = d[start:start + 50]
        idx = rng.integers(0, n, size=(len(block), n_boot, n))
        means = np.take_along_axis(block[:, None, :], idx, axis=2).mean(axis=2)
        low, high = np.quantile(means, [0.025, 0.975], axis=1)
        hits += int(((low <= truth) & (truth <= high)).sum())
    return hits / reps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=4000, help="replications per cell")
    parser.add_argument("--boot", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    args = parser.parse_args()
    print(f"coverage of 95% intervals for a paired difference ({args.reps} replications "
          f"per cell; bootstrap: {args.boot} resamples)\n")
    print(f"{'model':<8} {'episodes':>8}  {'bootstrap (old)':>15}  {'t-interval (new)':>16}")
    for model in ("normal", "beta"):
        for n in EPISODES:
            # seed = n: the same replications as tests/test_intervals.py
            d, truth = simulate_differences(n, args.reps, seed=n, model=model)
            old = bootstrap_coverage(d, truth, args.boot, args.seed)
            print(f"{model:<8} {n:>8}  {old:>15.3f}  {t_coverage(d, truth):>16.3f}")


if __name__ == "__main__":
    main()
