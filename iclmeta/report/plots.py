"""Figures for shot-count curves, adaptation curves and paired differences.

Every function takes the tidy frame from ``iclmeta.report.stats`` and returns a matplotlib
``Figure`` drawn on the Agg canvas (no pyplot state, no GUI), or draws into ``ax`` when given
one. matplotlib is imported inside the functions.

>>> from iclmeta.report.stats import load_runs, shot_curve
>>> fig = plot_shot_curve(shot_curve(load_runs("runs/latest")))  # doctest: +SKIP
>>> save_figure(fig, "report/shot_curve")  # doctest: +SKIP
['report/shot_curve.png', 'report/shot_curve.svg']
"""
from __future__ import annotations

import math
from pathlib import Path

from iclmeta.io import atomic_path


def _axes(ax, size: tuple[float, float], ncols: int = 1):
    """A new Agg figure with ``ncols`` axes, or the figure of the given axes."""
    if ax is not None:
        return ax.figure, [ax]
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, sharey=True, squeeze=False)[0]
    return fig, list(axes)


def label_colors(labels) -> dict:
    """A fixed colour per label (tab10 in label order), shared by every figure of a report."""
    from matplotlib import colormaps

    palette = colormaps["tab10"].colors
    return {label: palette[i % len(palette)] for i, label in enumerate(dict.fromkeys(labels))}


def display_name(label: str, group) -> str:
    """The legend text: gradient methods say how many adaptation steps their points use."""
    steps = group["adapt_steps"].max() if "adapt_steps" in group else math.nan
    return label if math.isnan(steps) else f"{label} ({int(steps)} steps)"


def _curve(ax, x, g, color, name, marker="o"):
    lo, hi = (100 * g["ci_low"].clip(0, 1)), (100 * g["ci_high"].clip(0, 1))
    ax.plot(x, 100 * g["mean"], marker=marker, ms=5, lw=2, color=color, label=name)
    ax.fill_between(x, lo, hi, color=color, alpha=0.18, lw=0)  # NaN (one episode): no band
    if len(g) == 1 and lo.notna().all():  # a one-point band has no width: an error bar
        mean = 100 * g["mean"]
        ax.errorbar(x, mean, yerr=[mean - lo, hi - mean], color=color, capsize=4, lw=1.5)


def _finish(ax, xlabel: str, ticks, chance: float | None):
    if chance:
        ax.axhline(100 * chance, color="0.45", lw=1, ls=":", label=f"chance ({chance:.0%})")
    ax.set_xlabel(xlabel)
    ax.set_xticks(list(ticks), [str(int(t)) for t in ticks])
    ax.minorticks_off()
    ax.grid(alpha=0.3)


def _clamp_percent(ax):
    """Accuracy axes never extend past 0-100%, whatever the CI bands say."""
    low, high = ax.get_ylim()
    ax.set_ylim(max(low, 0), min(high, 100))


def _legend(ax, curve, ncol: int = 1):
    """Legend ordered by each line's last value, top first, so it reads like the plot."""
    last = {display_name(lab, g): g.sort_values("shots")["mean"].iloc[-1]
            for lab, g in curve.groupby("label", sort=False)}
    handles, names = ax.get_legend_handles_labels()
    order = sorted(range(len(names)), key=lambda i: -last.get(names[i], -1))
    ax.legend([handles[i] for i in order], [names[i] for i in order], fontsize=9, ncol=ncol,
              loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0, frameon=False)


def plot_shot_curve(curve, ax=None, title: str | None = None, chance: float | None = None,
                    colors: dict | None = None):
    """Accuracy (%) against shots per class, one line per label with its 95% CI band.

    A label measured only at 0 shots (zero-shot) is a dashed horizontal reference line.
    ``chance`` (e.g. 1/ways) adds a dotted chance line; ``colors`` maps label -> colour.
    """
    fig, (ax,) = _axes(ax, (7.5, 4.5))
    colors = colors or label_colors(curve["label"])
    shots = sorted(curve["shots"].unique())
    for label, g in curve.groupby("label", sort=False):
        g = g.sort_values("shots")
        if len(shots) > 1 and list(g["shots"]) == [0]:
            _reference_line(ax, g, colors[label], display_name(label, g))
        else:
            _curve(ax, g["shots"], g, colors[label], display_name(label, g))
    ax.set_xscale("symlog", linthresh=1, linscale=0.6)  # 0 stays on the axis; 1, 4, 16 spread
    _finish(ax, "shots per class (K)", shots, chance)
    _clamp_percent(ax)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title or "Accuracy vs number of shots (mean, 95% CI over episodes)", fontsize=11)
    _legend(ax, curve)
    return fig


