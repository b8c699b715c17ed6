"""Which prompt each batch row of the current forward pass belongs to.

Label scoring runs several passes per batch of prompts (the prefill, then candidate passes over
chosen prompts' caches). A forward hook that gives each prompt its own weights (per-query fast
weights in ``iclmeta.meta.rows``) must know, inside a pass, which prompt a row is. The functions
that call the model say so with ``passing_rows``; a pass shared by every prompt (a common
prefix) says nothing, and ``current_rows`` is then ``None``.

>>> with passing_rows(torch.tensor([2, 0])):
...     current_rows().tolist()
[2, 0]
>>> current_rows() is None
True
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar

import torch

_ROWS: ContextVar[torch.Tensor | None] = ContextVar("iclmeta_rows", default=None)


@contextmanager
def passing_rows(rows: torch.Tensor | None):
    """Within the block, batch row ``i`` of a forward pass is prompt ``rows[i]``."""
    token = _ROWS.set(rows)
    try:
        yield
    finally:
        _ROWS.reset(token)


def current_rows() -> torch.Tensor | None:
    """The prompt of each batch row of the pass now running, or ``None`` (a shared pass)."""
    return _ROWS.get()
