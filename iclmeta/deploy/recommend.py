"""``iclmeta recommend``: race the candidate methods on paired episodes of the user's own data.

Every class of the data is in play in every episode (``--class-split all``); the support comes
from the dataset's train split and the queries from its test split when it has both, else
both from the same examples (queries drawn first, never in a support). All methods run at one
shot count, the largest of 8, 4, 2, 1 the data allows (or ``--shots K``), so each has the
same labelled budget. Each round runs every surviving method on the next episode; the
decision rule is in ``iclmeta.report.race``. The run folder holds the harness's
``results.jsonl`` (so ``iclmeta report`` reads it too), ``recommend.json``, the ranking and
two figures (see ``iclmeta.deploy.race_files``).

>>> from iclmeta.config import EvalConfig
>>> race = recommend(EvalConfig(dataset="snips"), RaceSettings(budget=900))  # doctest: +SKIP
>>> race.winner  # doctest: +SKIP
'protonet'
"""
from __future__ import annotations

import math
import re
import sys
import time
from dataclasses import dataclass, replace

from iclmeta.config import EvalConfig
from iclmeta.data.episodes import plan_episodes, sample_episodes
from iclmeta.data.sources import load_source
from iclmeta.errors import UserError
from iclmeta.harness.evaluate import guard_overlap
from iclmeta.harness.provenance import provenance
from iclmeta.harness.registry import build_method, check_methods
from iclmeta.harness.run_folder import Claim, check_folder, target
from iclmeta.harness.store import ResultStore
from iclmeta.io import save_yaml
from iclmeta.deploy.racing import Race, run_race

CANDIDATES = ("zero-shot", "icl", "retrieval", "instruct", "knn", "protonet", "finetune")
SHOT_CHOICES = (8, 4, 2, 1)
METRICS = ("accuracy", "macro-f1")
QUERIES_PER_EPISODE = 32


def parse_budget(text: str | float) -> float:
    """Seconds from ``90``, ``90s``, ``15m``, ``1h``, ``1h30m``.

    >>> parse_budget("15m"), parse_budget("1h30m"), parse_budget("45")
    (900.0, 5400.0, 45.0)
    """
    spec = str(text).strip().lower()
    parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?", spec)
    if not spec or parts is None or not any(parts.groups()):
        raise UserError(f"--budget {text!r} is not a duration; write e.g. 90s, 15m or 1h30m")
    h, m, s = (float(g) if g else 0.0 for g in parts.groups())
    seconds = 3600 * h + 60 * m + s
    if seconds <= 0:
        raise UserError(f"--budget {text!r} is not positive; give a duration such as 15m")
    return seconds


@dataclass
class RaceSettings:
    """How the race is run and judged (recorded in ``config.yaml`` and ``recommend.json``)."""

    budget: float = 900.0  # seconds of wall time, model loading included
    metric: str = "accuracy"
    alpha: float = 0.05  # family-wise error over every look and pair
    tie_margin: float = 0.01  # survivors within this of the leader (both ways) are tied
    max_rounds: int = 64

    def validate(self) -> None:
        if self.metric not in METRICS:
            raise UserError(f"--metric {self.metric!r} is unknown; choose one of: "
                            f"{', '.join(METRICS)}")
        if not 0.0 < self.alpha < 1.0:
            raise UserError(f"--alpha {self.alpha} must be in (0, 1), e.g. 0.05")
        if self.tie_margin < 0:
            raise UserError(f"--tie-margin {self.tie_margin} is negative; give e.g. 0.01")
        if self.max_rounds < 2:
            raise UserError(f"--max-rounds {self.max_rounds} is below 2; an interval needs two "
                            "episodes")


def race_config(config: EvalConfig, given: set[str]) -> EvalConfig:
    """The candidates and episode rule a race uses unless the user chose them."""
    changes = {}
    if "methods" not in given:
        extra = [m for m in _trained_methods(config) if m not in CANDIDATES]
        changes["methods"] = list(CANDIDATES) + extra
    if "class_split" not in given:
        changes["class_split"] = "all"
    return replace(config, **changes)


def race_queries(ds, config: EvalConfig, given: set[str]) -> EvalConfig:
    """Unless ``--queries`` is given, about ``QUERIES_PER_EPISODE`` queries per episode (at
    least 2 per class), fewer where the smallest class needs room for one shot."""
    if "queries" in given:
        return config
    plan = _plan(ds, replace(config, shots=[0], queries=1))
    q = max(2, math.ceil(QUERIES_PER_EPISODE / len(plan.classes)))
    if not plan.support_from:
        q = max(1, min(q, min(_support_counts(ds, plan).values()) - 1))
    return replace(config, queries=q)


