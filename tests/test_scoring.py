"""Scoring modes: calibration math, channel prompts, generation parsing, shared-prefix scoring."""
import numpy as np
import pytest

from iclmeta.data.example import Example
from iclmeta.errors import UserError
from iclmeta.prompting.render import ChannelForm, QueryPrompt, Renderer
from iclmeta.prompts import PromptBuilder, Template, load_template
from iclmeta.lm.modes import UNPARSEABLE, calibrate, parse_label, predict_with

NAMES = {"LOC": "location", "NUM": "number", "HUM": "human"}
TINY = Template(name="tiny", instruction="the question", demo="question : {text} answer : {label}",
                query="question : {text} answer :", separator=" . ")


def test_calibration_divides_out_the_content_free_prior():
    # p(query) = (0.5, 0.5); content-free priors (0.9, 0.1) and (0.7, 0.3) average to (0.8, 0.2):
    # calibrated = (0.5 / 0.8, 0.5 / 0.2) renormalized = (0.2, 0.8).
    out = calibrate(np.log([[0.5, 0.5]]), np.log([[0.9, 0.1], [0.7, 0.3]]))
    assert np.allclose(np.exp(out), [[0.2, 0.8]])
    # unnormalized label log-likelihoods (summed over tokens) give the same answer
    shifted = calibrate(np.log([[0.5, 0.5]]) - 3.0, np.log([[0.9, 0.1], [0.7, 0.3]]) - 7.0)
    assert np.allclose(shifted, out)
    # a uniform prior changes nothing
    q = np.log([[0.6, 0.3, 0.1]])
    assert np.allclose(calibrate(q, np.log([[1 / 3] * 3])), q)


@pytest.mark.parametrize("output, expected", [
    ("location", "LOC"), (" Location.\n\nQuestion: where", "LOC"), ("NUMBER", "NUM"),
    ("loc", "LOC"), ("human being", "HUM"), ("humna", "HUM"), ("locations", "LOC"),
    ("I think it is a place", UNPARSEABLE), ("", UNPARSEABLE), ("\n\n", UNPARSEABLE),
    ("numberless", UNPARSEABLE),
])
def test_parse_label(output, expected):
    assert parse_label(output, NAMES) == expected


class FakeLM:
    """Generation only: returns fixed outputs, counts words as tokens."""

    def __init__(self, outputs):
        self.outputs = outputs

    def generate(self, prompts, max_new_tokens=16):
        assert max_new_tokens >= 4
        return self.outputs[:len(prompts)]

    def count_tokens(self, text):
        return len(text.split())


def test_generate_records_the_unparseable_rate():
    b = PromptBuilder(load_template("question"), NAMES)
    plans = [QueryPrompt(Example(f"q{i}", "LOC", f"q{i}"), [], 0, prompt=f"Question: q{i}")
             for i in range(4)]
    lm = FakeLM([" location\n", " no idea", " Number.", " humn"])
    labels, extra, tokens = predict_with("generate", lm, plans, ["LOC", "NUM", "HUM"], b)
    assert labels == ["LOC", UNPARSEABLE, "NUM", "HUM"]
    assert extra["unparseable_rate"] == 0.25 and extra["generations"][1] == " no idea"
    assert tokens == 8


def test_channel_prompt_puts_the_label_first_and_scores_the_text():
    form = ChannelForm("Question: {{text}}\nAnswer type: {{label}}")
    assert (form.label_line, form.prefix) == ("Answer type: ", "Question:")
    b = PromptBuilder(load_template("question"), NAMES)
    demos = [Example("Where is Rome ?", "LOC", "d1"), Example("How many legs ?", "NUM", "d2")]
    pairs = Renderer(b, lm=None).channel_all(demos, "Who is he ?", ["LOC", "HUM"])
    assert pairs[1] == ("Classify each question by the type of answer it asks for.\n\n"
                        "Answer type: location\nQuestion: Where is Rome ?\n\n"
                        "Answer type: number\nQuestion: How many legs ?\n\n"
                        "Answer type: human\nQuestion:", " Who is he ?")
    assert pairs[0][0].endswith("Answer type: location\nQuestion:") and pairs[0][1] == pairs[1][1]
    with pytest.raises(UserError, match="channel scoring needs"):
        ChannelForm("{{label}}: {{text}}")


