"""Tables for the scoring-mode comparison: accuracy per (method, shots) for each run, and the
paired change of calibrated / channel scoring against direct scoring on the same prompts.

    python eval/scoring_report.py direct=RUN[,RUN...] calibrated=RUN[,...] channel=RUN[,...]

Each NAME=RUN,... pools the rows of run folders (e.g. the same settings with two seeds); the
first NAME is the baseline of the paired changes.

Accuracy over all queries of all episodes with a 95% bootstrap interval over queries (these runs
have few episodes, so the harness's t-interval over episodes in summary.csv is very wide; the
query bootstrap does not include the variance from which demonstrations were sampled). Changes:
every query is scored by both modes with the same demonstrations, so the difference is paired
per query; its 95% interval is a bootstrap over queries.
"""
from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np

from iclmeta.report.runs import read_rows, results_path


def correct_by_query(rows: list[dict]) -> dict[tuple, dict[tuple, bool]]:
    """(method, shots) -> {(episode, query id): correct}"""
    out: dict[tuple, dict[tuple, bool]] = defaultdict(dict)
    for r in rows:
        for qid, gold, pred in zip(r["query_ids"], r["gold"], r["predictions"]):
            out[(r["label"], r["shots"])][(r["seed"], r["episode"], qid)] = gold == pred
    return out


def _interval(values: np.ndarray, rng, n_boot: int) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean, resampling queries."""
    lo, hi = np.percentile(rng.choice(values, size=(n_boot, len(values))).mean(1), [2.5, 97.5])
    return lo, hi


def _table(first_column: str, runs: dict[str, list[dict]], cell) -> str:
    """One markdown row per (run, method); ``cell(by, method, shots)`` fills each shot column."""
    shots = sorted({r["shots"] for rows in runs.values() for r in rows})
    lines = [f"| {first_column} | method | " + " | ".join(f"{k}-shot" for k in shots) + " |",
             "|---|---|" + "---|" * len(shots)]
    for name, rows in runs.items():
        by = correct_by_query(rows)
        for method in dict.fromkeys(r["label"] for r in rows):
            cells = [cell(by, method, k) for k in shots]
            lines.append(f"| {name} | {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def accuracy_table(runs: dict[str, list[dict]], n_boot: int = 5000, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)

    def cell(by, method, k):
        hits = np.array(list(by.get((method, k), {}).values()), dtype=float)
        if not len(hits):
            return "—"
        lo, hi = _interval(hits, rng, n_boot)
        return f"{100 * hits.mean():.1f} [{100 * lo:.0f}, {100 * hi:.0f}]"
    return _table("run", runs, cell)


def paired_table(base_name: str, base: list[dict], others: dict[str, list[dict]],
                 n_boot: int = 5000, seed: int = 0) -> str:
    """Per (run, method): the change in accuracy at each shot count, in points [95% CI]."""
    rng = np.random.default_rng(seed)
    ref = correct_by_query(base)

    def cell(by, method, k):
        mine, theirs = by.get((method, k), {}), ref.get((method, k), {})
        d = np.array([float(mine[q]) - float(theirs[q]) for q in mine if q in theirs])
        if not len(d):
            return "—"
        lo, hi = _interval(d, rng, n_boot)
        return f"{100 * d.mean():+.1f} [{100 * lo:+.0f}, {100 * hi:+.0f}]"
    return _table(f"change vs {base_name}", others, cell)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", metavar="NAME=RUN[,RUN...]",
                    help="named groups of run folders; the first group is the baseline")
    args = ap.parse_args()
    runs = {}
    for spec in args.runs:
        name, _, folders = spec.partition("=")
        runs[name] = [row for folder in folders.split(",") for row in read_rows(results_path(Path(folder)))]
    print(accuracy_table(runs))
    names = list(runs)
    if len(names) > 1:
        print()
        print(paired_table(names[0], runs[names[0]], {n: runs[n] for n in names[1:]}))


if __name__ == "__main__":
    main()