def _plan(ds, config: EvalConfig):
    """The episode rule ``config`` gives on the already loaded ``ds``."""
    return plan_episodes(ds, config.ways, config.shots, config.queries, config.split,
                         config.class_split, config.split_seed, config.drop_short_classes)


def _support_counts(ds, plan) -> dict[str, int]:
    """Examples each class of ``plan`` has where its support is drawn from."""
    sup = ds.by_label(plan.support_from) if plan.support_from else ds.by_label()
    return {c: len(sup.get(c, [])) for c in plan.classes}


def _trained_methods(config: EvalConfig) -> list[str]:
    from iclmeta.meta.checkpoints import adapter_method
    from iclmeta.metric.checkpoints import read_checkpoint_config
    names = [adapter_method(a) for a in config.adapters]
    names += [read_checkpoint_config(c).get("method") for c in config.checkpoints]
    return [n for n in dict.fromkeys(names) if n]


def choose_shots(ds, config: EvalConfig, given: set[str]) -> int:
    """The race's one shot count: ``--shots K`` or the largest of ``SHOT_CHOICES`` that every
    class can supply next to its queries; a dataset too small for any episode is refused."""
    if "shots" in given:
        if len(config.shots) != 1 or not isinstance(config.shots[0], int) or config.shots[0] < 1:
            raise UserError(f"recommend races at one shot count; give --shots K with K >= 1, "
                            f"not {','.join(map(str, config.shots))}")
        return config.shots[0]
    plan = _plan(ds, replace(config, shots=[0]))
    queries = plan.queries or 1
    room = {c: n - (0 if plan.support_from else queries)
            for c, n in _support_counts(ds, plan).items()}
    worst = min(room, key=room.get)
    fits = [k for k in SHOT_CHOICES if k <= room[worst]]
    if not fits:
        need = 1 + (0 if plan.support_from else queries)
        raise UserError(f"{ds.name} is too small for an episode: class {worst!r} has "
                        f"{room[worst] + (0 if plan.support_from else queries)} examples; each "
                        f"class needs at least {need} (1 shot + {queries} queries); add examples "
                        "or lower --queries")
    return fits[0]


def recommend(config: EvalConfig, settings: RaceSettings, given: set[str] = frozenset(),
              progress: bool = True, echo=lambda m: print(m, file=sys.stderr)) -> Race:
    """Race ``config.methods`` (default ``CANDIDATES``) and write the run folder."""
    start = time.perf_counter()
    settings.validate()
    config = race_config(config, set(given))
    config.validate()
    out, fresh = target(config.out, False)
    check_folder(out, False)
    check_methods(config.methods)
    ds = load_source(config)  # once: every probe below plans on it
    config = race_queries(ds, config, set(given))
    config = replace(config, shots=[choose_shots(ds, config, set(given))],
                     episodes=settings.max_rounds)
    plan = _plan(ds, config)
    episodes = sample_episodes(ds, plan, config.episodes, config.seed)
    echo(plan.describe() + f"; racing at {config.shots[0]} shots")
    methods, skipped, resources = _load(config, ds, plan, set(given), echo)
    claim = Claim.take(out, False, fresh)
    try:
        config = replace(config, out=str(out), methods=list(methods))
        save_yaml({"config": config.to_dict(), "episodes": plan.to_dict(),
                   "race": vars(settings), "provenance": provenance(resources)},
                  out / "config.yaml")
        race = run_race(config, settings, ds, plan, episodes, methods, ResultStore(out), start,
                     progress)
        race.skipped, race.out = skipped, out
        from iclmeta.deploy.race_files import write_race
        write_race(race, out)
    except BaseException:
        claim.release(failed=True)
        raise
    claim.release()
    return race


def _load(config, ds, plan, given: set[str], echo):
    """Build and load each candidate; a default candidate that cannot run here is skipped with
    a note, one the user named is an error."""
    from iclmeta.harness.resources import Resources
    resources = Resources(config, ds)
    methods, skipped = {}, {}
    for name in config.methods:
        method = build_method(name, resources)
        try:
            method.fit()
        except UserError as err:
            if "methods" in given:
                raise
            skipped[name] = str(err)
            echo(f"skipping {name}: {err}")
            continue
        guard_overlap(name, method, ds, plan, config.allow_overlap)
        methods[name] = method
    if len(methods) < 2:
        raise UserError(f"recommend needs at least two methods to race, {len(methods)} could "
                        f"run ({', '.join(methods) or 'none'}); add candidates with --method")
    return methods, skipped, resources


