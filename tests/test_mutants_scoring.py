"""Tests that kill mutmut survivors in the label scoring numerics (lm/prefix.py, lm/candidates.py).

See eval/mutation.md ("Label scoring") for the run and the mutants each test targets. The existing
tests compare scores with ``naive_logprobs``; these add what values alone cannot show: how much
work runs (prefix reuse, chunked candidate passes) and the exact token layout of the helpers.
"""
import pytest
import torch

from iclmeta.lm import candidates as lm_candidates
from iclmeta.lm.prefix import encode_candidates, encode_prompts, label_logprobs, naive_logprobs, score_ids

HEADER = "label the question . the answer is a number or a location or a person"
DEMOS = "what is the number ? number . where is the city ? location . who was the person ? person ."
LONG_PROMPTS = [f"{HEADER} {DEMOS} {q} :" for q in ["what", "where is the weather today ?", "who"]]
PROMPTS = ["what is the weather today ?", "book a flight", "the film was great . sentiment :", "a",
           "set an alarm for 5 tomorrow and play a song , what is the number"]
SHARED = [" positive", " negative neutral", " good bad great film", " yes"]


class EmbedSpy:
    """Records the ``input_ids`` shape of every forward pass of ``model`` (as ``(rows, tokens)``)."""

    def __init__(self, model):
        self.shapes = []
        self._hook = model.model.embed_tokens.register_forward_hook(
            lambda module, args, out: self.shapes.append(tuple(args[0].shape)))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._hook.remove()


def _trie_width(cands):
    """Trie nodes of one prompt's candidates: distinct prefixes of tokens 1..n-1."""
    return len({tuple(c[:k + 1]) for c in cands for k in range(len(c) - 1)})


def test_label_logprobs_runs_the_shared_prefix_once_only_when_reusing(tiny_model_and_tokenizer):
    """label_logprobs: reuse_prefix default True -> False, prefix forced to None, ``or True``."""
    model, tokenizer = tiny_model_and_tokenizer
    ids = encode_prompts(tokenizer, LONG_PROMPTS)
    header = len(encode_prompts(tokenizer, [f"{HEADER} {DEMOS}"])[0])
    with torch.no_grad():
        with EmbedSpy(model) as reused:
            fast = label_logprobs(model, tokenizer, LONG_PROMPTS, [" yes", " no"])
        with EmbedSpy(model) as whole:
            slow = label_logprobs(model, tokenizer, LONG_PROMPTS, [" yes", " no"], reuse_prefix=False)
    # default: the header + demonstrations run once (one row), then only each prompt's own tokens
    assert reused.shapes[0] == (1, header)
    assert reused.shapes[1] == (3, max(len(s) for s in ids) - header)
    # reuse_prefix=False: every prompt runs whole, in one padded batch, and nothing else
    assert whole.shapes == [(3, max(len(s) for s in ids))]
    assert torch.allclose(fast, slow, atol=1e-4)


@pytest.mark.parametrize("rows_per_pass", [1, 2, 3])
def test_candidate_passes_respect_the_cache_token_budget(tiny_model_and_tokenizer, monkeypatch, rows_per_pass):
    """packed_logprobs: the chunk size (``max(1, ...)`` -> 2, the ``+ width`` and ``//`` arithmetic)."""
    model, tokenizer = tiny_model_and_tokenizer
    ids = encode_prompts(tokenizer, PROMPTS)
    cands = encode_candidates(tokenizer, len(ids), SHARED)
    per_row = max(len(s) for s in ids) + _trie_width(cands[0])  # cached prompt + trie tokens of one row
    # a budget of 1 fits no row at all: still one row per pass, never zero
    budget = 1 if rows_per_pass == 1 else rows_per_pass * per_row + per_row - 1
    monkeypatch.setattr(lm_candidates, "CACHE_TOKEN_BUDGET", budget)
    with torch.no_grad():
        with EmbedSpy(model) as spy:
            values = score_ids(model, ids, cands)
        expected = naive_logprobs(model, ids, cands)
    passes = spy.shapes[1:]  # after the prefill
    full, last = divmod(len(ids), rows_per_pass)
    assert [rows for rows, _ in passes] == [rows_per_pass] * full + ([last] if last else [])
    assert all(tokens == _trie_width(cands[0]) for _, tokens in passes)
    assert torch.allclose(values, expected, atol=1e-4)


def test_candidate_passes_respect_the_logit_budget(tiny_model_and_tokenizer, monkeypatch):
    """packed_logprobs: logits kept per pass (rows x trie width x vocabulary) are capped too."""
    model, tokenizer = tiny_model_and_tokenizer
    ids = encode_prompts(tokenizer, PROMPTS)
    cands = encode_candidates(tokenizer, len(ids), SHARED)
    width, vocab = _trie_width(cands[0]), model.config.vocab_size
    monkeypatch.setattr(lm_candidates, "LOGIT_BUDGET", 1)
    # the cache budget alone would allow all 5 rows, the logits of only 2 rows fit in it
    monkeypatch.setattr(lm_candidates, "CACHE_TOKEN_BUDGET", 2 * width * vocab + 1)
    assert 2 * width * vocab + 1 >= 5 * (max(len(s) for s in ids) + width)
    with torch.no_grad():
        with EmbedSpy(model) as spy:
            values = score_ids(model, ids, cands)
        expected = naive_logprobs(model, ids, cands)
    assert [rows for rows, _ in spy.shapes[1:]] == [2, 2, 1]
    assert torch.allclose(values, expected, atol=1e-4)


