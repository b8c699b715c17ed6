"""The harness and the CLI end to end on a tiny random LM and a tiny embedder."""
import json

import pytest

from iclmeta.cli.main import main
from iclmeta.data.episodes import query_hash

WORDS = ["flight", "book", "cancel", "weather", "today", "tomorrow", "music", "play", "song",
         "alarm", "set", "timer"]


@pytest.fixture
def tiny_data(tmp_path):
    """24 classes x 8 examples, so the class-disjoint split has 5 meta-test classes."""
    # the last word tells class c from class c + 12: exact duplicate texts are dropped at load
    rows = [{"text": f"{WORDS[c % 12]} {WORDS[(c + i) % 12]} the {WORDS[i % 12]} {WORDS[c // 12]}",
             "label": f"intent_{c:02d}"} for c in range(24) for i in range(8)]
    path = tmp_path / "tiny.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def run_args(tiny_data, tiny_model_dir, tiny_embedder_dir, tmp_path):
    return ["eval", "--method", "zero-shot", "--method", "icl", "--method", "retrieval",
            "--dataset", str(tiny_data), "--model", tiny_model_dir, "--embedder",
            tiny_embedder_dir, "--cache-dir", str(tmp_path / "cache"), "--ways", "3",
            "--shots", "0,1,2", "--queries", "2", "--episodes", "3", "--dtype", "float32",
            "--no-progress"]


def _rows(folder):
    return [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]


def with_methods(args: list[str], *methods: str, drop: tuple = ()) -> list[str]:
    """``args`` with ``--method`` flags for ``methods`` instead of its own, and the flags in
    ``drop`` (each with its value) left out."""
    kept, i = [args[0]], 1
    while i < len(args):
        if args[i] == "--method" or args[i] in drop:
            i += 2
            continue
        kept.append(args[i])
        i += 1
    return kept[:1] + [x for m in methods for x in ("--method", m)] + kept[1:]


def test_eval_end_to_end_and_same_seed_same_rows(run_args, tmp_path, capsys):
    out_a, out_b = tmp_path / "a", tmp_path / "b"
    assert main(run_args + ["--out", str(out_a)]) == 0
    table = capsys.readouterr().out
    assert "retrieval" in table and "2-shot" in table and "±" in table
    rows = _rows(out_a)
    # zero-shot once per episode, icl and retrieval at every shot count
    assert len(rows) == 3 * (1 + 3 + 3)
    assert {(r["method"], r["shots"]) for r in rows if r["episode"] == 0} == {
        ("zero-shot", 0), ("icl", 0), ("icl", 1), ("icl", 2), ("retrieval", 0),
        ("retrieval", 1), ("retrieval", 2)}
    r = next(r for r in rows if r["method"] == "retrieval" and r["shots"] == 2)
    assert r["n_queries"] == 6 and len(r["demo_ids"]) == 6 and r["n_demos"] == 6
    assert r["prompt_tokens"] > 0 and 0 <= r["accuracy"] <= 1
    # the labelled budget, the demonstrations shown, and what defines the episode
    assert "pool" not in r and (r["shots"], r["k"], r["support_size"], r["split_seed"]) == (
        2, 6, 6, 0)
    assert r["query_hash"] == query_hash(r["query_ids"])
    for ep in range(3):
        assert len({x["query_hash"] for x in rows if x["episode"] == ep}) == 1
    assert {(x["shots"], x["support_size"]) for x in rows} == {(0, 0), (1, 3), (2, 6)}
    icl = next(r for r in rows if r["method"] == "icl" and r["shots"] == 1)
    assert len({tuple(d) for d in icl["demo_ids"]}) == 1  # one demo set shared by all queries
    assert (out_a / "summary.csv").is_file() and (out_a / "config.yaml").is_file()
    assert main(run_args + ["--out", str(out_b)]) == 0
    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
    assert strip(_rows(out_b)) == strip(rows)


def test_resume_continues_without_losing_or_repeating(run_args, tmp_path):
    out = tmp_path / "run"
    assert main(run_args + ["--out", str(out)]) == 0
    full = _rows(out)
    lines = (out / "results.jsonl").read_text().splitlines(keepends=True)
    # an interrupted run: 8 complete rows and a torn ninth line
    (out / "results.jsonl").write_text("".join(lines[:8]) + lines[8][:20])
    assert main(run_args + ["--out", str(out)]) == 2  # never overwrites without --resume
    assert main(run_args + ["--out", str(out), "--resume"]) == 0
    resumed = _rows(out)
    key = lambda r: (r["method"], r["shots"], r["episode"])  # noqa: E731
    assert sorted(map(key, resumed)) == sorted(map(key, full))
    assert {key(r): r["predictions"] for r in resumed} == {key(r): r["predictions"] for r in full}


