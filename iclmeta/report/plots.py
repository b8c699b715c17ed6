"""Figures for shot-count curves, adaptation curves and paired differences.

Every function takes the tidy frame from ``iclmeta.report.stats`` and returns a matplotlib
``Figure`` drawn on the Agg canvas (no pyplot state, no GUI), or draws into ``ax`` when given
one. matplotlib is imported inside the functions. Colours, markers, line styles, bands and the
accuracy range come from ``iclmeta.report.styles`` so that 9+ methods stay distinct: an
Okabe–Ito colour and a marker per label, shaded bands only for a few labels, and a y-axis
spanning the data (chance is a line only when it falls inside).

>>> from iclmeta.report.stats import load_runs, shot_curve
>>> fig = plot_shot_curve(shot_curve(load_runs("runs/latest")))  # doctest: +SKIP
>>> save_figure(fig, "report/shot_curve")  # doctest: +SKIP
['report/shot_curve.png', 'report/shot_curve.svg']
"""
from __future__ import annotations

import math
from pathlib import Path

from iclmeta.data.episodes import ALL_SHOTS, shot_text
from iclmeta.io import atomic_path
from iclmeta.report.styles import (BAND_ALPHA, MARKERS, OKABE_ITO, chance_in_range,
                                   label_colors, label_styles, resolve_styles, use_bands,
                                   y_limits)

__all__ = ["display_name", "label_colors", "label_styles", "plot_adapt_curve",
           "plot_paired_differences", "plot_shot_curve", "save_figure"]


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


def display_name(label: str, group) -> str:
    """The legend text: gradient methods say how many adaptation steps their points use."""
    steps = group["adapt_steps"].max() if "adapt_steps" in group else math.nan
    return label if math.isnan(steps) else f"{label} ({int(steps)} steps)"


def _nudge(ax, i: int, n: int):
    """Data coordinates shifted sideways by a few points per label, so error bars of many
    labels at one x sit side by side instead of on top of each other."""
    from matplotlib.transforms import ScaledTranslation

    offset = (i - (n - 1) / 2) * min(0.04, 0.3 / max(n, 1))  # inches
    return ax.transData + ScaledTranslation(offset, 0, ax.figure.dpi_scale_trans)


def _curve(ax, x, g, style, name, bands: bool, transform=None):
    """One label's line; its 95% interval as a band (few labels) or thin error bars (many)."""
    lo, hi = (100 * g["ci_low"].clip(0, 1)), (100 * g["ci_high"].clip(0, 1))
    mean = 100 * g["mean"]
    transform = transform or ax.transData
    ax.plot(x, mean, ms=5, lw=1.8, label=name, transform=transform, **style)
    has_ci = lo.notna() & hi.notna()  # NaN (one episode): no interval
    if bands and len(g) > 1:
        ax.fill_between(x, lo, hi, color=style["color"], alpha=BAND_ALPHA, lw=0)
    elif has_ci.any():  # many labels, or a one-point band with no width: error bars
        ax.errorbar(x[has_ci], mean[has_ci], yerr=[(mean - lo)[has_ci], (hi - mean)[has_ci]],
                    fmt="none", ecolor=style["color"], elinewidth=1, capsize=2, alpha=0.8,
                    transform=transform)


def x_positions(shots) -> dict:
    """Where each shot count sits on the x-axis: itself, and ``all`` one doubling past the
    largest count (its examples per class differ by class; the tick says "all").

    >>> x_positions([0, 4, 1000000])
    {0: 0, 4: 4, 1000000: 8}
    """
    finite = [k for k in shots if k != ALL_SHOTS]
    return {k: (k if k != ALL_SHOTS else 2 * max(max(finite, default=1), 1)) for k in shots}


def _finish(ax, xlabel: str, ticks, chance: float | None, limits: tuple[float, float],
            tick_labels=None):
    """Ticks, grid, the data's accuracy range, and chance: a line inside it, else a note."""
    ax.set_ylim(*limits)
    if chance_in_range(chance, limits):
        ax.axhline(100 * chance, color="0.45", lw=1, ls=":", label=f"chance ({chance:.0%})")
    elif chance is not None:
        where = "below" if 100 * chance < limits[0] else "above"
        ax.annotate(f"chance {chance:.0%} ({where} the axis)", xy=(0.01, 0.01 if where ==
                    "below" else 0.97), xycoords="axes fraction", fontsize=8, color="0.35",
                    va="bottom" if where == "below" else "top")
    _x_limits(ax, ticks)
    ax.set_xlabel(xlabel)
    ax.set_xticks(list(ticks), tick_labels or [str(int(t)) for t in ticks])
    ax.minorticks_off()
    ax.grid(alpha=0.3)


def _x_limits(ax, ticks, margin: float = 0.05):
    """The x range of the ticks plus a margin in the axis' own scale (symlog or linear): room
    for nudged error bars, which autoscaling does not see."""
    scale = ax.xaxis.get_transform()
    low, high = scale.transform([[min(ticks)], [max(ticks)]])[:, 0]
    pad = margin * (high - low) if high > low else 0.5
    ax.set_xlim(*scale.inverted().transform([[low - pad], [high + pad]])[:, 0])


