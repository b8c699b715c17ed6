"""Shared fixtures: a tiny random Llama with an offline word-level tokenizer.

Heavy libraries are imported inside fixtures so that tests checking ``import iclmeta`` stays light
still see a clean interpreter.
"""

import os

# Hub lookups must fail at once instead of retrying for ~45 s on machines without network access.
os.environ["HF_HUB_OFFLINE"] = "1"

import pytest  # noqa: E402

TINY_WORDS = (
    "the a an is was what where who when how why which to of in on for and or not "
    "flight book cancel weather today tomorrow city music play song alarm set timer "
    "positive negative neutral good bad great film movie review sentiment label input "
    "question answer number location person entity description abbreviation yes no "
    "user assistant system : , . ? ! 0 1 2 3 4 5 6 7 8 9"
).split()
TINY_SPECIALS = ["<pad>", "<unk>", "<s>", "</s>"]
TINY_CHAT_TEMPLATE = (
    "{% for m in messages %}<s> {{ m['role'] }} : {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<s> assistant :{% endif %}"
)


def build_tiny_tokenizer():
    """Word-level tokenizer over ``TINY_WORDS`` that prepends ``<s>`` (as Llama tokenizers do)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(TINY_SPECIALS + list(TINY_WORDS))}
    raw = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    raw.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", vocab["<s>"])])
    return PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>", chat_template=TINY_CHAT_TEMPLATE)


def build_tiny_model(vocab_size: int, seed: int = 0, **overrides):
    """A 2-layer random Llama (fp32, eval mode) small enough to build in well under a second."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    settings = dict(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                    pad_token_id=0, bos_token_id=2, eos_token_id=3, tie_word_embeddings=False)
    settings.update(overrides)
    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(**settings)).eval()


@pytest.fixture(scope="session")
def tiny_model_and_tokenizer():
    """Raw ``(model, tokenizer)`` of the tiny Llama; shared, so tests must not modify the weights."""
    import torch

    torch.set_num_threads(2)
    tokenizer = build_tiny_tokenizer()
    return build_tiny_model(len(tokenizer)), tokenizer


@pytest.fixture(scope="session")
def tiny_lm(tiny_model_and_tokenizer):
    """The tiny Llama as an ``HFLM`` named "tiny" (batch size 3, so batching paths get exercised)."""
    from iclmeta.lm.hf import HFLM

    model, tokenizer = tiny_model_and_tokenizer
    return HFLM(model, tokenizer, name="tiny", batch_size=3)


def build_tiny_embedder(folder, words, seed: int = 0, dim: int = 32) -> str:
    """A 1-layer BERT + mean pooling over ``words``, saved as a sentence-transformers folder."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    torch.manual_seed(seed)
    hf = folder / "hf"
    hf.mkdir(parents=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(set(words))
    (hf / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=str(hf / "vocab.txt")).save_pretrained(hf)
    config = BertConfig(vocab_size=len(vocab), hidden_size=dim, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=2 * dim,
                        max_position_embeddings=64)
    BertModel(config).save_pretrained(hf)
    SentenceTransformer(modules=[Transformer(str(hf)), Pooling(dim, "mean")],
                        device="cpu").save(str(folder / "st"))
    return str(folder / "st")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_model_and_tokenizer):
    """The tiny Llama and its tokenizer saved as a local model folder (``--model DIR``)."""
    model, tokenizer = tiny_model_and_tokenizer
    folder = tmp_path_factory.mktemp("tiny_lm")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_embedder_dir(tmp_path_factory):
    """A tiny sentence-transformers folder over the tiny LM's vocabulary (``--embedder DIR``)."""
    return build_tiny_embedder(tmp_path_factory.mktemp("tiny_st"), TINY_WORDS)


def build_tiny_gemma(vocab_size: int, hidden_size: int = 64, heads: int = 4, kv_heads: int = 2):
    """A 2-layer random Gemma 3 with one sliding-window (window 4) and one full layer."""
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    config = Gemma3TextConfig(vocab_size=vocab_size, hidden_size=hidden_size,
                              intermediate_size=2 * hidden_size, num_hidden_layers=2,
                              num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=16,
                              sliding_window=4, layer_types=["sliding_attention", "full_attention"],
                              max_position_embeddings=256, pad_token_id=0, bos_token_id=2,
                              eos_token_id=3)
    return Gemma3ForCausalLM(config).eval()


def naive_scores(model, tokenizer, prompts, candidates):
    """Reference log-probs: one full forward per (prompt, candidate), as a numpy array."""
    import torch

    from iclmeta.lm.prefix import encode_candidates, encode_prompts, naive_logprobs

    ids = encode_prompts(tokenizer, prompts)
    with torch.no_grad():
        return naive_logprobs(model, ids, encode_candidates(tokenizer, len(ids), candidates)).numpy()


# A three-class question task shared by the prompting tests (tiny template, word-level texts).
def _tiny_task():
    from iclmeta.prompts import Template
    return Template(name="tiny", instruction="the question", chat_instruction="answer the question",
                    demo="question : {text} answer : {label}", query="question : {text} answer :",
                    separator=" . ")


TINY = _tiny_task()
NAMES = {"LOC": "location", "NUM": "number", "HUM": "person"}
LABELS = ("LOC", "NUM", "HUM")
TEXTS = {"LOC": ["where is the city", "where is a city", "which city is it", "where is it"],
         "NUM": ["how many a", "what number is it", "how many is the number", "when is it"],
         "HUM": ["who is the person", "who was it", "who is the user", "who was the person"]}


def write_word_dataset(folder, words, extra: int, n_classes: int = 20, per_class: int = 8):
    """A JSONL dataset: class c's texts are words 2c and 2c+1 plus ``extra`` seeded random words."""
    import json

    import numpy as np

    rng = np.random.default_rng(0)
    rows = [{"text": " ".join([words[2 * c], words[2 * c + 1]] + list(rng.choice(words, extra))),
             "label": f"c{c:02d}"} for c in range(n_classes) for _ in range(per_class)]
    path = folder / "words.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
