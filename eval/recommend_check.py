"""Does ``iclmeta recommend`` keep its promise? Race on part of a dataset, ship the winner with
``iclmeta export``, and measure it with ``predict`` on held-out queries the race never saw.

For each dataset (``snips``, ``trec`` = TREC-6, ``clinc30`` = CLINC150's 30 meta-test classes
with ``--split-seed 0``, read from ``../shared/data/clinc150.jsonl``) the script

1. writes ``OUT/NAME/race.csv`` and ``OUT/NAME/holdout.csv``: a seeded ``--holdout`` fraction
   of every class is set aside (capped at ``--holdout-max`` per class), the rest is "the
   user's data" (one pool: queries and supports of the race both come from it);
2. runs ``iclmeta recommend`` on ``race.csv`` (``--budget``) into ``OUT/NAME/race``;
3. runs ``iclmeta export --from OUT/NAME/race`` into ``OUT/NAME/predictor`` (the winner at the
   shot count it raced at) and ``iclmeta predict`` over the held-out texts;
4. prints the promised mean interval and single-deployment prediction interval beside the
   held-out accuracy, and the time racing saved.

    python eval/recommend_check.py --datasets snips,trec,clinc30 --budget 10m --out runs/rec

Steps already done (a folder with ``recommend.json``, a predictor) are reused on a rerun.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLINC = Path(os.environ.get("ICLMETA_CLINC150",
                           ROOT.parent / "shared" / "data" / "clinc150.jsonl"))
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def examples(name: str) -> list[tuple[str, str]]:
    """(text, label) pairs of a dataset, every split pooled."""
    sys.path.insert(0, str(ROOT))
    from iclmeta.data.episodes import meta_splits
    from iclmeta.data.sources import load_dataset
    if name == "clinc30":
        if not CLINC.exists():
            raise SystemExit(f"skip clinc30: {CLINC} is missing (set ICLMETA_CLINC150)")
        rows = [json.loads(line) for line in CLINC.open(encoding="utf-8")]
        keep = set(meta_splits(sorted({r["label"] for r in rows}), 0)["meta-test"])
        return [(r["text"], r["label"]) for r in rows if r["label"] in keep]
    return [(ex.text, ex.label) for ex in load_dataset(name).examples]


def split(pairs, fraction: float, cap: int, seed: int = 0):
    by_label: dict[str, list] = {}
    for text, label in pairs:
        by_label.setdefault(label, []).append((text, label))
    race, held = [], []
    for label in sorted(by_label):
        group = sorted(by_label[label])
        random.Random(f"holdout:{seed}:{label}").shuffle(group)
        n = min(cap, max(1, round(fraction * len(group))))
        held += group[:n]
        race += group[n:]
    return race, held


def write_csv(path: Path, rows) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
    return subprocess.run(cmd, check=True, env=ENV, cwd=ROOT, **kwargs)


def race(name: str, args) -> Path:
    folder = Path(args.out) / name
    folder.mkdir(parents=True, exist_ok=True)
    race_csv, held_csv = folder / "race.csv", folder / "holdout.csv"
    if not race_csv.exists():
        race, held = split(examples(name), args.holdout, args.holdout_max)
        write_csv(race_csv, race)
        write_csv(held_csv, held)
    iclmeta = [sys.executable, "-m", "iclmeta"]
    if not (folder / "race" / "recommend.json").exists():
        run(iclmeta + ["recommend", "--dataset", str(race_csv), "--budget", args.budget,
                       "--out", str(folder / "race"), "--no-progress"] + args.extra)
    return folder


def check(name: str, args) -> dict:
    folder = Path(args.out) / name
    held_csv = folder / "holdout.csv"
    iclmeta = [sys.executable, "-m", "iclmeta"]
    summary = json.loads((folder / "race" / "recommend.json").read_text())
    if not (folder / "predictor").exists():
        run(iclmeta + ["export", "--from", str(folder / "race"), "--out",
                       str(folder / "predictor")])
    with held_csv.open(encoding="utf-8") as handle:
        held = list(csv.DictReader(handle))
    lines = "".join(json.dumps({"text": r["text"]}) + "\n" for r in held)
    done = run(iclmeta + ["predict", str(folder / "predictor")], input=lines, text=True,
               capture_output=True)
    predicted = [json.loads(line)["label"] for line in done.stdout.splitlines() if line.strip()]
    correct = sum(p == r["label"] for p, r in zip(predicted, held, strict=True))
    best = summary["ranking"][0]
    return {"dataset": name, "winner": summary["winner"], "shots": summary["shots"],
            "rounds": summary["rounds"], "stopped": summary["stopped"],
            "promised_mean": [best["score_low"], best["score"], best["score_high"]],
            "one_deployment": [best["one_episode_low"], best["one_episode_high"]],
            "holdout_accuracy": correct / len(held), "holdout_n": len(held),
            "cost": summary["cost"], "ranking": [(r["method"], r["status"], r["score"])
                                                  for r in summary["ranking"]]}


def extrapolate(race_dir: Path, max_rounds: int = 64, alpha: float = 0.05) -> dict:
    """If every method's per-episode difference to the leader kept the mean and spread the race
    saw, at which scheduled look would each be dropped, and what would racing to that point
    cost against running every method as many rounds? (An extrapolation, not a measurement.)"""
    sys.path.insert(0, str(ROOT))
    from iclmeta.report.race import family_size, is_look, look_alpha, paired_interval
    rows = [json.loads(line) for line in (race_dir / "results.jsonl").read_text().splitlines()]
    scores, secs, queries = {}, {}, {}
    for r in rows:
        scores.setdefault(r["method"], {})[r["episode"]] = r["accuracy"]
        secs.setdefault(r["method"], []).append(r["seconds"] + r.get("embed_seconds", 0.0))
        queries[r["method"]] = r["n_queries"]
    common = sorted(set.intersection(*(set(v) for v in scores.values())))
    series = {m: [v[e] for e in common] for m, v in scores.items()}
    leader = max(series, key=lambda m: sum(series[m]))
    pairs, looks = family_size(len(series)), [n for n in range(1, max_rounds + 1) if is_look(n)]
    need = {}
    for m, values in series.items():
        if m == leader:
            continue
        diffs = [a - b for a, b in zip(values, series[leader])]
        mean = sum(diffs) / len(diffs)
        sd = max((sum((d - mean) ** 2 for d in diffs) / max(len(diffs) - 1, 1)) ** 0.5,
                 0.5 / queries[m])
        need[m] = next((n for r, n in enumerate(looks, 1)
                        if paired_interval([mean + sd, mean - sd] * (n // 2) + [mean] * (n % 2),
                                           [0.0] * n, look_alpha(alpha, r, pairs))[2] < 0), None)
    horizon = max((n for n in need.values() if n), default=0)
    horizon = max_rounds if any(n is None for n in need.values()) else horizon
    per_round = {m: sum(v) / len(v) for m, v in secs.items()}
    raced = sum(per_round[m] * min(need.get(m) or horizon, horizon) for m in per_round)
    full = sum(per_round.values()) * horizon
    return {"leader": leader, "drop_round": need, "rounds": horizon,
            "raced_seconds": round(raced), "every_method_seconds": round(full)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="snips,trec,clinc30")
    parser.add_argument("--budget", default="10m")
    parser.add_argument("--holdout", type=float, default=0.2)
    parser.add_argument("--holdout-max", type=int, default=30)
    parser.add_argument("--out", default="runs/rec")
    parser.add_argument("--stage", choices=("race", "check", "all", "extrapolate"), default="all",
                        help="race only, check (export + predict) only, or both")
    parser.add_argument("extra", nargs="*", help="more recommend flags, after --")
    args = parser.parse_args()
    names = args.datasets.split(",")
    if args.stage != "check":
        for name in names:
            race(name, args)
    if args.stage == "race":
        return
    if args.stage == "extrapolate":
        for name in names:
            print(name, extrapolate(Path(args.out) / name / "race"))
        return
    for name in names:
        r = check(name, args)
        low, mean, high = (100 * v for v in r["promised_mean"])
        one = [100 * v for v in r["one_deployment"]]
        inside = low <= 100 * r["holdout_accuracy"] <= high
        print(f"{name}: winner {r['winner']} at {r['shots']} shots after {r['rounds']} rounds "
              f"({r['stopped']}); promised mean {mean:.1f} [{low:.1f}, {high:.1f}], one "
              f"deployment [{one[0]:.1f}, {one[1]:.1f}]; held-out accuracy "
              f"{100 * r['holdout_accuracy']:.1f} on {r['holdout_n']} queries "
              f"({'inside' if inside else 'OUTSIDE'} the mean interval); racing "
              f"{r['cost']['raced_seconds']:.0f}s vs every method "
              f"{r['cost']['every_method_seconds']:.0f}s")
        print("  ranking: " + ", ".join(f"{m} {100 * s:.1f} ({st})" for m, st, s in r["ranking"]))


if __name__ == "__main__":
    main()
