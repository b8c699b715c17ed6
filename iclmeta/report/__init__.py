"""Reading runs and reporting them: statistics with paired intervals, tables, plots.

>>> from iclmeta.report import load_runs, paired_differences, shot_curve
"""
from iclmeta.report.stats import load_runs, paired_differences, shot_curve

__all__ = ["load_runs", "paired_differences", "shot_curve"]
