"""Aggregation of result rows: mean accuracy with 95% CIs, shot-count curves, paired differences.

Two layers. ``summarize``/``format_table``/``write_summary`` work on plain row dicts (the
harness uses them, no pandas). ``load_runs``/``shot_curve``/``adapt_curve``/
``paired_differences`` return tidy pandas DataFrames for the CLI report and notebooks; pandas is
imported inside them so importing this module stays light.

Every interval is a Student-t interval over episodes with the exact quantile for its degrees of
freedom (``iclmeta.report.intervals``): the mean accuracy of a cell, and the mean of the paired
per-episode differences of two methods. One episode has no interval ("n/a"); cells with fewer
than 10 episodes carry a warning line.

Gradient methods record several rows per (method, shots, episode), one per number of
test-time adaptation steps (``adapt_steps``). Shot-count tables and curves use each such
method's largest ``adapt_steps`` at each shot count (the column ``adapt_steps`` says which);
``adapt_curve`` shows every step.

>>> rows = [{"label": "icl", "shots": 1, "accuracy": a} for a in (0.6, 0.8, 0.7)]
>>> s = summarize(rows)[0]
>>> round(s["mean"], 3), round(s["ci95"], 3), s["n_episodes"]
(0.7, 0.248, 3)
"""
from __future__ import annotations

import csv
import io
from collections import defaultdict
from pathlib import Path

from iclmeta.data.episodes import shot_key, shot_text
from iclmeta.io import write_atomic
from iclmeta.errors import UserError
from iclmeta.report.intervals import (few_episodes_note, format_ci, mean_ci, paired_t_interval,
                                      t95)

__all__ = ["adapt_curve", "best_labels", "final_step_rows", "format_table", "load_runs", "mean_ci",
           "paired_differences", "shot_curve", "summarize", "t95", "write_summary"]


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
    for (label, shots), rs in sorted(groups.items(),
                                       key=lambda kv: (str(kv[0][0]), shot_key(kv[0][1]))):
        mean, ci = mean_ci([r["accuracy"] for r in rs])
        out.append({"label": label, "shots": shots, "mean": mean, "ci95": ci,
                    "n_episodes": len(rs),
                    "seconds": sum(r.get("seconds", 0.0) for r in rs) / len(rs),
                    "prompt_tokens": sum(r.get("prompt_tokens", 0) for r in rs) / len(rs)})
    return out


def format_table(summary: list[dict]) -> str:
    """Methods as rows, shot counts as columns: ``mean ± ci`` accuracy in percent.

    A cell of one episode reads ``mean ± n/a``; a last line warns when any cell has fewer than
    10 episodes.
    """
    shots = sorted({s["shots"] for s in summary}, key=shot_key)
    labels = list(dict.fromkeys(s["label"] for s in summary))
    cell = {(s["label"], s["shots"]): format_ci(s["mean"], s["ci95"]) for s in summary}
    header = ["method"] + [f"{shot_text(k)}-shot" for k in shots]
    body = [[lab] + [cell.get((lab, k), "—") for k in shots] for lab in labels]
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in [header] + body]
    lines.insert(1, "  ".join("-" * w for w in widths))
    note = few_episodes_note(s["n_episodes"] for s in summary)
    return "\n".join(lines + ([note] if note else []))


def write_summary(summary: list[dict], path: str | Path) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["label", "shots", "mean", "ci95", "n_episodes",
                                             "seconds", "prompt_tokens"])
    writer.writeheader()
    writer.writerows(summary)
    write_atomic(path, buf.getvalue())


def load_runs(runs):
    """Load run folders into one tidy DataFrame (see ``iclmeta.report.runs.load_runs``).

    >>> df = load_runs(["runs/icl", "runs/retrieval"])  # doctest: +SKIP
    """
    from iclmeta.report.runs import load_runs as _load
    return _load(runs)


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


def best_labels(data) -> dict:
    """The label with the highest mean accuracy at each shot count: {shots: label}.

    >>> import pandas as pd
    >>> best_labels(pd.DataFrame({"label": ["a", "b", "a", "b"], "shots": [1, 1, 4, 4],
    ...                           "accuracy": [0.5, 0.6, 0.9, 0.7], "adapt_steps": None}))
    {1: 'b', 4: 'a'}
    """
    means = _final_steps(_frame(data)).groupby(["shots", "label"], sort=False)["accuracy"].mean()
    best = means.groupby(level="shots").idxmax()  # the first of a tie: labels keep run order
    return {getattr(k, "item", lambda: k)(): label for k, (_, label) in best.items()}


