"""Confusion-matrix figures: one per method, at its largest shot count.

The largest shot count is where methods are usually compared and where the errors that remain
are the ones worth reading; one figure per method keeps a report of many methods and shot
counts small (``per_class_accuracy.csv`` has every shot count). Counts are pooled over
episodes; each cell's colour is the share of the gold class's queries (rows sum to 1), so
classes with fewer queries read the same. Cell size and fonts shrink with the number of classes
and long names are shortened, so up to about 50 classes stay legible; counts are written in the
cells up to ``ANNOTATE_LIMIT`` classes.

>>> fig = plot_confusion(["a", "b"], ["a", "b"], [[3, 1], [0, 4]], title="knn, 4-shot")
>>> [t.get_text() for t in fig.axes[0].get_xticklabels()]
['a', 'b']
"""
from __future__ import annotations

import re
import textwrap

ANNOTATE_LIMIT = 15
NAME_LIMIT = 24  # characters of a class name shown on an axis


def _short(name: str) -> str:
    return name if len(name) <= NAME_LIMIT else name[:NAME_LIMIT - 1] + "…"


def _sizes(n: int) -> tuple[float, float]:
    """Inches per cell and font size (points) for ``n`` rows or columns."""
    if n <= ANNOTATE_LIMIT:
        return 0.42, 9.0
    if n <= 30:
        return 0.26, 7.0
    return 0.19, 5.5


def plot_confusion(classes, predicted, counts, title: str | None = None):
    """Gold classes down, predicted labels across; colour = share of the row, numbers = counts.

    ``predicted`` lists the classes first, then any prediction outside them (shown as is).
    Returns a matplotlib Figure on the Agg canvas.
    """
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    matrix = np.asarray(counts, dtype=float).reshape(len(classes), len(predicted))
    totals = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    cell, font = _sizes(max(len(classes), len(predicted)))
    longest = max(len(_short(str(c))) for c in [*classes, *predicted])
    label_room = 0.6 + longest * font * 0.55 / 72  # inches taken by tick labels
    fig = Figure(figsize=(cell * len(predicted) + label_room + 1.6,
                          cell * len(classes) + label_room + 0.9), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1, aspect="equal",
                      interpolation="nearest")
    ax.set_xticks(range(len(predicted)), [_short(str(p)) for p in predicted], rotation=90,
                  fontsize=font)
    ax.set_yticks(range(len(classes)), [_short(str(c)) for c in classes], fontsize=font)
    ax.set_xlabel("predicted label", fontsize=max(font, 8))
    ax.set_ylabel("gold label", fontsize=max(font, 8))
    ax.tick_params(length=2, pad=2)
    if len(classes) <= ANNOTATE_LIMIT and len(predicted) <= ANNOTATE_LIMIT:
        for (i, j), n in np.ndenumerate(matrix):
            if n:
                ax.text(j, i, f"{int(n)}", ha="center", va="center", fontsize=font - 1,
                        color="white" if share[i, j] > 0.6 else "black")
    bar = fig.colorbar(image, ax=ax, shrink=0.6 if len(classes) > 8 else 0.9)
    bar.set_label("share of the gold class's queries", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    # wrapped to the figure's width (about 12 characters of 10-point text per inch)
    ax.set_title(textwrap.fill(title or "Confusion matrix (pooled over episodes)",
                               int(11 * fig.get_figwidth())), fontsize=10)
    return fig


def figure_names(labels) -> dict[str, str]:
    """A distinct file stem per label: ``confusion_<label>``, other characters replaced by _.

    >>> figure_names(["icl", "icl [run a]", "icl/run_a"])
    ... # doctest: +NORMALIZE_WHITESPACE
    {'icl': 'confusion_icl', 'icl [run a]': 'confusion_icl_run_a',
     'icl/run_a': 'confusion_icl_run_a_2'}
    """
    out, used = {}, set()
    for label in dict.fromkeys(labels):
        slug = re.sub(r"[^A-Za-z0-9.+-]+", "_", str(label)).strip("_.")
        stem = f"confusion_{slug or 'method'}"
        name, i = stem, 2
        while name in used:
            name, i = f"{stem}_{i}", i + 1
        used.add(name)
        out[label] = name
    return out
