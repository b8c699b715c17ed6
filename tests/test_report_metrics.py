"""Metrics beside accuracy (macro-F1, per-class accuracy, confusion matrices, ECE), the report
files that hold them, and figures that stay readable with many methods or classes."""
import json
import math
import random

import pytest

from iclmeta.data.episodes import query_hash
from iclmeta.report.intervals import mean_ci
from iclmeta.report.metrics import (calibration, confusion_counts, expected_calibration_error,
                                    macro_f1, macro_f1_curve, per_class_accuracy, softmax)
from iclmeta.report.stats import load_runs
from iclmeta.report.writer import write_report

CLASSES = ["abbr", "desc", "entity", "human"]


def row(method, shots, episode, gold, predictions, **extra):
    correct = sum(g == p for g, p in zip(gold, predictions))
    return {"dataset": "trec", "split": "test", "class_split": "all", "split_seed": 0,
            "ways": len(set(gold)), "shots": shots, "episode": episode, "seed": 0,
            "query_hash": query_hash([f"q{episode}-{i}" for i in range(len(gold))]),
            "method": method, "label": method, "accuracy": correct / len(gold),
            "n_queries": len(gold), "n_correct": correct, "model": "m", "options": {},
            "gold": gold, "predictions": predictions, **extra}


def noisy_rows(method, shots, episodes, error, seed=0, classes=CLASSES, per_class=3):
    """Each query is right with probability 1 - error, else a random other class."""
    rng, rows = random.Random(seed), []
    for ep in range(episodes):
        gold = [c for c in classes for _ in range(per_class)]
        pred = [g if rng.random() > error else rng.choice([c for c in classes if c != g])
                for g in gold]
        rows.append(row(method, shots, ep, gold, pred))
    return rows


def write_run(folder, rows):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_macro_f1_per_episode_matches_sklearn_and_averages_over_episodes(tmp_path):
    metrics = pytest.importorskip("sklearn.metrics")
    rows = noisy_rows("knn", 4, 6, error=0.4, seed=1)
    # a prediction outside the episode's classes counts against its query's class only
    rows[0]["predictions"][0] = "unseen"
    for r in rows:
        expected = metrics.f1_score(r["gold"], r["predictions"], labels=CLASSES,
                                    average="macro", zero_division=0)
        assert macro_f1(r["gold"], r["predictions"]) == pytest.approx(expected)
    curve = macro_f1_curve(load_runs(write_run(tmp_path / "run", rows)))
    mean, half = mean_ci([macro_f1(r["gold"], r["predictions"]) for r in rows])
    got = curve.iloc[0]
    assert (got["label"], got["shots"], got["n_episodes"]) == ("knn", 4, 6)
    assert (got["mean"], got["ci95"]) == pytest.approx((mean, half))
    assert got["ci_low"] < got["mean"] < got["ci_high"] and got["mean"] < 0.8
    # unbalanced errors: macro-F1 is not accuracy
    skewed = row("icl", 1, 0, ["a"] * 8 + ["b"] * 2, ["a"] * 10)
    assert skewed["accuracy"] == 0.8 and macro_f1(skewed["gold"], skewed["predictions"]) == \
        pytest.approx((2 * 8 / 18 + 0) / 2)


def test_per_class_accuracy_and_confusion_counts_pool_episodes(tmp_path):
    rows = [row("icl", 1, 0, ["a", "a", "b"], ["a", "b", "b"]),
            row("icl", 1, 1, ["a", "c", "c"], ["a", "c", "a"]),
            row("icl", 4, 0, ["a", "a", "b"], ["a", "a", "b"])]
    df = load_runs(write_run(tmp_path / "run", rows))
    table = per_class_accuracy(df).set_index(["shots", "class"])
    assert table.loc[(1, "a"), ["n_queries", "n_correct", "n_episodes"]].tolist() == [3, 2, 2]
    assert table.loc[(1, "c"), "accuracy"] == 0.5 and table.loc[(4, "a"), "accuracy"] == 1.0
    classes, predicted, counts = confusion_counts(df, "icl", 1)
    assert classes == predicted == ["a", "b", "c"]
    assert counts == [[2, 1, 0], [0, 1, 0], [1, 0, 1]]
    odd = load_runs(write_run(tmp_path / "odd", [row("gen", 0, 0, ["a", "b"], ["a", "zzz"])]))
    assert confusion_counts(odd, "gen", 0) == (["a", "b"], ["a", "b", "zzz"], [[1, 0, 0],
                                                                                [0, 0, 1]])


def scored_rows(confidence_of, episodes=10, per_episode=10, seed=0):
    """Two-label queries whose top label is 'a' with probability p = confidence_of(i), and
    correct for exactly round(10 * accuracy) of each episode's queries."""
    rows = []
    for ep in range(episodes):
        p, accuracy = confidence_of(ep)
        n_right = round(accuracy * per_episode)
        gold = ["a"] * n_right + ["b"] * (per_episode - n_right)
        scores = [{"a": math.log(p), "b": math.log(1 - p)}] * per_episode
        rows.append(row("lm", 1, ep, gold, ["a"] * per_episode, label_scores=scores))
    return rows


