"""The package layout cannot rot: import-linter contracts, registry targets, light imports."""
from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_hold():
    """Layers (cli -> harness -> report -> families -> retrieval|lm -> ... -> errors), no circles."""
    pytest.importorskip("importlinter")
    from importlinter.cli import lint_imports

    # lint_imports reads pyproject.toml from the working directory and returns 0 when kept.
    cwd = Path.cwd()
    try:
        import os
        os.chdir(ROOT)
        assert lint_imports(no_cache=True) == 0, "an import breaks the layers; run lint-imports"
    finally:
        os.chdir(cwd)


def test_registry_targets_live_in_their_family():
    """Registry strings are invisible to import-linter: check each resolves inside a family."""
    from iclmeta.harness.registry import METHODS

    for name, target in METHODS.items():
        module, attr = target.split(":")
        assert module.split(".")[1] in {"prompting", "metric", "meta"}, name
        assert callable(getattr(importlib.import_module(module), attr)), name


@pytest.mark.parametrize("module", ["iclmeta", "iclmeta.prompts", "iclmeta.data",
                                    "iclmeta.config", "iclmeta.report", "iclmeta.retrieval",
                                    "iclmeta.harness.registry"])
def test_light_modules_load_nothing_heavy(module):
    heavy = "{'torch', 'transformers', 'faiss', 'sentence_transformers', 'peft', 'datasets', 'pandas'}"
    code = f"import sys, {module}; print(sorted({heavy} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_modules_stay_small():
    """One concept per module: none past ~250 lines (DESIGN.md house rule 1)."""
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "iclmeta").rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 260}
    assert not long, long
