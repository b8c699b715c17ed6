"""Templates that name fields: sandboxed rendering, old single-brace files, byte-identical
prompts for single-text data, one-line errors, and what the embedder reads."""
import hashlib
import json

import pytest

from iclmeta.data.example import Example, LabelledDataset
from iclmeta.errors import UserError
from iclmeta.prompting.render import Renderer
from iclmeta.prompts import EmbedText, PromptBuilder, Template, load_template, template_for

NLI = Template(name="nli-test", instruction="Relation?",
               demo="Premise: {{premise}}\nHypothesis: {{hypothesis}}\nAnswer: {{label}}",
               query="Premise: {{premise}}\nHypothesis: {{hypothesis}}\nAnswer:")


def _nli(premise, hypothesis, label="yes", id="0"):
    return Example.from_fields({"premise": premise, "hypothesis": hypothesis}, label, id)


def _nli_data():
    return LabelledDataset("nli", [_nli("a dog runs", "an animal moves", "yes", "0"),
                                   _nli("a cat sleeps", "a cat runs", "no", "1")])


# ---- single-text prompts are byte-identical to the single-brace renderer's ------------------

class _ChatLM:
    def chat(self, messages):
        return json.dumps(messages, ensure_ascii=False)


TEXTS = ["what is the capital of France ?", "  spaced  out  ",
         "braces {text} {label} {{x}} {% if %} {# c #}", "line one\nline two", "ünïcödé ✓ 😀", ""]
LABELS = ["ABBR", "play_music", "LOC"]
NAMES = {"ABBR": "abbreviation", "play_music": "play music"}
# Written in the old syntax on purpose: both are converted on construction.
ODD = Template(name="odd", instruction="Odd %} }} #} {x}", demo="Q%}: {text} }}\nA#}: {label} end",
               query="Q%}: {text} }}\nA#}:", separator=" | ", label_prefix="")
TINY = Template(name="tiny", instruction="the question", chat_instruction="answer the question",
                demo="question : {text} answer : {label}", query="question : {text} answer :",
                separator=" . ")
