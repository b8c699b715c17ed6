"""The episodic harness: the same episodes for every method and shot count, one row each.

Each row records what defines its episode (dataset, class rule, split seed, ways, seed, episode
id and ``query_hash``, a fingerprint of its queries) and its budget: ``shots`` labelled examples
per class (``support_size`` = shots x ways in all) of which ``k`` were shown as demonstrations.

>>> from iclmeta.config import EvalConfig
>>> report = evaluate(EvalConfig(methods=["retrieval"], out="runs/demo"))  # doctest: +SKIP
>>> print(report.table())  # doctest: +SKIP
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from iclmeta.config import EvalConfig
from iclmeta.io import load_yaml, save_yaml
from iclmeta.data.example import LabelledDataset
from iclmeta.data.sources import load_source
from iclmeta.harness.distributed import RANK_PATTERN, Processes, merge_rank_files
from iclmeta.data.episodes import Episode, EpisodePlan, plan_episodes, sample_episodes
from iclmeta.data.leakage import overlap
from iclmeta.errors import UserError
from iclmeta.data.prediction import Prediction
from iclmeta.harness.registry import build_method, check_methods
from iclmeta.harness.store import ResultStore, load_results
from iclmeta.models import DEFAULT_EMBEDDER, DEFAULT_LM
from iclmeta.report.stats import format_table, summarize, write_summary

ZERO_SHOT_ONLY = {"zero-shot"}  # methods whose prompt ignores the shot count


@dataclass
class Report:
    """The tidy result table: one row per (method, shots, episode)."""

    rows: list[dict]
    out: Path | None = None

    def summary(self) -> list[dict]:
        return summarize(self.rows)

    def table(self) -> str:
        return format_table(self.summary())


def prepare(config: EvalConfig) -> tuple[LabelledDataset, EpisodePlan, list[Episode]]:
    """Load the dataset, decide the sampling rule, and sample the run's episodes."""
    config.validate()
    check_methods(config.methods)
    ds = load_source(config)
    plan = plan_episodes(ds, config.ways, config.shots, config.queries, config.split,
                         config.class_split, config.split_seed)
    return ds, plan, sample_episodes(ds, plan, config.episodes, config.seed)


def _start_run(config: EvalConfig, plan: EpisodePlan, resume: bool,
               proc: Processes = Processes()) -> Path:
    out = Path(config.out)
    store = ResultStore(out)
    saved = {"config": config.to_dict(), "episodes": plan.to_dict()}
    if (store.path.exists() and store.path.stat().st_size > 0) or any(out.glob(RANK_PATTERN)):
        if not resume:
            raise UserError(f"{out} already holds results; pass --resume to continue that run "
                            "or choose a new --out")
        # A key the earlier run did not record had its default then (it predates the option).
        previous = {**EvalConfig().to_dict(), **load_yaml(out / "config.yaml").get("config", {})}
        changed = sorted(k for k in saved["config"] if previous.get(k) != saved["config"][k])
        if changed:
            raise UserError(f"--resume with different settings ({', '.join(changed)}) than the "
                            f"run in {out}; use the same settings or a new --out")
    proc.barrier()  # every process has checked the folder before the main one writes to it
    if proc.is_main:
        out.mkdir(parents=True, exist_ok=True)
        save_yaml(saved, out / "config.yaml")
    return out


def _load_rows(out: Path, order: list[tuple], proc: Processes) -> list[dict]:
    """Rows already written; the main process first folds in what an interrupted
    multi-process run left in per-process files."""
    rows = merge_rank_files(out, load_results(out / "results.jsonl"), order, load_results) \
        if proc.is_main else []
    proc.barrier()
    return rows if proc.is_main else load_results(out / "results.jsonl")


def row_for(config, ds, plan, method, episode, shots, pred: Prediction, seconds) -> dict:
    """One ``results.jsonl`` row: the episode's identity, the budget, the outcome and its cost.

    ``k`` is the number of demonstrations shown: the most any query's prompt held after fitting
    the window (a method may report its own in ``pred.extra``, which is merged last).
    """
    correct = [p == q.label for p, q in zip(pred.labels, episode.query)]
    n_demos = max((len(d) for d in pred.demo_ids), default=0)
    row = {
        "dataset": ds.name, "split": plan.split, "class_split": plan.class_split,
        "split_seed": plan.split_seed, "ways": plan.ways, "shots": shots,
        "k": n_demos, "support_size": shots * len(episode.classes),
        "episode": episode.id, "seed": config.seed, "query_hash": episode.query_hash,
        "method": method.name, "label": method.name,
        "accuracy": sum(correct) / len(correct), "n_queries": len(correct),
        "n_correct": int(sum(correct)), "model": config.model or DEFAULT_LM,
        "embedder": config.embedder or DEFAULT_EMBEDDER, "options": dict(method.options),
        "seconds": round(seconds, 4), "prompt_tokens": int(pred.prompt_tokens),
        "n_demos": n_demos,
        "query_ids": [q.id for q in episode.query], "gold": [q.label for q in episode.query],
        "predictions": list(pred.labels), "demo_ids": pred.demo_ids,
    }
    row.update(pred.extra)
    return row


