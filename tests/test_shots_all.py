"""``--shots all``: every support example of the classes in play, through the harness and reports."""
import json

import pytest

from iclmeta.cli.main import main
from iclmeta.data.episodes import plan_episodes, sample_episodes
from iclmeta.data.example import Example, LabelledDataset
from iclmeta.errors import UserError

WORDS = ["flight", "book", "cancel", "weather", "today", "tomorrow", "music", "play", "song",
         "alarm", "set", "timer"]


def uneven():
    """Three classes with 9, 7 and 5 train examples and 3 test examples each."""
    ex = []
    for c, n in enumerate((9, 7, 5)):
        ex += [Example(f"{WORDS[c]} {WORDS[(c + i) % 12]} {i}", f"c{c}", f"t{c}:{i}", "train")
               for i in range(n)]
        ex += [Example(f"{WORDS[c]} query {i}", f"c{c}", f"q{c}:{i}", "test") for i in range(3)]
    return LabelledDataset("uneven", ex)


def test_all_keeps_every_support_example_and_nests_the_counts():
    ds = uneven()
    plan = plan_episodes(ds, "all", [1, 4, "all"], 2, class_split="all")
    assert plan.all_shots and plan.max_shots == 4
    ep = sample_episodes(ds, plan, n=1, seed=0)[0]
    assert ep.all_shots == 9 and ep.max_shots == 5
    every = ep.support_set(ep.all_shots)
    assert len(every) == 21 and len({e.id for e in every}) == 21
    assert not {e.id for e in every} & {q.id for q in ep.query}
    four = ep.support_set(4)
    assert len(four) == 12 and [e.id for e in four] == [e.id for e in every[:12]]
    # the 4-shot support is the same whether or not 'all' was asked for
    plain = sample_episodes(ds, plan_episodes(ds, "all", [1, 4], 2, class_split="all"), 1, 0)[0]
    assert [e.id for e in plain.support_set(4)] == [e.id for e in four]
    with pytest.raises(UserError, match="'all'"):
        plan_episodes(ds, "all", [1, "every"], 2, class_split="all")


def test_bisection_keeps_what_dropping_one_at_a_time_keeps():
    from iclmeta.prompting.methods import fit_context

    class Counter:
        max_length = 50

        def count_tokens(self, text, continuation=False):
            return len(text.split())

    demos = [Example(" ".join(["w"] * (i % 4 + 1)), "a", f"d{i}") for i in range(40)]
    query = Example("the query text", "a", "q")

    def render(kept):
        return [" ".join(d.text for d in kept) + " " + query.text]

    def linear(drop_last):
        kept = list(demos)
        while len(render(kept)[0].split()) + 2 > 50:
            kept = kept[:-1] if drop_last else kept[1:]
        return kept

    for drop_last in (False, True):
        got = fit_context(Counter(), demos, render, 2, query, drop_last)
        assert [d.id for d in got] == [d.id for d in linear(drop_last)]
        assert 0 < len(got) < len(demos)


def test_shots_all_end_to_end_with_a_report(tmp_path, tiny_model_dir, capsys):
    data = tmp_path / "uneven.jsonl"
    data.write_text("".join(json.dumps({"text": e.text, "label": e.label, "split": e.split})
                            + "\n" for e in uneven().examples))
    out = tmp_path / "run"
    assert main(["eval", "--method", "knn,protonet,icl", "--dataset", str(data), "--model",
                 tiny_model_dir, "--dtype", "float32", "--ways", "all", "--shots", "1,all",
                 "--queries", "2", "--episodes", "2", "--out", str(out), "--no-progress"]) == 0
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    at_all = [r for r in rows if r["shots"] == "all"]
    assert {r["method"] for r in at_all} == {"knn", "protonet", "icl"}
    assert all(r["support_size"] == 21 for r in at_all)
    icl = next(r for r in at_all if r["method"] == "icl")
    assert icl["k"] + icl["demos_dropped"] // icl["n_queries"] <= 21 and icl["k"] > 3
    assert main(["report", str(out)]) == 0
    assert "all-shot" in (out / "report" / "report.md").read_text()
    assert (out / "report" / "shot_curve.png").stat().st_size > 0
