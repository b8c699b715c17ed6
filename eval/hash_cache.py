"""Cost of recording model hashes in provenance: sha256 of the default LM's weight files,
uncached vs from the (path, size, mtime) cache, measured side by side in one run.

    .venv/bin/python eval/hash_cache.py
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from iclmeta.harness.provenance import model_record
from iclmeta.models import cache_root, resolve_lm


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    folder = Path(resolve_lm("smollm2", cache_root()))
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        first = model_record("smollm2", str(folder), Path(cache))
        cold = time.perf_counter() - start
        start = time.perf_counter()
        second = model_record("smollm2", str(folder), Path(cache))
        warm = time.perf_counter() - start
    assert first == second
    print(f"model folder: {size:.0f} MiB, {len(first['weights_sha256'])} weight file(s)")
    print(f"hashing: {cold:.3f} s uncached, {warm:.4f} s cached ({cold / warm:.0f}x)")


if __name__ == "__main__":
    main()
