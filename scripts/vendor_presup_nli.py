"""Rebuild iclmeta/data/builtin/presup_nli.jsonl from the BIG-bench sdist on PyPI.

    # the sdist file itself: 'pip download' would try to build it (its bleurt dependency is a
    # direct URL, which pip refuses), so fetch the tarball listed on https://pypi.org/simple/bigbench/
    python scripts/vendor_presup_nli.py bigbench-1.0.0.tar.gz

Reads only ``bigbench/benchmark_tasks/presuppositions_as_nli/task.json`` from the archive (no
code from it runs). Each input ``Sentence 1: P \\nSentence 2: H\\n\\nThe answer is: `` becomes
``premise`` P and ``hypothesis`` H (surrounding spaces trimmed); the label is the target with
score 1. The split keeps the task's items apart: examples sharing an ``example_id`` (one story
with its negated and adversarial variants) all go to the same split, so no query meets a
near-copy of itself among the demonstrations. Items are stratified by their most common label
(ties: alphabetical); within each stratum they are ordered by the SHA-256 of
``presup-nli:<example_id>`` and the first 40% (rounded) form the test split, the rest train.
The BIG-bench canary is kept as the first line (the loader skips it).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import tarfile
from collections import Counter, defaultdict
from pathlib import Path

MEMBER = "bigbench-1.0.0/bigbench/benchmark_tasks/presuppositions_as_nli/task.json"
OUT = Path(__file__).resolve().parent.parent / "iclmeta" / "data" / "builtin" / "presup_nli.jsonl"
INPUT = re.compile(r"Sentence 1: (.*)\nSentence 2: (.*)\n\nThe answer is: ", re.S)
TEST_SHARE = 0.4


def convert(task: dict) -> list[dict]:
    rows = []
    for example in task["examples"]:
        match = INPUT.fullmatch(example["input"])
        if match is None:
            raise SystemExit(f"unexpected input form: {example['input'][:80]!r}")
        label = [t for t, score in example["target_scores"].items() if score == 1]
        if len(label) != 1:
            raise SystemExit(f"not exactly one target: {example['target_scores']}")
        rows.append({"premise": match.group(1).strip(), "hypothesis": match.group(2).strip(),
                     "label": label[0], "item": str(example["comment"]["example_id"])})
    return rows


def assign_splits(rows: list[dict]) -> None:
    labels: dict[str, Counter] = defaultdict(Counter)
    for row in rows:
        labels[row["item"]][row["label"]] += 1
    strata: dict[str, list[str]] = defaultdict(list)
    for item, counts in labels.items():
        strata[min(counts, key=lambda lab: (-counts[lab], lab))].append(item)
    test = set()
    for items in strata.values():
        items.sort(key=lambda i: hashlib.sha256(f"presup-nli:{i}".encode()).hexdigest())
        test.update(items[:round(TEST_SHARE * len(items))])
    for row in rows:
        row["split"] = "test" if row["item"] in test else "train"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sdist", help="bigbench-1.0.0.tar.gz from PyPI")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    with tarfile.open(args.sdist) as archive:
        task = json.load(archive.extractfile(MEMBER))
    rows = convert(task)
    assign_splits(rows)
    lines = [json.dumps({"_canary": task["canary"]})]
    lines += [json.dumps({k: row[k] for k in ("premise", "hypothesis", "label", "split", "item")})
              for row in rows]
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    counts = Counter((row["split"], row["label"]) for row in rows)
    print(f"{len(rows)} examples -> {args.out}; {dict(sorted(counts.items()))}")


if __name__ == "__main__":
    main()
