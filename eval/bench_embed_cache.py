"""Embedding throughput: first run (model computes every text) vs second run (all from the cache).

    python eval/bench_embed_cache.py                # ~2000 CLINC150 texts, default MiniLM
    python eval/bench_embed_cache.py --n 500 --embedder /path/to/st-folder

The cache lives in a fresh temporary folder, so the first run is always cold. The second run uses
a new Embedder instance on the same folder, as a later process would: it never loads the model.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "clinc150.jsonl"


def read_texts(path: Path, n: int) -> list[str]:
    """``n`` distinct texts spread evenly over the file (so every intent is represented)."""
    rows = [json.loads(line)["text"] for line in path.open(encoding="utf-8") if line.strip()]
    distinct = list(dict.fromkeys(rows))
    step = max(1, len(distinct) // n)
    return distinct[::step][:n]


def timed_encode(embedder, texts):
    start = time.perf_counter()
    vectors = embedder.encode(texts)
    return time.perf_counter() - start, vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--embedder", default=None, help="minilm (default), a folder or a hub id")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import numpy as np
    import torch

    from iclmeta.embed import Embedder

    torch.set_num_threads(args.threads)
    texts = read_texts(args.data, args.n)
    with tempfile.TemporaryDirectory() as cache_dir:
        cold = Embedder(args.embedder, cache_dir=cache_dir)
        start = time.perf_counter()
        cold.load()
        load_s = time.perf_counter() - start
        cold_s, cold_vecs = timed_encode(cold, texts)
        warm = Embedder(args.embedder, cache_dir=cache_dir)
        warm_s, warm_vecs = timed_encode(warm, texts)
        assert np.array_equal(cold_vecs, warm_vecs) and warm.model is None

    print(f"{len(texts)} texts, embedder {cold.name}, dim {cold.dim}, {args.threads} threads, "
          f"model load {load_s:.2f} s (first run only)")
    print(f"{'':14}{'first run':>12}{'cached run':>12}{'ratio':>9}")
    print(f"{'seconds':14}{cold_s:12.3f}{warm_s:12.3f}{cold_s / warm_s:8.1f}x")
    print(f"{'texts/s':14}{len(texts) / cold_s:12.0f}{len(texts) / warm_s:12.0f}")
    print(f"{'hits/misses':14}{'%d/%d' % (cold.cache_stats['hits'], cold.cache_stats['misses']):>12}"
          f"{'%d/%d' % (warm.cache_stats['hits'], warm.cache_stats['misses']):>12}")


if __name__ == "__main__":
    main()
