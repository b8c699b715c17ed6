"""The race loop of ``iclmeta recommend``: rounds of paired episodes, looks, eliminations.

Each round runs every surviving method on the next episode and appends its harness row to
``results.jsonl``; after the rounds in ``report.race.LOOKS`` the survivors are judged by
``report.race.decide``. A round that cannot finish within the budget is not started (its cost
is estimated from each survivor's mean episode time); one cut short is left out of the
decisions (its rows stay in ``results.jsonl``). A budget too short for the first round is an
error that says how much one round takes.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from iclmeta.errors import UserError
from iclmeta.harness.evaluate import row_for
from iclmeta.report.metrics import macro_f1
from iclmeta.report.race import Look, decide, family_size, is_look, mean, spread_floor

RECENT = 3  # rounds whose mean time predicts the next one

@dataclass
class Entry:
    """One candidate's record in the race."""

    method: str
    scores: list[float] = field(default_factory=list)  # the metric, one per completed round
    accuracy: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    queries: list[int] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    status: str = "racing"  # racing | winner | tied | dropped | unbeaten
    dropped_at: int | None = None  # round
    dropped_by: str | None = None

    def per_query(self, values: list) -> float:
        return sum(values) / max(sum(self.queries), 1)


@dataclass
class Race:
    settings: object  # recommend.RaceSettings
    config: object  # the EvalConfig raced
    entries: dict[str, Entry]
    looks: list[Look]
    rounds: int
    stopped: str  # winner | tied | budget | episodes
    elapsed: float
    skipped: dict[str, str] = field(default_factory=dict)
    out: object = None

    @property
    def winner(self) -> str:
        return self.looks[-1].leader if self.looks else max(
            self.entries, key=lambda m: mean(self.entries[m].scores))


def _score(row: dict, metric: str) -> float:
    return row["accuracy"] if metric == "accuracy" else macro_f1(row["gold"], row["predictions"])


def run_race(config, settings, ds, plan, episodes, methods, store, start, progress) -> Race:
    """Rounds until a look settles the race, the budget ends or the episodes run out."""
    from tqdm.auto import tqdm

    entries = {m: Entry(m) for m in methods}
    pairs = family_size(len(entries))
    looks: list[Look] = []
    stopped, rounds = "episodes", 0
    bar = tqdm(total=round(settings.budget), unit="s", desc="recommend", disable=not progress,
               bar_format="{desc}: {percentage:3.0f}% of budget |{bar}| {n:.0f}/{total:.0f}s "
                          "{postfix}")
    alive = list(methods)
    run = Round(config, ds, plan, methods, store, start, settings, bar)
    for ep in episodes:
        # the next round's cost: the recent rounds (the machine's load may have changed)
        need = sum(mean(entries[m].seconds[-RECENT:]) for m in alive)
        if rounds and time.perf_counter() - start + need > settings.budget:
            stopped = "budget"
            break
        done = run(ep, alive, rounds)
        if done is None:
            stopped = "budget"
            break
        rounds += 1
        _record(entries, done, settings.metric)
        if is_look(rounds):
            alive, stop = _look(entries, alive, looks, settings, pairs, rounds)
            if stop:
                stopped = stop
                break
    bar.close()
    if rounds >= 3 and (not looks or looks[-1].rounds != rounds):
        alive, _ = _look(entries, alive, looks, settings, pairs, rounds)  # the final look
    _settle(entries, alive, looks, stopped)
    return Race(settings, config, entries, looks, rounds, stopped, time.perf_counter() - start)


class Round:
    """Runs the survivors on one episode, each row appended as soon as it exists.

    Methods that embed texts share the embedder's cache, so whichever ran first would pay for
    the episode's sentence embeddings. The round therefore embeds the episode's support and
    queries first, timed, and charges that time to every method that uses the embedder
    (``embed_seconds`` in its rows); a method's time per query is then its own.
    """

    def __init__(self, config, ds, plan, methods, store, start, settings, bar):
        self.config, self.ds, self.plan, self.methods = config, ds, plan, methods
        self.store, self.start, self.settings, self.bar = store, start, settings, bar

    def _embed(self, ep, alive) -> float:
        users = [m for m in alive if "embedder" in self.methods[m].options]
        if not users:
            return 0.0
        from iclmeta.prompts import EmbedText
        res = self.methods[users[0]].res
        text = EmbedText(self.config.embed_template)
        t0 = time.perf_counter()
        res.embedder.encode([text(e) for e in ep.support_set(self.config.shots[0]) + ep.query])
        return time.perf_counter() - t0

    def __call__(self, ep, alive, rounds) -> dict | None:
        """The rows of this round by method, or None when the budget ended inside it."""
        shots, done = self.config.shots[0], {}
        embed = self._embed(ep, alive)
        for name in alive:
            if time.perf_counter() - self.start > self.settings.budget:
                if rounds == 0:
                    _too_short(self.settings, done, alive, self.start)
                return None
            method = self.methods[name]
            t0 = time.perf_counter()
            pred = method.predict(ep, shots)
            row = row_for(self.config, self.ds, self.plan, method, ep, shots, pred,
                          time.perf_counter() - t0)
            if "embedder" in method.options:
                row["embed_seconds"] = round(embed, 4)
            self.store.append(row)
            done[name] = row
            self.bar.n = min(time.perf_counter() - self.start, self.settings.budget)
            self.bar.set_postfix_str(f"round {rounds + 1}, {len(alive)} methods left")
        return done


def _record(entries, done: dict, metric: str) -> None:
    for name, row in done.items():
        e = entries[name]
        e.scores.append(_score(row, metric))
        e.accuracy.append(row["accuracy"])
        e.seconds.append(row["seconds"] + row.get("embed_seconds", 0.0))
        e.queries.append(row["n_queries"])
        e.tokens.append(row["prompt_tokens"])


def _look(entries, alive, looks, settings, pairs, rounds):
    floor = spread_floor(sum(entries[alive[0]].queries[:rounds]), rounds)
    look = decide({m: entries[m].scores[:rounds] for m in alive}, settings.alpha,
                  len(looks) + 1, pairs, settings.tie_margin, sd_floor=floor)
    looks.append(look)
    for m in look.dropped:
        entries[m].status, entries[m].dropped_at = "dropped", rounds
        entries[m].dropped_by = look.dropped_by[m]
    alive = [m for m in alive if m not in look.dropped]
    return alive, (look.status if look.status in ("winner", "tied") else None)


def _settle(entries, alive, looks, stopped) -> None:
    """Survivors end as the winner (one left), tied (within the margin) or unbeaten."""
    last = looks[-1].status if looks else "racing"
    status = "winner" if len(alive) == 1 else "tied" if last == "tied" else "unbeaten"
    for m in alive:
        entries[m].status = status


def _too_short(settings, done, alive, start) -> None:
    spent = time.perf_counter() - start
    per = mean([r["seconds"] for r in done.values()]) if done else spent
    estimate = spent + per * (len(alive) - len(done))
    raise UserError(f"--budget {settings.budget:.0f}s is too short for one round: "
                    f"{len(done)} of {len(alive)} methods finished the first episode in "
                    f"{spent:.0f}s; one round needs about {estimate:.0f}s, an interval two: "
                    f"give --budget {math.ceil(2.5 * estimate / 60)}m or more, or "
                    "fewer --method")
