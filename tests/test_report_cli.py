"""Shot-count reports: loading runs, curves, honest pairing, the CLI and the notebook."""
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from iclmeta.cli.main import main
from iclmeta.errors import UserError
from iclmeta.report.writer import write_report
from iclmeta.data.episodes import query_hash
from iclmeta.report.stats import adapt_curve, load_runs, paired_differences, shot_curve, summarize

ROOT = Path(__file__).resolve().parents[1]
SHOTS = (0, 1, 4)
# Expected accuracy by method and shot count; "icl+0.1" is icl shifted on every episode.
BASE = {"icl": {0: 0.35, 1: 0.5, 4: 0.65}, "retrieval": {0: 0.35, 1: 0.6, 4: 0.72}}


def row(method, shots, episode, accuracy, label=None, model="smollm2", options=None, **extra):
    return {"dataset": "trec", "split": "meta-test", "class_split": "all", "split_seed": 0,
            "ways": 5, "shots": shots, "k": 5 * shots, "support_size": 5 * shots,
            "episode": episode, "seed": 0, "query_hash": query_hash([f"q{episode}"]),
            "method": method,
            "label": label or method, "accuracy": accuracy, "n_queries": 25,
            "n_correct": round(25 * accuracy), "model": model, "embedder": "minilm",
            "options": options or {}, "seconds": 0.1, "prompt_tokens": 100, **extra}


def make_rows(episodes=6, seed=0, models="smollm2"):
    """icl, retrieval, a copy of icl, icl+0.1, zero-shot and maml with adapt_steps 0/1/5."""
    rng, rows = random.Random(seed), []
    for ep in range(episodes):
        noise = {s: rng.uniform(-0.1, 0.1) for s in SHOTS}
        rows.append(row("zero-shot", 0, ep, 0.3 + noise[0], model=models))
        for s in SHOTS:
            icl = round(BASE["icl"][s] + noise[s], 2)
            rows += [row("icl", s, ep, icl, model=models),
                     row("retrieval", s, ep, BASE["retrieval"][s] + rng.uniform(-0.1, 0.1)),
                     row("icl", s, ep, icl, label="icl-copy"),
                     row("icl", s, ep, icl + 0.1, label="icl+0.1")]
            rows += [row("maml", s, ep, 0.3 + 0.02 * k * s + noise[s], adapt_steps=k,
                         options={"inner_lr": 0.01}) for k in (0, 1, 5)]
    return rows


def write_run(folder: Path, rows) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


@pytest.fixture()
def run(tmp_path):
    return write_run(tmp_path / "run-a", make_rows())


def test_load_runs_and_shot_curve(run):
    df = load_runs(run)
    assert len(df) == 6 * (1 + 3 * 4 + 3 * 3) and set(df["run"]) == {"run-a"}
    curve = shot_curve(df)
    assert list(dict.fromkeys(curve["label"])) == ["zero-shot", "icl", "retrieval", "icl-copy",
                                                   "icl+0.1", "maml"]
    icl = curve[curve["label"] == "icl"].set_index("shots")
    expected = df[(df["label"] == "icl") & (df["shots"] == 4)]["accuracy"].mean()
    assert icl.loc[4, "mean"] == pytest.approx(expected)
    assert (icl["ci_low"] < icl["mean"]).all() and (icl["n_episodes"] == 6).all()
    maml = curve[curve["label"] == "maml"]
    assert (maml["adapt_steps"] == 5).all() and (maml["n_episodes"] == 6).all()
    # the row-dict summary used by the harness agrees on the final adaptation step
    rows = df.to_dict("records")
    for r in rows:
        r["adapt_steps"] = None if r["adapt_steps"] != r["adapt_steps"] else r["adapt_steps"]
    summary = {(s["label"], s["shots"]): s for s in summarize(rows)}
    assert summary[("maml", 4)]["mean"] == pytest.approx(
        maml.set_index("shots").loc[4, "mean"])


def test_adapt_curve_has_every_step(run):
    curve = adapt_curve(load_runs(run))
    assert set(curve["label"]) == {"maml"} and sorted(set(curve["adapt_steps"])) == [0, 1, 5]
    assert len(curve) == 9
    assert adapt_curve(load_runs(write_run(run.parent / "plain", [row("icl", 1, 0, 0.5)]))).empty


def test_paired_differences_exact_cases(run):
    diffs = paired_differences(load_runs(run), baseline="icl").set_index(["a", "shots"])
    same = diffs.loc[("icl-copy", 4)]
    assert same["diff"] == 0 and same["ci_low"] == 0 and same["ci_high"] == 0
    assert same["frac_tie"] == 1 and same["frac_a_better"] == 0
    better = diffs.loc[("icl+0.1", 1)]
    assert better["diff"] == pytest.approx(0.1)
    assert better["ci_low"] == pytest.approx(0.1) and better["ci_high"] == pytest.approx(0.1)
    assert better["frac_a_better"] == 1 and better["n_pairs"] == 6
    assert ("zero-shot", 1) not in diffs.index and ("zero-shot", 0) in diffs.index


