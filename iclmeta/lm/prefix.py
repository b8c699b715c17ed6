"""Token-level label scoring: one prefill per prompt, every candidate scored from its KV cache.

Prompts that start with the same tokens (the instruction header of every method; for ``icl`` also
the demonstrations, shared by every query of an episode) can reuse one computation of that shared
prefix: ``shared_prefix`` runs it once and ``score_ids(..., prefix=...)`` continues each prompt's
remaining tokens from it. The result equals scoring each prompt from scratch.

Tokenization contract: the prompt and each candidate are tokenized *separately* and the ids are
concatenated. The prompt gets the tokenizer's default special tokens (a BOS only if the tokenizer
adds one by default, and never twice when a chat template already wrote it); candidates get none.
So a candidate should carry its own leading space (``" book flight"``).

>>> ids = encode_prompts(tokenizer, ["Q: 2+2?\\nA:"])                     # doctest: +SKIP
>>> score_ids(model, ids, encode_candidates(tokenizer, 1, [" 4", " 5"])).shape  # doctest: +SKIP
torch.Size([1, 2])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from iclmeta.errors import UserError
from iclmeta.lm.candidates import cache_keyword, model_device, packed_logprobs, per_candidate_logprobs
from iclmeta.lm.kv import prefill_cache, prefixed_cache
from iclmeta.lm.protocol import Candidates
from iclmeta.lm.rows import passing_rows

# A shared prefix shorter than this many tokens, or than this share of the shortest prompt, is
# recomputed per prompt: measured on CPU, reusing a short header costs more than it saves.
MIN_SHARED_PREFIX = 32
MIN_SHARED_SHARE = 0.25

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


@dataclass
class Prefix:
    """The KV cache (one batch row) of the first ``length`` tokens, shared by a set of prompts."""

    cache: object
    length: int


def shared_prefix_length(prompt_ids: list[list[int]]) -> int:
    """Tokens every prompt starts with, leaving at least one token of each prompt to run.

    Taken on token ids, so it never splits a token: the shared ids are exactly the shared part.

    >>> shared_prefix_length([[1, 5, 6, 7], [1, 5, 6, 9, 9], [1, 5, 6]])
    2
    """
    first = prompt_ids[0]
    n = min(len(seq) for seq in prompt_ids) - 1
    for seq in prompt_ids[1:]:
        i = 0
        while i < n and seq[i] == first[i]:
            i += 1
        n = i
    return max(n, 0)


def shared_prefix(model, prompt_ids: list[list[int]], min_tokens: int = MIN_SHARED_PREFIX) -> Prefix | None:
    """Run the prompts' common prefix once; ``None`` when it is too short to pay or the model cannot reuse it.

    Sliding-window layers keep only their last window of keys, and padding between a reused prefix
    and the rest of a prompt would shift that window, so such models score every prompt whole.
    A long prefix (a many-shot demonstration block) runs in chunks (``iclmeta.lm.kv``).

    >>> prefix = shared_prefix(model, encode_prompts(tok, prompts))      # doctest: +SKIP
    >>> score_ids(model, encode_prompts(tok, prompts), cand_ids, prefix)  # doctest: +SKIP
    """
    n = shared_prefix_length(prompt_ids) if prompt_ids else 0
    shortest = min((len(seq) for seq in prompt_ids), default=0)
    if n < max(1, min_tokens, MIN_SHARED_SHARE * shortest) or _has_sliding_layers(model):
        return None
    return Prefix(prefill_cache(model, prompt_ids[0][:n]), n)


def _has_sliding_layers(model) -> bool:
    config = model.config.get_text_config()
    layer_types = getattr(config, "layer_types", None)
    if layer_types:
        return any("sliding" in str(kind) for kind in layer_types)
    return getattr(config, "sliding_window", None) is not None


def label_logprobs(model, tokenizer, prompts: Sequence[str], candidates: Candidates,
                   reuse_prefix: bool = True) -> torch.Tensor:
    """Differentiable summed log-probs ``[P, C]`` of each candidate continuation of each prompt.

    Gradients flow into the model's parameters (LoRA meta-learning trains through this); missing
    cells of ragged candidate lists are ``-inf``. ``reuse_prefix`` runs the prompts' common
    prefix once (same values and gradients, less compute).

    >>> label_logprobs(model, tok, ["2+2="], [" 4", " 5"]).shape        # doctest: +SKIP
    torch.Size([1, 2])
    """
    prompt_ids = encode_prompts(tokenizer, prompts)
    cand_ids = encode_candidates(tokenizer, len(prompt_ids), candidates)
    prefix = shared_prefix(model, prompt_ids) if reuse_prefix else None
    return score_ids(model, prompt_ids, cand_ids, prefix)


def score_ids(model, prompt_ids: list[list[int]], cand_ids: list[list[list[int]]],
              prefix: Prefix | None = None) -> torch.Tensor:
    """``label_logprobs`` on token ids: one prefill for all prompts, then the candidate tokens.

    With ``prefix`` (from ``shared_prefix`` over these prompts or a superset of them) only each
    prompt's tokens after the prefix are run, on top of the prefix's cache.
    """
    if any(not seq for seq in prompt_ids):
        raise UserError("a prompt encodes to zero tokens; pass non-empty prompts")
    rows = [(p, c) for p, cands in enumerate(cand_ids) for c in range(len(cands))]
    seqs = [cand_ids[p][c] for p, c in rows]
    last_lp, cache, mask = _prefill(model, prompt_ids, prefix)
    row_prompt = torch.tensor([p for p, _ in rows], device=last_lp.device)
    row_cand = torch.tensor([c for _, c in rows], device=last_lp.device)
    values = last_lp[row_prompt, torch.tensor([s[0] for s in seqs], device=last_lp.device)]
    longer = [r for r, s in enumerate(seqs) if len(s) > 1]
    if longer:
        lengths = torch.tensor([len(s) for s in prompt_ids], device=mask.device)
        if _has_sliding_layers(model):  # a custom mask would bypass the sliding windows
            rest = per_candidate_logprobs(model, (cache, mask, lengths), row_prompt[longer],
                                          [seqs[r] for r in longer], vocab=last_lp.shape[-1])
            values = values.index_add(0, torch.tensor(longer, device=values.device), rest)
        else:
            values = values + packed_logprobs(model, (cache, mask, lengths), cand_ids)[row_prompt, row_cand]
    out = torch.full((len(prompt_ids), max(len(c) for c in cand_ids)), float("-inf"), device=values.device)
    out[row_prompt, row_cand] = values
    return out


def left_pad(seqs: list[list[int]], device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left-padded ids, attention mask and position ids (real tokens start at position 0)."""
    width = max(len(s) for s in seqs)
    ids = torch.zeros(len(seqs), width, dtype=torch.long)
    mask = torch.zeros(len(seqs), width, dtype=torch.long)
    for i, seq in enumerate(seqs):
        ids[i, width - len(seq):] = torch.tensor(seq)
        mask[i, width - len(seq):] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids.to(device), mask.to(device), positions.to(device)