def _legend(ax, curve, ncol: int = 1):
    """Legend ordered by each line's last value, top first, so it reads like the plot."""
    last = {display_name(lab, g): g.sort_values("shots")["mean"].iloc[-1]
            for lab, g in curve.groupby("label", sort=False)}
    handles, names = ax.get_legend_handles_labels()
    order = sorted(range(len(names)), key=lambda i: -last.get(names[i], -1))
    ax.legend([handles[i] for i in order], [names[i] for i in order], fontsize=9, ncol=ncol,
              loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0, frameon=False)


def plot_shot_curve(curve, ax=None, title: str | None = None, chance: float | None = None,
                    colors: dict | None = None, styles: dict | None = None):
    """Accuracy (%) against shots per class, one line per label with its 95% interval.

    Each label has its own colour, marker and line style (``label_styles``); up to
    ``BAND_LIMIT`` labels the intervals are shaded bands, beyond it thin error bars. A label
    measured only at 0 shots (zero-shot) is a dashed horizontal reference line. The y-axis spans
    the data's intervals (``y_limits``); ``chance`` (e.g. 1/ways) is a dotted line when inside
    it, else a note. ``colors`` (label -> colour) or ``styles`` override the defaults.
    """
    fig, (ax,) = _axes(ax, (7.5, 4.5))
    labels = list(dict.fromkeys(curve["label"]))
    styles, bands = resolve_styles(labels, colors, styles), use_bands(len(labels))
    shots = sorted(curve["shots"].unique())
    where = x_positions(shots)
    for i, (label, g) in enumerate(curve.groupby("label", sort=False)):
        g = g.sort_values("shots")
        if len(shots) > 1 and list(g["shots"]) == [0]:
            _reference_line(ax, g, styles[label], display_name(label, g), bands)
        else:
            _curve(ax, g["shots"].map(where), g, styles[label], display_name(label, g), bands,
                   None if bands else _nudge(ax, i, len(labels)))
    ax.set_xscale("symlog", linthresh=1, linscale=0.6)  # 0 stays on the axis; 1, 4, 16 spread
    _finish(ax, "shots per class (K)", [where[k] for k in shots], chance, y_limits(curve),
            [shot_text(k) for k in shots])
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title or "Accuracy vs number of shots (mean, 95% CI over episodes)", fontsize=11)
    _legend(ax, curve)
    return fig


def _reference_line(ax, g, style, name, band: bool):
    mean, lo, hi = (100 * float(g[c].iloc[0]) for c in ("mean", "ci_low", "ci_high"))
    ax.axhline(mean, color=style["color"], lw=1.5, ls="--", label=f"{name} (K=0)")
    if band and lo == lo:  # one episode has no interval (NaN): no band
        ax.axhspan(max(lo, 0), min(hi, 100), color=style["color"], alpha=BAND_ALPHA / 2, lw=0)


def plot_adapt_curve(curve, title: str | None = None, chance: float | None = None,
                     colors: dict | None = None, styles: dict | None = None):
    """Accuracy (%) against test-time adaptation steps, one panel per shot count."""
    shots = sorted(curve["shots"].unique())
    fig, axes = _axes(None, (3.4 * len(shots) + 2.2, 4), ncols=len(shots))
    labels = list(dict.fromkeys(curve["label"]))
    styles, bands = resolve_styles(labels, colors, styles), use_bands(len(labels))
    limits = y_limits(curve)  # shared y: from every panel's data
    for ax, k in zip(axes, shots):
        for label, g in curve[curve["shots"] == k].groupby("label", sort=False):
            g = g.sort_values("adapt_steps")
            _curve(ax, g["adapt_steps"], g, styles[label], label, bands,
                   None if bands else _nudge(ax, labels.index(label), len(labels)))
        _finish(ax, "adaptation steps", sorted(curve["adapt_steps"].unique()), chance, limits)
        ax.set_title(f"{shot_text(k)}-shot", fontsize=10)
    axes[0].set_ylabel("accuracy (%)")
    handles, names = axes[0].get_legend_handles_labels()
    axes[-1].legend(handles, names, fontsize=9, loc="upper left", bbox_to_anchor=(1.02, 1),
                    borderaxespad=0, frameon=False)
    fig.suptitle(title or "Accuracy vs test-time adaptation steps (mean, 95% CI)", fontsize=11)
    return fig


def plot_paired_differences(diffs, ax=None, title: str | None = None):
    """Forest plot of paired differences A − B (percentage points), one marker per shot count."""
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
        ax.errorbar(100 * g["diff"], y, xerr=err, fmt=MARKERS[j % len(MARKERS)], ms=5,
                    capsize=3, color=OKABE_ITO[j % len(OKABE_ITO)], label=f"{shot_text(k)}-shot")
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