def test_all_pairs_put_the_better_label_first(run):
    diffs = paired_differences(load_runs(run))
    pair = diffs[(diffs["a"] == "icl+0.1") & (diffs["b"] == "icl")]
    assert len(pair) == 3 and (pair["diff"] > 0).all()
    assert diffs[(diffs["a"] == "icl") & (diffs["b"] == "icl+0.1")].empty


def best_rows():
    """a is best at 1 shot, c at 4 shots; b is never best (5 episodes each)."""
    acc = {("a", 1): 0.7, ("b", 1): 0.5, ("c", 1): 0.6, ("a", 4): 0.7, ("b", 4): 0.6,
           ("c", 4): 0.9}
    return [row(m, s, ep, a + 0.02 * ep * (m == "b")) for (m, s), a in acc.items()
            for ep in range(5)]


def test_report_without_baseline_compares_every_method_with_the_best(tmp_path):
    run = write_run(tmp_path / "best", best_rows())
    diffs = paired_differences(load_runs(run), versus="best")
    assert diffs.attrs["best"] == {1: "a", 4: "c"}
    assert list(zip(diffs["a"], diffs["b"], diffs["shots"])) == [
        ("b", "a", 1), ("c", "a", 1), ("a", "c", 4), ("b", "c", 4)]
    assert (diffs["diff"] <= 0).all() and diffs.set_index(["a", "shots"]).loc[
        ("c", 1), "diff"] == pytest.approx(-0.1)
    written = write_report(run, out=tmp_path / "rep")
    table = (tmp_path / "rep" / "paired_differences.csv").read_text().splitlines()
    assert len(table) == 1 + 4  # labels - 1 comparisons per shot count, not every pair
    assert "| b − a (best) | 1 |" in written.text and "| a − c (best) | 4 |" in written.text
    assert "| a | **70.0 ± 0.0** | 70.0 ± 0.0 |" in written.text  # the best is marked
    assert "| c | 60.0 ± 0.0 | **90.0 ± 0.0** |" in written.text
    assert "with the best method at each shot count" in written.text
    # --baseline: every label against it, as before; nothing in bold
    with_baseline = write_report(run, out=tmp_path / "rep-b", baseline="b").text
    assert "| a − b | 1 |" in with_baseline and "**" not in with_baseline


def many_method_curve(n=12, low=0.7):
    import pandas as pd

    return pd.DataFrame([{"label": f"method {i}", "shots": s, "mean": low + 0.01 * i + 0.02 * s,
                          "ci95": 0.03, "ci_low": low + 0.01 * i + 0.02 * s - 0.03,
                          "ci_high": low + 0.01 * i + 0.02 * s + 0.03, "n_episodes": 10,
                          "adapt_steps": float("nan")} for i in range(n) for s in (1, 4)])


def test_shot_curve_plot_stays_readable_with_many_methods():
    from matplotlib.collections import PolyCollection
    from matplotlib.colors import to_hex

    from iclmeta.report.plots import plot_shot_curve
    from iclmeta.report.styles import OKABE_ITO

    curve = many_method_curve(12)
    fig = plot_shot_curve(curve, chance=0.2)
    ax = fig.axes[0]
    lines = [ln for ln in ax.get_lines() if ln.get_label().startswith("method")]
    looks = {(to_hex(ln.get_color()), ln.get_marker()) for ln in lines}
    assert len(lines) == 12 and len(looks) == 12  # every method its own colour and marker
    assert {c for c, _ in looks} <= {c.lower() for c in OKABE_ITO}  # colour-blind-safe palette
    # no shaded bands with this many methods (error bars instead)
    assert not [c for c in ax.collections if isinstance(c, PolyCollection)]
    low, high = ax.get_ylim()  # from the data's intervals (69%-92%), not from chance (20%)
    assert 60 < low < 69 and 92 < high < 100
    assert not [ln for ln in ax.get_lines() if ln.get_label().startswith("chance")]
    assert any("chance 20%" in t.get_text() for t in ax.texts)
    # a few methods near chance: shaded bands, and chance is a line inside the range
    few = many_method_curve(2, low=0.22)
    ax = plot_shot_curve(few, chance=0.2).axes[0]
    assert len([c for c in ax.collections if isinstance(c, PolyCollection)]) == 2
    assert [ln for ln in ax.get_lines() if ln.get_label().startswith("chance")]
    assert ax.get_ylim()[0] <= 20


