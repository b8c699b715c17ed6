"""Many-shot ``icl``: one demonstration block of thousands of tokens, run once per episode and read
by every query without a per-query copy of its KV cache."""
import random

import numpy as np
import pytest
import torch
from conftest import build_tiny_model, build_tiny_tokenizer, naive_scores

from iclmeta.lm import kv
from iclmeta.lm.candidates import cache_keyword
from iclmeta.lm.hf import HFLM
from iclmeta.lm.prefix import encode_prompts, shared_prefix

DEMO_WORDS = "where is the city ? location . how many a ? number . who was the person ? person .".split()
QUERIES = ["what", "where is the weather today ?", "who", "how to book a flight for tomorrow and play a song ?",
           "when is the alarm set", "which film"]
LABELS = [" location", " number", " person entity", " yes no good", " book flight today"]


@pytest.fixture(scope="module")
def long_model():
    """The tiny Llama with a 4096-token window, for blocks longer than ``kv.PREFILL_CHUNK``."""
    tokenizer = build_tiny_tokenizer()
    return build_tiny_model(len(tokenizer), max_position_embeddings=4096), tokenizer


def _prompts(block_words: int) -> list[str]:
    rng = random.Random(0)
    block = " ".join(rng.choice(DEMO_WORDS) for _ in range(block_words))
    return [f"label the question . {block} {q} :" for q in QUERIES]


def test_a_long_block_reused_scores_like_whole_prompts_and_naive(long_model, monkeypatch):
    model, tokenizer = long_model
    monkeypatch.setattr(kv, "PREFILL_CHUNK", 1000)
    prompts = _prompts(2500)
    with torch.no_grad():
        prefix = shared_prefix(model, encode_prompts(tokenizer, prompts))
    assert prefix.length > 2 * kv.PREFILL_CHUNK  # the block runs in three chunks
    reused = HFLM(model, tokenizer, "tiny-long", batch_size=4).score(prompts, LABELS).total
    whole = HFLM(model, tokenizer, "tiny-long", batch_size=4, reuse_prefix=False).score(prompts, LABELS).total
    assert np.abs(reused - whole).max() < 1e-4
    assert np.abs(reused[:2] - naive_scores(model, tokenizer, prompts[:2], LABELS)).max() < 1e-4


def test_chunked_prefill_equals_one_forward(long_model):
    model, tokenizer = long_model
    ids = encode_prompts(tokenizer, _prompts(700))[0]
    seen = []
    hook = model.model.embed_tokens.register_forward_hook(lambda m, args, out: seen.append(args[0].shape[1]))
    try:
        with torch.no_grad():
            chunked = kv.prefill_cache(model, ids, chunk=300)
            whole = kv.prefill_cache(model, ids, chunk=len(ids))
    finally:
        hook.remove()
    assert seen == [300, 300, len(ids) - 600, len(ids)]
    for a, b in zip(chunked.layers, whole.layers):
        assert a.keys.shape == b.keys.shape == (1, 2, len(ids), 16)
        assert torch.allclose(a.keys, b.keys, atol=1e-5) and torch.allclose(a.values, b.values, atol=1e-5)


def test_queries_keep_only_their_own_tokens_on_top_of_one_block(long_model, monkeypatch):
    """The caches of the query forwards hold each row's own tokens; the block is held once."""
    model, tokenizer = long_model
    monkeypatch.setattr(kv, "PREFILL_CHUNK", 1000)
    prompts = _prompts(1500)
    with torch.no_grad():
        prefix = shared_prefix(model, encode_prompts(tokenizer, prompts))
    caches = []
    hook = model.register_forward_hook(lambda m, args, out: caches.append(getattr(out, cache_keyword())))
    try:
        HFLM(model, tokenizer, "tiny-long", batch_size=6).score(prompts, LABELS)
    finally:
        hook.remove()
    chunks = -(-prefix.length // kv.PREFILL_CHUNK)
    queries = caches[chunks:]  # the prefill of the queries' own tokens, then the label passes
    assert len(queries) >= 2
    for cache in queries:
        for layer in cache.layers:
            assert layer.keys.shape[-2] < 40  # own tokens only, never the ~1500-token block
            assert layer.prefix_keys.shape == (1, 2, prefix.length, 16)
            assert layer.get_seq_length() == prefix.length + layer.keys.shape[-2]


def test_kv_bytes_per_token_of_smollm2():
    from transformers import LlamaConfig

    config = LlamaConfig(hidden_size=576, num_attention_heads=9, num_key_value_heads=3, num_hidden_layers=30)
    assert kv.kv_bytes_per_token(config, torch.bfloat16) == 2 * 30 * 3 * 64 * 2 == 23040
    assert kv.kv_bytes_per_token(config, torch.float32) == 46080
