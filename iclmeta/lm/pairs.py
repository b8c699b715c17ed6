"""Grouped ``(context, continuation)`` scoring on token ids: the inside of ``HFLM.score_pairs``.

Calibrated and channel scoring ask for ``log p(continuation | context)`` of many pairs whose
contexts share a demonstration set. ``plan_jobs`` finds, per group, the tokens all its pairs
share and the distinct rows after them; ``run_jobs`` prefills each shared part once and scores
every row from its cache as a candidate continuation (``score_ids``). A pair's value is its whole
row minus its context row: ``log p(ctx + cont) - log p(ctx)`` after the shared part.

Tokenization follows ``HFLM.score``: context with the tokenizer's special tokens, continuation
without, ids concatenated.

>>> job = plan_rows([[1, 5, 6], [1, 5, 7]], [[1, 5, 6, 9], [1, 5, 7, 9]])
>>> job[0], job[1], job[2]
([1, 5], [[6, 9], [6], [7, 9], [7]], [(0, 1), (2, 3)])
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from iclmeta.errors import UserError
from iclmeta.lm.prefix import encode_prompts, score_ids


@dataclass(frozen=True)
class Job:
    """One prefill: the pairs at ``positions`` of group ``group``, sharing ``prefix``.

    ``rows`` are the distinct token rows after the prefix; ``plan`` holds per pair the index of
    its whole row and of its context row (``None`` when the context is the prefix itself).
    """

    group: int
    positions: list[int]
    prefix: list[int]
    rows: list[list[int]]
    plan: list[tuple[int, int | None]]

    @property
    def longest(self) -> int:
        return len(self.prefix) + max(len(r) for r in self.rows)

    @property
    def tokens(self) -> int:
        return len(self.prefix) + sum(len(r) for r in self.rows)


def plan_jobs(tokenizer, groups: Sequence[Sequence[tuple[str, str]]]) -> list[Job]:
    """The jobs of all groups; a shared prefix needs at least a common first token, so a group
    whose contexts start differently (no BOS token) splits into one job per first token."""
    jobs = []
    for g, group in enumerate(groups):
        contexts, full = encode_pairs(tokenizer, group)
        parts: dict[int, list[int]] = {}
        for i, ctx in enumerate(contexts):
            parts.setdefault(ctx[0], []).append(i)
        for idx in parts.values():
            jobs.append(Job(g, idx, *plan_rows([contexts[i] for i in idx], [full[i] for i in idx])))
    return jobs


def run_jobs(model, jobs: list[Job], sizes: list[int], batch: int) -> list[np.ndarray]:
    """One value array per group (``sizes[g]`` pairs), ``batch`` jobs per forward."""
    values = []
    with torch.no_grad():
        for start in range(0, len(jobs), batch):
            part = jobs[start:start + batch]
            out = score_ids(model, [job.prefix for job in part], [job.rows for job in part])
            values += list(out.float().cpu().numpy())
    results = [np.zeros(n) for n in sizes]
    for job, v in zip(jobs, values):
        results[job.group][job.positions] = [v[a] - (v[b] if b is not None else 0.0)
                                             for a, b in job.plan]
    return results


def encode_pairs(tokenizer, group: Sequence[tuple[str, str]]):
    """Context ids (with special tokens) and context + continuation ids of each pair."""
    if not group:
        raise UserError("nothing to score: a group of (context, continuation) pairs is empty")
    contexts = encode_prompts(tokenizer, [c for c, _ in group])
    conts = tokenizer([x for _, x in group], add_special_tokens=False).input_ids
    if any(not c for c in contexts) or any(not c for c in conts):
        raise UserError("a context or continuation has no tokens; score non-empty text")
    return contexts, [c + x for c, x in zip(contexts, conts)]


def plan_rows(contexts: list[list[int]], full: list[list[int]]):
    """Shared prefix ids, distinct rows after it, and per pair (whole row, context row).

    The contexts share their first token, so the prefix holds at least one token, and it stops
    before every continuation's first token.
    """
    shared = min(_common_prefix(full), min(len(c) for c in contexts))
    index: dict[tuple, int] = {}
    plan = []
    for ctx, ids in zip(contexts, full):
        whole = index.setdefault(tuple(ids[shared:]), len(index))
        rest = tuple(ctx[shared:])
        plan.append((whole, index.setdefault(rest, len(index)) if rest else None))
    return full[0][:shared], [list(k) for k in index], plan


def _common_prefix(seqs: list[list[int]]) -> int:
    first, n = seqs[0], min(len(s) for s in seqs)
    for i in range(n):
        if any(s[i] != first[i] for s in seqs):
            return i
    return n
