"""Reading runs and reporting them: statistics with paired intervals, tables, plots.

Importing this package loads neither pandas nor matplotlib; they load when a function runs.

>>> from iclmeta.report import load_runs, paired_differences, shot_curve, plot_shot_curve
"""
from iclmeta.report.confusion import plot_confusion
from iclmeta.report.metrics import (calibration, confusion_counts, macro_f1_curve,
                                    per_class_accuracy)
from iclmeta.report.plots import (label_colors, label_styles, plot_adapt_curve,
                                  plot_paired_differences, plot_shot_curve, save_figure)
from iclmeta.report.stats import (adapt_curve, best_labels, load_runs, paired_differences,
                                  shot_curve)

__all__ = ["adapt_curve", "best_labels", "calibration", "confusion_counts", "label_colors",
           "label_styles", "load_runs", "macro_f1_curve", "paired_differences",
           "per_class_accuracy", "plot_adapt_curve", "plot_confusion", "plot_paired_differences",
           "plot_shot_curve", "save_figure", "shot_curve"]
