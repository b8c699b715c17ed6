"""Prediction cost of exported predictors: batched throughput (queries/s) and the latency of
single-text calls (p50/p95), for retrieval and protonet on a builtin dataset with the default
models, measured in one run.

Part of each class is held out first (``--held-out`` per class, seeded); each predictor is
exported over the rest (``--predictors``: METHOD@SHOTS, SHOTS a number per class or ``all``),
loaded back from its folder, warmed up with one call, then timed: every held-out text in
calls of ``--batch-size`` (throughput), and ``--single`` one-text calls (latency). Accuracy on
the held-out texts is printed beside the cost.

    HF_HUB_OFFLINE=1 .venv/bin/python eval/predict_speed.py
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from iclmeta.config import EvalConfig
from iclmeta.data.sources import load_dataset
from iclmeta.deploy.export import export
from iclmeta.deploy.predictor import Predictor


def hold_out(name: str, per_class: int, seed: int, folder: Path):
    """Write the dataset minus ``per_class`` seeded examples of each class to a JSONL file;
    returns it and the held-out examples."""
    ds = load_dataset(name)
    held, kept = [], []
    for label, examples in sorted(ds.by_label().items()):
        examples = list(examples)
        random.Random(f"{seed}:held-out:{label}").shuffle(examples)
        held += examples[:per_class]
        kept += examples[per_class:]
    path = folder / f"{name}-labelled.jsonl"
    path.write_text("".join(json.dumps({"text": e.text, "label": e.label}) + "\n" for e in kept))
    return path, held


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def measure(folder: Path, held: list, batch_size: int, single: int) -> dict:
    say(f"  load {folder.name}")
    start = time.perf_counter()
    predictor = Predictor.load(folder)
    loaded = time.perf_counter() - start
    texts = [e.text for e in held]
    predictor.predict(texts[:1])  # warm-up: first-call allocations, caches
    say(f"  {len(texts)} texts in calls of {batch_size}")
    start = time.perf_counter()
    labels, _ = predictor.predict(texts, batch_size=batch_size)
    batched = time.perf_counter() - start
    say(f"  {single} single-text calls")
    latencies = []
    for text in texts[:single]:
        start = time.perf_counter()
        predictor.predict([text])
        latencies.append(time.perf_counter() - start)
    return {"support": len(predictor.pool), "load_s": loaded,
            "qps": len(texts) / batched, "p50_ms": 1000 * statistics.median(latencies),
            "p95_ms": 1000 * percentile(latencies, 0.95),
            "accuracy": sum(lb == e.label for lb, e in zip(labels, held)) / len(held)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="snips")
    parser.add_argument("--predictors", default="retrieval@all,protonet@all",
                        help="comma-separated METHOD@SHOTS (default: %(default)s)")
    parser.add_argument("--held-out", type=int, default=5, help="queries per class")
    parser.add_argument("--batch-size", type=int, default=16, help="texts per batched call")
    parser.add_argument("--single", type=int, default=10, help="single-text calls timed")
    parser.add_argument("--model", help="LM (default: the default LM)")
    parser.add_argument("--embedder", help="embedder (default: the default embedder)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data, held = hold_out(args.dataset, args.held_out, args.seed, Path(tmp))
        for spec in args.predictors.split(","):
            method, _, shots = spec.partition("@")
            say(f"export {spec}")
            config = EvalConfig(methods=[method], dataset=str(data), model=args.model,
                                embedder=args.embedder, seed=args.seed)
            start = time.perf_counter()
            folder = export(config, str(Path(tmp) / spec.replace("@", "-")), shots or "all",
                            progress=False, echo=lambda msg: None)
            rows.append({"predictor": spec, "export_s": time.perf_counter() - start,
                         **measure(folder, held, args.batch_size, args.single)})
    print(f"{args.dataset}: {len(held)} held-out queries; batched calls of {args.batch_size} "
          f"texts, {args.single} single-text calls")
    print(f"{'predictor':<16}{'support':>8}{'export s':>10}{'load s':>8}{'queries/s':>11}"
          f"{'p50 ms':>9}{'p95 ms':>9}{'accuracy':>10}")
    for r in rows:
        print(f"{r['predictor']:<16}{r['support']:>8}{r['export_s']:>10.1f}{r['load_s']:>8.1f}"
              f"{r['qps']:>11.1f}{r['p50_ms']:>9.0f}{r['p95_ms']:>9.0f}{r['accuracy']:>10.3f}")


if __name__ == "__main__":
    main()