def test_score_pairs_matches_separate_scoring(tiny_lm):
    groups = [[("the question : what is the city answer :", " location"),
               ("the question : what is the city answer :", " number"),
               ("the question : who is the person answer :", " person")],
              [("play a song", " music")]]
    out = tiny_lm.score_pairs(groups)
    for group, got in zip(groups, out.values):
        expected = [tiny_lm.score([ctx], [cont]).total[0, 0] for ctx, cont in group]
        assert np.allclose(got, expected, atol=1e-4)
    assert out.tokens > 0
    assert tiny_lm.score_pairs([]).values == []


def test_score_pairs_rejects_empty_groups_and_too_long_pairs(tiny_lm):
    with pytest.raises(UserError, match="nothing to score"):
        tiny_lm.score_pairs([[]])
    with pytest.raises(UserError, match="no tokens"):
        tiny_lm.score_pairs([[("play a song", "")]])
    with pytest.raises(UserError, match="exceeds the 256-token window of 'tiny'"):
        tiny_lm.score_pairs([[(" ".join(["the"] * 250), " city " * 10)]])


def _plans(builder, lm, scoring, demos, queries, labels):
    from iclmeta.prompting.methods import build_prompt
    return [build_prompt(Renderer(builder, lm), lm, scoring, demos, q, labels) for q in queries]


DEMOS = [Example("where is the city", "LOC", "d1"), Example("how many a", "NUM", "d2")]
QUERIES = [Example("what is the city", "LOC", "q1"), Example("who is the person", "HUM", "q2")]
LABELS = ["LOC", "NUM", "HUM"]


def test_calibrated_scoring_uses_content_free_prompts_with_the_same_demos(tiny_lm):
    b = PromptBuilder(TINY, {"LOC": "location", "NUM": "number", "HUM": "person"})
    plans = _plans(b, tiny_lm, "calibrated", DEMOS, QUERIES, LABELS)
    assert len(plans[0].content_free) == 3
    assert all("where is the city" in cf for cf in plans[0].content_free)
    got, extra, _ = predict_with("calibrated", tiny_lm, plans, LABELS, b)
    assert extra["content_free_sets"] == 1
    direct = tiny_lm.score([p.prompt for p in plans], plans[0].candidates).total
    prior = tiny_lm.score(plans[0].content_free, plans[0].candidates).total
    expected = calibrate(direct, prior).argmax(1)
    assert got == [LABELS[i] for i in expected]


def test_channel_scoring_equals_scoring_each_label_prompt(tiny_lm):
    b = PromptBuilder(TINY, {"LOC": "location", "NUM": "number", "HUM": "person"})
    plans = _plans(b, tiny_lm, "channel", DEMOS, QUERIES, LABELS)
    assert [len(p.channel) for p in plans] == [3, 3]
    got, _, _ = predict_with("channel", tiny_lm, plans, LABELS, b)
    for plan, label in zip(plans, got):
        scores = [tiny_lm.score([ctx], [cont]).total[0, 0] for ctx, cont in plan.channel]
        assert label == LABELS[int(np.argmax(scores))]


def test_score_pairs_without_a_bos_token_splits_unshared_contexts(tiny_model_and_tokenizer):
    import copy

    from tokenizers import processors

    from iclmeta.lm.hf import HFLM

    model, tokenizer = tiny_model_and_tokenizer
    plain = copy.deepcopy(tokenizer)
    plain.backend_tokenizer.post_processor = processors.TemplateProcessing(single="$A")
    lm = HFLM(model, plain, name="tiny-no-bos", batch_size=2)
    group = [("play a song", " music"), ("where is the city", " location"),
             ("where is the song", " music")]
    assert lm.tokenizer("play").input_ids == lm.tokenizer("play", add_special_tokens=False).input_ids
    values = lm.score_pairs([group]).values
    expected = [lm.score([ctx], [cont]).total[0, 0] for ctx, cont in group]
    assert np.allclose(values[0], expected, atol=1e-4)
