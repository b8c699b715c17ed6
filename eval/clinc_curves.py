"""CLINC150 with every intent in play: accuracy against labelled examples per class and against
demonstrations in the prompt (issue 13's study, sized for 2 CPU cores).

Every point is one 150-way episode (`--ways all --class-split all --episodes 1`) with the same
300 test queries (2 per intent, drawn first from their own seeded stream, so they are the same
at every point); the support comes from CLINC150's train split (100 per intent). One episode
has no spread over episodes, so each point's interval is a 95% Wilson interval over its 300
queries, and the figure says so. Points:

- ``metric``: knn and protonet at 1, 2, 4, 8, 16 and all shots;
- ``icl``: random demonstrations at 1, 2, 4, 8 shots (every support example offered, the
  block shared by all queries and cut to the window);
- ``retrieval``: the 20 nearest of the support at 1, 2, 4, 8 shots (``--k 20``: all of them
  would be 150-1200 demonstrations per query, hours on 2 cores);
- ``demos``: at 8 shots, icl and retrieval with 5, 20 and 80 demonstrations (icl also at the
  window, the ``icl`` point at 8 shots);
- ``finetune``: LoRA on the whole support at 1 and 4 shots, 2 SGD steps at lr 0.3 (slow: every
  support example is scored over 150 labels, forward and backward, at each step).

    python eval/clinc_curves.py --points metric,icl,retrieval,demos --out runs/clinc150
    python eval/clinc_curves.py --plot-only --out runs/clinc150

Points already in ``--out`` are reused. Needs ``../shared/data/clinc150.jsonl`` (or the file
named by ``ICLMETA_CLINC150``).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ICLMETA_CLINC150", ROOT.parent / "shared" / "data" / "clinc150.jsonl"))
COMMON = ["--dataset", str(DATA), "--ways", "all", "--class-split", "all", "--queries", "2",
          "--episodes", "1", "--seed", "0", "--no-progress"]
LM = ["--dtype", "bfloat16"]  # the LM methods only (a flag no method uses is an error)
def _lm_point(method: str, shots: int, k: int | None = None) -> tuple[str, list[str]]:
    """One LM point in its own folder (so a point is measured once and reused by both panels)."""
    name = f"{method}-{shots}shot" if k is None else f"{method}-k{k}-{shots}shot"
    flags = ["--method", method, "--shots", str(shots), *LM]
    return name, flags + ([] if k is None else ["--k", str(k)])


POINTS = {
    "metric": [("metric", ["--method", "knn,protonet", "--shots", "1,2,4,8,16,all"])],
    "icl": [_lm_point("icl", s) for s in (1, 2, 4, 8)],
    "retrieval": [_lm_point("retrieval", s, 20) for s in (1, 2, 4, 8)],
    # at 8 shots: icl k=20 and the window (the icl point) and retrieval k=20 (the retrieval
    # point) are measured above; these add the other demonstration counts
    "demos": [(f"demos-{m}-k{k}", ["--method", m, "--shots", "8", "--k", str(k), *LM])
              for m in ("icl", "retrieval") for k in (5, 20, 80)
              if (m, k) != ("retrieval", 20)],
    # the 2 SGD steps at lr 0.3 of the 5-way LoRA study (eval/README.md), one folder per shot
    "finetune": [(f"finetune-{s}shot", ["--method", "finetune", "--shots", str(s),
                                        "--adapt-steps", "2", "--adapt-lr", "0.3", *LM])
                 for s in (1, 4)],
}
for _shots in (1, 2, 4, 8):  # single points, e.g. --points icl4,retrieval2
    POINTS[f"icl{_shots}"] = [_lm_point("icl", _shots)]
    POINTS[f"retrieval{_shots}"] = [_lm_point("retrieval", _shots, 20)]


def run_point(name: str, flags: list[str], out: Path) -> None:
    folder = out / name
    if (folder / "results.jsonl").exists() and (folder / "summary.csv").exists():
        return
    cmd = [sys.executable, "-m", "iclmeta", "eval", *COMMON, *flags, "--out", str(folder)]
    print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def wilson(correct: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a proportion."""
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def load(out: Path) -> list[dict]:
    rows = []
    for path in sorted(out.glob("*/results.jsonl")):
        for line in path.read_text().splitlines():
            r = json.loads(line)
            r["point"] = path.parent.name
            rows.append(r)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| point | method | shots | demos (k) | accuracy | 95% Wilson (queries) | queries | "
             "seconds |", "|---|---|---:|---:|---:|---|---:|---:|"]
    for r in rows:
        lo, hi = wilson(r["n_correct"], r["n_queries"])
        lines.append(f"| {r['point']} | {r['method']} | {r['shots']} | {r['k']} | "
                     f"{100 * r['accuracy']:.1f} | [{100 * lo:.1f}, {100 * hi:.1f}] | "
                     f"{r['n_queries']} | {r['seconds']:.0f} |")
    return "\n".join(lines)


