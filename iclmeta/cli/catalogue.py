"""``iclmeta ls``: what there is to choose from, one line each (no model is loaded).

>>> print(catalogue("datasets").splitlines()[0])
datasets (--dataset; or a data file, or a Hugging Face id)
"""
from __future__ import annotations

from iclmeta.config.fields import GRADIENT, METRIC, PROMPTING
from iclmeta.data.fields import BUILTINS
from iclmeta.errors import UserError
from iclmeta.harness.registry import METHODS
from iclmeta.models import DEFAULT_EMBEDDER, DEFAULT_LM, EMBEDDERS, LM_NAMES
from iclmeta.prompts import list_templates, template_path
from iclmeta.tasks import describe_file, list_tasks, task_path

SECTIONS = ("methods", "datasets", "tasks", "templates", "models")
FAMILIES = {**dict.fromkeys(PROMPTING, "prompting"), **dict.fromkeys(METRIC, "metric"),
            **dict.fromkeys(GRADIENT, "LoRA")}
# One line per registered method (tests/test_catalogue.py keeps this equal to the registry).
METHOD_LINES = {
    "zero-shot": "instruction and query only",
    "icl": "a seeded random k of the K-shot support as demonstrations",
    "retrieval": "the k support examples nearest to each query (sentence embeddings)",
    "instruct": "the model's chat template; demonstrations as turns or packed, random or "
                "retrieved",
    "knn": "label of the nearest support example in embedding space",
    "protonet": "nearest class mean (prototype); optional trained head",
    "matching": "softmax attention over the support set; optional trained head",
    "relation": "a learned relation module over (query, prototype) pairs; needs a checkpoint",
    "finetune": "a fresh LoRA adapter trained on each episode's support set",
    "multitask": "a LoRA initialisation trained on meta-train classes, then adapted",
    "maml": "a MAML-learned LoRA initialisation (second order), then adapted",
    "fomaml": "a first-order MAML LoRA initialisation, then adapted",
    "reptile": "a Reptile-learned LoRA initialisation, then adapted",
    "retrieve-adapt": "per query, a few LoRA steps on its k nearest support examples",
}
MODEL_LINES = {
    "smollm2": "SmolLM2-135M-Instruct, embedded in a PyPI wheel",
    "gemma3-270m": "Gemma 3 270M base, optional wheels (requirements-gemma.txt; Gemma terms)",
    "minilm": "all-MiniLM-L6-v2 sentence embedder, embedded in a PyPI wheel",
}


def _rows(title: str, rows: list[tuple[str, str]]) -> str:
    width = max((len(name) for name, _ in rows), default=0)
    return "\n".join([title] + [f"  {name:<{width}}  {line}".rstrip() for name, line in rows])


def section(name: str) -> str:
    """One section of the catalogue as text."""
    if name == "methods":
        return _rows("methods (--method)", [(m, f"[{FAMILIES.get(m, '?')}] {METHOD_LINES.get(m, '')}")
                                            for m in METHODS])
    if name == "datasets":
        return _rows("datasets (--dataset; or a data file, or a Hugging Face id)",
                     list(BUILTINS.items()))
    if name == "tasks":
        return _rows("tasks (--task NAME, or --task FILE.yaml)",
                     [(t, describe_file(task_path(t))) for t in list_tasks()])
    if name == "templates":
        return _rows("templates (--template NAME, or --template FILE.yaml)",
                     [(t, describe_file(template_path(t))) for t in list_templates()])
    lms = [(m, f"[LM{', default' if m == DEFAULT_LM else ''}] {MODEL_LINES.get(m, '')}")
           for m in LM_NAMES]
    embedders = [(e, f"[embedder{', default' if e == DEFAULT_EMBEDDER else ''}] "
                     f"{MODEL_LINES.get(e, '')}") for e in EMBEDDERS]
    return _rows("models (--model, --embedder; or a Hugging Face id, a local folder, a .gguf "
                 "file)", lms + embedders)


def catalogue(name: str | None = None) -> str:
    """Every section (``name`` None) or one of ``SECTIONS``."""
    if name is not None and name not in SECTIONS:
        raise UserError(f"unknown catalogue section {name!r}; choose one of: "
                        f"{', '.join(SECTIONS)}")
    return "\n\n".join(section(s) for s in ([name] if name else SECTIONS))
