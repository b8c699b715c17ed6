"""Cost of one LoRA meta-step per algorithm: seconds and peak memory (see eval/README.md).

Each configuration runs in a fresh process (peak RSS is per process): load the model, take one
warm-up meta-step, then time ``--steps`` meta-steps. Reported: seconds per meta-step, RSS after
loading and warm-up, and the peak RSS of the whole process (``ru_maxrss``).

    python eval/lora_cost.py --data ../shared/data/clinc150.jsonl --out runs/lora_cost.json
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

CONFIGS = [("multitask", 2), ("fomaml", 2), ("reptile", 2), ("maml", 1), ("maml", 2), ("maml", 3)]


def rss_mb() -> float:
    with open("/proc/self/status") as handle:
        line = next(x for x in handle if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def measure(method: str, inner_steps: int, data: str, steps: int, shots: int) -> dict:
    from iclmeta.meta.trainer import MetaTrainer
    from iclmeta.config import MetaTrainConfig
    cfg = MetaTrainConfig(method=method, dataset=data, ways=5, shots=[shots], queries=2,
                          steps=steps + 1, inner_steps=inner_steps, inner_lr=0.3,
                          meta_batch=2, out="/dev/null")
    trainer = MetaTrainer(cfg, echo=lambda msg: None)
    trainer.setup()
    loaded = rss_mb()
    params = trainer.lora.initial()
    opt = trainer.algorithm.optimizer(list(params.values()), cfg.resolved_meta_lr())
    _, params = trainer.update(params, opt, trainer.step_tasks(0))  # warm-up
    start = time.perf_counter()
    for step in range(1, steps + 1):
        _, params = trainer.update(params, opt, trainer.step_tasks(step))
    return {"method": method, "inner_steps": inner_steps, "shots": shots, "meta_batch": 2,
            "seconds_per_step": round((time.perf_counter() - start) / steps, 2),
            "rss_after_load_mb": round(loaded), "peak_rss_mb": round(
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/clinc150.jsonl")
    parser.add_argument("--steps", type=int, default=2, help="timed meta-steps per config")
    parser.add_argument("--shots", type=int, default=1, help="support shots per class (default: 1; "
                        "4-shot second-order MAML needs ~6 GB at 2 inner steps)")
    parser.add_argument("--out", default="runs/lora_cost.json")
    parser.add_argument("--one", nargs=2, metavar=("METHOD", "INNER_STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]), args.data, args.steps, args.shots)))
        return
    if not Path(args.data).is_file():
        print(f"skip: {args.data} not found", file=sys.stderr)
        return
    rows = []
    for method, inner in CONFIGS:
        done = subprocess.run([sys.executable, __file__, "--one", method, str(inner), "--data",
                               args.data, "--steps", str(args.steps), "--shots",
                               str(args.shots)], capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
