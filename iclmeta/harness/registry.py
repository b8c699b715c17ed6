"""Methods: every family answers "given this episode at K shots, label each query".

``METHODS`` maps a method name to ``"module:factory"``; the factory takes the shared
``Resources`` and returns an object with ``fit()`` (loads models and checkpoints) and
``predict(episode, shots) -> Prediction``. Modules are imported only when their method is
used, so listing methods stays light.

>>> {"icl", "retrieval", "zero-shot"} <= set(METHODS)
True
"""
from __future__ import annotations

import importlib

from iclmeta.data.prediction import Method
from iclmeta.errors import UserError

METHODS: dict[str, str] = {
    "zero-shot": "iclmeta.prompting.methods:ZeroShot",
    "icl": "iclmeta.prompting.methods:RandomDemos",
    "retrieval": "iclmeta.prompting.methods:RetrievedDemos",
    "instruct": "iclmeta.prompting.methods:Instruct",
    "knn": "iclmeta.metric.methods:build",
    "protonet": "iclmeta.metric.methods:build",
    "matching": "iclmeta.metric.methods:build",
    "relation": "iclmeta.metric.methods:build",
    "finetune": "iclmeta.meta.methods:FineTune",
    "multitask": "iclmeta.meta.methods:MetaLearned",
    "maml": "iclmeta.meta.methods:MetaLearned",
    "fomaml": "iclmeta.meta.methods:MetaLearned",
    "reptile": "iclmeta.meta.methods:MetaLearned",
    "retrieve-adapt": "iclmeta.meta.retrieve_adapt:RetrieveAdapt",
}


def check_methods(names: list[str]) -> None:
    for name in names:
        if name not in METHODS:
            raise UserError(f"unknown method {name!r}; choose one of: {', '.join(sorted(METHODS))}")


def build_method(name: str, resources) -> Method:
    """Instantiate a registered method over the shared resources (no model is loaded yet)."""
    check_methods([name])
    module_name, attr = METHODS[name].split(":")
    factory = getattr(importlib.import_module(module_name), attr)
    return factory(name, resources)