# sha256 of every rendering below, captured from the single-brace renderer before templates
# moved to Jinja (text prompts, chat messages, candidates, content-free and channel prompts).
BEFORE = {
    "generic label_list=False chat=False packed=False": "67d7608d28571f4c537758ce70e177bc7eaeb4159ad3d8fcd5a9054e3337fa3b",
    "generic label_list=False chat=True packed=False": "a8b0f1ace52f1ab720b0375f3d1946375ba9af13a67fcf85636ad48ebb247614",
    "generic label_list=False chat=True packed=True": "5dbc9f4d61254111f5d1fe5ae5443fd55a5e7f17d98cf9d4602443d7f6677c30",
    "generic label_list=True chat=False packed=False": "1de9f9712113b61a007736298207851e5e6d13ba89d2125262acbb1760f1bed7",
    "generic label_list=True chat=True packed=False": "98dfd6d5c8b84336052caabb85596ada31d97dd2ef98be08fc40bb74ae3dfbb8",
    "generic label_list=True chat=True packed=True": "9174dde62487b246946b1085d10ee7f89fa4778ba3b45a9db92842b9a53c9f5b",
    "intent label_list=False chat=False packed=False": "f99e85ceec76e89bf6d5ff83b63931f4eae666cab19ecef2bbc7cdcb7f922e44",
    "intent label_list=False chat=True packed=False": "35757f403f2cecd7533c61d2f8c64fa15008ac1d39468328d60c8e916892011f",
    "intent label_list=False chat=True packed=True": "e77b64404ab1dedb2e40bc34ecfbf9338cb99a8843b78de221aa644f9b835e2c",
    "intent label_list=True chat=False packed=False": "ac0bde757f9f524c64a415366b5c4590ae2b2297a415c6e485f652868dd5bf3e",
    "intent label_list=True chat=True packed=False": "8d01b041d6fc326fa797bca89e0025215fab7c8b2307dda73310ca1aab1dbab2",
    "intent label_list=True chat=True packed=True": "3b0bddf70656ede102df271d294738a71e65b9f4d912a996c853561b072ee626",
    "question label_list=False chat=False packed=False": "a82c3963c8b6ebb054628dfa39d6fdf155fb7a5912a6dd4fa8013d601e6fbd99",
    "question label_list=False chat=True packed=False": "87a7d9912f3ab03b13214c5d88df523dd4eecad2a6d04cf5b5cf0e8c50196b8d",
    "question label_list=False chat=True packed=True": "39a76f8808c5be1d7a7673ad201e475a4a8ae998e1152f01ef0864bdc61ce441",
    "question label_list=True chat=False packed=False": "63d3045b80f884fc45654e7d51db1ba26cd9592ab03d6d93a7614c74a2d93ad0",
    "question label_list=True chat=True packed=False": "b5ab58bba515107da0530d391c64e4ab8f6203083fe3c400e778d5f610f2f533",
    "question label_list=True chat=True packed=True": "9ae2a374ac70e118facec2e397c5f4bda49212629ac722c92d05e1ff7c311353",
    "odd label_list=False chat=False packed=False": "da675555011c5cdf90d55db71771604620a8339f7247709dfbc395104de5ef6c",
    "odd label_list=False chat=True packed=False": "cb15379dc8e4a6d0b5e8aec977e48ca47e67021b65c6d98784162c93bfa4f5d5",
    "odd label_list=False chat=True packed=True": "2e8a616a301cd05637b1c0d9e197a83910ba688f8481fdb598a792465b059f1b",
    "odd label_list=True chat=False packed=False": "4689ea4e2d5dffd829ff3d68c59a24a96cc036e329cfc3508a6e981144ab04b7",
    "odd label_list=True chat=True packed=False": "14bd2782013e2893bfe731878ab5c9f98ca92962b5d78b13ea28d4629b91a710",
    "odd label_list=True chat=True packed=True": "4912255d9f1436cb1d80389c038baded9c086ce3ecbc00a1a1afa344666805d1",
    "tiny label_list=False chat=False packed=False": "38abd570df1dd05492ec8a9c6c83364aec950554cbbbf65cb91bf1f931643ec2",
    "tiny label_list=False chat=True packed=False": "b7436d5de455fda63480b8ce903161b9298fa06ae504c41a275f403ebb644351",
    "tiny label_list=False chat=True packed=True": "2c62bb084eee51aec10db9ca4c7d1f1f70f9ad0f546e886333c615f99a2c1c11",
    "tiny label_list=True chat=False packed=False": "81f6f3225fd71b9b290ff8f7b8599e0d726e679af55bc224f1290b12624a06e4",
    "tiny label_list=True chat=True packed=False": "9eff7f209db0471a6ae4bec05d88272261acf29e38902176c9223d3614d4e184",
    "tiny label_list=True chat=True packed=True": "072c0f077e1871ded27e417550c52e2129b05d95a11b7afa34c13738e92ffe1c",
}


