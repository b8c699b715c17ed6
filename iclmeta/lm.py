"""Language-model backend: label log-likelihoods with a shared prompt prefix, generation, chat rendering.

Scoring runs one prefill per prompt (keeping only the last position's logits), then scores every
candidate continuation from that prompt's KV cache, all candidates of a batch of prompts at once.

Tokenization contract: the prompt and each candidate are tokenized *separately* and the ids are
concatenated. The prompt gets the tokenizer's default special tokens (a BOS only if the tokenizer
adds one by default, and never twice when a chat template already wrote it); candidates get none.
So a candidate should carry its own leading space (``" book flight"``), as ``PromptBuilder``'s
candidates do.

>>> lm = HFLM.load("smollm2", device="cpu")                          # doctest: +SKIP
>>> lm.score(["Review: great film\\nSentiment:"], [" positive", " negative"]).total.shape  # doctest: +SKIP
(1, 2)
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from iclmeta.errors import UserError

# Caps on one candidate pass: cached key/value rows x prompt length, and logits kept x vocabulary.
CACHE_TOKEN_BUDGET = 8192
LOGIT_BUDGET = 1 << 25

Candidates = Sequence[str] | Sequence[Sequence[str]]


@dataclass
class Scores:
    """Candidate log-likelihoods, one row per prompt.

    ``total[p, c]`` is the summed log-prob of candidate ``c``'s tokens after prompt ``p`` and
    ``n_tokens[p, c]`` its token count. With per-prompt (ragged) candidate lists, missing cells
    hold ``-inf`` and ``0``. ``prompt_tokens`` is the number of prompt tokens over all prompts.

    >>> Scores(np.array([[-2.0, -3.0]]), np.array([[1, 3]]), 5).normalized()
    array([[-2., -1.]])
    """

    total: np.ndarray
    n_tokens: np.ndarray
    prompt_tokens: int

    def normalized(self) -> np.ndarray:
        """Per-token log-likelihood (``-inf`` for missing cells)."""
        out = np.full(self.total.shape, -np.inf)
        np.divide(self.total, self.n_tokens, out=out, where=self.n_tokens > 0)
        return out


def encode_prompts(tokenizer, prompts: Sequence[str]) -> list[list[int]]:
    """Prompt ids with the tokenizer's default special tokens, never two BOS tokens in a row."""
    ids = tokenizer(list(prompts)).input_ids
    bos = tokenizer.bos_token_id
    return [seq[1:] if bos is not None and seq[:2] == [bos, bos] else seq for seq in ids]


def encode_candidates(tokenizer, n_prompts: int, candidates: Candidates) -> list[list[list[int]]]:
    """Candidate ids per prompt (no special tokens); accepts one shared list or one list per prompt."""
    if isinstance(candidates, str) or not candidates:
        raise UserError("candidates must be a non-empty list of strings (or one list per prompt)")
    if all(isinstance(c, str) for c in candidates):
        shared = _encode_list(tokenizer, candidates)
        return [shared] * n_prompts
    if any(isinstance(c, str) for c in candidates):
        raise UserError("candidates mix strings and lists; pass one list of strings or one list per prompt")
    if len(candidates) != n_prompts:
        raise UserError(f"got {len(candidates)} candidate lists for {n_prompts} prompts; pass one list per prompt")
    return [_encode_list(tokenizer, cands) for cands in candidates]


def _encode_list(tokenizer, cands: Sequence[str]) -> list[list[int]]:
    if not cands or not all(isinstance(c, str) for c in cands):
        raise UserError("each candidate list must be a non-empty list of strings")
    ids = tokenizer(list(cands), add_special_tokens=False).input_ids
    empty = [c for c, seq in zip(cands, ids) if not seq]
    if empty:
        raise UserError(f"candidate {empty[0]!r} has no tokens; use a non-empty label text")
    return ids


def label_logprobs(model, tokenizer, prompts: Sequence[str], candidates: Candidates) -> torch.Tensor:
    """Differentiable summed log-probs ``[P, C]`` of each candidate continuation of each prompt.

    Gradients flow into the model's parameters (LoRA meta-learning trains through this); missing
    cells of ragged candidate lists are ``-inf``.

    >>> label_logprobs(model, tok, ["2+2="], [" 4", " 5"]).shape        # doctest: +SKIP
    torch.Size([1, 2])
    """
    prompt_ids = encode_prompts(tokenizer, prompts)
    return score_ids(model, prompt_ids, encode_candidates(tokenizer, len(prompt_ids), candidates))


