"""The README's "Library use in apps" example runs as written (real embedded models)."""
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def apps_snippet(heading: str = "## Library use in apps") -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split(heading + "\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the apps section should hold exactly one python example"
    return blocks[0]


@pytest.mark.integration
def test_readme_apps_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(apps_snippet(), "README.md", "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("[") and "m1" in out[0]  # the music demonstrations are retrieved
    assert out[-1] in {"alarm", "play_music", "weather"}
    assert (tmp_path / "intent_index" / "retriever.json").is_file()


def test_readme_apps_example_is_valid_python():
    compile(apps_snippet(), "README.md", "exec")


@pytest.mark.integration
def test_readme_library_example_runs(tmp_path, monkeypatch, capsys):
    """The "Library use" snippet runs the harness as written and prints the table."""
    monkeypatch.chdir(tmp_path)
    exec(compile(apps_snippet("## Library use"), "README.md", "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    assert "icl" in out and "retrieval" in out
    assert (tmp_path / "runs" / "library" / "results.jsonl").is_file()


def test_readme_public_names_import_as_documented():
    """Every name in the README's import table imports from the path it names."""
    import importlib

    text = README.read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(iclmeta[\w.]*)` \| (.+) \|$", text, flags=re.M)
    assert len(rows) >= 4
    for module, names in rows:
        for name in re.findall(r"`(\w+)`", names.split("(")[0]):
            assert hasattr(importlib.import_module(module), name), f"{module}.{name}"