def test_adapt_curve_plot_uses_data_limits_and_distinct_styles():
    from iclmeta.report.plots import plot_adapt_curve

    curve = many_method_curve(10).drop(columns="adapt_steps").rename(
        columns={"shots": "adapt_steps"}).assign(shots=4)
    fig = plot_adapt_curve(curve, chance=0.1)
    ax = fig.axes[0]
    looks = {(ln.get_color(), ln.get_marker()) for ln in ax.get_lines()
             if ln.get_label().startswith("method")}
    assert len(looks) == 10 and ax.get_ylim()[0] > 60


def test_report_help_lists_the_files(capsys):
    """Needs iclmeta/cli/args.py to put ``files_help()`` in the report parser's epilog."""
    from iclmeta.report.files import REPORT_FILES

    with pytest.raises(SystemExit):
        main(["report", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for pattern, text in REPORT_FILES:
        assert pattern in help_text and " ".join(text.split()[:3]) in help_text, pattern
    assert "every pair" not in help_text  # the default is now the best method


def test_report_describe_lists_each_file(run, tmp_path, capsys):
    assert main(["report", str(run), "--out", str(tmp_path / "rep")]) == 0
    printed = capsys.readouterr().out
    listing = printed[printed.index("wrote "):].splitlines()
    assert listing[0].startswith("wrote ") and listing[0].endswith(f"{tmp_path / 'rep'}:")
    written = sorted(p.name for p in (tmp_path / "rep").iterdir())
    assert sorted(line.split()[0] for line in listing[1:]) == written
    assert all(len(line.split()) > 3 for line in listing[1:])  # each file says what it holds


def test_runs_differing_only_in_adapt_steps_share_a_label(tmp_path):
    steps = {k: write_run(tmp_path / f"steps{k}", [
        row("maml", 1, ep, 0.5 + 0.1 * k, adapt_steps=k, options={"adapt_steps": k, "lr": 0.3})
        for ep in range(3)]) for k in (0, 2)}
    curve = adapt_curve(load_runs(list(steps.values())))
    assert set(curve["label"]) == {"maml"} and sorted(curve["adapt_steps"]) == [0, 2]
    other = write_run(tmp_path / "lr", [row("maml", 1, 0, 0.5, adapt_steps=0,
                                            options={"adapt_steps": 0, "lr": 0.1})])
    assert set(load_runs([steps[0], other])["label"]) == {"maml [steps0]", "maml [lr]"}


def test_merge_disambiguates_different_setups(tmp_path):
    a = write_run(tmp_path / "small", make_rows(episodes=3))
    # another seed: new episodes of the same set-up, so "retrieval" stays one label
    b = write_run(tmp_path / "big", [{**r, "seed": 1}
                                     for r in make_rows(episodes=3, models="other-lm")])
    labels = set(load_runs([a, b])["label"])
    assert {"icl [small]", "icl [big]", "zero-shot [small]", "zero-shot [big]"} <= labels
    assert "retrieval" in labels and "icl" not in labels
    # the same run twice is refused, never silently de-duplicated
    with pytest.raises(UserError, match="given twice"):
        load_runs([a, a / "results.jsonl"])


def test_duplicate_rows_are_an_error_naming_the_runs(tmp_path):
    rows = make_rows(episodes=3)
    a, b = write_run(tmp_path / "first", rows), write_run(tmp_path / "second", rows)
    with pytest.raises(UserError, match="first and second") as err:
        load_runs([a, b])
    assert "\n" not in str(err.value) and "episode" in str(err.value)
    twice = write_run(tmp_path / "twice", rows + rows[:1])
    with pytest.raises(UserError, match="twice"):
        load_runs(twice)
    # the same set-up with another seed is new episodes, not a duplicate
    other = write_run(tmp_path / "seed1", [{**r, "seed": 1} for r in rows])
    assert len(load_runs([a, other])) == 2 * len(rows)


def test_pairing_key_is_the_whole_episode(tmp_path):
    icl = [row("icl", 1, ep, 0.5) for ep in range(4)]
    knn = [row("knn", 1, ep, 0.6) for ep in range(4)]
    # another class split: same episode numbers, different episodes -> nothing to pair
    other = write_run(tmp_path / "split1", [{**r, "split_seed": 1} for r in knn])
    diffs = paired_differences(load_runs([write_run(tmp_path / "icl", icl), other]))
    assert diffs.empty
    same = paired_differences(load_runs([tmp_path / "icl", write_run(tmp_path / "knn", knn)]))
    assert list(same["n_pairs"]) == [4]


def test_rows_with_different_queries_are_not_paired(tmp_path, capsys):
    icl = write_run(tmp_path / "icl", [row("icl", 1, ep, 0.5) for ep in range(4)])
    moved = write_run(tmp_path / "moved", [row("knn", 1, ep, 0.6, query_hash="0123456789ab")
                                            for ep in range(4)])
    with pytest.raises(UserError, match="different queries") as err:
        paired_differences(load_runs([icl, moved]))
    assert "\n" not in str(err.value) and "icl" in str(err.value) and "moved" in str(err.value)
    assert main(["report", str(icl), str(moved), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "different queries" in err


def test_old_runs_without_query_hash(tmp_path):
    old = [{k: v for k, v in row(m, 1, ep, 0.5 + 0.1 * (m == "knn")).items()
            if k not in ("query_hash", "split_seed")} for m in ("icl", "knn") for ep in range(3)]
    # rows that record their query ids get the hash computed and pair as before
    with_ids = write_run(tmp_path / "ids",
                         [{**r, "query_ids": [f"q{r['episode']}"]} for r in old])
    diffs = paired_differences(load_runs(with_ids))
    assert list(diffs["n_pairs"]) == [3] and diffs["diff"].iloc[0] == pytest.approx(0.1)
    # rows that record no queries at all are reported unpaired, with a note, not dropped
    bare = write_run(tmp_path / "bare", old)
    df = load_runs(bare)
    assert len(df) == 6 and len(shot_curve(df)) == 2
    diffs = paired_differences(df)
    assert diffs.empty and diffs.attrs["unpaired"] == ["icl", "knn"]
    written = write_report(bare, out=tmp_path / "rep")
    assert "Not paired" in written.text and "icl, knn" in written.text


def test_cli_report_writes_tables_and_figures(run, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", str(run), "--out", str(out), "--baseline", "icl"]) == 0
    printed = capsys.readouterr().out
    assert "| retrieval |" in printed and "icl+0.1 − icl" in printed
    for name in ("report.md", "shot_curve.csv", "paired_differences.csv", "adapt_curve.csv",
                 "shot_curve.png", "shot_curve.svg", "paired_differences.png",
                 "adapt_curve.png", "adapt_curve.svg"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "shot_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| icl+0.1 − icl | 1 | +10.0 | [+10.0, +10.0] | 100% |" in (out / "report.md").read_text()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_cli_report_default_out_and_no_adapt_figure(tmp_path):
    plain = write_run(tmp_path / "plain", [row(m, s, e, 0.5 + 0.01 * e) for m in ("icl", "knn")
                                           for s in SHOTS for e in range(4)])
    assert main(["report", str(plain)]) == 0
    assert (plain / "report" / "shot_curve.png").exists()
    assert not (plain / "report" / "adapt_curve.png").exists()


@pytest.mark.parametrize("setup, message", [
    (lambda d: d.mkdir(), "holds no results.jsonl"),
    (lambda d: None, "does not exist"),
    # a shell glob such as runs/* also picks up the runs' .log files
    (lambda d: d.write_text("log"), "is a file, not a run folder"),
    (lambda d: write_run(d, []) and (d / "results.jsonl").write_text('{"method": "icl"\n'),
     "line 1 is not valid JSON"),
    (lambda d: write_run(d, [{"method": "icl", "shots": 1}]), "lacks episode, accuracy"),
])
def test_cli_report_bad_input_is_one_line(tmp_path, capsys, setup, message):
    folder = tmp_path / "bad"
    setup(folder)
    assert main(["report", str(folder)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("error: ")


def test_unknown_baseline_lists_labels(run):
    with pytest.raises(UserError, match="choose one of: zero-shot, icl"):
        paired_differences(load_runs(run), baseline="nope")


def test_import_stays_light():
    code = ("import sys, iclmeta.report.stats, iclmeta.report.plots, iclmeta.report.runs, iclmeta.report.writer; "
            "print(sorted(m for m in ('pandas', 'matplotlib', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_notebook_runs_headless(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    from jupyter_client.manager import KernelManager

    path = ROOT / "notebooks" / "shot_curves.ipynb"
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") and not c.get("execution_count") for c in nb.cells
               if c.cell_type == "code"), "store the notebook without outputs"
    other = [{**r, "seed": 1} for r in make_rows(episodes=4, seed=1, models="other-lm")]
    runs = [write_run(tmp_path / "run-a", make_rows()), write_run(tmp_path / "run-b", other)]
    monkeypatch.setenv("ICLMETA_RUNS", os.pathsep.join(map(str, runs)))
    km = KernelManager(kernel_name="python3")
    assert km.format_kernel_cmd()[0] == sys.executable  # the kernel is this venv's python
    start = time.perf_counter()
    nbclient.NotebookClient(nb, km=km, timeout=120, resources={"metadata": {"path": tmp_path}}
                            ).execute()
    elapsed = time.perf_counter() - start
    print(f"notebook executed in {elapsed:.1f}s")
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) >= 3  # shot curve, paired differences, adaptation curve
    assert elapsed < 60
