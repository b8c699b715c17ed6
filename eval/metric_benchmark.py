"""Metric baselines on CLINC150 and TREC-50: knn, protonet, matching, relation.

Runs, through the ``iclmeta`` CLI (in-process, so each command is exactly what a user types):
for each dataset, ``iclmeta train`` of protonet / matching heads and the relation module on the
meta-train classes (best step on meta-val), then ``iclmeta eval`` of the frozen methods and of
the trained ones on the meta-test classes, at 5-way 1- and 5-shot (one run, nested support, so
both shot counts see the same episodes) and 10-way 1-shot. Writes ``commands.txt``,
``metric_table.md`` and one run folder per evaluation under ``--out``.

    python eval/metric_benchmark.py --episodes 50 --out runs/metric_bench

CLINC150 is read from ../shared/data/clinc150.jsonl and skipped when absent.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from iclmeta.cli.main import main
from iclmeta.report.stats import mean_ci

CLINC = Path(__file__).resolve().parents[2] / "shared" / "data" / "clinc150.jsonl"
# TREC-50's smallest meta-test class has 9 examples: 5 shots + 4 queries is the most it allows.
DATASETS = {"clinc150": (str(CLINC), 5), "trec-50": ("trec-50", 4)}
SETTINGS = (("5-way", 5, "1,5"), ("10-way", 10, "1"))
TRAINED = ("protonet", "matching", "relation")
FROZEN = ("knn", "protonet", "matching")


def run(argv: list[str], log: list[str]) -> float:
    log.append("iclmeta " + shlex.join(argv))
    print(f"\n$ {log[-1]}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    if main(argv) != 0:
        raise SystemExit(f"command failed: {log[-1]}")
    return time.perf_counter() - start


def train_all(name, source, queries, out, args, log) -> dict[str, Path]:
    checkpoints = {}
    for method in TRAINED:
        ckpt = out / "checkpoints" / f"{name}-{method}"
        run(["train", "--method", method, "--dataset", source, "--ways", "5", "--shots", "1,5",
             "--queries", str(queries), "--steps", str(args.steps), "--out", str(ckpt),
             "--no-progress"], log)
        checkpoints[method] = ckpt
    return checkpoints


def evaluate_all(name, source, queries, checkpoints, out, args, log) -> list[dict]:
    rows = []
    for setting, ways, shots in SETTINGS:
        common = ["--dataset", source, "--class-split", "disjoint", "--ways", str(ways),
                  "--shots", shots, "--queries", str(queries), "--episodes", str(args.episodes),
                  "--no-progress", "--resume"]
        frozen = out / "runs" / f"{name}-{setting}-frozen"
        trained = out / "runs" / f"{name}-{setting}-trained"
        run(["eval", *sum((["--method", m] for m in FROZEN), []), *common,
             "--out", str(frozen)], log)
        ck = sum((["--method", m, "--checkpoint", str(checkpoints[m])] for m in TRAINED), [])
        run(["eval", *ck, *common, "--out", str(trained)], log)
        for folder, suffix in ((frozen, ""), (trained, "+trained")):
            for line in (folder / "results.jsonl").read_text().splitlines():
                row = json.loads(line)
                label = row["method"] + (suffix if row["method"] != "relation" else "")
                rows.append({**row, "label": label, "setting": (name, ways)})
    return rows


def table(rows: list[dict], checkpoints: dict) -> str:
    cells: dict[tuple, list[float]] = {}
    seconds: dict[str, list[float]] = {}
    for r in rows:
        cells.setdefault((r["label"], r["setting"], r["shots"]), []).append(r["accuracy"])
        seconds.setdefault(r["label"], []).append(r["seconds"] / r["n_queries"])
    cols = sorted({(s, k) for _, s, k in cells})
    lines = ["| method | " + " | ".join(f"{s[0]} {s[1]}-way {k}-shot" for s, k in cols)
             + " | ms/query* |",
             "|---" * (len(cols) + 2) + "|"]
    for label in sorted({lab for lab, _, _ in cells}):
        vals = []
        for s, k in cols:
            m, h = mean_ci(cells.get((label, s, k), [])) if (label, s, k) in cells else (0, 0)
            vals.append(f"{100 * m:.1f} ± {100 * h:.1f}" if (label, s, k) in cells else "-")
        per_q = 1000 * sum(seconds[label]) / len(seconds[label])
        lines.append(f"| {label} | " + " | ".join(vals) + f" | {per_q:.1f} |")
    lines += ["", "*eval seconds per query, averaged over all settings; the first method of "
              "a run also pays for embedding texts not yet in the cache.", "",
              "| checkpoint | best meta-val acc | best step | train s | total s (with "
              "embedding) |", "|---|---|---|---|---|"]
    for key, path in checkpoints.items():
        meta = json.loads((path / "config.json").read_text())
        lines.append(f"| {key} | {100 * meta['best_val_accuracy']:.1f} | {meta['best_step']} | "
                     f"{meta['train_seconds']} | {meta['total_seconds']} |")
    return "\n".join(lines)


def main_benchmark() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--datasets", default="clinc150,trec-50")
    p.add_argument("--out", default="runs/metric_bench")
    args = p.parse_args()
    import torch
    torch.set_num_threads(2)
    out, log, rows, checkpoints = Path(args.out), [], [], {}
    for name in args.datasets.split(","):
        source, queries = DATASETS[name]
        if name == "clinc150" and not CLINC.is_file():
            print(f"skipping clinc150: {CLINC} not found", file=sys.stderr)
            continue
        cks = train_all(name, source, queries, out, args, log)
        checkpoints.update({f"{name}-{m}": p for m, p in cks.items()})
        rows += evaluate_all(name, source, queries, cks, out, args, log)
        (out / "commands.txt").write_text("\n".join(log) + "\n")
        (out / "metric_table.md").write_text(table(rows, checkpoints) + "\n")
    print(table(rows, checkpoints))


if __name__ == "__main__":
    main_benchmark()
