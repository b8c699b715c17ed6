"""The markdown tables of ``report.md``: accuracy and macro-F1 by shots, paired differences,
calibration. Each takes the frame that ``iclmeta.report.stats`` or ``.metrics`` returns.

>>> import pandas as pd
>>> curve = pd.DataFrame({"label": ["icl", "knn"], "shots": [1, 1], "mean": [0.5, 0.7],
...                       "ci95": [0.1, 0.1]})
>>> print(accuracy_markdown(curve, best={1: "knn"}).splitlines()[3])
| knn | **70.0 ± 10.0** |
"""
from __future__ import annotations

from iclmeta.data.episodes import shot_text
from iclmeta.report.intervals import format_ci


def _pct(value: float, sign: bool = False) -> str:
    return f"{100 * value:+.1f}" if sign else f"{100 * value:.1f}"


def accuracy_markdown(curve, best: dict | None = None) -> str:
    """Methods as rows, shot counts as columns: ``mean ± 95% CI`` in percent.

    ``best`` ({shots: label}) puts that label's cell in bold at each shot count. Works for any
    frame with label, shots, mean and ci95 (macro-F1 too).

    >>> import pandas as pd
    >>> curve = pd.DataFrame({"label": ["icl"], "shots": [1], "mean": [0.5], "ci95": [0.1],
    ...                       "n_episodes": [6], "adapt_steps": [float("nan")]})
    >>> print(accuracy_markdown(curve).splitlines()[2])
    | icl | 50.0 ± 10.0 |
    >>> print(accuracy_markdown(curve.assign(ci95=float("nan"))).splitlines()[2])
    | icl | 50.0 ± n/a |
    """
    best = best or {}
    shots = sorted(curve["shots"].unique())
    lines = ["| method | " + " | ".join(f"{shot_text(k)}-shot" for k in shots) + " |",
             "|---" * (len(shots) + 1) + "|"]
    for label, g in curve.groupby("label", sort=False):
        cells = {k: format_ci(m, c) for k, m, c in zip(g["shots"], g["mean"], g["ci95"])}
        cells = {k: f"**{v}**" if best.get(k) == label else v for k, v in cells.items()}
        lines.append(f"| {label} | " + " | ".join(cells.get(k, "—") for k in shots) + " |")
    return "\n".join(lines)


def differences_markdown(diffs) -> str:
    """One line per comparison and shot count: A − B in points, paired t-interval, win rate.

    When the frame compares with the best label (``attrs["best"]``), B is marked "(best)".
    """
    marked = " (best)" if diffs.attrs.get("best") else ""
    lines = ["| comparison | shots | A − B (pts) | 95% CI | A better | tie | episodes |",
             "|---|---|---|---|---|---|---|"]
    for r in diffs.itertuples():
        ci = "n/a" if r.ci_low != r.ci_low else \
            f"[{_pct(r.ci_low, True)}, {_pct(r.ci_high, True)}]"
        lines.append(f"| {r.a} − {r.b}{marked} | {shot_text(r.shots)} | {_pct(r.diff, True)} | {ci} | "
                     f"{r.frac_a_better:.0%} | {r.frac_tie:.0%} | {r.n_pairs} |")
    return "\n".join(lines)


def calibration_markdown(cal) -> str:
    """ECE in percent per method and shot count, with the number of queries it pools.

    >>> import pandas as pd
    >>> cal = pd.DataFrame({"label": ["knn"], "shots": [4], "ece": [0.042], "n_queries": [80]})
    >>> print(calibration_markdown(cal).splitlines()[2])
    | knn | 4.2 (80) |
    """
    shots = sorted(cal["shots"].unique())
    lines = ["| method | " + " | ".join(f"{shot_text(k)}-shot" for k in shots) + " |",
             "|---" * (len(shots) + 1) + "|"]
    for label, g in cal.groupby("label", sort=False):
        cells = {k: f"{_pct(e)} ({n})" for k, e, n in zip(g["shots"], g["ece"], g["n_queries"])}
        lines.append(f"| {label} | " + " | ".join(cells.get(k, "—") for k in shots) + " |")
    return "\n".join(lines)


def differences_heading(diffs, baseline: str | None) -> str:
    """The section title: what every label is compared with."""
    best = diffs.attrs.get("best") and not baseline
    versus = (f"with {baseline}" if baseline else "with the best method at each shot count"
              if best else "between every pair")
    return (f"## Paired differences {versus} ({'in bold above; ' if best else ''}same episodes "
            "and queries; 95% CI: paired t-interval over episodes)")