def _renderings(template: Template, label_list: bool, chat: bool, packed: bool) -> str:
    t = Template(**{**template.to_dict(), "label_list": label_list})
    r = Renderer(PromptBuilder(t, NAMES), _ChatLM(), chat=chat, packed=packed)
    demos = [Example(text, LABELS[i % 3], f"d{i}") for i, text in enumerate(TEXTS[:3])]
    group = []
    for q in TEXTS:
        for shown in ([], demos):
            group.append({"template": t.name, "label_list": label_list, "chat": chat,
                          "packed": packed, "query": q, "demos": [d.id for d in shown],
                          "prompt": r.prompt(shown, Example(q, "LOC", "q"), LABELS),
                          "candidates": r.candidates(LABELS),
                          "content_free": r.content_free(shown, LABELS),
                          "channel": r.channel_all(shown, q, LABELS),
                          "messages": r.messages(shown, Example(q, "LOC", "q"), LABELS)})
    return hashlib.sha256(json.dumps(group, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


@pytest.mark.parametrize("key", sorted(BEFORE))
def test_single_text_prompts_are_byte_identical_to_the_old_renderer(key):
    name, label_list, chat, packed = (part.split("=")[-1] for part in key.split())
    template = {"odd": ODD, "tiny": TINY}.get(name) or load_template(name)
    assert _renderings(template, label_list == "True", chat == "True", packed == "True") == \
        BEFORE[key]


def test_shipped_templates_use_the_double_brace_syntax():
    for name in ("generic", "intent", "question", "nli"):
        text = (load_template(name).demo, load_template(name).query)
        assert all("{{" in part for part in text) and "{{label}}" in text[0]


def test_old_single_brace_template_files_still_load(tmp_path):
    old = tmp_path / "old.yaml"
    old.write_text('demo: "Q: {text}\\nA: {label}"\nquery: "Q: {text}\\nA:"\n')
    t = load_template(str(old))
    assert (t.demo, t.query) == ("Q: {{text}}\nA: {{label}}", "Q: {{text}}\nA:")
    assert PromptBuilder(t).render([Example("hi", "x_y", "0")], "yo") == "Q: hi\nA: x y\n\nQ: yo\nA:"


# ---- multi-field prompts ------------------------------------------------------------------

def test_multi_field_prompt_text_chat_and_channel():
    b = PromptBuilder(NLI, {"yes": "entailment", "no": "contradiction"})
    demo, query = _nli("a dog runs", "an animal moves"), _nli("a cat sleeps", "a cat runs", "no")
    assert b.render([demo], query) == (
        "Relation?\n\nPremise: a dog runs\nHypothesis: an animal moves\nAnswer: entailment\n\n"
        "Premise: a cat sleeps\nHypothesis: a cat runs\nAnswer:")
    turns = b.render_chat([demo], query)
    assert turns[1]["content"] == "Premise: a dog runs\nHypothesis: an animal moves\nAnswer:"
    context, continuation = Renderer(b, None).channel([demo], query, "no", ["yes", "no"])
    assert context == ("Relation?\n\nAnswer: entailment\nPremise: a dog runs\nHypothesis: an "
                       "animal moves\n\nAnswer: contradiction\nPremise:")
    assert continuation == " a cat sleeps\nHypothesis: a cat runs"
    # {{text}} of a multi-field example is its fields joined, one per line
    joined = PromptBuilder(Template(name="t"))
    assert joined.query_text(query) == "Input: premise: a cat sleeps\nhypothesis: a cat runs\nLabel:"


def test_a_field_the_data_lacks_is_refused_naming_template_field_and_data_fields():
    b = PromptBuilder(Template(name="mine", demo="{{premise}} {{claim}} {{label}}",
                               query="{{premise}} {{claim}}"), {})
    with pytest.raises(UserError) as err:
        b.check(_nli_data())
    message = str(err.value)
    assert "template 'mine'" in message and "'claim'" in message
    assert "the data has: hypothesis, label, premise, text" in message and "\n" not in message
    with pytest.raises(UserError, match="'claim' is undefined"):  # and never half-rendered
        b.render([], _nli("p", "h"))
    PromptBuilder(NLI).check(_nli_data())  # the fields it names are there


def test_verbalizers_must_cover_every_label():
    t = Template(name="v", verbalizers={"yes": "entailment"})
    with pytest.raises(UserError, match="verbalizers give no word for label\\(s\\) 'no'"):
        PromptBuilder(t).check(_nli_data())
    PromptBuilder(Template(name="v", verbalizers={"yes": "e", "no": "c"})).check(_nli_data())


# ---- nothing in a template or a dataset runs -----------------------------------------------

@pytest.mark.parametrize("source", ["{{ ''.__class__ }}", "{{ text.__class__.__mro__ }}",
                                    "{{ text.__init__.__globals__ }}"])
def test_the_sandbox_refuses_attribute_access_into_python(source):
    b = PromptBuilder(Template(name="evil", query=source + " {{text}}"))
    with pytest.raises(UserError, match="refused by the template sandbox"):
        b.query_text("hi")


def test_block_tags_are_not_templates():
    with pytest.raises(UserError, match="block tags .* are not allowed"):
        Template(name="t", query="{% for i in range(9) %}{{text}}{% endfor %}")
    with pytest.raises(UserError, match="template syntax error"):
        Template(name="t", query="{{text")


def test_dataset_text_is_shown_literally_never_evaluated():
    b = PromptBuilder(NLI)
    query = _nli("{{ 7*7 }} <b>&amp;</b>", "{% for x in y %}{{ ''.__class__ }}")
    text = b.query_text(query)
    assert "{{ 7*7 }} <b>&amp;</b>" in text and "49" not in text  # no evaluation, no escaping
    assert "{% for x in y %}{{ ''.__class__ }}" in text
    assert EmbedText("{{premise}}")(query) == "{{ 7*7 }} <b>&amp;</b>"


# ---- wrong types in a template file: one line naming the key and the type ------------------

@pytest.mark.parametrize("body, problem", [
    ("demo: 3\n", "'demo' must be a string, not int 3"),
    ('label_list: "yes"\n', "'label_list' must be true or false, not str 'yes'"),
    ("verbalizers: [a, b]\n", "'verbalizers' must be a mapping of label to word"),
    ("verbalizers: {yes: agree}\n", "quote it"),
    ("separator: [1]\n", "'separator' must be a string"),
    ("- just\n- a list\n", "holds a mapping of keys"),
])
def test_wrong_types_in_a_template_file_are_one_line(tmp_path, body, problem):
    path = tmp_path / "t.yaml"
    path.write_text(body)
    with pytest.raises(UserError) as err:
        load_template(str(path))
    assert problem in str(err.value) and "\n" not in str(err.value)


def test_numeric_verbalizer_keys_become_label_strings(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("verbalizers: {0: entailment, 1: contradiction}\n")
    b = PromptBuilder(load_template(str(path)))
    assert b.candidates(["0", "1"]) == [" entailment", " contradiction"]


# ---- what the embedder reads ---------------------------------------------------------------

def test_embed_text_default_is_the_example_text_and_a_template_picks_fields():
    plain, pair = Example("just text", "a", "0"), _nli("p1", "h1")
    assert EmbedText()(plain) == "just text" and EmbedText()(pair) == pair.text
    assert pair.text == "premise: p1\nhypothesis: h1"
    assert EmbedText("{{hypothesis}} | {{premise}}")(pair) == "h1 | p1"
    assert EmbedText("{text}")(plain) == "just text"  # single braces convert here too
    with pytest.raises(UserError, match="--embed-template names field 'label'"):
        EmbedText("{{premise}} {{label}}").check(_nli_data())


def test_template_for_picks_nli_for_the_multi_field_builtin():
    assert template_for(None, "presup-nli") == "nli"
    assert load_template("nli").fields() == {"premise", "hypothesis"}


class _Recorder:
    """An embedder that records what it is asked to embed (vectors from the text's length)."""

    name, dim = "recorder", 8

    def __init__(self):
        self.seen = []

    def encode(self, texts):
        import numpy as np
        self.seen += list(texts)
        vectors = np.array([[len(t) % 7 + 1.0, len(t.split()), 1.0] + [0.0] * 5 for t in texts],
                           dtype=np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _pair_episode():
    from iclmeta.data.episodes import Episode
    support = {c: [_nli(f"p {c} {i}", f"h {c} {i}", c, f"{c}{i}") for i in range(2)]
               for c in ("yes", "no")}
    query = [_nli("p q", "h q", "yes", "q0")]
    return Episode(id=0, classes=("yes", "no"), support=support, query=query, seed=0)


def test_retrieval_and_metric_methods_embed_what_embed_template_says():
    from iclmeta.config import EvalConfig
    from iclmeta.harness.resources import Resources
    from iclmeta.metric.methods import MetricMethod
    from iclmeta.retrieval.select import KNNSelector

    ep = _pair_episode()
    rec = _Recorder()
    KNNSelector(rec, text_of=EmbedText("{{hypothesis}}")).select(ep.query[0], ep.support_set(2), 2)
    assert set(rec.seen) == {"h q"} | {e.fields["hypothesis"] for e in ep.support_set(2)}
    ds = LabelledDataset("pairs", ep.support_set(2) + ep.query)
    for template, expected in (("{{premise}}", "p q"), (None, "premise: p q\nhypothesis: h q")):
        res = Resources(EvalConfig(methods=["protonet"], embed_template=template), ds)
        res.embedder = _Recorder()
        method = MetricMethod("protonet", res)
        method.fit()
        method.predict(ep, 2)
        assert res.embedder.seen[-1] == expected and len(res.embedder.seen) == 5
        assert method.options.get("embed_template") == template


def test_metric_training_embeds_what_embed_template_says():
    from iclmeta.config import MetricTrainConfig
    from iclmeta.metric.train import fit_net

    ds = LabelledDataset("pairs", [_nli(f"p {c} {i}", f"h {c} {i}", f"c{c}", f"{c}:{i}")
                                   for c in range(20) for i in range(3)])
    cfg = MetricTrainConfig(method="protonet", ways=2, shots=[1], queries=1, steps=2,
                            val_episodes=1, eval_every=1, embed_template="{{hypothesis}}")
    rec = _Recorder()
    fit_net(cfg, ds, rec, progress=False)
    assert rec.seen and all(t.startswith("h ") for t in rec.seen)
