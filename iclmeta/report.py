"""Aggregation of result rows: mean accuracy and 95% confidence intervals over episodes.

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

from .config import write_atomic

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


def summarize(rows: list[dict]) -> list[dict]:
    """One record per (label, shots): mean accuracy, 95% CI half-width, episodes, cost."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
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
