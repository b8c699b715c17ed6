"""Reptile over LoRA fast weights.

Each task adapts the initialisation with ``k`` SGD steps on all its labelled examples (support
and query together: Reptile has no separate meta-objective), and the initialisation moves a
fraction ``step_size`` of the way toward the mean of the adapted weights:
``theta <- theta + step_size * mean_i(phi_i - theta)``. With ``step_size = 1`` and one task the
new initialisation is that task's adapted weights; with ``0`` it is unchanged.

>>> new, loss = reptile_update(lora, params, [batch], inner_steps=3, inner_lr=0.05,
...                            step_size=0.5)                        # doctest: +SKIP
"""
from __future__ import annotations

from collections import OrderedDict

import torch

from iclmeta.meta.lora import LoraLM, TaskBatch, adapt


def reptile_update(lora: LoraLM, params, tasks: list[TaskBatch], inner_steps: int,
                   inner_lr: float, step_size: float):
    """The new initialisation and the mean task loss at the old one (first inner step)."""
    deltas = OrderedDict((k, torch.zeros_like(v)) for k, v in params.items())
    losses: list[float] = []
    for batch in tasks:
        task_losses: list[float] = []
        fast = adapt(lora, params, batch, inner_steps, inner_lr, losses=task_losses)
        losses.append(task_losses[0] if task_losses else float(lora.loss(params, batch)))
        for k in deltas:
            deltas[k] += (fast[k].detach() - params[k].detach()) / len(tasks)
    new = OrderedDict((k, (params[k].detach() + step_size * deltas[k]).requires_grad_(True))
                      for k in params)
    return new, sum(losses) / len(losses)
