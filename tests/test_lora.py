"""LoRA fast weights: the functional task loss is the harness's scoring path, adaptation works."""
import pytest

from conftest import build_tiny_model, build_tiny_tokenizer
from iclmeta.data.example import Example
from iclmeta.prompts import PromptBuilder, Template

CLASSES = ("flight", "weather", "music")
NAMES = {"flight": "book flight", "weather": "weather today", "music": "play song"}
EXAMPLES = [Example("book a flight to the city", "flight", "e1"),
            Example("what is the weather tomorrow", "weather", "e2"),
            Example("play a song", "music", "e3"),
            Example("cancel the flight", "flight", "e4"),
            Example("is it good weather today", "weather", "e5"),
            Example("play music", "music", "e6")]


@pytest.fixture()
def setup():
    """A fresh tiny model per test: attaching LoRA changes its modules."""
    import torch
    from iclmeta.meta.lora import LoraSpec, attach_lora
    torch.set_num_threads(1)
    tok = build_tiny_tokenizer()
    model = build_tiny_model(len(tok))
    builder = PromptBuilder(Template(name="t", instruction="what is the label ?",
                                     query="input : {text}\nlabel :"), NAMES)
    return model, tok, builder, attach_lora(model, tok, LoraSpec(rank=2, alpha=4.0))


def batch_of(setup, examples=EXAMPLES, normalize=True):
    from iclmeta.meta.lora import task_batch
    _, tok, builder, _ = setup
    return task_batch(builder, tok, examples, CLASSES, normalize)


def randomized(params, seed=1, scale=0.3):
    import torch
    gen = torch.Generator().manual_seed(seed)
    return {k: (v.detach() + scale * torch.randn(v.shape, generator=gen)).requires_grad_(True)
            for k, v in params.items()}


@pytest.mark.parametrize("normalize", [True, False])
def test_initial_logits_equal_harness_scores(setup, normalize):
    """Fresh LoRA (B = 0) scores exactly what label_logprobs scores for the zero-shot prompts."""
    import torch
    from iclmeta.lm.prefix import label_logprobs
    model, tok, builder, lora = setup
    prompts = [builder.render([], ex, CLASSES) for ex in EXAMPLES]
    candidates = builder.candidates(CLASSES)
    expected = label_logprobs(model, tok, prompts, candidates)
    if normalize:
        expected = expected / torch.tensor([len(tok(c, add_special_tokens=False).input_ids)
                                            for c in candidates])
    got = lora.logits(lora.initial(), batch_of(setup, normalize=normalize))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_functional_call_covers_both_scoring_passes(setup):
    """Non-zero fast weights give the same scores as a model holding those weights."""
    import torch
    from iclmeta.lm.prefix import encode_candidates, naive_logprobs
    model, tok, builder, lora = setup
    params = randomized(lora.initial())
    batch = batch_of(setup, normalize=False)
    got = lora.logits(params, batch)
    stored = dict(model.named_parameters())
    with torch.no_grad():
        saved = {k: stored[k.removeprefix("model.")].clone() for k in params}
        for k, v in params.items():
            stored[k.removeprefix("model.")].copy_(v)
        expected = naive_logprobs(model, batch.prompt_ids, [batch.cand_ids] * len(batch))
        for k, v in saved.items():
            stored[k.removeprefix("model.")].copy_(v)
    assert any(len(c) > 1 for c in encode_candidates(tok, 1, builder.candidates(CLASSES))[0])
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_attaching_lora_leaves_the_stored_model_equal_to_the_base(setup):
    import torch
    from iclmeta.lm.prefix import label_logprobs
    model, tok, builder, _ = setup
    prompts = [builder.render([], ex, CLASSES) for ex in EXAMPLES]
    base = build_tiny_model(len(tok))
    torch.testing.assert_close(label_logprobs(model, tok, prompts, builder.candidates(CLASSES)),
                               label_logprobs(base, tok, prompts, builder.candidates(CLASSES)))


def test_adapt_lowers_the_support_loss_and_returns_leaves(setup):
    from iclmeta.meta.adaptation import adapt
    _, _, _, lora = setup
    batch, losses, start = batch_of(setup), [], lora.initial()
    fast = adapt(lora, start, batch, steps=5, lr=1.0, losses=losses)
    assert len(losses) == 5 and float(lora.loss(fast, batch).detach()) < losses[0]
    assert all(v.is_leaf and v.requires_grad for v in fast.values())
    unchanged = adapt(lora, start, batch, steps=0, lr=1.0)
    assert all((unchanged[k] == start[k]).all() for k in start)


def test_predict_is_the_argmax_of_the_logits(setup):
    _, _, _, lora = setup
    params, batch = randomized(lora.initial()), batch_of(setup)
    assert lora.predict(params, batch, batch_size=4) == lora.logits(params, batch).argmax(-1).tolist()


def test_portable_weights_round_trip(setup):
    import torch
    _, _, _, lora = setup
    params = randomized(lora.initial())
    portable = lora.portable(params)
    assert all(lora.spec.adapter_name not in k for k in portable)
    back = lora.from_portable(portable)
    assert list(back) == list(params)
    for k in params:
        torch.testing.assert_close(back[k], params[k].detach())
    with pytest.raises(ValueError):
        lora.from_portable(dict(list(portable.items())[:-1]))


def test_base_model_is_frozen_and_not_copied(setup):
    model, _, _, lora = setup
    assert not any(p.requires_grad for p in model.parameters())
    assert lora.model is model
