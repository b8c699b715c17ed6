"""One protocol for the meta-learning algorithms, and the registry the trainer builds them from.

An algorithm turns a meta-batch of (support, query) tasks into a loss and one tensor per fast
weight, and names the outer optimizer that applies it. The trainer's loop is the same for all:
``outer_grads`` -> finite check -> ``param.grad = g`` -> ``optimizer.step()``. Where they differ
is only inside ``outer_grads`` (all share the pure inner loop ``adaptation.adapt``):

- ``maml`` / ``fomaml``: the meta-gradient of the query loss after adapting on the support
  (``MAML(first_order=...)``); Adam.
- ``reptile``: minus the mean step of the adapted weights; SGD with ``lr = step_size``, which is
  Reptile's interpolation.
- ``multitask``: the gradient of the plain task loss, no inner loop; Adam.
- ``retrieve-adapt``: first-order MAML whose tasks are single queries, each adapting on its
  nearest support examples (``neighbours.NeighbourMAML``); Adam.

A new algorithm (ANIL, Meta-SGD, ...) is a new module with a class of this shape and one entry
in ``ALGORITHMS``.

>>> algo = build_algorithm("fomaml", inner_steps=2, inner_lr=0.1)
>>> algo.first_order, algo.second_order
(True, False)
>>> build_algorithm("anil", 1, 0.1)
Traceback (most recent call last):
...
iclmeta.errors.UserError: unknown meta-learning algorithm 'anil'; choose one of: fomaml, maml, multitask, reptile, retrieve-adapt
"""
from __future__ import annotations

from collections import OrderedDict
from functools import partial
from typing import Callable, Protocol, Sequence

import torch

from iclmeta.errors import UserError
from iclmeta.meta.lora import LoraLM, TaskBatch
from iclmeta.meta.maml import MAML
from iclmeta.meta.multitask import MultiTask
from iclmeta.meta.neighbours import NeighbourMAML
from iclmeta.meta.reptile import Reptile

Params = OrderedDict  # fast-weight name -> tensor (the LoRA tensors only)
Task = tuple[TaskBatch, TaskBatch]  # (support, query) of one meta-train episode


class MetaAlgorithm(Protocol):
    """What the meta-training loop needs from an algorithm (implementers need not import it)."""

    second_order: bool  # differentiates through the inner loop (needs a double backward)

    def outer_grads(self, lora: LoraLM, params: Params,
                    tasks: Sequence[Task]) -> tuple[float, list[torch.Tensor]]:
        """Mean task loss and the tensor, per fast weight, the optimizer steps against."""

    def optimizer(self, params: list[torch.Tensor], lr: float) -> torch.optim.Optimizer:
        """The outer optimizer over ``params`` with learning rate ``lr`` (``--meta-lr``)."""


# Each entry is built from the inner-loop settings of the run.
ALGORITHMS: dict[str, Callable[..., MetaAlgorithm]] = {
    "maml": MAML,
    "fomaml": partial(MAML, first_order=True),
    "reptile": Reptile,
    # No inner loop: inner_steps / inner_lr only matter later, as test-time adaptation defaults.
    "multitask": lambda inner_steps, inner_lr: MultiTask(),
    # first-order MAML on single queries adapting on their nearest support examples
    "retrieve-adapt": NeighbourMAML,
}


def build_algorithm(name: str, inner_steps: int, inner_lr: float) -> MetaAlgorithm:
    """The registered algorithm ``name`` with these inner-loop settings (see the module doc)."""
    if name not in ALGORITHMS:
        raise UserError(f"unknown meta-learning algorithm {name!r}; choose one of: "
                        f"{', '.join(sorted(ALGORITHMS))}")
    return ALGORITHMS[name](inner_steps=inner_steps, inner_lr=inner_lr)
