"""The inner loop every gradient method shares, and test-time adaptation on one episode.

``adapt`` is the pure inner loop: SGD steps on a task loss, from a params dict to a new one.
The meta-algorithms call it inside their outer step; ``adapt_and_predict`` calls it on an
episode's support and labels the queries with the adapted weights. Meta-validation during
training and evaluation in the harness both go through ``adapt_and_predict``, so the accuracy
a run selects its best adapter by is measured exactly as the benchmark measures it.

>>> answer = adapt_and_predict(lora, builder, lora.initial(), episode, shots=4, steps=3,
...                            lr=0.1)                                # doctest: +SKIP
>>> len(answer.labels) == len(episode.query), len(answer.support_losses)  # doctest: +SKIP
(True, 3)
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import torch

from iclmeta.meta.lora import LoraLM, TaskBatch, pick_rows, task_batch

ADAPT_ROWS = 32  # support prompts per forward + backward of a first-order step (memory bound)


def sgd_step(params, grads, lr: float):
    """One plain SGD step as a new params dict (the inputs are not modified).

    >>> dict(sgd_step({"w": torch.tensor([1.0])}, [torch.tensor([2.0])], lr=0.25))
    {'w': tensor([0.5000])}
    """
    return OrderedDict((k, p - lr * g) for (k, p), g in zip(params.items(), grads))


def adapt(lora: LoraLM, params, batch: TaskBatch, steps: int, lr: float,
          create_graph: bool = False, losses: list | None = None):
    """``steps`` plain SGD steps on the batch's task loss, starting from ``params``.

    With ``create_graph`` the result stays a differentiable function of ``params`` (second-order
    MAML); otherwise it is returned as fresh leaves (first-order methods, test-time adaptation).
    The loss before each step is appended to ``losses`` when a list is given.

    >>> fast = adapt(lora, lora.initial(), support, steps=3, lr=0.05)  # doctest: +SKIP
    """
    fast = params
    for _ in range(steps):
        if create_graph:
            loss = lora.loss(fast, batch)
            grads = torch.autograd.grad(loss, list(fast.values()), create_graph=True)
        else:
            fast = _leaves(fast)
            loss, grads = loss_and_grads(lora, fast, batch)
        if losses is not None:
            losses.append(float(loss.detach()))
        fast = sgd_step(fast, grads, lr)
    return fast if create_graph else _leaves(fast)


def loss_and_grads(lora: LoraLM, params, batch: TaskBatch, rows: int | None = None):
    """The batch's mean task loss and its gradients, ``rows`` prompts per forward + backward
    (default ``ADAPT_ROWS``): the same gradient, but only one chunk's graph in memory, so a
    support of hundreds of examples over 150 labels adapts in bounded memory."""
    rows = rows or ADAPT_ROWS
    if len(batch) <= rows:
        loss = lora.loss(params, batch)
        return loss, torch.autograd.grad(loss, list(params.values()))
    total_loss, total = 0.0, None
    for start in range(0, len(batch), rows):
        part = pick_rows(batch, list(range(start, min(start + rows, len(batch)))))
        loss = lora.loss(params, part) * (len(part) / len(batch))
        grads = torch.autograd.grad(loss, list(params.values()))
        total = list(grads) if total is None else [t + g for t, g in zip(total, grads)]
        total_loss += loss.detach()
    return total_loss, total


def _leaves(params):
    return OrderedDict((k, v.detach().requires_grad_(True)) for k, v in params.items())


@dataclass(frozen=True)
class Answer:
    """Labels for an episode's queries after adapting on its support, and what it took."""

    labels: list[str]
    steps: int  # SGD steps actually taken (0 at 0 shots: there is no support)
    support_losses: list[float]  # support loss before each step
    prompt_tokens: int  # query prompt tokens scored


def adapt_and_predict(lora: LoraLM, builder, params, episode, shots: int, steps: int,
                      lr: float, normalize: bool = True,
                      batch_size: int | Callable[[int], int] = 8,
                      scores_out: list | None = None) -> Answer:
    """Adapt ``params`` on the episode's ``shots``-shot support, then label its queries.

    ``batch_size`` is the number of query prompts per forward, or a function of the tokens per
    prompt that returns it (``HFLM.batch_for``, which resolves ``--batch-size auto``).
    ``scores_out``, when a list, receives each query's label scores (see ``LoraLM.predict``).

    >>> adapt_and_predict(lora, builder, params, episode, 1, 2, 0.1).steps  # doctest: +SKIP
    2
    """
    tokenizer, classes = lora.tokenizer, episode.classes
    steps, losses = (steps if shots > 0 else 0), []
    if steps:
        support = task_batch(builder, tokenizer, episode.support_set(shots), classes, normalize)
        params = adapt(lora, params, support, steps, lr, losses=losses)
    queries = task_batch(builder, tokenizer, episode.query, classes, normalize)
    if callable(batch_size):
        longest = max(map(len, queries.prompt_ids)) + max(map(len, queries.cand_ids))
        batch_size = batch_size(longest)
    picked = lora.predict(params, queries, int(batch_size), scores_out)
    return Answer([classes[i] for i in picked], steps, losses,
                  sum(len(p) for p in queries.prompt_ids))
