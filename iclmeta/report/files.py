"""What each file of a report folder holds: one table for ``WrittenReport.describe()`` and
for the help of ``iclmeta report`` (kept light: no pandas or matplotlib).

>>> describe_file("confusion_icl.png")
'confusion matrix of that method at its largest shot count (pooled over episodes)'
>>> print(files_help().splitlines()[2])
  report.md                the tables and notes that 'iclmeta report' prints
"""
from __future__ import annotations

import textwrap
from fnmatch import fnmatch

# (file name or pattern, what it holds); the order is the order of the help text.
REPORT_FILES = (
    ("report.md", "the tables and notes that 'iclmeta report' prints (markdown)"),
    ("shot_curve.csv", "mean accuracy and 95% CI over episodes per method and shot count"),
    ("shot_curve.png", "accuracy vs shots, one line per method with its 95% CI"),
    ("paired_differences.csv", "paired differences with the best method at each shot count "
     "(or --baseline): mean, 95% CI, win and tie rates"),
    ("paired_differences.png", "forest plot of those paired differences"),
    ("adapt_curve.csv", "gradient methods: accuracy per test-time adaptation step"),
    ("adapt_curve.png", "gradient methods: accuracy vs adaptation steps"),
    ("metrics.csv", "macro-F1 (mean and 95% CI over episodes) per method and shot count; "
     "expected calibration error when the runs logged per-label scores (--log-scores)"),
    ("per_class_accuracy.csv", "accuracy of each class per method and shot count (queries "
     "pooled over episodes)"),
    ("confusion_*.png", "confusion matrix of that method at its largest shot count (pooled "
     "over episodes)"),
)
SVG_NOTE = "the same figure as SVG"


def describe_file(name: str) -> str:
    """What the report file ``name`` holds ('' for a name the report does not write)."""
    for pattern, text in REPORT_FILES:
        if fnmatch(name, pattern):
            return text
        if name.endswith(".svg") and fnmatch(name[:-4] + ".png", pattern):
            return SVG_NOTE
    return ""


def files_help(width: int = 79) -> str:
    """The list of report files for ``iclmeta report --help``, wrapped to ``width`` columns."""
    column = max(len(p) for p, _ in REPORT_FILES) + 3
    lines = textwrap.wrap("files written to --out (a file appears only when there is data for "
                          "it; the curves and differences also as SVG):", width)
    for pattern, text in REPORT_FILES:
        lines += textwrap.wrap(text, width, initial_indent="  " + pattern.ljust(column),
                               subsequent_indent=" " * (column + 2))
    return "\n".join(lines)
