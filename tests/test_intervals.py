"""Intervals that cover: exact Student-t quantiles, paired t-intervals over episodes, coverage.

The coverage test simulates many seeded replications of a small benchmark (paired per-episode
accuracies of two methods with a known true mean difference) and checks that the 95% interval
``paired_differences`` reports contains the true difference 93-97% of the time, at 3, 5, 10 and
50 episodes. ``eval/interval_coverage.py`` prints the same numbers next to the old bootstrap's.
"""
import math

import numpy as np
import pytest

from iclmeta.report.intervals import mean_ci, paired_t_interval, t_cdf, t_quantile
from iclmeta.report.stats import format_table, paired_differences, summarize

EPISODES = (3, 5, 10, 50)


@pytest.mark.parametrize("p, df, expected", [
    (0.975, 1, 12.7062), (0.975, 2, 4.3027), (0.975, 4, 2.7764), (0.975, 9, 2.2622),
    (0.975, 30, 2.0423), (0.975, 31, 2.0395), (0.975, 49, 2.0096), (0.975, 100, 1.9840),
    (0.975, 1000, 1.9623), (0.95, 5, 2.0150), (0.995, 10, 3.1693), (0.5, 7, 0.0),
    (0.025, 4, -2.7764),
])
def test_t_quantiles_match_tables(p, df, expected):
    assert t_quantile(p, df) == pytest.approx(expected, abs=5e-5)


def test_t_quantiles_agree_with_scipy_for_every_df():
    stats = pytest.importorskip("scipy.stats")  # a test-only cross-check; iclmeta needs no scipy
    for df in [*range(1, 121), 150.5, 500, 10_000]:
        for p in (0.6, 0.9, 0.975, 0.995):
            assert t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-8)


def test_t_cdf_is_a_distribution_function():
    assert t_cdf(0.0, 3) == 0.5
    assert t_cdf(12.7062047, 1) == pytest.approx(0.975, abs=1e-8)
    assert t_cdf(-2.0, 6) == pytest.approx(1 - t_cdf(2.0, 6), abs=1e-12)
    assert t_cdf(1.0, 1) == pytest.approx(0.75, abs=1e-12)  # Cauchy: 1/2 + atan(1)/pi
    grid = [t_cdf(x, 5) for x in np.linspace(-8, 8, 41)]
    assert all(a < b for a, b in zip(grid, grid[1:]))
    assert t_cdf(3.0, 10_000) == pytest.approx(0.99865, abs=1e-5)  # close to the normal
    with pytest.raises(ValueError):
        t_quantile(1.0, 4)


def test_one_episode_has_no_interval_and_few_episodes_warn():
    assert math.isnan(mean_ci([0.4])[1]) and mean_ci([0.4])[0] == 0.4
    assert all(math.isnan(v) for v in paired_t_interval([0.1]))
    rows = [{"label": "icl", "shots": 1, "accuracy": a} for a in (0.5, 0.6, 0.7)]
    rows.append({"label": "zero-shot", "shots": 0, "accuracy": 0.3})
    table = format_table(summarize(rows))
    assert "30.0 ± n/a" in table and "± 0.0" not in table
    assert "fewer than 10 episodes" in table.splitlines()[-1]
    many = [{"label": "icl", "shots": 1, "accuracy": 0.5 + 0.01 * i} for i in range(10)]
    assert "episodes" not in format_table(summarize(many))


def test_paired_differences_use_the_paired_t_interval():
    import pandas as pd

    d = [0.2, -0.1, 0.05, 0.3, 0.0, 0.1, -0.05, 0.15]
    rows = [{"label": lab, "shots": 1, "accuracy": 0.5 + (x if lab == "a" else 0.0),
             "adapt_steps": float("nan"), "dataset": "toy", "class_split": "all", "split": "all",
             "split_seed": 0, "ways": 5, "seed": 0, "episode": i, "query_hash": f"q{i}"}
            for i, x in enumerate(d) for lab in ("a", "b")]
    out = paired_differences(pd.DataFrame(rows), baseline="b").iloc[0]
    mean, sd = np.mean(d), np.std(d, ddof=1)
    half = 2.364624 * sd / math.sqrt(len(d))  # t(0.975, 7)
    assert out["diff"] == pytest.approx(mean)
    assert (out["ci_low"], out["ci_high"]) == pytest.approx((mean - half, mean + half), abs=1e-6)


def simulate_differences(n_episodes: int, reps: int, seed: int, model: str) -> tuple:
    """``reps`` benchmarks of ``n_episodes`` paired accuracy differences and the true mean.

    ``normal``: differences ~ N(0.03, 0.08^2). ``beta``: each episode has a difficulty
    p ~ Beta(6, 3); method B answers 20 queries right with probability p, method A with
    p + 0.05 (capped at 1), so differences are bounded, discrete and skewed like real ones.
    """
    rng = np.random.default_rng(seed)
    if model == "normal":
        return rng.normal(0.03, 0.08, size=(reps, n_episodes)), 0.03
    p = rng.beta(6, 3, size=(reps, n_episodes))
    q = np.minimum(p + 0.05, 1.0)
    a = rng.binomial(20, q) / 20
    b = rng.binomial(20, p) / 20
    grid = np.linspace(0, 1, 200_001)  # E[min(p + .05, 1) - p] under Beta(6, 3), by quadrature
    density = grid ** 5 * (1 - grid) ** 2 / (math.gamma(6) * math.gamma(3) / math.gamma(9))
    truth = float(np.trapezoid(np.minimum(0.05, 1 - grid) * density, grid))
    return a - b, truth


def t_coverage(d: np.ndarray, truth: float) -> float:
    """Share of rows of ``d`` whose paired 95% t-interval contains ``truth`` (vectorised)."""
    n = d.shape[1]
    half = t_quantile(0.975, n - 1) * d.std(axis=1, ddof=1) / math.sqrt(n)
    return float((np.abs(d.mean(axis=1) - truth) <= half).mean())


@pytest.mark.parametrize("model", ["normal", "beta"])
@pytest.mark.parametrize("n_episodes", EPISODES)
def test_paired_interval_covers_95_percent(n_episodes, model):
    d, truth = simulate_differences(n_episodes, reps=4000, seed=n_episodes, model=model)
    # the vectorised check is the same interval paired_t_interval reports
    low, high = paired_t_interval(d[0])
    assert (low <= truth <= high) == bool(t_coverage(d[:1], truth))
    assert 0.93 <= t_coverage(d, truth) <= 0.97