COLORS = {"finetune": "C0", "icl": "C1", "knn": "C2", "protonet": "C3", "retrieval": "C4"}


def plot(rows: list[dict], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    by_shots, by_demos = fig.subplots(1, 2)
    numeric = [r["shots"] for r in rows if r["shots"] != "all"]
    all_x = 2 * max(numeric, default=1)
    series: dict[tuple, list] = {}
    for r in rows:
        x = all_x if r["shots"] == "all" else r["shots"]
        if not r["point"].startswith("demos-"):
            label = r["method"] + (" (k=20)" if r["point"].startswith("retrieval-k20") else "")
            series.setdefault(("shots", label), []).append((x, r))
        if r["method"] in ("icl", "retrieval") and (r["shots"] == 8):
            series.setdefault(("demos", r["method"]), []).append((r["k"], r))
    for (panel, label), points in series.items():
        ax = by_shots if panel == "shots" else by_demos
        points.sort(key=lambda p: p[0])
        xs = [p[0] for p in points]
        ys = [100 * p[1]["accuracy"] for p in points]
        bounds = [wilson(p[1]["n_correct"], p[1]["n_queries"]) for p in points]
        err = [[y - 100 * lo for y, (lo, _) in zip(ys, bounds)],
               [100 * hi - y for y, (_, hi) in zip(ys, bounds)]]
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=label,
                    color=COLORS.get(label.split(" ")[0]))
    by_shots.set_xscale("log", base=2)
    ticks = sorted({x for (panel, _), pts in series.items() if panel == "shots" for x, _ in pts})
    by_shots.set_xticks(ticks, ["all" if t == all_x else str(t) for t in ticks])
    by_shots.set_xlabel("labelled examples per class (all = 100)")
    by_demos.set_xscale("log", base=2)
    demo_ticks = sorted({x for (panel, _), pts in series.items() if panel == "demos" for x, _ in pts})
    by_demos.set_xticks(demo_ticks, [str(t) for t in demo_ticks])
    by_demos.set_xlabel("demonstrations in the prompt, 8 shots per class available\n(icl's "
                        "largest point: what the 8k window holds)")
    axes = [by_shots]
    if any(panel == "demos" for panel, _ in series):
        axes.append(by_demos)
    else:  # no demonstration-count points measured yet
        fig.delaxes(by_demos)
    for ax in axes:
        ax.set_ylabel("accuracy (%)")
        ax.axhline(100 / 150, color="0.5", ls=":", lw=1)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle("CLINC150, all 150 intents, the same 300 test queries at every point "
                 "(one episode per point: 95% Wilson intervals over queries)", fontsize=10)
    fig.savefig(path, dpi=130)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", default="metric,icl,retrieval,demos",
                        help=f"comma list of: {', '.join(POINTS)}")
    parser.add_argument("--out", default="runs/clinc150")
    parser.add_argument("--plot-only", action="store_true")
    args = parser.parse_args()
    out = Path(args.out)
    if not DATA.exists():
        raise SystemExit("../shared/data/clinc150.jsonl is missing; nothing to measure")
    if not args.plot_only:
        for point in args.points.split(","):
            for name, flags in POINTS[point]:
                run_point(name, flags, out)
    rows = load(out)
    print(table(rows))
    plot(rows, out / "clinc150_curves.png")
    print(f"\nfigure: {out / 'clinc150_curves.png'}")


if __name__ == "__main__":
    main()
