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
import json
from collections import defaultdict
from pathlib import Path

import numpy as np



def load(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]


def correct_by_query(rows: list[dict]) -> dict[tuple, dict[tuple, bool]]:
    """(method, shots) -> {(episode, query id): correct}"""
    out: dict[tuple, dict[tuple, bool]] = defaultdict(dict)
    for r in rows:
        for qid, gold, pred in zip(r["query_ids"], r["gold"], r["predictions"]):
            out[(r["label"], r["shots"])][(r["seed"], r["episode"], qid)] = gold == pred
    return out


def accuracy_table(runs: dict[str, list[dict]], n_boot: int = 5000, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    shots = sorted({r["shots"] for rows in runs.values() for r in rows})
    lines = ["| run | method | " + " | ".join(f"{k}-shot" for k in shots) + " |",
             "|---|---|" + "---|" * len(shots)]
    for name, rows in runs.items():
        by = correct_by_query(rows)
        for method in dict.fromkeys(r["label"] for r in rows):
            cells = []
            for k in shots:
                hits = np.array(list(by.get((method, k), {}).values()), dtype=float)
                cells.append("—" if not len(hits) else _cell(hits, rng, n_boot))
            lines.append(f"| {name} | {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(hits: np.ndarray, rng, n_boot: int) -> str:
    lo, hi = np.percentile(rng.choice(hits, size=(n_boot, len(hits))).mean(1), [2.5, 97.5])
    return f"{100 * hits.mean():.1f} [{100 * lo:.0f}, {100 * hi:.0f}]"


def paired_table(base_name: str, base: list[dict], others: dict[str, list[dict]],
                 n_boot: int = 5000, seed: int = 0) -> str:
    """Per (run, method): the change in accuracy at each shot count, in points [95% CI]."""
    rng = np.random.default_rng(seed)
    ref = correct_by_query(base)
    shots = sorted({r["shots"] for rows in others.values() for r in rows})
    lines = [f"| change vs {base_name} | method | " + " | ".join(f"{k}-shot" for k in shots) + " |",
             "|---|---|" + "---|" * len(shots)]
    for name, rows in others.items():
        by = correct_by_query(rows)
        for method in dict.fromkeys(r["label"] for r in rows):
            cells = []
            for k in shots:
                mine, theirs = by.get((method, k), {}), ref.get((method, k), {})
                d = np.array([float(mine[q]) - float(theirs[q]) for q in mine if q in theirs])
                if not len(d):
                    cells.append("—")
                    continue
                lo, hi = np.percentile(rng.choice(d, size=(n_boot, len(d))).mean(1), [2.5, 97.5])
                cells.append(f"{100 * d.mean():+.1f} [{100 * lo:+.0f}, {100 * hi:+.0f}]")
            lines.append(f"| {name} | {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", metavar="NAME=RUN[,RUN...]",
                    help="named groups of run folders; the first group is the baseline")
    args = ap.parse_args()
    runs = {}
    for spec in args.runs:
        name, _, folders = spec.partition("=")
        runs[name] = [row for folder in folders.split(",") for row in load(Path(folder))]
    print(accuracy_table(runs))
    names = list(runs)
    if len(names) > 1:
        print()
        print(paired_table(names[0], runs[names[0]], {n: runs[n] for n in names[1:]}))


if __name__ == "__main__":
    main()
