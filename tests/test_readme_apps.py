"""The README's "Library use in apps" example runs as written (real embedded models)."""
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def apps_snippet() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Library use in apps", 1)[1].split("\n## ", 1)[0]
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
