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
from dataclasses import dataclass, replace
from pathlib import Path

from iclmeta.config import EvalConfig
from iclmeta.io import load_yaml, save_yaml
from iclmeta.data.example import LabelledDataset
from iclmeta.data.sources import load_source
from iclmeta.harness.distributed import Processes, merge_rank_files
from iclmeta.data.episodes import (ALL, Episode, EpisodePlan, plan_episodes,
                                   sample_episodes)
from iclmeta.data.leakage import overlap
from iclmeta.errors import UserError
from iclmeta.data.prediction import Prediction
from iclmeta.harness.provenance import provenance, resumed
from iclmeta.harness.registry import build_method, check_methods
from iclmeta.harness.run_folder import Claim, check_folder, has_results, target
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
                         config.class_split, config.split_seed, config.drop_short_classes)
    return ds, plan, sample_episodes(ds, plan, config.episodes, config.seed)


def _start_run(config: EvalConfig, plan: EpisodePlan, claim: Claim | None, record: dict | None,
               proc: Processes = Processes()) -> tuple[EvalConfig, Path]:
    """Write ``config.yaml`` into the claimed folder (the main process; on ``--resume`` after the
    settings are compared) and tell every process where it is."""
    if proc.is_main:
        out = claim.out
        config = replace(config, out=str(out))
        saved = {"config": config.to_dict(), "episodes": plan.to_dict(), "provenance": record}
        if has_results(out):
            load_results(out / "results.jsonl")  # a corrupt row is refused before any write
            recorded = load_yaml(out / "config.yaml")
            # A key the earlier run did not record had its default then (it predates the
            # option); ``out`` is where the folder is now, however it is spelled or moved.
            previous = {**EvalConfig().to_dict(), **recorded.get("config", {})}
            changed = sorted(k for k, v in saved["config"].items()
                             if k != "out" and previous.get(k) != v)
            if changed:
                raise UserError(f"--resume with different settings ({', '.join(changed)}) than "
                                f"the run in {out}; use the same settings or a new --out")
            saved["provenance"] = resumed(recorded.get("provenance"), record, out)
        save_yaml(saved, out / "config.yaml")
    out = Path(proc.share(str(claim.out) if proc.is_main else None))
    return replace(config, out=str(out)), out


def _load_rows(out: Path, order: list[tuple], proc: Processes) -> list[dict]:
    """Rows already written; the main process first folds in what an interrupted
    multi-process run left in per-process files."""
    rows = merge_rank_files(out, load_results(out / "results.jsonl"), order, load_results) \
        if proc.is_main else []
    proc.barrier()
    return rows if proc.is_main else load_results(out / "results.jsonl")


def resolve_shots(episode: Episode, shots) -> int:
    """The count a method is given: ``shots``, or for ``"all"`` the largest class's support
    (``Episode.support_set`` then returns every support example)."""
    return episode.all_shots if shots == ALL else shots


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
        "k": n_demos, "support_size": len(episode.support_set(resolve_shots(episode, shots))),
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
    if config.log_scores:  # one {label: score} per query; none for unscored predictions
        row["label_scores"] = pred.scores or [{} for _ in episode.query]
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
    from iclmeta.harness.resources import Resources

    proc = Processes.current()
    config.validate()
    # A folder this run may not write to is refused before anything loads.
    out, fresh = target(config.out, resume) if proc.is_main else (None, False)
    if proc.is_main:
        check_folder(out, resume)
    ds, plan, episodes = prepare(config)
    if proc.is_main:
        echo(plan.describe())
        if ds.duplicates_removed:
            echo(f"{ds.duplicates_removed} exact duplicate texts removed from {ds.name}")
    resources = Resources(config, ds)
    methods = load_methods(config, ds, plan, resources)  # every refusal before any write
    claim = Claim.take(out, resume, fresh) if proc.is_main else None
    try:
        config, out = _start_run(config, plan, claim, provenance(resources) if claim else None,
                                 proc)
        report = _run(config, ds, plan, episodes, methods, out, proc, progress, echo)
    except BaseException:
        if claim:  # a new or empty folder that got no row is left as it was found
            claim.release(failed=True)
        raise
    if claim:
        claim.release()
    return report


def _run(config, ds, plan, episodes, methods, out: Path, proc: Processes, progress: bool,
         echo) -> Report:
    """Evaluate what ``out`` does not hold yet (this process's share) and merge the rows."""
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


def load_methods(config: EvalConfig, ds: LabelledDataset, plan: EpisodePlan,
                 resources=None) -> dict:
    """Build and load every method, then refuse any whose checkpoint saw evaluated data.

    A checkpoint or adapter trained on any evaluated class (same dataset) or text is a leak into
    the evaluation; it is an error unless ``allow_overlap`` is set, and then every row of that
    method records the overlap.
    """
    from iclmeta.harness.resources import Resources

    resources = resources or Resources(config, ds)
    methods = {name: build_method(name, resources) for name in config.methods}
    for name, method in methods.items():
        method.fit()  # loads what the method needs, before the clock
        guard_overlap(name, method, ds, plan, config.allow_overlap)
    return methods


def guard_overlap(name: str, method, ds: LabelledDataset, plan: EpisodePlan,
                  allow: bool) -> None:
    """Refuse a loaded method whose checkpoint saw evaluated classes or texts, unless
    ``allow``; either way its rows record the overlap (``options["overlap"]``)."""
    found = overlap(method.trained_on, ds, plan.classes)
    if found and not allow:
        seed = method.trained_on.get("split_seed")
        raise UserError(f"--method {name}: {found}; evaluate with the split it was trained "
                        f"with (--split-seed {seed}, --class-split disjoint) or pass "
                        "--allow-overlap to evaluate anyway (recorded in every row)")
    method.options["overlap"] = found


def _run_items(config, ds, plan, methods, todo, store: ResultStore, progress: bool) -> list[dict]:
    """Evaluate the (episode, method, shots) items in order, appending each row to ``store``."""
    from tqdm.auto import tqdm

    rows = []
    for ep, name, shots in tqdm(todo, desc="eval", unit="item", disable=not progress):
        start = time.perf_counter()
        pred = methods[name].predict(ep, resolve_shots(ep, shots))
        row = row_for(config, ds, plan, methods[name], ep, shots, pred,
                      time.perf_counter() - start)
        store.append(row)
        rows.append(row)
    return rows