def _reference_line(ax, g, color, name):
    mean, lo, hi = (100 * float(g[c].iloc[0]) for c in ("mean", "ci_low", "ci_high"))
    ax.axhline(mean, color=color, lw=1.5, ls="--", label=f"{name} (K=0)")
    if lo == lo:  # one episode has no interval (NaN): no band
        ax.axhspan(max(lo, 0), min(hi, 100), color=color, alpha=0.08, lw=0)


def plot_adapt_curve(curve, title: str | None = None, chance: float | None = None,
                     colors: dict | None = None):
    """Accuracy (%) against test-time adaptation steps, one panel per shot count."""
    shots = sorted(curve["shots"].unique())
    fig, axes = _axes(None, (3.4 * len(shots) + 2.2, 4), ncols=len(shots))
    colors = colors or label_colors(curve["label"])
    for ax, k in zip(axes, shots):
        for label, g in curve[curve["shots"] == k].groupby("label", sort=False):
            g = g.sort_values("adapt_steps")
            _curve(ax, g["adapt_steps"], g, colors[label], label)
        _finish(ax, "adaptation steps", sorted(curve["adapt_steps"].unique()), chance)
        ax.set_title(f"{k}-shot", fontsize=10)
    _clamp_percent(axes[0])  # shared y: once, after every panel has its data
    axes[0].set_ylabel("accuracy (%)")
    handles, names = axes[0].get_legend_handles_labels()
    axes[-1].legend(handles, names, fontsize=9, loc="upper left", bbox_to_anchor=(1.02, 1),
                    borderaxespad=0, frameon=False)
    fig.suptitle(title or "Accuracy vs test-time adaptation steps (mean, 95% CI)", fontsize=11)
    return fig


def plot_paired_differences(diffs, ax=None, title: str | None = None):
    """Forest plot of paired differences A − B (percentage points), one marker per shot count."""
    from matplotlib import colormaps

    pairs = list(dict.fromkeys(zip(diffs["a"], diffs["b"])))
    shots = sorted(diffs["shots"].unique())
    fig, (ax,) = _axes(ax, (7.5, max(2.6, 1.3 + 0.2 * len(pairs) * len(shots))))
    step = 0.76 / max(len(shots), 1)
    for j, k in enumerate(shots):
        g = diffs[diffs["shots"] == k]
        y = [len(pairs) - 1 - pairs.index(p) + 0.38 - (j + 0.5) * step for p in zip(g["a"], g["b"])]
        # one paired episode has no interval (NaN): a bare marker
        err = [100 * (g["diff"] - g["ci_low"]).fillna(0),
               100 * (g["ci_high"] - g["diff"]).fillna(0)]
        color = colormaps["viridis"](j / max(len(shots) - 1, 1) * 0.9)
        ax.errorbar(100 * g["diff"], y, xerr=err, fmt="o", ms=5, capsize=3, color=color,
                    label=f"{k}-shot")
    for i in range(0, len(pairs), 2):  # banding keeps each comparison's markers together
        ax.axhspan(i - 0.5, i + 0.5, color="0.94", lw=0, zorder=0)
    ax.axvline(0, color="0.3", lw=1)
    ax.set_yticks(range(len(pairs)), [f"{a} − {b}" for a, b in reversed(pairs)])
    ax.set_ylim(-0.5, len(pairs) - 0.5)
    ax.set_xlabel("accuracy difference A − B (percentage points; right of 0: A better)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(title="shots", fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1),
              borderaxespad=0, frameon=False)
    ax.set_title(title or "Paired differences on the same episodes (95% paired t-interval)",
                 fontsize=11)
    return fig


def save_figure(fig, stem: str | Path, formats=("png", "svg")) -> list[str]:
    """Write ``stem.png`` and ``stem.svg`` atomically (temporary file, then rename)."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=150)
        written.append(str(path))
    return written
