import subprocess
import sys

import pytest

from iclmeta.data.example import Example, LabelledDataset
from iclmeta.errors import UserError
from iclmeta.prompts import PromptBuilder, Template, list_templates, load_template

DEMOS = [Example("wake me at 7", "alarm", "d1"), Example("play jazz", "play_music", "d2")]
NAMES = {"alarm": "alarm", "play_music": "play music"}


def test_render_snapshot():
    b = PromptBuilder(load_template("intent"), NAMES)
    assert b.render(DEMOS, "put on some rock") == (
        "Classify the intent of each user request.\n\n"
        "Request: wake me at 7\nIntent: alarm\n\n"
        "Request: play jazz\nIntent: play music\n\n"
        "Request: put on some rock\nIntent:")
    assert b.candidates(["alarm", "play_music"]) == [" alarm", " play music"]


def test_render_chat_turns_and_packed():
    b = PromptBuilder(load_template("intent"), NAMES)
    turns = b.render_chat(DEMOS, "put on some rock")
    assert [m["role"] for m in turns] == ["system", "user", "assistant", "user", "assistant",
                                          "user"]
    assert turns[2]["content"] == "alarm" and turns[-1]["content"].endswith("put on some rock\nIntent:")
    packed = b.render_chat(DEMOS, "put on some rock", packed=True)
    assert [m["role"] for m in packed] == ["system", "user"]
    assert "Intent: play music" in packed[1]["content"]


def test_label_list_and_verbalizer_override():
    t = Template(name="t", instruction="Pick.", label_list=True,
                 verbalizers={"alarm": "set alarm"})
    b = PromptBuilder(t, NAMES)
    assert b.instruction(["alarm", "play_music"]) == "Pick. Answer with one of: set alarm, play music."
    assert b.candidates(["alarm"]) == [" set alarm"]


def test_braces_in_text_are_not_expanded():
    b = PromptBuilder(Template(name="t"), {})
    assert b.render([], "a {label} b") == "Input: a {label} b\nLabel:"


def test_bad_templates(tmp_path):
    # any field name is a template's to use; one the data lacks is refused before a run
    ds = LabelledDataset("d", [Example("hi", "a", "0"), Example("yo", "b", "1")])
    with pytest.raises(UserError, match="names field 'answer', which the data lacks; the "
                                        "data has: label, text"):
        PromptBuilder(Template(name="t", demo="{text} {answer}"), {}).check(ds)
    with pytest.raises(UserError, match="'query' must name an input field"):
        Template(name="t", query="Label:")
    with pytest.raises(UserError, match="unknown template 'nope'"):
        load_template("nope")
    bad = tmp_path / "t.yaml"
    bad.write_text("instruction: hi\nbogus: 1\n")
    with pytest.raises(UserError, match="unknown template key"):
        load_template(str(bad))
    assert {"intent", "question", "generic"} <= set(list_templates())


def test_import_stays_light():
    code = ("import sys, iclmeta, iclmeta.prompts, iclmeta.harness.registry, iclmeta.harness.evaluate, iclmeta.cli.main;"
            "print(sorted(m for m in ('torch', 'transformers', 'faiss') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
