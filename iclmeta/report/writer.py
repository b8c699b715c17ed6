"""The report folder behind ``iclmeta report``: markdown, CSV tables and figures.

Accuracy cells are mean ± the 95% t-interval over episodes ("n/a" for one episode); paired
differences use the paired t-interval over the shared episodes. Cells resting on fewer than 10
episodes get a warning line; labels whose rows cannot be paired (no query fingerprint) are named.

>>> written = write_report(["runs/icl", "runs/retrieval"], out="runs/report")  # doctest: +SKIP
>>> print(written.text)  # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from iclmeta.io import write_atomic
from iclmeta.report.intervals import few_episodes_note, format_ci
from iclmeta.report.stats import adapt_curve, load_runs, paired_differences, shot_curve
from iclmeta.report.runs import results_path


@dataclass
class WrittenReport:
    """What ``write_report`` produced: the markdown it printed and every file it wrote."""

    text: str
    out: Path
    files: list[str] = field(default_factory=list)

    def describe(self) -> str:
        names = ", ".join(Path(f).name for f in self.files)
        return f"wrote {len(self.files)} files to {self.out}: {names}"


def _pct(value: float, sign: bool = False) -> str:
    return f"{100 * value:+.1f}" if sign else f"{100 * value:.1f}"


def accuracy_markdown(curve) -> str:
    """Methods as rows, shot counts as columns: ``mean ± 95% CI`` accuracy in percent.

    >>> import pandas as pd
    >>> curve = pd.DataFrame({"label": ["icl"], "shots": [1], "mean": [0.5], "ci95": [0.1],
    ...                       "n_episodes": [6], "adapt_steps": [float("nan")]})
    >>> print(accuracy_markdown(curve).splitlines()[2])
    | icl | 50.0 ± 10.0 |
    >>> print(accuracy_markdown(curve.assign(ci95=float("nan"))).splitlines()[2])
    | icl | 50.0 ± n/a |
    """
    shots = sorted(curve["shots"].unique())
    lines = ["| method | " + " | ".join(f"{k}-shot" for k in shots) + " |",
             "|---" * (len(shots) + 1) + "|"]
    for label, g in curve.groupby("label", sort=False):
        cells = {k: format_ci(m, c) for k, m, c in zip(g["shots"], g["mean"], g["ci95"])}
        lines.append(f"| {label} | " + " | ".join(cells.get(k, "—") for k in shots) + " |")
    return "\n".join(lines)


def differences_markdown(diffs) -> str:
    """One line per comparison and shot count: A − B in points, paired t-interval, win rate."""
    lines = ["| comparison | shots | A − B (pts) | 95% CI | A better | tie | episodes |",
             "|---|---|---|---|---|---|---|"]
    for r in diffs.itertuples():
        ci = "n/a" if r.ci_low != r.ci_low else \
            f"[{_pct(r.ci_low, True)}, {_pct(r.ci_high, True)}]"
        lines.append(f"| {r.a} − {r.b} | {r.shots} | {_pct(r.diff, True)} | {ci} | "
                     f"{r.frac_a_better:.0%} | {r.frac_tie:.0%} | {r.n_pairs} |")
    return "\n".join(lines)


def _notes(df, curve) -> str:
    episodes = sorted(set(curve["n_episodes"]))
    steps = curve.dropna(subset=["adapt_steps"]).groupby("label", sort=False)["adapt_steps"].max()
    notes = [f"Runs: {', '.join(dict.fromkeys(df['run']))}. Datasets: "
             f"{', '.join(map(str, dict.fromkeys(df['dataset'])))}. Episodes per cell: "
             f"{', '.join(map(str, episodes))}.",
             "Accuracy: mean over episodes ± half-width of the 95% t-interval (n/a: one "
             "episode)."]
    note = few_episodes_note(curve["n_episodes"])
    if note:
        notes.append(note)
    if len(steps):
        notes.append("Gradient methods at their largest adaptation steps: "
                     + ", ".join(f"{lab} {int(s)}" for lab, s in steps.items()) + ".")
    return "\n".join(notes)


def _chance(df) -> float | None:
    ways = set(df["ways"])
    return 1 / ways.pop() if len(ways) == 1 and all(ways) else None


def _write_tables(out: Path, curve, diffs, adapt) -> list[str]:
    files = []
    for name, frame in (("shot_curve", curve), ("paired_differences", diffs),
                        ("adapt_curve", adapt)):
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
        files += save_figure(plot_paired_differences(
            diffs, title=f"Paired differences on the same episodes ({context}; 95% CI)"),
            out / "paired_differences")
    if len(adapt):
        files += save_figure(plot_adapt_curve(
            adapt, chance=chance, colors=colors,
            title=f"Accuracy vs test-time adaptation steps ({context}; 95% CI)"),
            out / "adapt_curve")
    return files


def write_report(runs, out=None, baseline: str | None = None) -> WrittenReport:
    """Merge run folders and write report.md, CSV tables and PNG/SVG figures into ``out``.

    ``out`` defaults to ``<first run>/report``. Paired differences compare every label with
    ``baseline``, or every pair when it is None (see ``paired_differences``).
    """
    runs = [runs] if isinstance(runs, (str, Path)) else list(runs)
    df = load_runs(runs)
    out = Path(out) if out is not None else results_path(runs[0]).parent / "report"
    curve, adapt = shot_curve(df), adapt_curve(df)
    diffs = paired_differences(df, baseline=baseline)
    text = "\n\n".join(["## Accuracy (%) by shots", accuracy_markdown(curve), _notes(df, curve)])
    if len(diffs):
        text += ("\n\n## Paired differences (same episodes and queries; 95% CI: paired "
                 "t-interval over episodes)\n\n" + differences_markdown(diffs))
        note = few_episodes_note(diffs["n_pairs"])
        text += f"\n\n{note}" if note else ""
    if diffs.attrs.get("unpaired"):
        text += ("\n\nNot paired (their rows record no query ids, so pairing them could "
                 "compare different queries; rerun them with this version): "
                 + ", ".join(diffs.attrs["unpaired"]) + ".")
    write_atomic(out / "report.md", text + "\n")
    files = [str(out / "report.md"), *_write_tables(out, curve, diffs, adapt)]
    files += _write_figures(out, df, curve, diffs, adapt)
    return WrittenReport(text=text, out=out, files=files)
