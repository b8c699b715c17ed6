"""The report folder behind ``iclmeta report``: markdown, CSV tables and figures.

Accuracy cells are mean ± the 95% t-interval over episodes ("n/a" for one episode); paired
differences use the paired t-interval over the shared episodes, against ``baseline`` or, by
default, against the best method at each shot count (in bold in the accuracy table). Cells
resting on fewer than 10 episodes get a warning line, and so do gradient methods whose support
loss rose after a test-time step; labels whose rows cannot be paired (no query fingerprint) are
named. Beside accuracy: macro-F1, per-class accuracy, a confusion matrix per method and, when
per-label scores were logged, expected calibration error (``iclmeta.report.metrics``).
``files.REPORT_FILES`` says what each written file holds.

>>> written = write_report(["runs/icl", "runs/retrieval"], out="runs/report")  # doctest: +SKIP
>>> print(written.text)  # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from iclmeta.io import write_atomic
from iclmeta.report.files import describe_file
from iclmeta.report.intervals import few_episodes_note
from iclmeta.report.metrics import (calibration, confusion_counts, macro_f1_curve,
                                    metrics_table, per_class_accuracy)
from iclmeta.report.runs import results_path
from iclmeta.data.episodes import shot_text
from iclmeta.report.stats import adapt_curve, load_runs, paired_differences, shot_curve
from iclmeta.report.tables import (accuracy_markdown, calibration_markdown,
                                   differences_heading, differences_markdown)

__all__ = ["WrittenReport", "accuracy_markdown", "differences_markdown", "write_report"]


@dataclass
class WrittenReport:
    """What ``write_report`` produced: the markdown it printed and every file it wrote."""

    text: str
    out: Path
    files: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """'wrote N files to OUT:' and one line per file saying what it holds."""
        names = [Path(f).name for f in self.files]
        width = max(map(len, names), default=0) + 2
        return "\n".join([f"wrote {len(names)} files to {self.out}:"]
                         + [f"  {n.ljust(width)}{describe_file(n)}".rstrip() for n in names])


def _notes(df, curve) -> str:
    episodes = sorted(set(curve["n_episodes"]))
    steps = curve.dropna(subset=["adapt_steps"]).groupby("label", sort=False)["adapt_steps"].max()
    notes = [f"Runs: {', '.join(dict.fromkeys(df['run']))}. Datasets: "
             f"{', '.join(map(str, dict.fromkeys(df['dataset'])))}. Episodes per cell: "
             f"{', '.join(map(str, episodes))}.",
             "Accuracy: mean over episodes ± half-width of the 95% t-interval (n/a: one "
             "episode)."]
    notes += [n for n in (few_episodes_note(curve["n_episodes"]), divergence_note(df)) if n]
    if len(steps):
        notes.append("Gradient methods at their largest adaptation steps: "
                     + ", ".join(f"{lab} {int(s)}" for lab, s in steps.items()) + ".")
    return "\n".join(notes)


def divergence_note(df, rel: float = 0.1, floor: float = 0.01) -> str | None:
    """A warning line naming the labels whose test-time adaptation raised the support loss.

    Rows of gradient methods record the support loss before each SGD step; a loss that rises
    by more than ``rel`` (relative) and ``floor`` (absolute) after a step means the step size
    overshot, and the accuracy of that cell measures a diverging adaptation.
    """
    if "support_losses" not in df:
        return None
    seen: dict = {}
    for label, losses in zip(df["label"], df["support_losses"]):
        if not isinstance(losses, list) or len(losses) < 2:
            continue
        before, after = max(zip(losses, losses[1:]), key=lambda ab: ab[1] - ab[0])
        bad = after - before > max(floor, rel * before)
        n_bad, n, worst = seen.get(label, (0, 0, (0.0, 0.0)))
        if bad and after - before > worst[1] - worst[0]:
            worst = (before, after)
        seen[label] = (n_bad + bad, n + 1, worst)
    parts = [f"{label} in {n_bad} of {n} episode cells (worst: {a:.2f} -> {b:.2f})"
             for label, (n_bad, n, (a, b)) in seen.items() if n_bad]
    if not parts:
        return None
    return ("Warning: test-time adaptation raised the support loss after a step (the step size "
            "overshot) for " + "; ".join(parts) + ". Those cells measure a diverging adaptation: "
            "lower --adapt-lr, choosing it on meta-val classes.")


def _chance(df) -> float | None:
    ways = set(df["ways"])
    return 1 / ways.pop() if len(ways) == 1 and all(ways) else None


def _write_tables(out: Path, frames: dict) -> list[str]:
    files = []
    for name, frame in frames.items():
        if len(frame):
            write_atomic(out / f"{name}.csv", frame.to_csv(index=False))
            files.append(str(out / f"{name}.csv"))
    return files


def _context(df, curve) -> str:
    """'trec, 5-way, 20 episodes' for figure titles."""
    ways = sorted(set(df["ways"]))
    counts = sorted(set(curve["n_episodes"]))
    episodes = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    return ", ".join([", ".join(map(str, dict.fromkeys(df["dataset"]))),
                      "/".join(map(str, ways)) + "-way", f"{episodes} episodes"])


def _write_figures(out: Path, df, curve, diffs, adapt) -> list[str]:
    from iclmeta.report.plots import (label_colors, plot_adapt_curve, plot_paired_differences,
                                      plot_shot_curve, save_figure)

    chance, colors, context = _chance(df), label_colors(curve["label"]), _context(df, curve)
    files = save_figure(plot_shot_curve(curve, chance=chance, colors=colors,
                                        title=f"Accuracy vs shots ({context}; 95% CI)"),
                        out / "shot_curve")
    if len(diffs):
        versus = " with the best at each shot count\n" if diffs.attrs.get("best") else " "
        files += save_figure(plot_paired_differences(
            diffs, title=f"Paired differences{versus}on the same episodes ({context}; 95% CI)"),
            out / "paired_differences")
    if len(adapt):
        files += save_figure(plot_adapt_curve(
            adapt, chance=chance, colors=colors,
            title=f"Accuracy vs test-time adaptation steps ({context}; 95% CI)"),
            out / "adapt_curve")
    return files


def _write_confusions(out: Path, df, per_class, context: str) -> list[str]:
    """One confusion matrix PNG per method, at its largest shot count with recorded queries."""
    from iclmeta.report.confusion import figure_names, plot_confusion
    from iclmeta.report.plots import save_figure

    largest = per_class.groupby("label", sort=False)["shots"].max()
    names, files = figure_names(largest.index), []
    for label, shots in largest.items():
        fig = plot_confusion(*confusion_counts(df, label, shots),
                             title=f"{label} at {shot_text(shots)} shots, pooled over episodes ({context})")
        files += save_figure(fig, out / names[label], formats=("png",))
    return files


def _differences_text(diffs, baseline: str | None) -> str:
    text = ""
    if len(diffs):
        text = differences_heading(diffs, baseline) + "\n\n" + differences_markdown(diffs)
        note = few_episodes_note(diffs["n_pairs"])
        text += f"\n\n{note}" if note else ""
    if diffs.attrs.get("unpaired"):
        text += ("\n\nNot paired (their rows record no query ids, so pairing them could "
                 "compare different queries; rerun them with this version): "
                 + ", ".join(diffs.attrs["unpaired"]) + ".")
    return text.strip()


def _metrics_text(curve, f1, cal) -> str:
    missing = [lab for lab in dict.fromkeys(curve["label"]) if lab not in set(f1["label"])]
    parts = []
    if len(f1):
        parts += ["## Macro-F1 (%) by shots", accuracy_markdown(f1),
                  "Macro-F1: each episode's F1 averaged over its classes, then the mean over "
                  "episodes ± 95% t-interval. Per-class accuracy (queries pooled over episodes) "
                  "is in per_class_accuracy.csv; each method's confusion matrix at its largest "
                  "shot count in confusion_<method>.png."]
    if missing:
        parts.append(f"No macro-F1, per-class accuracy or confusion matrix for {', '.join(missing)}"
                     ": their rows record no gold labels and predictions.")
    if len(cal):
        parts += ["## Expected calibration error (%) by shots", calibration_markdown(cal),
                  "ECE over 10 equal-width confidence bins, pooling every query of a cell "
                  "(queries in brackets; few queries bias it upward). Each query's logged label "
                  "scores become probabilities by a softmax over the episode's labels: for "
                  "language-model log-likelihoods that is the model's distribution over the "
                  "candidates; for metric methods (negative distances or similarities) a "
                  "confidence that depends on the scores' scale (a temperature)."]
    return "\n\n".join(parts)


def write_report(runs, out=None, baseline: str | None = None) -> WrittenReport:
    """Merge run folders and write report.md, CSV tables and PNG/SVG figures into ``out``.

    ``out`` defaults to ``<first run>/report``. Paired differences compare every label with
    ``baseline``, or with the best label at each shot count when it is None (see
    ``paired_differences(versus="best")``). ``WrittenReport.describe()`` lists the files.
    """
    runs = [runs] if isinstance(runs, (str, Path)) else list(runs)
    df = load_runs(runs)
    out = Path(out) if out is not None else results_path(runs[0]).parent / "report"
    curve, adapt = shot_curve(df), adapt_curve(df)
    diffs = paired_differences(df, baseline=baseline, versus="best")
    f1, per_class, cal = macro_f1_curve(df), per_class_accuracy(df), calibration(df)
    sections = ["## Accuracy (%) by shots", accuracy_markdown(curve, diffs.attrs.get("best")),
                _notes(df, curve), _differences_text(diffs, baseline),
                _metrics_text(curve, f1, cal)]
    text = "\n\n".join(part for part in sections if part)
    write_atomic(out / "report.md", text + "\n")
    files = [str(out / "report.md"), *_write_tables(out, {
        "shot_curve": curve, "paired_differences": diffs, "adapt_curve": adapt,
        "metrics": metrics_table(f1, cal), "per_class_accuracy": per_class})]
    files += _write_figures(out, df, curve, diffs, adapt)
    files += _write_confusions(out, df, per_class, _context(df, curve))
    return WrittenReport(text=text, out=out, files=files)
