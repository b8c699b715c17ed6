"""Adapting on each query's nearest support examples: at test time and as a meta-learner.

``adapt_on_neighbours`` is what ``retrieve-adapt`` does to an episode and what its meta-training
validates with: each query takes its ``k`` nearest support examples (sentence embeddings, the
retrieval selector), adapts its own copy of the LoRA initialisation on them, and is labelled by
it. Queries adapt together, a chunk of them per forward pass, each prompt row with its own
query's fast weights (``meta.rows``).

``NeighbourMAML`` meta-trains an initialisation for exactly that: every query of a meta-train
episode is a task whose inner-loop support is its ``k`` nearest support examples; the meta-
gradient is first-order (the query loss's gradient at each query's adapted weights, averaged).

>>> answer = adapt_on_neighbours(lora, builder, init, episode, 4, near, steps=2, lr=0.3)  # doctest: +SKIP
>>> len(answer.labels) == len(episode.query)                           # doctest: +SKIP
True
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from iclmeta.meta.lora import LoraLM, TaskBatch, pick_rows, task_batch
from iclmeta.meta.rows import adapt_rows, row_logits, stack_params, task_losses

ROWS_PER_PASS = 64  # (query, neighbour) prompts per forward pass


def nearest(selector, episode, shots: int, k: int | None) -> list[list[int]]:
    """Per query of ``episode``, the indices into its ``shots``-shot support of the query's ``k``
    nearest examples (default: as many as there are classes; at most the whole support)."""
    support = episode.support_set(shots)
    k = min(k or len(episode.classes), len(support))
    position = {e.id: i for i, e in enumerate(support)}
    return [[position[e.id] for e in chosen]
            for chosen in selector.select_many(list(episode.query), support, k)]


def query_chunks(near: list[list[int]]) -> list[list[int]]:
    """Query indices cut so that a chunk's (query, neighbour) rows fit one pass."""
    per_pass = max(1, ROWS_PER_PASS // max(1, max(map(len, near))))
    return [list(range(s, min(s + per_pass, len(near)))) for s in range(0, len(near), per_pass)]


def adapt_chunk(lora: LoraLM, init, support: TaskBatch, near, chunk: list[int], steps: int,
                lr: float, losses: list | None = None):
    """Fast weights ``[len(chunk), ...]``: query ``chunk[t]``'s copy adapted on its neighbours."""
    index = [i for q in chunk for i in near[q]]
    rows = torch.tensor([t for t, q in enumerate(chunk) for _ in near[q]])
    return adapt_rows(lora, stack_params(init, len(chunk)), rows, pick_rows(support, index),
                      steps, lr, losses)


@dataclass(frozen=True)
class NeighbourAnswer:
    labels: list[str]
    scores: list[list[float]]  # per query, the adapted model's score of every class
    support_losses: list[float]  # before each step, averaged over the queries
    prompt_tokens: int


def adapt_on_neighbours(lora: LoraLM, builder, init, episode, shots: int, near, steps: int,
                        lr: float, normalize: bool = True) -> NeighbourAnswer:
    """Adapt a copy of ``init`` per query on its neighbours ``near`` (indices into the
    ``shots``-shot support), then label each query with its own copy."""
    classes = list(episode.classes)
    support = task_batch(builder, lora.tokenizer, episode.support_set(shots), classes, normalize)
    query = task_batch(builder, lora.tokenizer, episode.query, classes, normalize)
    labels, scores, weighted = [], [], []
    for chunk in query_chunks(near):
        step_losses: list[float] = []
        fast = adapt_chunk(lora, init, support, near, chunk, steps, lr, step_losses)
        with torch.no_grad():
            logits = row_logits(lora, fast, torch.arange(len(chunk)), pick_rows(query, chunk))
        labels += [classes[i] for i in logits.argmax(-1).tolist()]
        scores += logits.float().cpu().tolist()
        weighted.append((len(chunk), step_losses))
    mean = [round(sum(n * lost[s] for n, lost in weighted) / len(near), 4) for s in range(steps)]
    return NeighbourAnswer(labels, scores, mean, sum(len(p) for p in query.prompt_ids))


@dataclass
class NeighbourTask:
    """A meta-train episode as per-query tasks: its support, its queries, each query's neighbours."""

    support: TaskBatch
    query: TaskBatch
    near: list[list[int]]


@dataclass(frozen=True)
class NeighbourMAML:
    """First-order MAML whose tasks are single queries adapting on their nearest support examples."""

    inner_steps: int
    inner_lr: float
    second_order = False
    neighbours = True  # the trainer builds ``NeighbourTask``s (see ``MetaTrainer.step_tasks``)

    def outer_grads(self, lora: LoraLM, params, tasks: list[NeighbourTask]):
        total_loss, total = 0.0, [torch.zeros_like(p) for p in params.values()]
        for task in tasks:
            n = len(task.near)
            for chunk in query_chunks(task.near):
                fast = adapt_chunk(lora, params, task.support, task.near, chunk,
                                   self.inner_steps, self.inner_lr)
                loss = task_losses(lora, fast, torch.arange(len(chunk)),
                                   pick_rows(task.query, chunk)) / n
                grads = torch.autograd.grad(loss, list(fast.values()))
                total = [t + g.sum(0) for t, g in zip(total, grads)]  # first order, per query
                total_loss += float(loss.detach())
        return total_loss / len(tasks), [t / len(tasks) for t in total]

    def optimizer(self, params, lr: float) -> torch.optim.Optimizer:
        return torch.optim.Adam(params, lr=lr)