def test_trie_shares_common_prefixes_and_lists_every_pick():
    """_trie: the node key (``seq[:k + 1]`` -> ``k + 2`` splits shared nodes), the root's parent -1."""
    from iclmeta.lm.candidates import _trie

    nodes, picks = _trie([[5, 6, 7], [5, 6, 8], [5, 9], [4], [5, 6, 7, 1]])
    # token, depth, parent; a one-token candidate adds no node, a shared start is one node
    assert nodes == [(5, 0, -1), (6, 1, 0), (7, 2, 1)]
    # (node, next token, candidate): the log-prob of token k+1 is read at the node of tokens 1..k
    assert picks == [(0, 6, 0), (1, 7, 0), (0, 6, 1), (1, 8, 1), (0, 9, 2), (0, 6, 4), (1, 7, 4), (2, 1, 4)]
    assert _trie([[3], [4]]) == ([], [])


def test_left_pad_layout_positions_and_device():
    """left_pad: padding on the left, mask of 1s, positions from 0 (padding clamped to 0), device."""
    from iclmeta.lm.prefix import left_pad

    ids, mask, positions = left_pad([[7, 8, 9], [5], [4, 6]], "cpu")
    assert ids.tolist() == [[7, 8, 9], [0, 0, 5], [0, 4, 6]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1], [0, 1, 1]]
    assert positions.tolist() == [[0, 1, 2], [0, 0, 0], [0, 0, 1]]
    assert ids.dtype == mask.dtype == positions.dtype == torch.long
    # every output goes to the requested device (the meta device needs no accelerator)
    assert [t.device.type for t in left_pad([[1, 2], [3]], "meta")] == ["meta"] * 3


def test_score_ids_rejects_an_empty_prompt(tiny_model_and_tokenizer):
    """score_ids: the empty-prompt check and its message."""
    from iclmeta.errors import UserError

    model, _ = tiny_model_and_tokenizer
    with pytest.raises(UserError, match=r"^a prompt encodes to zero tokens; pass non-empty prompts$"):
        score_ids(model, [[2, 5], []], [[[6]], [[6]]])


@pytest.fixture(scope="module")
def tiny_gemma():
    from conftest import build_tiny_gemma, build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    return build_tiny_gemma(len(tokenizer), hidden_size=32, heads=2, kv_heads=1), tokenizer


def test_sliding_window_model_scores_one_token_candidates_in_the_prefill(tiny_gemma):
    """score_ids: only candidates longer than one token get a second pass (``> 1`` -> ``>= 1``)."""
    model, tokenizer = tiny_gemma
    ids = encode_prompts(tokenizer, PROMPTS[:3])
    cands = encode_candidates(tokenizer, 3, [" yes", " no", " good"])
    with torch.no_grad():
        with EmbedSpy(model) as spy:
            values = score_ids(model, ids, cands)
        expected = naive_logprobs(model, ids, cands)
    assert len(spy.shapes) == 1
    assert torch.allclose(values, expected, atol=1e-4)


def test_sliding_window_candidate_passes_respect_the_logit_budget(tiny_gemma, monkeypatch):
    """score_ids: ``per_candidate_logprobs`` gets the vocabulary size (``shape[-1]`` -> ``shape[-2]``)."""
    model, tokenizer = tiny_gemma
    ids = encode_prompts(tokenizer, PROMPTS[:3])
    cands = encode_candidates(tokenizer, 3, [" negative neutral", " good bad", " yes"])
    vocab = model.config.vocab_size
    monkeypatch.setattr(lm_candidates, "LOGIT_BUDGET", 1)
    # rows of (prompt, candidate) with a second token: 3 prompts x 2 candidates, 1 token each after the
    # first; the cache budget allows all 6, the logits of only 2 rows (2 x 1 token x vocab) fit
    monkeypatch.setattr(lm_candidates, "CACHE_TOKEN_BUDGET", 2 * vocab + 1)
    assert 2 * vocab + 1 >= 6 * max(len(s) for s in ids)
    with torch.no_grad():
        with EmbedSpy(model) as spy:
            values = score_ids(model, ids, cands)
        expected = naive_logprobs(model, ids, cands)
    assert [rows for rows, _ in spy.shapes[1:]] == [2, 2, 2]
    assert torch.allclose(values, expected, atol=1e-4)


def test_a_chunk_of_one_token_candidates_beside_longer_ones_scores_like_naive(
        tiny_model_and_tokenizer, monkeypatch):
    """A candidate pass whose prompts all have one-token candidates has nothing to run."""
    import torch

    from iclmeta.lm import candidates as cand
    from iclmeta.lm.prefix import encode_candidates, encode_prompts, naive_logprobs, score_ids

    model, tok = tiny_model_and_tokenizer
    monkeypatch.setattr(cand, "CACHE_TOKEN_BUDGET", 1)  # one prompt per candidate pass
    prompts = encode_prompts(tok, ["what is the weather today ?", "book a flight"])
    per_prompt = [[" yes", " no"], [" book flight", " cancel"]]
    cands = encode_candidates(tok, 2, per_prompt)
    assert all(len(c) == 1 for c in cands[0]) and any(len(c) > 1 for c in cands[1])
    with torch.no_grad():
        got = score_ids(model, prompts, cands)
        want = naive_logprobs(model, prompts, cands)
    assert torch.allclose(got, want, atol=1e-4)
