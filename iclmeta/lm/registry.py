"""LM backends by name: a plain dict of lazy ``"module:attr"`` strings.

A backend is a class with ``load(model, **options)`` returning an object that satisfies
``iclmeta.lm.protocol.LM``. Its module is imported only when the backend is used, so listing
backends loads nothing heavy.

>>> sorted(BACKENDS)
['hf']
>>> load_lm("vllm")
Traceback (most recent call last):
...
iclmeta.errors.UserError: unknown LM backend 'vllm'; choose one of: hf
"""
from __future__ import annotations

import importlib

from iclmeta.errors import UserError
from iclmeta.lm.protocol import LM

BACKENDS: dict[str, str] = {
    "hf": "iclmeta.lm.hf:HFLM",
}


def backend_class(backend: str):
    """The class registered as ``backend`` (its module imported now)."""
    if backend not in BACKENDS:
        raise UserError(f"unknown LM backend {backend!r}; choose one of: "
                        f"{', '.join(sorted(BACKENDS))}")
    module, attr = BACKENDS[backend].split(":")
    return getattr(importlib.import_module(module), attr)


def load_lm(backend: str, model: str | None = None, **options) -> LM:
    """Load ``model`` (``None``: the backend's default) with the ``backend`` named.

    ``options`` go to the backend's ``load`` as they are (for ``hf``: device, dtype, cache_dir,
    batch_size, trust_remote_code, reuse_prefix).

    >>> lm = load_lm("hf", "smollm2", device="cpu")                        # doctest: +SKIP
    """
    return backend_class(backend).load(model, **options)