def _comparisons(df, wide, baseline: str | None) -> list[tuple[str, str]]:
    means = df.groupby("label", sort=False)["accuracy"].mean()
    if baseline is not None:
        if baseline not in means.index:
            return []  # the baseline's rows cannot be paired (see attrs["unpaired"])
        return [(label, baseline) for label in means.index if label != baseline]
    ranked = list(means.sort_values(ascending=False, kind="stable").index)
    pairs = [(a, b) for i, a in enumerate(ranked) for b in ranked[i + 1:]]
    # orient by the paired difference over shared cells: overall means mix shot counts
    return [(b, a) if (wide[a] - wide[b]).mean() < 0 else (a, b) for a, b in pairs]


VERSUS = ("all", "best")  # what paired_differences compares when no baseline is given


def paired_differences(data, baseline: str | None = None, versus: str = "all"):
    """Paired accuracy differences A − B on the same episodes, with a paired 95% t-interval.

    Rows pair only when everything that defines an episode matches (``runs.PAIR_KEY``:
    dataset, class rule, split, split seed, ways, seed, episode and the query fingerprint) at
    the same shot count; rows of one episode that saw different queries are refused (UserError).
    The interval is mean ± t(0.975, n−1)·sd/√n over the n paired episodes (NaN for one).
    With ``baseline`` every other label is compared with it (B = baseline). Otherwise
    ``versus="best"`` compares every label with the best one at each shot count (B = the
    highest mean accuracy there, see ``best_labels``; ``attrs["best"]`` holds {shots: label}),
    and ``versus="all"`` every pair once, with A the better of the two on their shared
    episodes. Columns: a, b, shots, diff, ci_low, ci_high, n_pairs, frac_a_better, frac_tie.
    Labels whose rows record no queries (runs written before query fingerprints) cannot be
    paired: they are listed in ``attrs["unpaired"]``.

    >>> paired_differences(load_runs("runs/latest"), versus="best").attrs["best"]  # doctest: +SKIP
    {0: 'zero-shot', 1: 'retrieval', 4: 'retrieval'}
    """
    import pandas as pd
    from iclmeta.report.runs import PAIR_KEY, check_pairable

    if versus not in VERSUS:
        raise UserError(f"unknown versus={versus!r}; choose one of: {', '.join(VERSUS)}")
    df = _final_steps(_frame(data))
    labels = list(dict.fromkeys(df["label"]))
    if baseline is not None and baseline not in labels:
        raise UserError(f"unknown baseline {baseline!r}; choose one of: {', '.join(labels)}")
    known = df["query_hash"].fillna("").astype(str) != "" if "query_hash" in df else False
    unpaired = sorted(set(df.loc[~known, "label"])) if "query_hash" in df else labels
    df = df[known] if "query_hash" in df else df.iloc[:0]
    out, best = [], {}
    if not df.empty:
        check_pairable(df)
        wide = df.pivot_table(index=[*PAIR_KEY, "shots"], columns="label", values="accuracy",
                              aggfunc="first")
        if baseline is None and versus == "best":
            best = best_labels(df)
            out = _differences(wide, [(a, None) for a in dict.fromkeys(df["label"])], best)
            out.sort(key=lambda r: r["shots"])  # stable: run order within each shot count
        else:
            out = _differences(wide, _comparisons(df, wide, baseline))
    out = pd.DataFrame(out, columns=["a", "b", "shots", "diff", "ci_low", "ci_high", "n_pairs",
                                     "frac_a_better", "frac_tie"])
    out.attrs.update(unpaired=unpaired, best=best)
    return out


def _differences(wide, pairs, best: dict | None = None) -> list[dict]:
    """One record per pair and shot count; B None means the best label at that shot count."""
    out = []
    for a, b in pairs:
        for shots, g in wide.groupby(level="shots"):
            ref = b if b is not None else (best or {}).get(shots)
            if ref is None or ref == a:
                continue
            d = (g[a] - g[ref]).dropna().to_numpy()
            if len(d):
                low, high = paired_t_interval(d)
                out.append({"a": a, "b": ref, "shots": shots, "diff": float(d.mean()),
                            "ci_low": low, "ci_high": high, "n_pairs": len(d),
                            "frac_a_better": float((d > 0).mean()),
                            "frac_tie": float((d == 0).mean())})
    return out
