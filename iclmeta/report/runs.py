"""Reading and merging run folders into one tidy table (one row per result row).

Use it through ``iclmeta.report.stats.load_runs``; pandas is imported only when a run is loaded.

>>> df = load_runs(["runs/icl", "runs/retrieval"])  # doctest: +SKIP
>>> sorted(df["label"].unique())  # doctest: +SKIP
['icl', 'retrieval']
"""
from __future__ import annotations

import json
from pathlib import Path

from iclmeta.errors import UserError

REQUIRED = ("method", "shots", "episode", "accuracy")
# Absent in hand-made or older rows; filled so grouping never sees a missing column.
DEFAULTS = {"dataset": "", "split": "", "ways": 0, "seed": 0, "model": "", "options": {}}
# Rows of one label that differ in any of these came from different set-ups and must not be mixed.
IDENTITY = ("dataset", "split", "ways", "model", "options_key")
# One evaluation unit: the same episode (same queries, nested support) seen by every method.
PAIR_KEY = ["dataset", "split", "ways", "seed", "episode"]


def results_path(run: str | Path) -> Path:
    """The ``results.jsonl`` of a run folder (a results file itself is accepted too)."""
    path = Path(run)
    if path.is_file() and path.suffix == ".jsonl":
        return path
    if not path.is_dir():
        raise UserError(f"{run} does not exist; pass a run folder written by 'iclmeta eval'")
    if not (path / "results.jsonl").is_file():
        raise UserError(f"{run} holds no results.jsonl; pass a run folder written by "
                        "'iclmeta eval'")
    return path / "results.jsonl"


def read_rows(path: Path) -> list[dict]:
    """Parse one results file, naming the first bad line and how to fix it."""
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise UserError(f"{path} line {number} is not valid JSON; rerun that run with "
                                "--resume (it drops a torn last line) or delete the line") from None
            missing = [k for k in REQUIRED if not isinstance(row, dict) or k not in row]
            if missing:
                raise UserError(f"{path} line {number} lacks {', '.join(missing)}; results "
                                "rows come from 'iclmeta eval'")
            rows.append(row)
    if not rows:
        raise UserError(f"{path} holds no result rows; run 'iclmeta eval' into that folder first")
    return rows


def _run_names(runs: list[str | Path]) -> list[str]:
    """Short run names (folder names), falling back to full paths when two names collide."""
    paths = [results_path(r).parent for r in runs]
    names = [p.name or str(p) for p in paths]
    if len(set(names)) < len(names):
        names = [str(p) for p in paths]
    return names


def _tidy(rows: list[dict], run: str):
    import pandas as pd

    df = pd.DataFrame([{**DEFAULTS, **r} for r in rows])
    if "label" not in df:
        df["label"] = df["method"]
    df["label"] = df["label"].fillna(df["method"]).astype(str)
    if "adapt_steps" not in df:
        df["adapt_steps"] = float("nan")
    # adapt_steps is the adaptation curve's x-axis, not a different set-up: runs that differ
    # only there (e.g. --adapt-steps 0 and 2 of one adapter) share a label.
    df["options_key"] = [json.dumps({k: v for k, v in o.items() if k != "adapt_steps"},
                                    sort_keys=True, default=str) for o in df["options"]]
    df["run"] = run
    return df


def _disambiguate(df):
    """Rename a label seen with different set-ups across runs to ``label [run]``."""
    variants = df.drop_duplicates(["label", "run", *IDENTITY])
    clashing = variants.groupby("label")[list(IDENTITY)].nunique().max(axis=1) > 1
    clash = df["label"].isin(clashing[clashing].index)
    df.loc[clash, "label"] = df.loc[clash, "label"] + " [" + df.loc[clash, "run"] + "]"
    return df


def load_runs(runs, dedupe: bool = True):
    """Load run folders into one pandas DataFrame, one row per results row, plus ``run``.

    A label that appears in several runs with a different dataset, split, ways, model or
    options becomes ``label [run]`` so that different set-ups are never averaged together.
    With ``dedupe``, a cell (label, episode unit, shots, adapt_steps) seen twice keeps its
    first row, so loading the same run twice does not double-count it.

    >>> df = load_runs("runs/latest")  # doctest: +SKIP
    >>> df.groupby(["label", "shots"])["accuracy"].mean()  # doctest: +SKIP
    """
    import pandas as pd

    runs = [runs] if isinstance(runs, (str, Path)) else list(runs)
    if not runs:
        raise UserError("no run folders given; pass at least one folder written by 'iclmeta eval'")
    frames = [_tidy(read_rows(results_path(r)), name) for r, name in zip(runs, _run_names(runs))]
    df = _disambiguate(pd.concat(frames, ignore_index=True))
    if dedupe:
        cell = ["label", *PAIR_KEY, "shots", "adapt_steps"]
        df = df[~df[cell].astype(str).duplicated()].reset_index(drop=True)
    return df