def score_ids(model, prompt_ids: list[list[int]], cand_ids: list[list[list[int]]]) -> torch.Tensor:
    """``label_logprobs`` on token ids: one prefill for all prompts, then the candidate tokens."""
    if any(not seq for seq in prompt_ids):
        raise UserError("a prompt encodes to zero tokens; pass non-empty prompts")
    rows = [(p, c) for p, cands in enumerate(cand_ids) for c in range(len(cands))]
    seqs = [cand_ids[p][c] for p, c in rows]
    last_lp, cache, mask = _prefill(model, prompt_ids)
    row_prompt = torch.tensor([p for p, _ in rows], device=last_lp.device)
    first = torch.tensor([s[0] for s in seqs], device=last_lp.device)
    values = last_lp[row_prompt, first]
    longer = [r for r, s in enumerate(seqs) if len(s) > 1]
    if longer:
        lengths = torch.tensor([len(s) for s in prompt_ids], device=mask.device)
        rest = _continuation_logprobs(model, (cache, mask, lengths), row_prompt[longer],
                                      [seqs[r] for r in longer], vocab=last_lp.shape[-1])
        values = values.index_add(0, torch.tensor(longer, device=values.device), rest)
    out = torch.full((len(prompt_ids), max(len(c) for c in cand_ids)), float("-inf"), device=values.device)
    out[row_prompt, torch.tensor([c for _, c in rows], device=values.device)] = values
    return out


def _cache_keyword() -> str:
    """Name of the KV-cache argument/output: ``cache`` in recent transformers, ``past_key_values`` before."""
    from transformers.modeling_outputs import CausalLMOutputWithPast

    return "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"


def _model_device(model) -> torch.device:
    return next(model.parameters()).device


