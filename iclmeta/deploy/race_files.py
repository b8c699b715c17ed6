"""What ``iclmeta recommend`` writes: the ranking (printed, ``ranking.md``, ``ranking.csv``),
``recommend.json`` (what ``iclmeta export --from`` reads) and two figures: ``race.png`` (each
method's running mean score per round, an x where it was dropped) and ``tradeoff.png`` (score
against milliseconds per query).

Every interval in the ranking is the paired interval of (method - recommended method) over the
rounds both ran, at the error level of the last look that judged the method (see
``iclmeta.report.race``); together they hold with probability at least ``1 - alpha``.
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from iclmeta.io import write_atomic
from iclmeta.report.race import (mean, mean_interval, mean_level, paired_interval,
                                 prediction_interval, spread_floor)

STATUS_TEXT = {"winner": "winner", "tied": "tied with the winner", "unbeaten": "not separated",
               "dropped": "dropped"}


def _clip(bounds, low=0.0, high=1.0):
    """Scores lie in [0, 1] (differences in [-1, 1]): an interval is cut to that range."""
    return tuple(v if math.isnan(v) else min(max(v, low), high) for v in bounds)


def ranking(race) -> list[dict]:
    """One row per raced method, best first: survivors by mean score, then the dropped ones
    (latest dropped first)."""
    best = race.winner
    lead = race.entries[best].scores
    looks_at = {look.rounds: look for look in race.looks}
    final = race.looks[-1] if race.looks else None
    s, m = race.settings, len(race.entries)
    rows = []
    for name, e in race.entries.items():
        n = len(e.scores)
        look = looks_at.get(e.dropped_at, final) if e.dropped_at else final
        level = look.alpha if look else math.nan
        own = mean_level(s.alpha, look.look, m) if look else math.nan
        floor = spread_floor(sum(e.queries), n)  # as the race judged it
        if name == best or n < 2 or math.isnan(level):
            diff, lo, hi = (0.0, 0.0, 0.0) if name == best else (math.nan,) * 3
        else:
            diff, lo, hi = paired_interval(e.scores, lead[:n], level, floor)
            lo, hi = _clip((lo, hi), -1.0, 1.0)
        low, high = _clip(mean_interval(e.scores, own, floor)[1:] if n >= 2 and own == own
                          else (math.nan, math.nan))
        one_low, one_high = _clip(prediction_interval(e.scores, own) if n >= 2
                                  and own == own else (math.nan, math.nan))
        rows.append({"method": name, "status": e.status, "rounds": n,
                     "score": mean(e.scores), "score_low": low, "score_high": high,
                     "one_episode_low": one_low, "one_episode_high": one_high,
                     "accuracy": mean(e.accuracy),
                     "diff": diff, "diff_low": lo, "diff_high": hi,
                     "confidence": 1 - level if not math.isnan(level) else math.nan,
                     "mean_confidence": 1 - own if not math.isnan(own) else math.nan,
                     "ms_per_query": 1000 * e.per_query(e.seconds),
                     "tokens_per_query": e.per_query(e.tokens),
                     "dropped_at": e.dropped_at, "dropped_by": e.dropped_by})
    survivors = sorted((r for r in rows if r["status"] != "dropped"), key=lambda r: -r["score"])
    dropped = sorted((r for r in rows if r["status"] == "dropped"),
                     key=lambda r: (-r["dropped_at"], -r["score"]))
    return survivors + dropped


def cost(race) -> dict:
    """Seconds the race spent against running every method on every completed round."""
    spent = sum(sum(e.seconds) for e in race.entries.values())
    full = sum(mean(e.seconds) * race.rounds for e in race.entries.values() if e.seconds)
    return {"raced_seconds": round(spent, 1), "every_method_seconds": round(full, 1),
            "saved_seconds": round(full - spent, 1), "rounds": race.rounds}


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.1f}"


def format_ranking(race) -> str:
    """The table printed at the end of ``iclmeta recommend``."""
    s = race.settings
    rows = ranking(race)
    extra = s.metric != "accuracy"  # accuracy is shown beside the metric raced on
    head = (f"{'method':<12} {'status':<24} {'rounds':>6} {s.metric + ' [interval]':>21} "
            + (f"{'accuracy':>8} " if extra else "")
            + f"{'vs winner [interval]':>24} {'ms/query':>9} {'tokens/query':>12}")
    lines = [head, "-" * len(head)]
    for r in rows:
        gap = ("—" if r["method"] == race.winner else
               "n/a" if math.isnan(r["diff_low"]) else
               f"{_pct(r['diff'])} [{_pct(r['diff_low'])}, {_pct(r['diff_high'])}]")
        score = f"{_pct(r['score'])} [{_pct(r['score_low'])}, {_pct(r['score_high'])}]"
        status = STATUS_TEXT[r["status"]] + (f" @{r['dropped_at']} by {r['dropped_by']}"
                                             if r["dropped_at"] else "")
        lines.append(f"{r['method']:<12} {status:<24} {r['rounds']:>6} {score:>21} "
                     + (f"{_pct(r['accuracy']):>8} " if extra else "")
                     + f"{gap:>24} {r['ms_per_query']:>9.1f} {r['tokens_per_query']:>12.0f}")
    best = rows[0]
    c = cost(race)
    why = {"winner": "one method is confidently best", "tied": "the survivors are tied within "
           f"±{100 * s.tie_margin:.1f} points", "budget": "the budget ended",
           "episodes": f"the {s.max_rounds} rounds (--max-rounds) ran out"}[race.stopped]
    lines += ["", f"recommended: {race.winner}  (stopped after {race.rounds} rounds: {why}; "
              f"{race.config.shots[0]} shots per class, {race.elapsed:.0f}s in all)",
              f"expected {s.metric} of {race.winner} at {race.config.shots[0]} shots: "
              f"{_pct(best['score'])} [{_pct(best['score_low'])}, {_pct(best['score_high'])}] "
              f"(mean over episodes); one deployment with one such support: "
              f"[{_pct(best['one_episode_low'])}, {_pct(best['one_episode_high'])}] "
              "(prediction interval of a single episode)",
              f"intervals: in points; paired differences to {race.winner} family-wise "
              f"{100 * (1 - s.alpha):.0f}% over every look and pair, each method's mean "
              f"family-wise {100 * (1 - s.alpha):.0f}% over every look and method (Bonferroni, "
              "alpha spent 6/(pi^2 r^2) at look r)",
              f"racing ran the methods for {c['raced_seconds']:.0f}s; every method on all "
              f"{race.rounds} rounds would take about {c['every_method_seconds']:.0f}s "
              f"(saved {c['saved_seconds']:.0f}s)"]
    if race.rounds < 3:
        lines.append(f"warning: {race.rounds} round(s) fit in the budget; intervals need 3 "
                     "(the first scheduled look is after 5), so nothing could be dropped: "
                     "raise --budget")
    for name, why_skipped in race.skipped.items():
        lines.append(f"skipped {name}: {why_skipped}")
    return "\n".join(lines)


def summary(race) -> dict:
    """``recommend.json``: the winner, its shots and config (for export), ranking, looks, cost."""
    def clean(row):
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
    return {"format": 1, "winner": race.winner, "shots": race.config.shots[0],
            "metric": race.settings.metric, "stopped": race.stopped, "rounds": race.rounds,
            "elapsed_seconds": round(race.elapsed, 1), "race": vars(race.settings),
            "config": race.config.to_dict(), "ranking": [clean(r) for r in ranking(race)],
            "looks": [look.to_dict() for look in race.looks], "cost": cost(race),
            "skipped": race.skipped}


def write_race(race, out: Path) -> list[str]:
    """Write the ranking, ``recommend.json`` and the figures into ``out``."""
    out = Path(out)
    text = format_ranking(race)
    write_atomic(out / "ranking.md", "```\n" + text + "\n```\n")
    rows = ranking(race)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(out / "ranking.csv", buf.getvalue())
    write_atomic(out / "recommend.json", json.dumps(summary(race), indent=2, allow_nan=False,
                                                    default=str) + "\n")
    from iclmeta.deploy.race_plots import plot_race, plot_tradeoff
    from iclmeta.report.plots import save_figure
    written = [str(out / n) for n in ("ranking.md", "ranking.csv", "recommend.json")]
    written += save_figure(plot_race(race), out / "race", formats=("png",))
    written += save_figure(plot_tradeoff(race, rows), out / "tradeoff", formats=("png",))
    return written
