"""FAISS at scale: flat / IVF / HNSW side by side, as iclmeta's ``VectorIndex`` builds them.

For each size, synthetic clustered unit vectors (not real embeddings: ``--dim`` Gaussian
cluster centres, each vector a centre plus noise, L2-normalised; queries are fresh draws from
the same clusters) are indexed with every kind, and the script prints build time, index size
(serialised bytes), the process's resident-memory growth while building, queries/s for one
batched search of ``--queries`` queries, and recall@k against the exact flat index.

    OMP_NUM_THREADS=2 .venv/bin/python eval/faiss_scale.py                # 10k, 100k, 1M
    OMP_NUM_THREADS=2 .venv/bin/python eval/faiss_scale.py --hnsw-ef-construction 200,200,40
    .venv/bin/python eval/faiss_scale.py --sizes 2000 --queries 100      # a quick look
"""
from __future__ import annotations

import argparse
import gc
import os
import time

import numpy as np

from iclmeta.retrieval.vectors import KINDS, VectorIndex, ivf_lists

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int:
    """Resident memory of this process now (Linux), else 0."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * PAGE
    except OSError:
        return 0


def clustered(n: int, dim: int, centres: np.ndarray, rng: np.random.Generator,
              noise: float = 0.6, chunk: int = 100_000) -> np.ndarray:
    """``n`` unit vectors, each a random centre plus Gaussian noise, made in chunks."""
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        picked = centres[rng.integers(len(centres), size=stop - start)]
        block = picked + rng.standard_normal((stop - start, dim), dtype=np.float32) * (noise / dim ** 0.5)
        out[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def measure(vectors: np.ndarray, queries: np.ndarray, kind: str, k: int, params: dict):
    """(build s, index bytes, RSS growth bytes, queries/s, ids) for one kind."""
    gc.collect()
    before = rss_bytes()
    start = time.perf_counter()
    index = VectorIndex.build(vectors, kind, **params)
    built = time.perf_counter() - start
    grown = rss_bytes() - before
    size = len(index.to_bytes())
    start = time.perf_counter()
    _, ids = index.search(queries, k)  # one batched call for every query
    qps = len(queries) / (time.perf_counter() - start)
    settings = ", ".join(f"{name}={value}" for name, value in index.params.items()) or "exact"
    del index
    gc.collect()
    return built, size, grown, qps, ids, settings


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    hits = sum(len(set(f.tolist()) & set(e.tolist())) for f, e in zip(found, exact))
    return hits / exact.size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000",
                        help="comma-separated numbers of indexed vectors")
    parser.add_argument("--dim", type=int, default=384, help="vector size (MiniLM's is 384)")
    parser.add_argument("--queries", type=int, default=1000, help="queries per batched search")
    parser.add_argument("--k", type=int, default=10, help="neighbours per query (recall@k)")
    parser.add_argument("--kinds", default="flat,ivf,hnsw", help="comma-separated index kinds")
    parser.add_argument("--hnsw-ef-construction", default=None,
                        help="HNSW build candidates, comma-separated, one per size (the last "
                             "repeats; default: VectorIndex's, "
                             f"{KINDS['hnsw']['efConstruction']}); lower builds faster")
    parser.add_argument("--per-cluster", type=int, default=100,
                        help="vectors per cluster (clusters = size / this)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    kinds = args.kinds.split(",")
    threads = os.environ.get("OMP_NUM_THREADS", "all")
    print(f"synthetic clustered unit vectors, dim {args.dim}, {args.queries} queries in one "
          f"batch, k={args.k}, OMP_NUM_THREADS={threads}")
    print(f"{'vectors':>9} {'kind':<5} {'build s':>8} {'index MiB':>10} {'RSS +MiB':>9} "
          f"{'queries/s':>10} {'recall@' + str(args.k):>9}  settings")
    ef_build = [int(v) for v in args.hnsw_ef_construction.split(",")] \
        if args.hnsw_ef_construction else [KINDS["hnsw"]["efConstruction"]]
    for i, n in enumerate(sizes):
        rng = np.random.default_rng(args.seed)
        centres = rng.standard_normal((max(1, n // args.per_cluster), args.dim), dtype=np.float32)
        vectors = clustered(n, args.dim, centres, rng)
        queries = clustered(args.queries, args.dim, centres, rng)
        exact = None
        for kind in ["flat"] + [kind for kind in kinds if kind != "flat"]:
            params = {}
            if kind == "hnsw":
                params["efConstruction"] = ef_build[min(i, len(ef_build) - 1)]
            if kind == "ivf" and ivf_lists(n) < 2:
                print(f"{n:>9} {kind:<5} skipped: too few vectors to train lists on")
                continue
            built, size, grown, qps, ids, settings = measure(vectors, queries, kind, args.k, params)
            exact = ids if kind == "flat" else exact
            if kind in kinds:
                print(f"{n:>9} {kind:<5} {built:8.2f} {size / 2**20:10.1f} {grown / 2**20:9.1f} "
                      f"{qps:10.0f} {recall(ids, exact):9.3f}  {settings}", flush=True)
        del vectors, queries
        gc.collect()


if __name__ == "__main__":
    main()