def test_resume_with_other_settings_is_refused(run_args, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(run_args + ["--out", str(out)]) == 0
    before = (out / "results.jsonl").read_text()
    args = [a if a != "3" else "4" for a in run_args]  # --ways 3 -> 4 and --episodes 3 -> 4
    assert main(args + ["--out", str(out), "--resume"]) == 2
    assert "--resume with different settings" in capsys.readouterr().err
    assert (out / "results.jsonl").read_text() == before


@pytest.mark.parametrize("extra, message", [
    (["--method", "nope"], "unknown method 'nope'"),
    (["--ways", "9"], "--ways 9 is impossible"),
    (["--shots", "8"], "has 8 examples, fewer than 8 shots + 2 queries"),
    (["--shots", "1,x"], "not a comma-separated list"),
    (["--text-field", "body"], "no text field 'body'"),
])
def test_bad_input_is_one_line_exit_2(run_args, tmp_path, capsys, extra, message):
    code = main(run_args + extra + ["--out", str(tmp_path / "bad")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "bad" / "results.jsonl").exists()


def test_malformed_file_and_unknown_dataset(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a", "label": "x"}\nnot json\n')
    assert main(["eval", "--dataset", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert main(["eval", "--dataset", "no-such-builtin", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "bad.jsonl:2: malformed JSON" in err[0]
    assert "no-such-builtin" in err[1]


def test_meta_train_classes_too_small_do_not_block_eval(tmp_path):
    """TREC-50's meta-train classes cannot hold 5 shots; evaluation never samples them."""
    from iclmeta.config import EvalConfig
    from iclmeta.harness.evaluate import prepare

    cfg = EvalConfig(methods=["knn"], dataset="trec-50", class_split="disjoint", ways=5,
                     shots=[1, 5], queries=4, episodes=2)
    ds, plan, episodes = prepare(cfg)
    assert len(episodes) == 2


def _best(scores: dict) -> set:
    top = max(scores.values())
    return {label for label, value in scores.items() if value == top}


def test_log_scores_holds_the_scores_each_metric_prediction_is_the_best_of(run_args, tmp_path):
    args = with_methods(run_args, "knn", "protonet", "matching", drop=("--dtype",))
    assert main(args + ["--log-scores", "--out", str(tmp_path / "scored")]) == 0
    assert main(args + ["--out", str(tmp_path / "plain")]) == 0
    scored, plain = _rows(tmp_path / "scored"), _rows(tmp_path / "plain")
    assert len(scored) == 3 * 3 * 3
    for row in scored:
        assert len(row["label_scores"]) == row["n_queries"]
        for pred, scores in zip(row["predictions"], row["label_scores"]):
            assert len(scores) == 3 and pred in _best(scores), (row["method"], scores)
    assert all("label_scores" not in row for row in plain)  # rows unchanged without the flag
    same = lambda rs: [(r["method"], r["shots"], r["predictions"]) for r in rs]  # noqa: E731
    assert same(scored) == same(plain)


@pytest.mark.parametrize("methods, extra", [
    (("zero-shot", "icl", "retrieval"), []),
    (("icl",), ["--scoring", "calibrated"]),
    (("icl",), ["--scoring", "channel"]),
    (("finetune",), ["--adapt-steps", "1", "--lora-rank", "2"]),
])
def test_log_scores_holds_the_scores_each_lm_prediction_is_the_best_of(run_args, tmp_path,
                                                                        methods, extra):
    args = with_methods(run_args, *methods, drop=("--episodes", "--shots"))
    assert main(args + extra + ["--episodes", "1", "--shots", "0,1", "--log-scores",
                                "--out", str(tmp_path / "run")]) == 0
    for row in _rows(tmp_path / "run"):
        assert len(row["label_scores"]) == row["n_queries"]
        for pred, scores in zip(row["predictions"], row["label_scores"]):
            assert len(scores) == 3 and pred in _best(scores), (row["method"], scores)
