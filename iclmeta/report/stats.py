"""Aggregation of result rows: mean accuracy with 95% CIs, shot-count curves, paired differences.

Two layers. ``summarize``/``format_table``/``write_summary`` work on plain row dicts (the
harness uses them, no pandas). ``load_runs``/``shot_curve``/``adapt_curve``/
``paired_differences`` return tidy pandas DataFrames for the CLI report and notebooks; pandas is
imported inside them so importing this module stays light.

Gradient methods record several rows per (method, shots, episode), one per number of
test-time adaptation steps (``adapt_steps``). Shot-count tables and curves use each such
method's largest ``adapt_steps`` at each shot count (the column ``adapt_steps`` says which);
``adapt_curve`` shows every step.

>>> rows = [{"label": "icl", "shots": 1, "accuracy": a} for a in (0.6, 0.8, 0.7)]
>>> s = summarize(rows)[0]
>>> round(s["mean"], 3), s["n_episodes"]
(0.7, 3)
"""
from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from pathlib import Path

from iclmeta.io import write_atomic
from iclmeta.errors import UserError

# Two-sided 95% Student-t quantiles by degrees of freedom; beyond 30 the normal 1.96 is close.

# Two-sided 95% Student-t quantiles by degrees of freedom; beyond 30 the normal 1.96 is close.

# Two-sided 95% Student-t quantiles by degrees of freedom; beyond 30 the normal 1.96 is close.
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
        9: 2.262, 10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120,
        17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069,
        24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048, 29: 2.045, 30: 2.042}


def t95(df: int) -> float:
    return _T95.get(df, 1.96 if df > 30 else float("nan"))


def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval (0 for a single value)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, t95(n - 1) * sd / math.sqrt(n)


def final_step_rows(rows: list[dict]) -> list[dict]:
    """Drop a gradient method's intermediate rows: per (label, shots) keep the largest adapt_steps.

    >>> rows = [{"label": "maml", "shots": 1, "adapt_steps": k, "accuracy": 0.1 * k} for k in (0, 5)]
    >>> [r["adapt_steps"] for r in final_step_rows(rows)]
    [5]
    """
    top: dict[tuple, int] = {}
    for r in rows:
        if r.get("adapt_steps") is not None:
            key = (r.get("label", r.get("method")), r["shots"])
            top[key] = max(top.get(key, r["adapt_steps"]), r["adapt_steps"])
    return [r for r in rows if r.get("adapt_steps") is None
            or r["adapt_steps"] == top[(r.get("label", r.get("method")), r["shots"])]]


def summarize(rows: list[dict]) -> list[dict]:
    """One record per (label, shots): mean accuracy, 95% CI half-width, episodes, cost.

    Gradient methods count only their rows at the largest ``adapt_steps``.
    """
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in final_step_rows(rows):
        groups[(r.get("label", r.get("method")), r["shots"])].append(r)
    out = []
    for (label, shots), rs in sorted(groups.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        mean, ci = mean_ci([r["accuracy"] for r in rs])
        out.append({"label": label, "shots": shots, "mean": mean, "ci95": ci,
                    "n_episodes": len(rs),
                    "seconds": sum(r.get("seconds", 0.0) for r in rs) / len(rs),
                    "prompt_tokens": sum(r.get("prompt_tokens", 0) for r in rs) / len(rs)})
    return out


def format_table(summary: list[dict]) -> str:
    """Methods as rows, shot counts as columns: ``mean ± ci`` accuracy in percent."""
    shots = sorted({s["shots"] for s in summary})
    labels = list(dict.fromkeys(s["label"] for s in summary))
    cell = {(s["label"], s["shots"]): f"{100 * s['mean']:.1f} ± {100 * s['ci95']:.1f}"
            for s in summary}
    header = ["method"] + [f"{k}-shot" for k in shots]
    body = [[lab] + [cell.get((lab, k), "—") for k in shots] for lab in labels]
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in [header] + body]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_summary(summary: list[dict], path: str | Path) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["label", "shots", "mean", "ci95", "n_episodes",
                                             "seconds", "prompt_tokens"])
    writer.writeheader()
    writer.writerows(summary)
    write_atomic(path, buf.getvalue())


def load_runs(runs, dedupe: bool = True):
    """Load run folders into one tidy DataFrame (see ``iclmeta.report.runs.load_runs``).

    >>> df = load_runs(["runs/icl", "runs/retrieval"])  # doctest: +SKIP
    """
    from iclmeta.report.runs import load_runs as _load
    return _load(runs, dedupe=dedupe)


def _frame(data):
    """Accept a DataFrame from ``load_runs`` or the run folders themselves."""
    return load_runs(data) if isinstance(data, (str, Path, list, tuple)) else data


def _final_steps(df):
    steps = df["adapt_steps"]
    top = steps.groupby([df["label"], df["shots"]]).transform("max")
    return df[steps.isna() | (steps == top)]


