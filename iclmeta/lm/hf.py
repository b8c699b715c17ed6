"""Hugging Face backend of the ``LM`` protocol: batched label log-likelihoods, grouped pair
scoring, generation, chat rendering.

``HFLM.score`` tokenizes the prompts, runs the prefix that all of them share once (the instruction
header; for ``icl`` also the demonstrations), then scores each batch of similar-length prompts
from that cache: one prefill of each prompt's remaining tokens, every candidate continuation from
its KV cache (see ``iclmeta.lm.prefix``, which also holds the differentiable ``label_logprobs``).
``HFLM.score_pairs`` runs each group's shared demonstrations once (see ``iclmeta.lm.pairs``).

>>> lm = HFLM.load("smollm2", device="cpu")                          # doctest: +SKIP
>>> lm.score(["Review: great film\\nSentiment:"], [" positive", " negative"]).total.shape  # doctest: +SKIP
(1, 2)
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
import torch

from iclmeta.errors import UserError
from iclmeta.lm.candidates import device_token_budget
from iclmeta.lm.pairs import plan_jobs, run_jobs
from iclmeta.lm.prefix import encode_candidates, encode_prompts, left_pad, score_ids, shared_prefix
from iclmeta.lm.protocol import Candidates, Pair, PairScores, Scores


class HFLM:
    """A Hugging Face causal LM behind the ``LM`` protocol: batched scoring, grouped pair scoring,
    greedy generation and chat rendering.

    The constructor does no I/O; ``HFLM.load`` resolves and loads a model by name.

    >>> lm = HFLM.load(device="cpu")                                     # doctest: +SKIP
    >>> lm.score(["Q: 2+2?\\nA:"], [" 4", " 5"]).normalized().argmax(1)   # doctest: +SKIP
    array([0])
    """

    def __init__(self, model, tokenizer, name: str, batch_size: int | Literal["auto"] = 8,
                 reuse_prefix: bool = True):
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.batch_size = batch_size
        self.reuse_prefix = reuse_prefix

    @classmethod
    def load(cls, name: str | None = None, device: str = "auto", dtype: str = "auto",
             cache_dir=None, trust_remote_code: bool = False,
             batch_size: int | Literal["auto"] = 8, reuse_prefix: bool = True) -> "HFLM":
        """Load a registry name, .gguf file, model folder or hub id (see ``models.load_causal_lm``).

        ``batch_size="auto"`` fills a CUDA device (from its free memory and the prompt length) and
        is 8 on CPU; ``reuse_prefix=False`` scores every prompt whole (for benchmarks and checks).
        """
        from iclmeta.models import DEFAULT_LM, load_causal_lm

        model, tokenizer = load_causal_lm(name, device=device, dtype=dtype, cache_dir=cache_dir,
                                          trust_remote_code=trust_remote_code)
        return cls(model, tokenizer, name or DEFAULT_LM, batch_size=batch_size, reuse_prefix=reuse_prefix)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def max_length(self) -> int:
        """Context window in tokens (prompt plus continuation)."""
        config = self.model.config.get_text_config()
        window = getattr(config, "max_position_embeddings", None) or 2048
        tokenizer_max = getattr(self.tokenizer, "model_max_length", None) or window
        return int(min(window, tokenizer_max))

    def count_tokens(self, text: str, continuation: bool = False) -> int:
        """Tokens ``text`` takes as a prompt (special tokens included) or as a continuation (none)."""
        if continuation:
            return len(self.tokenizer(text, add_special_tokens=False).input_ids)
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
        size = self.batch_for(max(len(s) for s in prompt_ids) + width)
        with torch.no_grad():
            prefix = shared_prefix(self.model, prompt_ids) if self.reuse_prefix else None
            for start in range(0, len(order), size):
                batch = order[start:start + size]
                values = score_ids(self.model, [prompt_ids[i] for i in batch],
                                   [cand_ids[i] for i in batch], prefix)
                total[batch] = np.pad(values.cpu().numpy(), ((0, 0), (0, width - values.shape[1])),
                                      constant_values=-np.inf)
        for p, cands in enumerate(cand_ids):
            n_tokens[p, :len(cands)] = [len(c) for c in cands]
        return Scores(total, n_tokens, sum(len(s) for s in prompt_ids))

    def score_pairs(self, groups: Sequence[Sequence[Pair]]) -> PairScores:
        """``log p(continuation | context)`` of each pair, each group's shared prefix run once.

        ``score_pairs([[(p, c)]])`` matches ``score([p], [c]).total``; a pair's context and
        continuation must both be non-empty text.
        """
        if not groups:
            return PairScores([], 0)
        jobs = plan_jobs(self.tokenizer, groups)
        longest = max(job.longest for job in jobs)
        self._check_window(longest)
        values = run_jobs(self.model, jobs, [len(g) for g in groups], self.batch_for(longest))
        return PairScores(values, sum(job.tokens for job in jobs))

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
            size = self.batch_for(max(len(s) for s in prompt_ids) + max_new_tokens)
            for start in range(0, len(prompt_ids), size):
                ids, mask, _ = left_pad(prompt_ids[start:start + size], self.device)
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

    def batch_for(self, tokens_per_prompt: int) -> int:
        """Prompts per forward: the set batch size, or with ``"auto"`` what fits the device."""
        if self.batch_size != "auto":
            return int(self.batch_size)
        return auto_batch_size(self.model, tokens_per_prompt)

    def _check_length(self, prompt_ids: list[list[int]], extra: list[int]) -> None:
        self._check_window(max(len(p) + e for p, e in zip(prompt_ids, extra)))

    def _check_window(self, longest: int) -> None:
        if longest > self.max_length:
            raise UserError(f"prompt of {longest} tokens exceeds the {self.max_length}-token window of "
                            f"'{self.name}'; use fewer or shorter demonstrations")


def auto_batch_size(model, tokens_per_prompt: int, cpu_batch: int = 8) -> int:
    """Prompts per forward that fill half of a CUDA device's free memory; ``cpu_batch`` elsewhere.

    >>> auto_batch_size(model_on_cpu, 512)                                # doctest: +SKIP
    8
    """
    budget = device_token_budget(model)
    if budget is None:
        return cpu_batch
    return int(max(1, min(1024, budget // max(1, tokens_per_prompt))))
