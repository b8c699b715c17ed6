"""Classes too small for the budget: refused with the fix named, or left out and named."""
import json

import pytest

from iclmeta.cli.main import main
from iclmeta.data.episodes import plan_episodes, sample_episodes
from iclmeta.data.example import Example, LabelledDataset
from iclmeta.errors import UserError
from iclmeta.io import load_yaml

# (train, test) examples per class: "thin" cannot give 4 shots, "untested" has no query
SIZES = {"big": (8, 3), "mid": (6, 2), "tiny": (5, 1), "thin": (3, 2), "untested": (9, 0)}


def rows():
    return [{"text": f"{c} {split} example {i}", "label": c, "split": split}
            for c, (n_train, n_test) in SIZES.items()
            for split, n in (("train", n_train), ("test", n_test)) for i in range(n)]


def dataset() -> LabelledDataset:
    return LabelledDataset("sizes", [Example(r["text"], r["label"], f"sizes:{i}", r["split"])
                                     for i, r in enumerate(rows())])


def test_a_short_class_is_refused_and_the_flag_is_named():
    with pytest.raises(UserError) as refused:
        plan_episodes(dataset(), "all", [1, 4], None, class_split="all", drop_short=False)
    assert "class 'thin' has 3 'train' examples, fewer than 4 shots" in str(refused.value)
    assert "--drop-short-classes" in str(refused.value)
    # a caller that offers no such flag (training) gets no hint to pass it
    with pytest.raises(UserError) as plain:
        plan_episodes(dataset(), "all", [1, 4], None, class_split="all")
    assert "--drop-short-classes" not in str(plain.value)


def test_short_classes_are_left_out_and_named_with_what_they_have():
    plan = plan_episodes(dataset(), "all", [1, 2, 4], None, class_split="all", drop_short=True)
    assert plan.classes == ("big", "mid", "tiny") and plan.ways == 3
    assert plan.left_out == (("thin", "3 train / 2 test"), ("untested", "9 train / 0 test"))
    assert "2 classes left out, too small for this budget: thin (3 train / 2 test), " \
           "untested (9 train / 0 test)" in plan.describe()
    assert plan.to_dict()["left_out"] == {"thin": "3 train / 2 test",
                                          "untested": "9 train / 0 test"}
    ep = sample_episodes(dataset(), plan, n=1, seed=0)[0]
    assert sorted(ep.classes) == ["big", "mid", "tiny"] and len(ep.query) == 6
    assert len(ep.support_set(4)) == 12
    # a smaller budget keeps "thin": only what really falls short is left out
    two = plan_episodes(dataset(), "all", [1, 2], None, class_split="all", drop_short=True)
    assert [c for c, _ in two.left_out] == ["untested"] and "thin" in two.classes


def test_nothing_left_to_evaluate_is_one_clear_error():
    with pytest.raises(UserError, match=r"only 1 of sizes's classes can supply this budget"):
        plan_episodes(dataset(), "all", [7], None, class_split="all", drop_short=True)
    with pytest.raises(UserError, match=r"sizes has 3 classes in this split \(2 too small"):
        plan_episodes(dataset(), 4, [4], None, class_split="all", drop_short=True)


def test_the_command_line_records_the_classes_left_out(tmp_path, capsys):
    data = tmp_path / "sizes.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows()))
    common = ["eval", "--dataset", str(data), "--method", "knn", "--shots", "1,4",
              "--ways", "all", "--queries", "all", "--episodes", "2", "--no-progress"]
    refused = tmp_path / "refused"
    assert main([*common, "--out", str(refused)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--drop-short-classes" in err and not refused.exists()
    out = tmp_path / "run"
    assert main([*common, "--drop-short-classes", "--out", str(out)]) == 0
    assert "left out, too small for this budget: thin" in capsys.readouterr().err
    recorded = load_yaml(out / "config.yaml")
    assert recorded["episodes"]["left_out"] == {"thin": "3 train / 2 test",
                                                "untested": "9 train / 0 test"}
    assert recorded["config"]["drop_short_classes"] is True
    results = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert {r["ways"] for r in results} == {3} and {r["n_queries"] for r in results} == {6}