def _left_pad(seqs: list[list[int]], device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left-padded ids, attention mask and position ids (real tokens start at position 0)."""
    width = max(len(s) for s in seqs)
    ids = torch.zeros(len(seqs), width, dtype=torch.long)
    mask = torch.zeros(len(seqs), width, dtype=torch.long)
    for i, seq in enumerate(seqs):
        ids[i, width - len(seq):] = torch.tensor(seq)
        mask[i, width - len(seq):] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids.to(device), mask.to(device), positions.to(device)


def _prefill(model, prompt_ids: list[list[int]]):
    """Run all prompts once; return next-token log-probs ``[P, V]``, the KV cache and the mask."""
    ids, mask, positions = _left_pad(prompt_ids, _model_device(model))
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1)
    return torch.log_softmax(out.logits[:, -1].float(), dim=-1), getattr(out, _cache_keyword()), mask


def _select_cache(cache, index: torch.Tensor):
    """A new cache whose batch rows are ``cache``'s rows at ``index`` (repeats allowed).

    Layers are shallow-copied so per-layer state (e.g. a sliding window's running length) carries
    over, and the prefill cache itself stays untouched for the next chunk of candidates.
    """
    selected = copy.copy(cache)
    selected.layers = []
    for layer in cache.layers:
        new = copy.copy(layer)
        if getattr(layer, "keys", None) is not None and layer.keys.numel():
            new.keys, new.values = layer.keys[index], layer.values[index]
        selected.layers.append(new)
    return selected


def _continuation_logprobs(model, prefix, row_prompt, seqs: list[list[int]], vocab: int) -> torch.Tensor:
    """Summed log-probs of tokens 2..n of each candidate row, run on top of its prompt's cache."""
    cache, mask, lengths = prefix
    width = max(len(s) for s in seqs) - 1
    chunk = max(1, min(CACHE_TOKEN_BUDGET // mask.shape[1], LOGIT_BUDGET // (width * vocab)))
    parts = []
    for start in range(0, len(seqs), chunk):
        index = row_prompt[start:start + chunk]
        parts.append(_run_rows(model, _select_cache(cache, index), mask[index], lengths[index],
                               seqs[start:start + chunk], width))
    return torch.cat(parts)


def _run_rows(model, cache, prompt_mask, prompt_len, seqs: list[list[int]], width: int) -> torch.Tensor:
    device = prompt_mask.device
    inputs = torch.zeros(len(seqs), width, dtype=torch.long)
    targets = torch.zeros(len(seqs), width, dtype=torch.long)
    valid = torch.zeros(len(seqs), width, dtype=torch.bool)
    for i, seq in enumerate(seqs):
        n = len(seq) - 1
        inputs[i, :n], targets[i, :n], valid[i, :n] = torch.tensor(seq[:-1]), torch.tensor(seq[1:]), True
    inputs, targets, valid = inputs.to(device), targets.to(device), valid.to(device)
    attention = torch.cat([prompt_mask, valid.long()], dim=1)
    positions = prompt_len[:, None] + torch.arange(width, device=device)[None, :]
    out = model(input_ids=inputs, attention_mask=attention, position_ids=positions,
                use_cache=True, **{_cache_keyword(): cache})
    logprobs = torch.log_softmax(out.logits.float(), dim=-1)
    picked = logprobs.gather(-1, targets[..., None]).squeeze(-1)
    return picked.masked_fill(~valid, 0.0).sum(-1)


def naive_logprobs(model, prompt_ids: list[list[int]], cand_ids: list[list[list[int]]]) -> torch.Tensor:
    """Slow reference for ``score_ids``: one full forward per (prompt, candidate) pair."""
    out = torch.full((len(prompt_ids), max(len(c) for c in cand_ids)), float("-inf"))
    device = _model_device(model)
    for p, (prompt, cands) in enumerate(zip(prompt_ids, cand_ids)):
        for c, cand in enumerate(cands):
            ids = torch.tensor([prompt + cand], device=device)
            logprobs = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
            steps = torch.arange(len(prompt) - 1, len(prompt) + len(cand) - 1, device=device)
            out[p, c] = logprobs[steps, torch.tensor(cand, device=device)].sum().cpu()
    return out


class HFLM:
    """A Hugging Face causal LM with batched scoring, greedy generation and chat rendering.

    The constructor does no I/O; ``HFLM.load`` resolves and loads a model by name.

    >>> lm = HFLM.load(device="cpu")                                     # doctest: +SKIP
    >>> lm.score(["Q: 2+2?\\nA:"], [" 4", " 5"]).normalized().argmax(1)   # doctest: +SKIP
    array([0])
    """

    def __init__(self, model, tokenizer, name: str, batch_size: int = 8):
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.batch_size = batch_size

    @classmethod
    def load(cls, name: str | None = None, device: str = "auto", dtype: str = "auto",
             cache_dir=None, trust_remote_code: bool = False, batch_size: int = 8) -> "HFLM":
        """Load a registry name, .gguf file, model folder or hub id (see ``models.load_causal_lm``)."""
        from iclmeta.models import DEFAULT_LM, load_causal_lm

        model, tokenizer = load_causal_lm(name, device=device, dtype=dtype, cache_dir=cache_dir,
                                          trust_remote_code=trust_remote_code)
        return cls(model, tokenizer, name or DEFAULT_LM, batch_size=batch_size)

    @property
    def device(self) -> torch.device:
        return _model_device(self.model)

    @property
    def max_length(self) -> int:
        """Context window in tokens (prompt plus continuation)."""
        config = self.model.config.get_text_config()
        window = getattr(config, "max_position_embeddings", None) or 2048
        tokenizer_max = getattr(self.tokenizer, "model_max_length", None) or window
        return int(min(window, tokenizer_max))

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes as a prompt (special tokens included)."""
        return len(encode_prompts(self.tokenizer, [text])[0])

    def score(self, prompts: Sequence[str], candidates: Candidates) -> Scores:
        """Log-likelihood of each candidate continuation of each prompt.

        ``candidates`` is one list shared by all prompts or one list per prompt (lengths may differ).
        """
        if not prompts:
            return Scores(np.zeros((0, 0)), np.zeros((0, 0), dtype=np.int64), 0)
        prompt_ids = encode_prompts(self.tokenizer, prompts)
        cand_ids = encode_candidates(self.tokenizer, len(prompt_ids), candidates)
        self._check_length(prompt_ids, [max(len(c) for c in cands) for cands in cand_ids])
        width = max(len(c) for c in cand_ids)
        total = np.full((len(prompt_ids), width), -np.inf)
        n_tokens = np.zeros((len(prompt_ids), width), dtype=np.int64)
        # Similar lengths share a batch, so little compute goes to padding.
        order = sorted(range(len(prompt_ids)), key=lambda i: len(prompt_ids[i]))
        with torch.no_grad():
            for start in range(0, len(order), self.batch_size):
                batch = order[start:start + self.batch_size]
                values = score_ids(self.model, [prompt_ids[i] for i in batch], [cand_ids[i] for i in batch])
                total[batch] = np.pad(values.cpu().numpy(), ((0, 0), (0, width - values.shape[1])),
                                      constant_values=-np.inf)
        for p, cands in enumerate(cand_ids):
            n_tokens[p, :len(cands)] = [len(c) for c in cands]
        return Scores(total, n_tokens, sum(len(s) for s in prompt_ids))

    def generate(self, prompts: Sequence[str], max_new_tokens: int = 16) -> list[str]:
        """Greedy continuation of each prompt, decoded without special tokens."""
        if not prompts:
            return []
        prompt_ids = encode_prompts(self.tokenizer, prompts)
        self._check_length(prompt_ids, [max_new_tokens] * len(prompt_ids))
        pad = self.tokenizer.pad_token_id
        pad = self.tokenizer.eos_token_id if pad is None else pad
        texts = []
        with torch.no_grad():
            for start in range(0, len(prompt_ids), self.batch_size):
                ids, mask, _ = _left_pad(prompt_ids[start:start + self.batch_size], self.device)
                out = self.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                          do_sample=False, pad_token_id=pad)
                texts += self.tokenizer.batch_decode(out[:, ids.shape[1]:], skip_special_tokens=True)
        return texts

    def chat(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        """Render ``[{"role", "content"}, ...]`` through the tokenizer's chat template into prompt text."""
        if not getattr(self.tokenizer, "chat_template", None):
            raise UserError(f"model '{self.name}' has no chat template; use a text template or an instruct model")
        return self.tokenizer.apply_chat_template(messages, tokenize=False,
                                                  add_generation_prompt=add_generation_prompt)

    def _check_length(self, prompt_ids: list[list[int]], extra: list[int]) -> None:
        longest = max(len(p) + e for p, e in zip(prompt_ids, extra))
        if longest > self.max_length:
            raise UserError(f"prompt of {longest} tokens exceeds the {self.max_length}-token window of "
                            f"'{self.name}'; use fewer or shorter demonstrations")
