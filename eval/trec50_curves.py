"""TREC-50 with every fine class that can be evaluated: accuracy at 1, 2 and 4 shots.

TREC-50's test set (500 questions) has no question for 8 of its 50 fine classes, so those
cannot be measured; ``--drop-short-classes`` leaves out exactly the classes that cannot supply
4 training examples and a test question, and names them (the run prints the rule and
``config.yaml`` records ``episodes.left_out``). Every point is 42-way over all 500 test
questions (``--queries all``), the same questions at every point:

- ``metric``: knn and protonet, 10 episodes (the supports differ; intervals over episodes);
- ``icl``, ``retrieval`` (20 nearest), ``finetune``: one episode each (every class, the
  episode-0 support; intervals over the 500 questions, Wilson).


    python eval/trec50_curves.py --points metric,icl,retrieval,finetune --out runs/trec50

Points already in ``--out`` are reused.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clinc_curves import load, wilson  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
COMMON = ["--dataset", "trec-50", "--class-split", "all", "--ways", "all", "--queries", "all",
          "--drop-short-classes", "--shots", "1,2,4", "--seed", "0", "--no-progress"]
LM = ["--dtype", "bfloat16", "--episodes", "1"]
POINTS = {
    "metric": ["--method", "knn,protonet", "--episodes", "10"],
    "icl": ["--method", "icl", *LM],
    "retrieval": ["--method", "retrieval", "--k", "20", *LM],
    "finetune": ["--method", "finetune", *LM],
}


def run_point(name: str, out: Path) -> None:
    folder = out / name
    if (folder / "summary.csv").exists():
        return
    cmd = [sys.executable, "-m", "iclmeta", "eval", *COMMON, *POINTS[name], "--out", str(folder)]
    print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def table(rows: list[dict]) -> str:
    """Per (method, shots): the mean, and a 95% interval over episodes (t, when there are
    several; the questions are the same in each) or over the 500 questions (Wilson, one)."""
    from iclmeta.report.intervals import mean_ci
    cells: dict[tuple, list] = {}
    for r in rows:
        cells.setdefault((r["method"], str(r["shots"])), []).append(r)
    lines = ["| method | shots | episodes | accuracy | 95% interval | over | seconds per episode |",
             "|---|---:|---:|---:|---|---|---:|"]
    for (method, shots), group in sorted(cells.items()):
        if len(group) > 1:
            mean, half = mean_ci([r["accuracy"] for r in group])
            lo, hi, over = mean - half, mean + half, "episodes (t)"
        else:
            mean = group[0]["accuracy"]
            (lo, hi), over = wilson(group[0]["n_correct"], group[0]["n_queries"]), "questions (Wilson)"
        seconds = sum(r["seconds"] for r in group) / len(group)
        lines.append(f"| {method} | {shots} | {len(group)} | {100 * mean:.1f} | "
                     f"[{100 * lo:.1f}, {100 * hi:.1f}] | {over} | {seconds:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", default="metric,icl,retrieval,finetune",
                        help=f"comma list of: {', '.join(POINTS)}")
    parser.add_argument("--out", default="runs/trec50")
    args = parser.parse_args()
    out = Path(args.out)
    for point in args.points.split(","):
        run_point(point, out)
    rows = load(out)
    print(table(rows))
    for config in sorted(out.glob("*/config.yaml"))[:1]:
        left = yaml.safe_load(config.read_text())["episodes"]["left_out"]
        print(f"\n{len(left)} classes left out: " + ", ".join(f"{c} ({has})"
                                                           for c, has in left.items()))


if __name__ == "__main__":
    main()
