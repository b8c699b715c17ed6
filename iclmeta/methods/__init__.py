"""Methods: every family answers "given this episode at K shots, label each query".

``METHODS`` maps a method name to ``"module:factory"``; the factory takes the shared
``Resources`` and returns an object with ``fit(train_episodes)`` and
``predict(episode, shots) -> Prediction``. Modules are imported only when their method is
used, so listing methods stays light.

>>> {"icl", "retrieval", "zero-shot"} <= set(METHODS)
True
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ..errors import UserError

if TYPE_CHECKING:
    from ..episodes import Episode

METHODS: dict[str, str] = {
    "zero-shot": "iclmeta.methods.prompting:ZeroShot",
    "icl": "iclmeta.methods.prompting:RandomDemos",
    "retrieval": "iclmeta.methods.prompting:RetrievedDemos",
    "instruct": "iclmeta.methods.prompting:Instruct",
    "knn": "iclmeta.methods.metric:build",
    "protonet": "iclmeta.methods.metric:build",
    "matching": "iclmeta.methods.metric:build",
    "relation": "iclmeta.methods.metric:build",
    "finetune": "iclmeta.methods.finetune:FineTune",
    "multitask": "iclmeta.methods.finetune:MetaLearned",
    "maml": "iclmeta.methods.finetune:MetaLearned",
    "fomaml": "iclmeta.methods.finetune:MetaLearned",
    "reptile": "iclmeta.methods.finetune:MetaLearned",
}


@dataclass
class Prediction:
    """One label per query of the episode, and what it cost."""

    labels: list[str]
    demo_ids: list[list[str]] = field(default_factory=list)
    prompt_tokens: int = 0
    extra: dict = field(default_factory=dict)


class Method(Protocol):
    name: str
    options: dict

    def fit(self, train_episodes: list["Episode"]) -> None: ...

    def predict(self, episode: "Episode", shots: int) -> Prediction: ...


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
