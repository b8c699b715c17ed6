"""The instruct method (chat template), context-window fitting, `iclmeta prompt`, --log-prompts."""
import json
import subprocess
import sys

import numpy as np
import pytest

from iclmeta.cli.main import main
from iclmeta.config import EvalConfig
from iclmeta.data.example import Example, LabelledDataset
from iclmeta.data.episodes import Episode
from iclmeta.errors import UserError
from iclmeta.prompting.methods import Instruct, RandomDemos, build_prompt
from iclmeta.prompting.render import Renderer
from iclmeta.prompts import PromptBuilder

from conftest import LABELS, NAMES, TEXTS, TINY  # noqa: E402  (shared tiny task)


def _episode(pool=3):
    support = {label: [Example(t, label, f"{label}{i}") for i, t in enumerate(TEXTS[label][:pool])]
               for label in LABELS}
    query = [Example(TEXTS[label][3], label, f"q{label}") for label in LABELS]
    return Episode(id=0, classes=LABELS, support=support, query=query, seed=0)


def _resources(lm, **options):
    from iclmeta.harness.resources import Resources
    ds = LabelledDataset("tiny", _episode(4).support_set(4), dict(NAMES))
    res = Resources(EvalConfig(**options), ds)
    res.lm = lm  # the cached properties take the tiny model and template instead of loading
    res.builder = PromptBuilder(TINY, NAMES)
    return res


def test_chat_turns_and_packed_render_through_the_chat_template(tiny_lm):
    b = PromptBuilder(TINY, NAMES)
    demos = _episode(1).support_set(1)
    turns = Renderer(b, tiny_lm, chat=True)
    packed = Renderer(b, tiny_lm, chat=True, packed=True)
    msgs = turns.messages(demos, "where is it", list(LABELS))
    assert [m["role"] for m in msgs] == ["system"] + ["user", "assistant"] * 3 + ["user"]
    assert msgs[2]["content"] == "location"
    assert [m["role"] for m in packed.messages(demos, "where is it", list(LABELS))] == [
        "system", "user"]
    text = turns.prompt(demos, "where is it", list(LABELS))
    assert text == tiny_lm.chat(msgs) and text.endswith("<s> assistant :")
    assert text != packed.prompt(demos, "where is it", list(LABELS))
    # the reply starts right after the generation prompt: no label prefix space in chat
    assert turns.candidates(list(LABELS)) == ["location", "number", "person"]
    assert Renderer(b, tiny_lm).candidates(list(LABELS)) == [" location", " number", " person"]


@pytest.mark.parametrize("chat_format", ["turns", "packed"])
def test_instruct_scores_labels_as_the_assistant_reply(tiny_lm, chat_format):
    res = _resources(tiny_lm, scoring="direct", chat_format=chat_format, log_prompts=True)
    method = Instruct("instruct", res)
    pred = method.predict(_episode(), 2)
    prompts = pred.extra["prompts"]
    assert len(prompts) == 3 and all(p.endswith("<s> assistant :") for p in prompts)
    assert all(len(ids) == 6 for ids in pred.demo_ids) and pred.extra["demos_dropped"] == 0
    expected = tiny_lm.score(prompts, ["location", "number", "person"]).total.argmax(1)
    assert pred.labels == [LABELS[i] for i in expected]
    assert method.options["chat_format"] == chat_format and method.options["demos"] == "random"


@pytest.mark.parametrize("scoring", ["direct", "calibrated", "channel", "generate"])
@pytest.mark.parametrize("chat", [False, True])
def test_context_window_drops_the_first_demos_and_records_it(tiny_lm, scoring, chat):
    demos = [Example(f"where is the city {i % 10} and the city {i % 7}", "LOC", f"d{i}")
             for i in range(60)]
    query = Example("who is the person", "HUM", "q")
    plan = build_prompt(Renderer(PromptBuilder(TINY, NAMES), tiny_lm, chat=chat), tiny_lm,
                        scoring, demos, query, list(LABELS))
    assert 0 < plan.dropped < 60
    assert plan.demo_ids == [d.id for d in demos[plan.dropped:]]  # the last placed are kept
    texts = [c for c, _ in plan.channel] if plan.channel else [plan.prompt] + plan.content_free
    assert max(tiny_lm.count_tokens(t) for t in texts) <= tiny_lm.max_length
    assert all("who is the person" in t for t in ([c for c, x in plan.channel] and
                                                  [x for _, x in plan.channel] or [plan.prompt]))
    # one demo fewer kept would have fitted; one more would not
    more = build_prompt(Renderer(PromptBuilder(TINY, NAMES), tiny_lm, chat=chat), tiny_lm,
                        scoring, demos[plan.dropped - 1:], query, list(LABELS))
    assert more.dropped == 1


