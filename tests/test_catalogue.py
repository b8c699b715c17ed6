"""``iclmeta ls``: every section, one line per entry, and no heavy import."""
import subprocess
import sys

import pytest

from iclmeta.cli.catalogue import METHOD_LINES, MODEL_LINES, SECTIONS, catalogue
from iclmeta.cli.main import main
from iclmeta.data.fields import BUILTINS
from iclmeta.harness.registry import METHODS
from iclmeta.models import EMBEDDERS, LM_NAMES
from iclmeta.prompts import list_templates
from iclmeta.tasks import list_tasks


def _entries(text: str) -> dict[str, str]:
    return {line.split()[0]: line.split(None, 1)[1] for line in text.splitlines()
            if line.startswith("  ")}


def test_every_method_builtin_task_template_and_model_has_one_line():
    assert set(METHOD_LINES) == set(METHODS)
    assert set(MODEL_LINES) == set(LM_NAMES) | set(EMBEDDERS)
    expected = {"methods": set(METHODS), "datasets": set(BUILTINS), "tasks": set(list_tasks()),
                "templates": set(list_templates()), "models": set(LM_NAMES) | set(EMBEDDERS)}
    for name in SECTIONS:
        entries = _entries(catalogue(name))
        assert set(entries) == expected[name], name
        assert all(line.strip() for line in entries.values()), name
    assert "[prompting]" in _entries(catalogue("methods"))["icl"]
    assert "[LoRA]" in _entries(catalogue("methods"))["maml"]
    assert "premise + hypothesis" in _entries(catalogue("tasks"))["presup-nli"]
    assert _entries(catalogue("templates"))["nli"].startswith("Natural language inference")
    assert "default" in _entries(catalogue("models"))["smollm2"]


def test_ls_prints_all_sections_or_one(capsys):
    assert main(["ls"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines() if line and not line.startswith(" ")] \
        == list(SECTIONS)
    assert main(["ls", "tasks"]) == 0
    assert capsys.readouterr().out.startswith("tasks (--task")
    assert main(["ls", "nope"]) == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err


def test_ls_imports_no_model_library():
    code = ("import sys; from iclmeta.cli.main import main; main(['ls']);"
            "print(sorted(m for m in ('torch', 'transformers', 'faiss', 'sentence_transformers',"
            " 'datasets') if m in sys.modules), file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stderr.strip() == "[]" and "presup-nli" in out.stdout


@pytest.mark.parametrize("section", SECTIONS)
def test_each_section_is_one_line_per_entry(section):
    text = catalogue(section)
    assert all(len(line) < 160 for line in text.splitlines())
