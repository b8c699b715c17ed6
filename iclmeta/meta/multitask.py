"""Multi-task training of one LoRA: the plain task loss over meta-train episodes, no inner loop.

The baseline the meta-learners must beat: the same episodes, the same Adam outer step, but the
gradient is that of the mean loss on each task's support and query together at the shared
weights, so nothing is learned about adapting.

>>> loss, grads = MultiTask().outer_grads(lora, params, [(support, query)])  # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from iclmeta.meta.lora import LoraLM, join_batches


@dataclass(frozen=True)
class MultiTask:
    """Multi-task learning as a ``MetaAlgorithm``: the gradient of the mean task loss."""

    second_order = False  # a class constant, not a field

    def outer_grads(self, lora: LoraLM, params, tasks):
        loss = sum(lora.loss(params, join_batches(s, q)) for s, q in tasks) / len(tasks)
        return float(loss.detach()), list(torch.autograd.grad(loss, list(params.values())))

    def optimizer(self, params, lr: float) -> torch.optim.Optimizer:
        return torch.optim.Adam(params, lr=lr)
