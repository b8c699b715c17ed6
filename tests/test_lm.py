import numpy as np
import pytest
import torch
from conftest import naive_scores as naive

from iclmeta.lm import candidates as lm_candidates
from iclmeta.errors import UserError
from iclmeta.lm.hf import HFLM
from iclmeta.lm.protocol import Scores
from iclmeta.lm.prefix import encode_candidates, encode_prompts, label_logprobs, naive_logprobs

PROMPTS = [
    "what is the weather today ?",
    "book a flight",
    "the film was great . sentiment :",
    "a",
    "set an alarm for 5 tomorrow and play a song , what is the number",
]
SHARED = [" positive", " negative neutral", " good bad great film", " yes"]
PER_PROMPT = [[" yes", " no"], [" book flight", " cancel", " play music song now"], [" good"],
              [" 1 2", " 3", " 4 5 6", " 7", " 8 9"], [" alarm set"]]


def make_lm(pair, batch_size):
    model, tokenizer = pair
    return HFLM(model, tokenizer, name="tiny", batch_size=batch_size)


@pytest.mark.parametrize("batch_size", [1, 2, 8])
@pytest.mark.parametrize("candidates", [SHARED, PER_PROMPT], ids=["shared", "per-prompt"])
def test_score_matches_naive_forward(tiny_model_and_tokenizer, batch_size, candidates):
    scores = make_lm(tiny_model_and_tokenizer, batch_size).score(PROMPTS, candidates)
    expected = naive(*tiny_model_and_tokenizer, PROMPTS, candidates)
    finite = np.isfinite(expected)
    assert np.array_equal(finite, np.isfinite(scores.total))
    assert np.abs(scores.total[finite] - expected[finite]).max() < 1e-4


def test_score_counts_tokens_and_normalizes(tiny_lm):
    scores = tiny_lm.score(PROMPTS[:2], SHARED)
    assert scores.n_tokens.tolist() == [[1, 2, 4, 1]] * 2
    assert scores.prompt_tokens == sum(tiny_lm.count_tokens(p) for p in PROMPTS[:2])
    np.testing.assert_allclose(scores.normalized(), scores.total / scores.n_tokens)


def test_ragged_candidates_leave_minus_inf_cells(tiny_lm):
    scores = tiny_lm.score(PROMPTS, PER_PROMPT)
    assert scores.total.shape == (5, 5)
    assert np.isneginf(scores.total[0, 2:]).all() and (scores.n_tokens[0, 2:] == 0).all()
    assert np.isneginf(scores.normalized()[2, 1:]).all()
    assert Scores(np.array([[-1.0]]), np.array([[0]]), 0).normalized()[0, 0] == -np.inf


def test_single_token_candidates_need_no_second_pass(tiny_lm, tiny_model_and_tokenizer):
    candidates = [" yes", " no", " good"]
    expected = naive(*tiny_model_and_tokenizer, PROMPTS, candidates)
    assert np.abs(tiny_lm.score(PROMPTS, candidates).total - expected).max() < 1e-4


def test_chunked_candidate_passes_match(tiny_lm, tiny_model_and_tokenizer, monkeypatch):
    monkeypatch.setattr(lm_candidates, "CACHE_TOKEN_BUDGET", 1)
    expected = naive(*tiny_model_and_tokenizer, PROMPTS, SHARED)
    assert np.abs(tiny_lm.score(PROMPTS, SHARED).total - expected).max() < 1e-4


def test_label_logprobs_is_differentiable_like_naive(tiny_model_and_tokenizer):
    model, tokenizer = tiny_model_and_tokenizer
    params = [model.model.layers[0].self_attn.q_proj.weight, model.model.embed_tokens.weight]
    fast = label_logprobs(model, tokenizer, PROMPTS[:3], SHARED)
    grads = torch.autograd.grad(fast.sum(), params)
    prompt_ids = encode_prompts(tokenizer, PROMPTS[:3])
    slow = naive_logprobs(model, prompt_ids, encode_candidates(tokenizer, 3, SHARED))
    slow_grads = torch.autograd.grad(slow.sum(), params)
    for grad, slow_grad in zip(grads, slow_grads):
        assert torch.isfinite(grad).all()
        assert torch.allclose(grad, slow_grad, atol=1e-4)


def test_sliding_window_model_matches_naive():
    """Gemma 3 mixes sliding-window and full layers; the copied cache must keep the window state."""
    from conftest import build_tiny_gemma, build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    model = build_tiny_gemma(len(tokenizer))
    scores = HFLM(model, tokenizer, name="tiny-gemma", batch_size=4).score(PROMPTS, SHARED)
    assert np.abs(scores.total - naive(model, tokenizer, PROMPTS, SHARED)).max() < 1e-4


def test_bad_candidates_raise_user_error(tiny_lm):
    with pytest.raises(UserError, match="candidate lists"):
        tiny_lm.score(PROMPTS, [[" yes"], [" no"]])
    with pytest.raises(UserError, match="no tokens"):
        tiny_lm.score(PROMPTS[:1], [" yes", ""])
    with pytest.raises(UserError, match="non-empty"):
        tiny_lm.score(PROMPTS[:1], [])
    with pytest.raises(UserError, match="mix"):
        tiny_lm.score(PROMPTS[:2], [" yes", [" no"]])


def test_no_prompts_give_empty_results(tiny_lm):
    assert tiny_lm.score([], [" yes"]).total.shape == (0, 0)
    assert tiny_lm.generate([]) == []


def test_prompt_longer_than_window_raises(tiny_lm):
    assert tiny_lm.max_length == 256
    too_long = " ".join(["the"] * 300)
    with pytest.raises(UserError, match="window"):
        tiny_lm.score([too_long], [" yes"])
    with pytest.raises(UserError, match="window"):
        tiny_lm.generate([" ".join(["the"] * 250)], max_new_tokens=16)


def test_count_tokens_includes_bos_once(tiny_lm):
    assert tiny_lm.count_tokens("book a flight") == 4
    assert tiny_lm.count_tokens("<s> book a flight") == 4
    assert tiny_lm.count_tokens(" book a flight", continuation=True) == 3


def test_generate_returns_greedy_text_independent_of_batching(tiny_lm, tiny_model_and_tokenizer):
    batched = tiny_lm.generate(PROMPTS, max_new_tokens=4)
    assert len(batched) == len(PROMPTS) and all(isinstance(t, str) for t in batched)
    single = make_lm(tiny_model_and_tokenizer, 1).generate(PROMPTS, max_new_tokens=4)
    assert batched == single


def test_chat_renders_template(tiny_lm):
    messages = [{"role": "system", "content": "label the question"}, {"role": "user", "content": "book a flight"}]
    text = tiny_lm.chat(messages)
    assert text.startswith("<s> system : label the question") and text.endswith("<s> assistant :")
    assert not tiny_lm.chat(messages, add_generation_prompt=False).endswith("assistant :")
    assert encode_prompts(tiny_lm.tokenizer, [text])[0][:2] != [2, 2]


def test_chat_without_template_raises(tiny_model_and_tokenizer):
    from conftest import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    tokenizer.chat_template = None
    lm = HFLM(tiny_model_and_tokenizer[0], tokenizer, name="plain")
    with pytest.raises(UserError, match="chat template"):
        lm.chat([{"role": "user", "content": "hi"}])


def test_device_and_constructor_do_no_io(tiny_model_and_tokenizer):
    lm = HFLM(*tiny_model_and_tokenizer, name="tiny")
    assert lm.device.type == "cpu" and lm.name == "tiny" and lm.batch_size == 8
