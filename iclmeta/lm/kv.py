"""A long shared prefix (``icl``'s demonstration block) held once and read by every query.

``prefill_cache`` runs a block of thousands of tokens in chunks of ``PREFILL_CHUNK`` tokens, so the
attention of one chunk spans at most ``chunk x block`` scores. ``prefixed_cache`` wraps the block's
cache for a batch of queries: each layer keeps the block's keys and values once (one row) and
only the queries' own tokens per row; attention reads the block through a broadcast view, so no
query copies the block into the cache it keeps. The concatenation attention itself needs exists
for one layer at a time and is freed before the next.

Memory of a block of ``L`` tokens read by ``B`` queries of ``n`` tokens each:
``L x kv_bytes_per_token`` once, plus ``B x n x kv_bytes_per_token`` of the queries' own keys, plus
``B x (L + n) x kv_bytes_per_token / layers`` (x the query-heads / KV-heads ratio where the
attention kernel expands grouped heads) for the one layer being computed.

>>> kv_bytes_per_token(smollm2.config, torch.bfloat16)               # doctest: +SKIP
23040
"""
from __future__ import annotations

import copy
import functools

import torch

from iclmeta.lm.candidates import cache_keyword, model_device

# Tokens of a shared block run per forward. Measured on SmolLM2-135M (CPU, bfloat16): a 7k-token
# block peaked at 242 / 299 / 382 MB with chunks of 1024 / 4096 / all tokens, and 1024-token chunks
# ran a 4k block ~9% slower than one forward; 4096 keeps most of the saving at little cost.
PREFILL_CHUNK = 4096


def kv_bytes_per_token(config, dtype: torch.dtype) -> int:
    """Bytes of keys and values one token keeps in the cache, over all layers.

    SmolLM2-135M (30 layers, 3 KV heads of 64): 11,520 values, 23,040 bytes in bfloat16.
    """
    config = config.get_text_config()
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    return 2 * config.num_hidden_layers * kv_heads * head_dim * torch.tensor([], dtype=dtype).element_size()


def prefill_cache(model, ids: list[int], chunk: int | None = None):
    """KV cache (one row) of ``ids``, run ``chunk`` (default ``PREFILL_CHUNK``) tokens at a time on
    top of the earlier chunks.

    Each chunk sees every earlier token at its own position, so the cache equals one forward
    over all of ``ids``.
    """
    device, cache, chunk = model_device(model), None, chunk or PREFILL_CHUNK
    for start in range(0, len(ids), chunk):
        extra = {} if cache is None else {cache_keyword(): cache}
        out = model(input_ids=torch.tensor([ids[start:start + chunk]], device=device), use_cache=True,
                    logits_to_keep=1, **extra)
        cache = getattr(out, cache_keyword())
    return cache


@functools.cache
def prefixed_layer_class():
    """``PrefixedLayer``, built on first use so that importing this module loads no transformers."""
    from transformers.cache_utils import DynamicLayer

    class PrefixedLayer(DynamicLayer):
        """One layer's cache: a shared prefix (one row, never copied) plus each row's own keys.

        ``keys``/``values`` hold only the rows' own tokens, so ``select_cache`` (which indexes
        them) picks rows without touching the prefix.
        """

        def __init__(self, prefix_keys: torch.Tensor, prefix_values: torch.Tensor):
            super().__init__()
            self.prefix_keys, self.prefix_values = prefix_keys, prefix_values
            self.is_initialized = True

        def update(self, key_states, value_states, *args, **kwargs):
            if self.keys is not None and self.keys.numel():
                key_states = torch.cat([self.keys, key_states], dim=-2)
                value_states = torch.cat([self.values, value_states], dim=-2)
            self.keys, self.values = key_states, value_states
            rows = key_states.shape[0]
            return (torch.cat([self.prefix_keys.expand(rows, -1, -1, -1), key_states], dim=-2),
                    torch.cat([self.prefix_values.expand(rows, -1, -1, -1), value_states], dim=-2))

        def get_seq_length(self) -> int:
            own = 0 if self.keys is None else self.keys.shape[-2]
            return self.prefix_keys.shape[-2] + own

    return PrefixedLayer


def prefixed_cache(prefix_cache):
    """A cache for a batch of rows that all continue ``prefix_cache`` (one row); the prefix stays untouched."""
    cache = copy.copy(prefix_cache)
    layer_class = prefixed_layer_class()
    cache.layers = [layer_class(layer.keys, layer.values) for layer in prefix_cache.layers]
    return cache
