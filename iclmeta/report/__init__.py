"""Reading runs and reporting them: statistics with paired intervals, tables, plots.

Importing this package loads neither pandas nor matplotlib; they load when a function runs.

>>> from iclmeta.report import load_runs, paired_differences, shot_curve, plot_shot_curve
"""
from iclmeta.report.plots import (label_colors, plot_adapt_curve, plot_paired_differences,
                                  plot_shot_curve, save_figure)
from iclmeta.report.stats import adapt_curve, load_runs, paired_differences, shot_curve

__all__ = ["adapt_curve", "label_colors", "load_runs", "paired_differences", "plot_adapt_curve",
           "plot_paired_differences", "plot_shot_curve", "save_figure", "shot_curve"]
