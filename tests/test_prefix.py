"""Shared-prefix reuse: the same scores and gradients as scoring each prompt whole, less compute."""
import numpy as np
import pytest
import torch
from conftest import naive_scores as naive

from iclmeta.lm.hf import HFLM
from iclmeta.lm.prefix import encode_candidates, encode_prompts, label_logprobs
from iclmeta.lm.prefix import score_ids, shared_prefix, shared_prefix_length

HEADER = "label the question . the answer is a number or a location or a person"
DEMOS = "what is the number ? number . where is the city ? location . who was the person ? person ."
# Ragged suffixes after one shared instruction + demonstration block, as `icl` builds them.
QUERIES = ["what", "where is the weather today ?", "who", "how to book a flight for tomorrow and play a song ?",
           "when is the alarm set"]
PROMPTS = [f"{HEADER} {DEMOS} {q} :" for q in QUERIES]
SHARED = [" number", " location", " person entity", " yes no good bad"]
PER_PROMPT = [[" yes", " no"], [" book flight", " cancel", " play music song now"], [" good"],
              [" 1 2", " 3", " 4 5 6", " 7", " 8 9"], [" alarm set"]]


def test_shared_prefix_length_on_token_ids():
    assert shared_prefix_length([[2, 5, 6, 7], [2, 5, 6, 9, 9]]) == 3
    assert shared_prefix_length([[2, 5, 6], [2, 5, 6]]) == 2  # identical prompts keep a token to run
    assert shared_prefix_length([[2, 5], [2, 5, 6, 7]]) == 1  # one prompt is a prefix of the other
    assert shared_prefix_length([[3, 5], [2, 5]]) == 0
    assert shared_prefix_length([[2, 5, 6, 7]]) == 3


@pytest.mark.parametrize("batch_size", [1, 2, 8])
@pytest.mark.parametrize("candidates", [SHARED, PER_PROMPT], ids=["shared", "per-prompt"])
def test_reuse_matches_naive_and_unoptimised_path(tiny_model_and_tokenizer, batch_size, candidates):
    model, tokenizer = tiny_model_and_tokenizer
    fast = HFLM(model, tokenizer, "tiny", batch_size=batch_size).score(PROMPTS, candidates)
    whole = HFLM(model, tokenizer, "tiny", batch_size=batch_size, reuse_prefix=False).score(PROMPTS, candidates)
    expected = naive(model, tokenizer, PROMPTS, candidates)
    finite = np.isfinite(expected)
    assert np.array_equal(finite, np.isfinite(fast.total))
    assert np.abs(fast.total[finite] - expected[finite]).max() < 1e-4
    assert np.abs(fast.total[finite] - whole.total[finite]).max() < 1e-4
    assert fast.prompt_tokens == whole.prompt_tokens


def test_prefix_is_run_once_and_covers_header_and_demos(tiny_model_and_tokenizer):
    model, tokenizer = tiny_model_and_tokenizer
    ids = encode_prompts(tokenizer, PROMPTS)
    with torch.no_grad():
        prefix = shared_prefix(model, ids)
    assert prefix.length == len(encode_prompts(tokenizer, [f"{HEADER} {DEMOS}"])[0])
    seen = []
    hook = model.model.embed_tokens.register_forward_hook(lambda m, args, out: seen.append(args[0].numel()))
    try:
        HFLM(model, tokenizer, "tiny", batch_size=8).score(PROMPTS, [" yes"])
        reused = sum(seen)
        seen.clear()
        HFLM(model, tokenizer, "tiny", batch_size=8, reuse_prefix=False).score(PROMPTS, [" yes"])
    finally:
        hook.remove()
    assert reused < sum(seen) / 2  # the header and demos ran once instead of once per query


def test_prefix_cache_is_not_modified_across_batches(tiny_model_and_tokenizer):
    model, tokenizer = tiny_model_and_tokenizer
    ids = encode_prompts(tokenizer, PROMPTS)
    cands = encode_candidates(tokenizer, len(ids), SHARED)
    with torch.no_grad():
        prefix = shared_prefix(model, ids)
        before = prefix.cache.layers[0].keys.clone()
        first = score_ids(model, ids[:2], cands[:2], prefix)
        again = score_ids(model, ids[:2], cands[:2], prefix)
    assert torch.equal(prefix.cache.layers[0].keys, before)
    assert torch.equal(first, again)


def test_short_or_absent_prefix_falls_back(tiny_model_and_tokenizer):
    model, tokenizer = tiny_model_and_tokenizer
    with torch.no_grad():
        assert shared_prefix(model, encode_prompts(tokenizer, ["book a flight", "play a song"])) is None
        assert shared_prefix(model, encode_prompts(tokenizer, PROMPTS), min_tokens=10_000) is None


