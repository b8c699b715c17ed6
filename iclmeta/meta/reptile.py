"""Reptile over LoRA fast weights.

Each task adapts the initialisation with ``k`` SGD steps on all its labelled examples (support
and query together: Reptile has no separate meta-objective), and the initialisation moves a
fraction ``step_size`` of the way toward the mean of the adapted weights:
``theta <- theta + step_size * mean_i(phi_i - theta)``. With ``step_size = 1`` and one task the
new initialisation is that task's adapted weights; with ``0`` it is unchanged.

As a ``MetaAlgorithm``, ``Reptile.outer_grads`` returns ``-mean_i(phi_i - theta)`` and its
optimizer is plain SGD with ``lr = step_size``, whose step is exactly that interpolation
(``reptile_update`` is the same update as one pure function).

>>> new, loss = reptile_update(lora, params, [batch], inner_steps=3, inner_lr=0.05,
...                            step_size=0.5)                        # doctest: +SKIP
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch

from iclmeta.meta.adaptation import adapt
from iclmeta.meta.lora import LoraLM, TaskBatch, join_batches


@dataclass(frozen=True)
class Reptile:
    """Reptile as a ``MetaAlgorithm``: a pseudo-gradient toward the mean adapted weights."""

    inner_steps: int
    inner_lr: float
    second_order = False  # a class constant, not a field: Reptile never differentiates the loop

    def outer_grads(self, lora: LoraLM, params, tasks):
        loss, delta = mean_delta(lora, params, [join_batches(s, q) for s, q in tasks],
                                 self.inner_steps, self.inner_lr)
        return loss, [-d for d in delta.values()]

    def optimizer(self, params, lr: float) -> torch.optim.Optimizer:
        # SGD with lr = step_size applied to -mean delta is the Reptile interpolation; no
        # momentum, so nothing beyond the weights carries over between steps.
        return torch.optim.SGD(params, lr=lr)


def mean_delta(lora: LoraLM, params, tasks: list[TaskBatch], inner_steps: int,
               inner_lr: float):
    """Mean task loss at ``params`` (first inner step) and ``mean_i(phi_i - params)``.

    >>> loss, delta = mean_delta(lora, params, [batch_a, batch_b], 2, 0.1)  # doctest: +SKIP
    """
    deltas = OrderedDict((k, torch.zeros_like(v)) for k, v in params.items())
    losses: list[float] = []
    for batch in tasks:
        task_losses: list[float] = []
        fast = adapt(lora, params, batch, inner_steps, inner_lr, losses=task_losses)
        losses.append(task_losses[0] if task_losses else float(lora.loss(params, batch)))
        for k in deltas:
            deltas[k] += (fast[k].detach() - params[k].detach()) / len(tasks)
    return sum(losses) / len(losses), deltas


def reptile_update(lora: LoraLM, params, tasks: list[TaskBatch], inner_steps: int,
                   inner_lr: float, step_size: float):
    """The new initialisation and the mean task loss at the old one (first inner step)."""
    loss, delta = mean_delta(lora, params, tasks, inner_steps, inner_lr)
    new = OrderedDict((k, (params[k].detach() + step_size * delta[k]).requires_grad_(True))
                      for k in params)
    return new, loss
