"""The two figures of a recommend folder, drawn on the Agg canvas (no pyplot state)."""
from __future__ import annotations

import math

from iclmeta.report.styles import label_styles


def _figure(size=(6.4, 4.0)):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots()


def plot_race(race):
    """Each method's running mean score against rounds; an x marks where it was dropped."""
    fig, ax = _figure()
    styles = label_styles(list(race.entries))
    for name, e in race.entries.items():
        if not e.scores:
            continue
        running = [sum(e.scores[:i + 1]) / (i + 1) for i in range(len(e.scores))]
        xs = list(range(1, len(running) + 1))
        ax.plot(xs, [100 * v for v in running], color=styles[name]["color"],
                marker=styles[name].get("marker", "o"), markersize=3, label=name)
        if e.dropped_at:
            ax.plot([xs[-1]], [100 * running[-1]], marker="x", color="black", markersize=8)
    for look in race.looks:
        ax.axvline(look.rounds, color="0.85", linewidth=0.8, zorder=0)
    ax.set_xlabel("round (episodes per method; grey lines: looks)")
    ax.set_ylabel(f"running mean {race.settings.metric} (%)")
    ax.set_title(f"recommend race: {race.winner} ({race.stopped})")
    ax.legend(fontsize="small", ncols=2)
    return fig


def plot_tradeoff(race, rows):
    """Score against milliseconds per query (log scale), one labelled point per method."""
    fig, ax = _figure()
    styles = label_styles([r["method"] for r in rows])
    for r in rows:
        if math.isnan(r["score"]):
            continue
        ms = max(r["ms_per_query"], 1e-3)
        ax.scatter([ms], [100 * r["score"]], color=styles[r["method"]]["color"],
                   marker="*" if r["method"] == race.winner else "o",
                   s=120 if r["method"] == race.winner else 40, zorder=3)
        ax.annotate(r["method"], (ms, 100 * r["score"]), textcoords="offset points",
                    xytext=(5, 4), fontsize="small")
    ax.set_xscale("log")
    ax.set_xlabel("milliseconds per query (log scale)")
    ax.set_ylabel(f"{race.settings.metric} (%)")
    ax.set_title("accuracy against latency (star: recommended)")
    return fig
