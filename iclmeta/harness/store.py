"""``results.jsonl``: rows appended and fsynced one by one, so an interrupted run loses nothing."""
from __future__ import annotations

import json
import os
from pathlib import Path


class ResultStore:
    """``results.jsonl`` with one fsynced line per row; a torn last line is dropped on resume."""

    def __init__(self, out: Path, name: str = "results.jsonl"):
        self.path = out / name

    def load(self) -> list[dict]:
        if not self.path.exists():
            return []
        rows, good = [], 0
        with open(self.path, "rb") as handle:
            for line in handle:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    break  # an interrupted write: keep everything before it
                good += len(line)
        if good < self.path.stat().st_size:
            with open(self.path, "r+b") as handle:
                handle.truncate(good)
        return rows

    def append(self, row: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


def load_results(path: Path) -> list[dict]:
    """The rows of a results file (a torn last line is dropped)."""
    return ResultStore(path.parent, path.name).load()
