"""``results.jsonl``: rows appended and fsynced one by one, so an interrupted run loses nothing."""
from __future__ import annotations

import json
import os
from pathlib import Path

from iclmeta.errors import UserError


class ResultStore:
    """``results.jsonl`` with one fsynced line per row.

    On load, a torn *last* line (a write the interruption cut short) is dropped and cut from
    the file; a bad line anywhere else is damage, not an interruption, and is an error naming
    its line, so that nothing after it is silently lost.
    """

    def __init__(self, out: Path, name: str = "results.jsonl"):
        self.path = out / name

    def load(self) -> list[dict]:
        if not self.path.exists():
            return []
        lines = self.path.read_bytes().splitlines(keepends=True)
        rows, good = [], 0
        for number, line in enumerate(lines, 1):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                if number < len(lines):
                    raise UserError(f"{self.path}:{number}: corrupt row (not JSON) before "
                                    f"{len(lines) - number} more; repair or delete that line, "
                                    "then rerun with --resume") from None
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