def work_items(config: EvalConfig, episodes: list[Episode]) -> list[tuple]:
    """(episode, method, shots) in run order: all methods finish an episode before the next."""
    items = []
    for ep in episodes:
        for name in config.methods:
            for shots in ([0] if name in ZERO_SHOT_ONLY else config.shots):
                items.append((ep, name, shots))
    return items


def evaluate(config: EvalConfig, resume: bool = False, progress: bool = True,
             echo=lambda msg: print(msg, file=sys.stderr)) -> Report:
    """Run every method on the same episodes and write the run folder; returns the rows.

    Under ``accelerate launch`` each process runs its share of the episodes and the main
    process merges the rows (see ``iclmeta.harness.distributed``).
    """
    proc = Processes.current()
    ds, plan, episodes = prepare(config)
    if proc.is_main:
        echo(plan.describe())
        if ds.duplicates_removed:
            echo(f"{ds.duplicates_removed} exact duplicate texts removed from {ds.name}")
    methods = load_methods(config, ds, plan)  # every refusal comes before anything is written
    out = _start_run(config, plan, resume, proc)
    items = work_items(config, episodes)
    order = [(name, shots, ep.id) for ep, name, shots in items]
    rows = _load_rows(out, order, proc)
    done = {(r["method"], r["shots"], r["episode"]) for r in rows}
    position = {ep.id: i for i, ep in enumerate(episodes)}
    todo = [w for w in items if (w[1], w[2], w[0].id) not in done and proc.owns(position[w[0].id])]
    if rows and proc.is_main:
        echo(f"resuming: {len(rows)} rows already in {out}, {len(order) - len(rows)} to go")
    name = "results.jsonl" if proc.world == 1 else proc.rank_file()
    new = _run_items(config, ds, plan, methods, todo, ResultStore(out, name),
                     progress and proc.is_main)
    if proc.world > 1:
        proc.barrier()  # every process has written its rows
        rows = merge_rank_files(out, rows, order, load_results) if proc.is_main else []
        proc.barrier()
        rows = rows if proc.is_main else load_results(out / "results.jsonl")
    else:
        rows += new
    report = Report(rows, out)
    if proc.is_main:
        write_summary(report.summary(), out / "summary.csv")
    return report


def load_methods(config: EvalConfig, ds: LabelledDataset, plan: EpisodePlan) -> dict:
    """Build and load every method, then refuse any whose checkpoint saw evaluated data.

    A checkpoint or adapter trained on any evaluated class (same dataset) or text is a leak into
    the evaluation; it is an error unless ``allow_overlap`` is set, and then every row of that
    method records the overlap.
    """
    from iclmeta.harness.resources import Resources

    resources = Resources(config, ds)
    methods = {name: build_method(name, resources) for name in config.methods}
    for name, method in methods.items():
        method.fit()  # loads what the method needs, before the clock
        found = overlap(method.trained_on, ds, plan.classes)
        if found and not config.allow_overlap:
            seed = method.trained_on.get("split_seed")
            raise UserError(f"--method {name}: {found}; evaluate with the split it was trained "
                            f"with (--split-seed {seed}, --class-split disjoint) or pass "
                            "--allow-overlap to evaluate anyway (recorded in every row)")
        method.options["overlap"] = found
    return methods


def _run_items(config, ds, plan, methods, todo, store: ResultStore, progress: bool) -> list[dict]:
    """Evaluate the (episode, method, shots) items in order, appending each row to ``store``."""
    from tqdm.auto import tqdm

    rows = []
    for ep, name, shots in tqdm(todo, desc="eval", unit="item", disable=not progress):
        start = time.perf_counter()
        pred = methods[name].predict(ep, shots)
        row = row_for(config, ds, plan, methods[name], ep, shots, pred,
                      time.perf_counter() - start)
        store.append(row)
        rows.append(row)
    return rows
