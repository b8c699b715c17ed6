"""Reading and merging run folders into one tidy table (one row per result row), and the rules
that decide which rows may be paired.

Two rows pair only when everything that defines their episode matches (``PAIR_KEY``), including
``query_hash``, the fingerprint of the episode's queries; rows of runs written before it get it
computed from their ``query_ids``. Rows are never dropped silently: the same run given twice,
or two rows for one (label, episode, shots) cell, is an error naming the run folders.

Use it through ``iclmeta.report.stats.load_runs``; pandas is imported only when a run is loaded.

>>> df = load_runs(["runs/icl", "runs/retrieval"])  # doctest: +SKIP
>>> sorted(df["label"].unique())  # doctest: +SKIP
['icl', 'retrieval']
"""
from __future__ import annotations

import json
from pathlib import Path

from iclmeta.data.episodes import ALL_SHOTS, query_hash
from iclmeta.errors import UserError

REQUIRED = ("method", "shots", "episode", "accuracy")
# Absent in hand-made or older rows; filled so grouping never sees a missing column.
DEFAULTS = {"dataset": "", "class_split": "", "split": "", "split_seed": 0, "ways": 0, "seed": 0,
            "model": "", "options": {}}
# Rows of one label that differ in any of these came from different set-ups and must not be mixed.
IDENTITY = ("dataset", "split", "ways", "model", "options_key")
# One episode slot: what decides which classes, support and queries episode ``i`` has.
EPISODE_KEY = ["dataset", "class_split", "split", "split_seed", "ways", "seed", "episode"]
# One evaluation unit: the same episode, and provably the same queries, seen by every method.
PAIR_KEY = [*EPISODE_KEY, "query_hash"]


def results_path(run: str | Path) -> Path:
    """The ``results.jsonl`` of a run folder (a results file itself is accepted too)."""
    path = Path(run)
    if path.is_file() and path.suffix == ".jsonl":
        return path
    if path.exists() and not path.is_dir():
        raise UserError(f"{run} is a file, not a run folder; pass the folders 'iclmeta eval' "
                        "wrote (each holds a results.jsonl), e.g. runs/*/ rather than runs/*")
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
    df["query_hash"] = _query_hashes(df)
    # --shots all: a number after every count, so frames sort and group (``shot_text`` shows it)
    df["shots"] = [ALL_SHOTS if s == "all" else s for s in df["shots"]]
    return df


def _query_hashes(df) -> list[str]:
    """Each row's query fingerprint; older rows get it from their query ids, else ''."""
    recorded = df["query_hash"] if "query_hash" in df else [None] * len(df)
    ids = df["query_ids"] if "query_ids" in df else [None] * len(df)
    return [h if isinstance(h, str) and h else
            (query_hash(q) if isinstance(q, list) and q else "") for h, q in zip(recorded, ids)]


def _disambiguate(df):
    """Rename a label seen with different set-ups across runs to ``label [run]``."""
    variants = df.drop_duplicates(["label", "run", *IDENTITY])
    clashing = variants.groupby("label")[list(IDENTITY)].nunique().max(axis=1) > 1
    clash = df["label"].isin(clashing[clashing].index)
    df.loc[clash, "label"] = df.loc[clash, "label"] + " [" + df.loc[clash, "run"] + "]"
    return df


def _runs_text(runs) -> str:
    runs = list(dict.fromkeys(runs))
    return f"{runs[0]} (twice)" if len(runs) == 1 else " and ".join(runs)


def _cell_text(r) -> str:
    steps = "" if r["adapt_steps"] != r["adapt_steps"] else f" after {r['adapt_steps']:g} steps"
    return (f"{r['label']} at {r['shots']}-shot{steps}, episode {r['episode']} of "
            f"{r['dataset']} (seed {r['seed']}, split seed {r['split_seed']}, {r['ways']}-way)")


def _keys(df, columns: list[str]):
    """One string per row naming its values in ``columns`` (NaN-safe grouping)."""
    return df[columns].map(str).agg("\x1f".join, axis=1)


def check_unique(df) -> None:
    """One row per (label, episode, shots, adapt_steps): a second one is an error, not dropped."""
    if not len(df):
        return
    keys = _keys(df, ["label", *EPISODE_KEY, "shots", "adapt_steps"])
    repeated = keys.duplicated(keep=False)
    if repeated.any():
        same = df[keys == keys[repeated].iloc[0]]
        first = same.iloc[0]
        raise UserError(f"{_cell_text(first)} has {len(same)} rows, in "
                        f"{_runs_text(same['run'])}; reports never drop rows: pass each run "
                        "once, or rerun one with another --seed")


def check_pairable(df) -> None:
    """Refuse to pair rows of one episode slot that saw different queries (one line)."""
    check_unique(df)
    if not len(df):
        return
    slots = _keys(df, EPISODE_KEY)
    clash = df["query_hash"].groupby(slots).transform("nunique") > 1
    if clash.any():
        same = df[slots == slots[clash].iloc[0]]
        first = same.iloc[0]
        labels = ", ".join(dict.fromkeys(same["label"]))
        raise UserError(f"episode {first['episode']} of {first['dataset']} (seed "
                        f"{first['seed']}) has different queries in "
                        f"{_runs_text(same['run'])} ({labels}): they were sampled with other "
                        "settings (e.g. --queries or an older iclmeta) and cannot be paired; "
                        "report them separately or rerun them with the same settings")


def load_runs(runs):
    """Load run folders into one pandas DataFrame, one row per results row, plus ``run``.

    A label that appears in several runs with a different dataset, split, ways, model or
    options becomes ``label [run]`` so that different set-ups are never averaged together.
    Nothing is de-duplicated: the same run given twice, or a (label, episode, shots,
    adapt_steps) cell with two rows, raises a UserError naming the run folders.

    >>> df = load_runs("runs/latest")  # doctest: +SKIP
    >>> df.groupby(["label", "shots"])["accuracy"].mean()  # doctest: +SKIP
    """
    import pandas as pd

    runs = [runs] if isinstance(runs, (str, Path)) else list(runs)
    if not runs:
        raise UserError("no run folders given; pass at least one folder written by 'iclmeta eval'")
    paths = [results_path(r).resolve() for r in runs]
    for i, path in enumerate(paths):
        if path in paths[:i]:
            raise UserError(f"{runs[i]} is given twice (it is {path}); pass each run once")
    frames = [_tidy(read_rows(results_path(r)), name) for r, name in zip(runs, _run_names(runs))]
    df = _disambiguate(pd.concat(frames, ignore_index=True))
    check_unique(df)
    return df
