"""MAML and first-order MAML over LoRA fast weights.

For each task the inner loop takes ``k`` SGD steps on the support loss from the shared
initialisation; the meta-objective is the query loss at the adapted weights. Second-order MAML
differentiates through the inner steps (``create_graph=True``), so its memory grows with ``k``;
first-order MAML uses the query gradient at the adapted weights as the meta-gradient. FOMAML is
``MAML(first_order=True)``, not a separate algorithm.

Second-order MAML needs attention with a double backward: on CPU load the model with
``attn_implementation="eager"`` (SDPA has none there); ``MAML.second_order`` tells the trainer.

>>> loss, grads = MAML(inner_steps=2, inner_lr=0.05).outer_grads(lora, params, tasks)  # doctest: +SKIP
>>> loss, grads = meta_gradient(lora, params, tasks, inner_steps=2, inner_lr=0.05,
...                             first_order=False)                   # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from iclmeta.meta.adaptation import adapt
from iclmeta.meta.lora import LoraLM, TaskBatch


@dataclass(frozen=True)
class MAML:
    """(First-order) MAML as a ``MetaAlgorithm``: the mean meta-gradient, stepped by Adam."""

    inner_steps: int
    inner_lr: float
    first_order: bool = False

    @property
    def second_order(self) -> bool:
        return not self.first_order

    def outer_grads(self, lora: LoraLM, params, tasks):
        return meta_gradient(lora, params, tasks, self.inner_steps, self.inner_lr,
                             self.first_order)

    def optimizer(self, params, lr: float) -> torch.optim.Optimizer:
        return torch.optim.Adam(params, lr=lr)


def task_meta_gradient(lora: LoraLM, params, support: TaskBatch, query: TaskBatch,
                       inner_steps: int, inner_lr: float, first_order: bool):
    """Query loss after adapting on ``support``, and its gradient w.r.t. the initialisation."""
    fast = adapt(lora, params, support, inner_steps, inner_lr, create_graph=not first_order)
    loss = lora.loss(fast, query)
    # First order: d(query loss)/d(adapted) stands in for d(query loss)/d(initialisation).
    wrt = fast if first_order else params
    grads = torch.autograd.grad(loss, list(wrt.values()))
    return loss.detach(), grads


def meta_gradient(lora: LoraLM, params, tasks: list[tuple[TaskBatch, TaskBatch]],
                  inner_steps: int, inner_lr: float, first_order: bool):
    """Mean query loss and mean meta-gradient over a meta-batch of (support, query) tasks.

    Tasks are processed one at a time, so the graph of only one task is alive at once.

    >>> loss, grads = meta_gradient(lora, params, [(support, query)], 1, 0.1, True)  # doctest: +SKIP
    """
    total_loss, total = 0.0, None
    for support, query in tasks:
        loss, grads = task_meta_gradient(lora, params, support, query, inner_steps, inner_lr,
                                         first_order)
        total_loss += float(loss)
        total = list(grads) if total is None else [t + g for t, g in zip(total, grads)]
    n = len(tasks)
    return total_loss / n, [g / n for g in total]