def _aggregate(df, keys: list[str]):
    import pandas as pd

    order = {label: i for i, label in enumerate(dict.fromkeys(df["label"]))}
    out = []
    for key, g in df.groupby(keys, sort=False):
        mean, ci = mean_ci(g["accuracy"].astype(float).tolist())
        out.append({**dict(zip(keys, key)), "mean": mean, "ci95": ci, "ci_low": mean - ci,
                    "ci_high": mean + ci, "n_episodes": len(g),
                    "adapt_steps": g["adapt_steps"].max()})
    out = pd.DataFrame(out, columns=[*dict.fromkeys([*keys, "mean", "ci95", "ci_low", "ci_high",
                                                     "n_episodes", "adapt_steps"])])
    out = out.sort_values([*keys], key=lambda c: c.map(order) if c.name == "label" else c)
    return out.reset_index(drop=True)


def shot_curve(data, labels: list[str] | None = None):
    """Mean accuracy and 95% t-interval over episodes per (label, shots), as a DataFrame.

    Columns: label, shots, mean, ci95 (half-width), ci_low, ci_high, n_episodes, adapt_steps
    (the step count used for gradient methods, NaN for others). Labels keep run order.

    >>> curve = shot_curve(load_runs("runs/latest"))  # doctest: +SKIP
    >>> curve.pivot(index="label", columns="shots", values="mean")  # doctest: +SKIP
    """
    df = _final_steps(_frame(data))
    if labels is not None:
        df = df[df["label"].isin(labels)]
    return _aggregate(df, ["label", "shots"])


def adapt_curve(data):
    """Accuracy against test-time adaptation steps per (label, shots) for gradient methods.

    Empty (same columns as ``shot_curve`` plus adapt_steps as a key) when no row has
    ``adapt_steps``.

    >>> adapt_curve(load_runs("runs/maml")).query("shots == 4")  # doctest: +SKIP
    """
    df = _frame(data)
    return _aggregate(df[df["adapt_steps"].notna()], ["label", "shots", "adapt_steps"])


def paired_bootstrap(diffs, n_boot: int = 10_000, seed: int = 0,
                     level: float = 0.95) -> tuple[float, float]:
    """Percentile interval for the mean of paired differences, resampling episodes.

    >>> [round(v, 6) for v in paired_bootstrap([0.1, 0.1, 0.1])]
    [0.1, 0.1]
    """
    import numpy as np

    d = np.asarray(diffs, dtype=float)
    if n_boot < 1 or not len(d):
        raise UserError(f"the paired bootstrap needs at least 1 resample and 1 episode (got "
                        f"{n_boot} resamples, {len(d)} episodes); pass --bootstrap 10000")
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    for start in range(0, n_boot, 1000):  # chunks bound memory on runs with many episodes
        stop = min(start + 1000, n_boot)
        means[start:stop] = d[rng.integers(0, len(d), size=(stop - start, len(d)))].mean(axis=1)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def _comparisons(df, wide, baseline: str | None) -> list[tuple[str, str]]:
    means = df.groupby("label", sort=False)["accuracy"].mean()
    if baseline is not None:
        if baseline not in means.index:
            raise UserError(f"unknown baseline {baseline!r}; choose one of: "
                            f"{', '.join(means.index)}")
        return [(label, baseline) for label in means.index if label != baseline]
    ranked = list(means.sort_values(ascending=False, kind="stable").index)
    pairs = [(a, b) for i, a in enumerate(ranked) for b in ranked[i + 1:]]
    # orient by the paired difference over shared cells: overall means mix shot counts
    return [(b, a) if (wide[a] - wide[b]).mean() < 0 else (a, b) for a, b in pairs]


def paired_differences(data, baseline: str | None = None, n_boot: int = 10_000, seed: int = 0):
    """Paired accuracy differences A − B on the same episodes, with a bootstrap 95% interval.

    Pairs rows on (dataset, split, ways, seed, episode, shots); the interval resamples those
    episodes (``n_boot`` times, seeded, percentile). With ``baseline`` every other label is
    compared with it; otherwise every pair once, with A the better of the two on their shared
    episodes. Columns: a, b, shots, diff, ci_low, ci_high, n_pairs, frac_a_better, frac_tie.

    >>> paired_differences(load_runs("runs/latest"), baseline="icl")  # doctest: +SKIP
    """
    import pandas as pd
    from iclmeta.report.runs import PAIR_KEY

    df = _final_steps(_frame(data))
    wide = df.pivot_table(index=[*PAIR_KEY, "shots"], columns="label", values="accuracy")
    out = []
    for a, b in _comparisons(df, wide, baseline):
        for shots, g in wide.groupby(level="shots"):
            d = (g[a] - g[b]).dropna().to_numpy()
            if len(d):
                low, high = paired_bootstrap(d, n_boot, seed)
                out.append({"a": a, "b": b, "shots": shots, "diff": float(d.mean()),
                            "ci_low": low, "ci_high": high, "n_pairs": len(d),
                            "frac_a_better": float((d > 0).mean()),
                            "frac_tie": float((d == 0).mean())})
    return pd.DataFrame(out, columns=["a", "b", "shots", "diff", "ci_low", "ci_high", "n_pairs",
                                      "frac_a_better", "frac_tie"])
