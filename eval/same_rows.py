"""Are a single-text dataset's rows the same before and after a change? Runs one small
``iclmeta eval`` with the code of an earlier revision and with the working tree, same flags and
seed, and compares every row field by field.

Fields that measure time (``seconds``) differ by nature and are skipped; keys only one side has
(new optional row fields) are listed, not compared. Exit code 1 when any compared value differs.

    .venv/bin/python eval/same_rows.py --rev a156428 -- --dataset trec --method zero-shot,icl,retrieval,knn,protonet --shots 0,1,2 --episodes 3
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VOLATILE = {"seconds"}


def extract(rev: str, into: Path) -> Path:
    """The package of ``rev`` (``git archive``), unpacked under ``into``."""
    archive = into / "old.tar"
    with open(archive, "wb") as handle:
        subprocess.run(["git", "-C", str(REPO), "archive", rev], stdout=handle, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into / "old", filter="data")
    return into / "old"


def run(root: Path, out: Path, flags: list[str]) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(root), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "iclmeta", "eval", "--out", str(out), "--no-progress", *flags]
    done = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{root}: exit {done.returncode}\n{done.stderr[-2000:]}")
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def compare(old: list[dict], new: list[dict]) -> tuple[int, list[str], set[str]]:
    key = lambda r: (r["method"], r["shots"], r["episode"])  # noqa: E731
    old_by, new_by = {key(r): r for r in old}, {key(r): r for r in new}
    problems = [f"row {k} only in one run" for k in sorted(set(old_by) ^ set(new_by))]
    only_one_side: set[str] = set()
    for k in sorted(set(old_by) & set(new_by)):
        a, b = old_by[k], new_by[k]
        only_one_side |= set(a) ^ set(b)
        for field in sorted((set(a) & set(b)) - VOLATILE):
            if a[field] != b[field]:
                problems.append(f"{k}: {field} {a[field]!r} -> {b[field]!r}")
    return len(set(old_by) & set(new_by)), problems, only_one_side


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rev", required=True, help="earlier revision to compare with")
    parser.add_argument("flags", nargs=argparse.REMAINDER, help="-- then iclmeta eval flags")
    args = parser.parse_args()
    flags = [f for f in args.flags if f != "--"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        old = run(extract(args.rev, tmp), tmp / "run-old", flags)
        new = run(REPO, tmp / "run-new", flags)
    rows, problems, extra = compare(old, new)
    print(f"rows compared: {rows}; fields skipped as timings: {sorted(VOLATILE)}")
    print(f"keys on one side only (not compared): {sorted(extra) or 'none'}")
    print(f"differences: {len(problems)}")
    for line in problems[:50]:
        print("  " + line)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