def test_ece_separates_calibrated_from_overconfident(tmp_path):
    assert expected_calibration_error([0.75] * 4, [True, True, True, False]) == pytest.approx(0)
    assert softmax({"a": 10.0, "b": 0.0})["a"] == pytest.approx(1 / (1 + math.exp(-10)))
    # calibrated: 80% confident and 80% right, 60% confident and 60% right
    calibrated = scored_rows(lambda ep: (0.8, 0.8) if ep % 2 else (0.6, 0.6))
    # overconfident: 99% confident, 50% right
    overconfident = scored_rows(lambda ep: (0.99, 0.5))
    for r in overconfident:
        r["method"] = r["label"] = "over"
    df = load_runs(write_run(tmp_path / "run", calibrated + overconfident))
    cal = calibration(df).set_index("label")
    assert cal.loc["lm", "ece"] == pytest.approx(0, abs=1e-12)
    assert cal.loc["over", "ece"] == pytest.approx(0.49)
    assert cal.loc["over", "n_queries"] == 100 and cal.loc["over", "confidence"] == \
        pytest.approx(0.99)
    written = write_report(tmp_path / "run", out=tmp_path / "rep")
    assert "## Expected calibration error" in written.text
    assert "| over | 49.0 (100) |" in written.text and "| lm | 0.0 (100) |" in written.text
    header = (tmp_path / "rep" / "metrics.csv").read_text().splitlines()[0]
    assert "ece" in header.split(",") and "macro_f1" in header.split(",")


def test_report_writes_metrics_files_and_describes_every_file(tmp_path):
    rows = noisy_rows("knn", 1, 5, 0.5) + noisy_rows("knn", 4, 5, 0.2) \
        + noisy_rows("icl [my run]", 4, 5, 0.3, seed=2)
    written = write_report(write_run(tmp_path / "run", rows), out=tmp_path / "rep")
    names = {p.name for p in (tmp_path / "rep").iterdir()}
    assert {"metrics.csv", "per_class_accuracy.csv", "confusion_knn.png",
            "confusion_icl_my_run.png"} <= names
    assert "## Macro-F1 (%) by shots" in written.text
    assert "Expected calibration" not in written.text  # no scores logged: no ECE anywhere
    assert "ece" not in (tmp_path / "rep" / "metrics.csv").read_text()
    per_class = (tmp_path / "rep" / "per_class_accuracy.csv").read_text().splitlines()
    assert per_class[0] == "label,shots,class,n_queries,n_correct,accuracy,n_episodes"
    assert len(per_class) == 1 + 3 * len(CLASSES)
    described = written.describe().splitlines()
    assert described[0] == f"wrote {len(written.files)} files to {tmp_path / 'rep'}:"
    assert len(described) == 1 + len(written.files) == 1 + len(names)
    for line in described[1:]:
        name, text = line.split(maxsplit=1)
        assert name in names and len(text) > 15, line
    assert any(line.split()[0] == "confusion_knn.png" and "largest shot count" in line
               for line in described)


def test_confusion_matrix_stays_readable_with_50_classes():
    from iclmeta.report.confusion import plot_confusion

    classes = [f"class_{i:02d}_{'with_a_long_name' * (i % 3)}" for i in range(50)]
    counts = [[5 if i == j else (i * j) % 2 for j in range(50)] for i in range(50)]
    fig = plot_confusion(classes, classes, counts, title="many classes")
    fig.canvas.draw()
    ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    for labels, axis in ((ax.get_yticklabels(), 1), (ax.get_xticklabels(), 0)):
        assert len(labels) == 50 and all(t.get_text() for t in labels)
        boxes = sorted((b.extents for b in (t.get_window_extent(renderer) for t in labels)),
                       key=lambda e: e[axis])
        # neighbouring labels do not overlap along the axis they are spread over
        assert all(a[axis + 2] <= b[axis] + 0.5 for a, b in zip(boxes, boxes[1:]))
    assert max(len(t.get_text()) for t in ax.get_yticklabels()) <= 24  # long names shortened


def test_rows_without_gold_lists_get_no_metrics_and_a_note(tmp_path):
    rows = [{k: v for k, v in r.items() if k not in ("gold", "predictions")}
            for r in noisy_rows("old", 1, 3, 0.3)] + noisy_rows("new", 1, 3, 0.3)
    written = write_report(write_run(tmp_path / "run", rows), out=tmp_path / "rep")
    assert "for old: their rows record no gold labels" in written.text
    assert not (tmp_path / "rep" / "confusion_old.png").exists()
    assert (tmp_path / "rep" / "confusion_new.png").exists()