def test_dropped_demos_reach_the_result_row(tiny_lm):
    res = _resources(tiny_lm, scoring="normalized", k=200)
    ep = _episode(4)
    long = {label: [Example(" ".join([t] * 6), label, f"{label}{i}")
                    for i, t in enumerate(TEXTS[label])] for label in LABELS}
    ep = Episode(id=0, classes=LABELS, support=long, query=ep.query, seed=0)
    pred = RandomDemos("icl", res).predict(ep, 4)
    assert pred.extra["demos_dropped"] > 0
    assert all(len(ids) == 12 - pred.extra["demos_dropped"] // 3 for ids in pred.demo_ids)


def test_a_query_that_cannot_fit_alone_is_a_one_line_error(tiny_lm):
    query = Example(" ".join(["where is the city"] * 80), "LOC", "huge")
    with pytest.raises(UserError, match="query huge does not fit") as err:
        build_prompt(Renderer(PromptBuilder(TINY, NAMES), tiny_lm), tiny_lm, "direct",
                     _episode(1).support_set(1), query, list(LABELS))
    assert "\n" not in str(err.value)


@pytest.fixture
def qa_data(tmp_path):
    rows = [{"text": t, "label": label} for label in LABELS for t in TEXTS[label]] * 2
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _cli_args(qa_data, tiny_model_dir, tiny_embedder_dir, tmp_path):
    return ["--dataset", str(qa_data), "--model", tiny_model_dir, "--embedder", tiny_embedder_dir,
            "--cache-dir", str(tmp_path / "cache"), "--shots", "1,2", "--queries", "2",
            "--episodes", "2", "--dtype", "float32", "--class-split", "all"]


@pytest.mark.parametrize("method, scoring", [("retrieval", "direct"), ("instruct", "channel"),
                                             ("icl", "calibrated")])
def test_prompt_command_prints_what_eval_logs(qa_data, tiny_model_dir, tiny_embedder_dir,
                                              tmp_path, capsys, method, scoring):
    common = _cli_args(qa_data, tiny_model_dir, tiny_embedder_dir, tmp_path) + [
        "--method", method, "--scoring", scoring]
    assert main(["prompt", *common, "--episode", "1", "--query", "2", "--at", "1"]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith(f"# method {method},") and "# demonstrations (3," in shown
    out = tmp_path / "run"
    assert main(["eval", *common, "--log-prompts", "--out", str(out), "--no-progress"]) == 0
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    row = next(r for r in rows if r["episode"] == 1 and r["shots"] == 1)
    logged = row["prompts"][2]
    for text in (logged if isinstance(logged, list) else [logged]):
        assert text in shown
    assert " ".join(row["demo_ids"][2]) in shown
    assert len(row["prompts"]) == row["n_queries"]


def test_prompt_command_rejects_non_prompting_methods(capsys):
    assert main(["prompt", "--method", "knn", "--dataset", "trec"]) == 2
    assert "shows prompting methods" in capsys.readouterr().err


@pytest.mark.parametrize("module", ["iclmeta.prompts", "iclmeta.lm.modes",
                                    "iclmeta.prompting.render"])
def test_prompt_builders_import_light(module):
    code = (f"import sys, {module}; heavy = [m for m in ('torch', 'transformers', 'faiss', "
            "'sentence_transformers') if m in sys.modules]; print(heavy); sys.exit(bool(heavy))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_generate_on_the_tiny_model_reports_unparseable(tiny_lm):
    res = _resources(tiny_lm, scoring="generate")
    pred = RandomDemos("icl", res).predict(_episode(), 1)
    assert 0.0 <= pred.extra["unparseable_rate"] <= 1.0 and len(pred.extra["generations"]) == 3
    assert np.isclose(pred.extra["unparseable_rate"],
                      np.mean([p == "<unparseable>" for p in pred.labels]))


@pytest.mark.parametrize("method, scoring", [("icl", "direct"), ("retrieval", "channel"),
                                             ("instruct", "normalized")])
def test_prompt_command_shows_a_multi_field_prompt_exactly_as_scored(
        tmp_path, tiny_model_dir, tiny_embedder_dir, monkeypatch, method, scoring):
    from iclmeta import evaluate, load_dataset
    from iclmeta.harness.show_prompt import render_prompt
    from iclmeta.lm.hf import HFLM

    rows = [{"premise": t, "hypothesis": TEXTS[label][(i + 1) % 4], "label": label}
            for label in LABELS for i, t in enumerate(TEXTS[label])]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = EvalConfig(methods=[method], dataset=str(data), text_field=["premise", "hypothesis"],
                        template="nli", scoring=scoring, model=tiny_model_dir,
                        embedder=tiny_embedder_dir, cache_dir=str(tmp_path / "cache"),
                        shots=[1], queries=1, episodes=1, dtype="float32", class_split="all",
                        out=str(tmp_path / "run"))
    scored = []  # every (prompt, continuation) the LM was asked to score
    score, pairs = HFLM.score, HFLM.score_pairs
    monkeypatch.setattr(HFLM, "score", lambda self, prompts, cands, *a, **k: (
        scored.extend((p, c) for p in prompts for c in cands), score(self, prompts, cands,
                                                                     *a, **k))[1])
    monkeypatch.setattr(HFLM, "score_pairs", lambda self, groups, *a, **k: (
        scored.extend(pair for group in groups for pair in group), pairs(self, groups, *a,
                                                                         **k))[1])
    evaluate(config, progress=False, echo=lambda msg: None)
    by_id = {ex.id: ex for ex in load_dataset(str(data), ["premise", "hypothesis"]).examples}
    for query in range(3):
        shown = render_prompt(config, episode=0, query=query)
        texts = shown["prompt"] if isinstance(shown["prompt"], list) else \
            [shown["prompt"]] * len(shown["candidates"])
        assert all((t, c) in scored for t, c in zip(texts, shown["candidates"]))
        q = by_id[shown["query_id"]].fields
        inputs = f"Premise: {q['premise']}\nHypothesis: {q['hypothesis']}"
        if scoring == "channel":  # the continuation scored is the query's fields
            assert {c for _, c in zip(texts, shown["candidates"])} == {inputs[len("Premise:"):]}
        else:
            assert f"{inputs}\nRelation:" in texts[0]
