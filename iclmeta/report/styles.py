"""How each method looks in every figure of a report, and which accuracy range the axis shows.

Colours come from the Okabe–Ito palette (8 colours that stay distinct under the common forms
of colour-blindness). Ten markers cycle beside them, and the line style changes after every 8
labels, so up to 40 labels keep distinct (colour, marker) pairs and print legibly in grey.

Shaded 95% bands help with a few lines and turn to mud with many: up to ``BAND_LIMIT`` labels a
figure draws bands, beyond it thin error bars, nudged sideways so they do not overlap.

The accuracy axis spans the data's intervals plus a margin, not 0-100% or chance-100%:
``y_limits`` computes it, and chance is a line only when it falls inside that range.

>>> styles = label_styles([f"m{i}" for i in range(10)])
>>> len({(s["color"], s["marker"]) for s in styles.values()})
10
>>> import pandas as pd
>>> curve = pd.DataFrame({"mean": [0.8, 0.9], "ci_low": [0.75, 0.85], "ci_high": [0.85, 0.95]})
>>> y_limits(curve)
(73.4, 96.6)
"""
from __future__ import annotations

import math

# Okabe & Ito (2008), "Color Universal Design"; the yellow is last: it is faint on white.
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#CC79A7", "#000000",
             "#F0E442")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h", "<")
LINESTYLES = ("-", "--", "-.", ":")
BAND_LIMIT = 4  # more labels than this: error bars instead of shaded bands
BAND_ALPHA = 0.12
MARGIN = 0.08  # of the data's span, above and below
MIN_SPAN = 5.0  # percentage points: a flat curve still gets a readable axis


def label_styles(labels) -> dict[str, dict]:
    """A fixed colour, marker and line style per label (in label order), shared by every figure.

    Returns ``{label: {"color": ..., "marker": ..., "linestyle": ...}}``; pass the values to
    matplotlib's ``plot`` as keyword arguments.
    """
    out = {}
    for i, label in enumerate(dict.fromkeys(labels)):
        out[label] = {"color": OKABE_ITO[i % len(OKABE_ITO)], "marker": MARKERS[i % len(MARKERS)],
                      "linestyle": LINESTYLES[(i // len(OKABE_ITO)) % len(LINESTYLES)]}
    return out


def label_colors(labels) -> dict:
    """A fixed colour per label (Okabe–Ito in label order), shared by every figure of a report.

    >>> label_colors(["icl", "knn"])
    {'icl': '#0072B2', 'knn': '#E69F00'}
    """
    return {label: style["color"] for label, style in label_styles(labels).items()}


def resolve_styles(labels, colors: dict | None = None, styles: dict | None = None) -> dict:
    """``styles`` if given, else the default styles with any colours from ``colors`` on top."""
    labels = list(dict.fromkeys(labels))
    out = label_styles(labels)
    for label in labels:
        if styles and label in styles:
            out[label] = {**out[label], **styles[label]}
        elif colors and label in colors:
            out[label] = {**out[label], "color": colors[label]}
    return out


def use_bands(n_labels: int) -> bool:
    """Shaded bands for a few labels; error bars beyond ``BAND_LIMIT``."""
    return n_labels <= BAND_LIMIT


def y_limits(curve, margin: float = MARGIN) -> tuple[float, float]:
    """The accuracy axis (percent) from the data: its lowest and highest interval ends, widened
    by ``margin`` of the span on each side, within 0-100. Chance plays no part.

    A missing interval (one episode) counts as its mean.
    """
    low, high = math.inf, -math.inf
    for column in ("mean", "ci_low", "ci_high"):
        values = [100 * float(v) for v in curve[column] if v == v] if column in curve else []
        if values:
            low, high = min(low, *values), max(high, *values)
    if low > high:  # nothing to show
        return 0.0, 100.0
    low, high = max(low, 0.0), min(high, 100.0)
    pad = margin * max(high - low, MIN_SPAN)
    if high - low < MIN_SPAN:
        pad += (MIN_SPAN - (high - low)) / 2
    return round(max(low - pad, 0.0), 2), round(min(high + pad, 100.0), 2)


def chance_in_range(chance: float | None, limits: tuple[float, float]) -> bool:
    """Whether a chance line at ``chance`` (a fraction) is inside the axis ``limits`` (percent)."""
    return chance is not None and limits[0] <= 100 * chance <= limits[1]