def test_label_logprobs_reuse_keeps_values_and_gradients(tiny_model_and_tokenizer):
    model, tokenizer = tiny_model_and_tokenizer
    params = [model.model.layers[0].self_attn.q_proj.weight, model.model.embed_tokens.weight]
    fast = label_logprobs(model, tokenizer, PROMPTS, SHARED)
    slow = label_logprobs(model, tokenizer, PROMPTS, SHARED, reuse_prefix=False)
    assert torch.allclose(fast, slow, atol=1e-4)
    for grad, slow_grad in zip(torch.autograd.grad(fast.sum(), params), torch.autograd.grad(slow.sum(), params)):
        assert torch.allclose(grad, slow_grad, atol=1e-4)


def test_sliding_window_model_scores_whole_prompts():
    from conftest import build_tiny_gemma, build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    model = build_tiny_gemma(len(tokenizer), hidden_size=32, heads=2, kv_heads=1)
    with torch.no_grad():
        assert shared_prefix(model, encode_prompts(tokenizer, PROMPTS)) is None
    scores = HFLM(model, tokenizer, "tiny-gemma", batch_size=2).score(PROMPTS, SHARED)
    assert np.abs(scores.total - naive(model, tokenizer, PROMPTS, SHARED)).max() < 1e-4


def test_auto_batch_size_is_eight_on_cpu(tiny_model_and_tokenizer):
    lm = HFLM(*tiny_model_and_tokenizer, name="tiny", batch_size="auto")
    assert lm.batch_for(4000) == 8
    assert lm.score(PROMPTS, SHARED).total.shape == (5, 4)


def test_candidates_sharing_tokens_match_naive(tiny_model_and_tokenizer):
    """Candidates that start alike share trie nodes; one is a prefix of another; one is a single token."""
    model, tokenizer = tiny_model_and_tokenizer
    candidates = [" book flight", " book flight today", " book cancel", " book", " play song now",
                  " play song", " book flight today ?"]
    scores = HFLM(model, tokenizer, "tiny", batch_size=2).score(PROMPTS, candidates)
    assert np.abs(scores.total - naive(model, tokenizer, PROMPTS, candidates)).max() < 1e-4


def test_150_labels_match_naive(tiny_model_and_tokenizer):
    """A CLINC150-sized label set: 150 labels of 1-3 tokens, many sharing first tokens, in one trie."""
    from conftest import TINY_WORDS

    model, tokenizer = tiny_model_and_tokenizer
    words = [w for w in TINY_WORDS if w.isalpha()]
    labels = [f" {w}" for w in words[:10]] + [f" {a} {b}" for a in words[10:20] for b in words[:10]]
    labels += [f" {a} {b} the" for a in words[20:24] for b in words[30:40]]
    assert len(set(labels)) == 150
    prompts = PROMPTS[:3]
    expected = naive(model, tokenizer, prompts, labels)
    for reuse in (True, False):
        scores = HFLM(model, tokenizer, "tiny", batch_size=2, reuse_prefix=reuse).score(prompts, labels)
        assert scores.total.shape == (3, 150)
        assert np.abs(scores.total - expected).max() < 1e-4


def test_a_trie_too_large_for_the_logit_budget_is_split_over_rows(tiny_model_and_tokenizer, monkeypatch):
    """Thousands of continuation rows (calibrated / channel at 150 labels) must not need all their
    logits at once: each candidate pass keeps at most the budget's nodes x vocabulary logits."""
    from iclmeta.lm import candidates as lm_candidates

    model, tokenizer = tiny_model_and_tokenizer
    vocab = model.config.vocab_size
    monkeypatch.setattr(lm_candidates, "LOGIT_BUDGET", 1)
    monkeypatch.setattr(lm_candidates, "CACHE_TOKEN_BUDGET", 3 * vocab)  # 3 trie nodes of logits per pass
    prompts = PROMPTS[:2]
    ids = encode_prompts(tokenizer, prompts)
    cands = encode_candidates(tokenizer, 2, SHARED + [" book flight today", " play music song now"])
    widths = []
    hook = model.model.embed_tokens.register_forward_hook(lambda m, args, out: widths.append(args[0].shape))
    try:
        with torch.no_grad():
            values = score_ids(model, ids, cands)
    finally:
        hook.remove()
    assert all(rows * tokens <= 3 for rows, tokens in widths[1:])  # after the prefill
    assert len(widths) > 4
    assert np.abs(values.numpy() - naive(model, tokenizer, prompts, SHARED + [" book flight today",
                                                                             " play music song now"])).max() < 1e-4
