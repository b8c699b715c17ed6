"""The benchmark scripts under eval/ are not imported by the package; keep them runnable."""
import py_compile
import subprocess
import sys
from pathlib import Path

import pytest

EVAL = Path(__file__).resolve().parent.parent / "eval"


@pytest.mark.parametrize("script", sorted(EVAL.glob("*.py")), ids=lambda p: p.name)
def test_python_scripts_compile_and_explain_themselves(script):
    py_compile.compile(str(script), doraise=True)
    out = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "usage" in out.stdout.lower(), out.stderr[-500:]


@pytest.mark.parametrize("script", sorted(EVAL.glob("*.sh")), ids=lambda p: p.name)
def test_shell_scripts_parse(script):
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