def _prefill(model, prompt_ids: list[list[int]], prefix: Prefix | None):
    """Run the prompts (after ``prefix``); return next-token log-probs ``[P, V]``, the KV cache, the mask.

    The part after the prefix is left-padded, so padding sits between the prefix and each prompt's
    own tokens: the mask hides it and the positions continue from the prefix, so every real token
    sees exactly the keys and positions it would see in its whole prompt. The returned cache holds
    the prefix once (shared by all rows) and each row's own tokens.
    """
    skip = 0 if prefix is None else prefix.length
    ids, mask, positions = left_pad([seq[skip:] for seq in prompt_ids], model_device(model))
    extra = {}
    if prefix is not None:
        extra[cache_keyword()] = prefixed_cache(prefix.cache)
        mask = torch.cat([mask.new_ones(len(prompt_ids), skip), mask], dim=1)
        positions = positions + skip
    with passing_rows(torch.arange(len(prompt_ids), device=ids.device)):
        out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                    logits_to_keep=1, **extra)
    return torch.log_softmax(out.logits[:, -1].float(), dim=-1), getattr(out, cache_keyword()), mask


def naive_logprobs(model, prompt_ids: list[list[int]], cand_ids: list[list[list[int]]]) -> torch.Tensor:
    """Slow reference for ``score_ids``: one full forward per (prompt, candidate) pair."""
    out = torch.full((len(prompt_ids), max(len(c) for c in cand_ids)), float("-inf"))
    device = model_device(model)
    for p, (prompt, cands) in enumerate(zip(prompt_ids, cand_ids)):
        for c, cand in enumerate(cands):
            ids = torch.tensor([prompt + cand], device=device)
            logprobs = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
            steps = torch.arange(len(prompt) - 1, len(prompt) + len(cand) - 1, device=device)
            out[p, c] = logprobs[steps, torch.tensor(cand, device=device)].sum().cpu()
    return out
