"""The LM seam: what the prompting methods and scoring modes ask of a language model.

Text in, numbers or text out; a batch in gives a same-length, same-order batch out. Backends
tokenize, batch and reuse shared prefixes inside, so the methods never see tokens or tensors.
``iclmeta.lm.hf.HFLM`` is the Hugging Face backend; another one (an inference server,
llama.cpp) plugs in by providing these verbs and a ``BACKENDS`` entry in ``iclmeta.lm.registry``.
Implementers need not import this module: the protocol is structural.

Light on purpose (numpy only): the scoring modes and the renderer import it.

>>> Scores(np.array([[-2.0, -3.0]]), np.array([[1, 3]]), 5).normalized()
array([[-2., -1.]])
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

Candidates = Sequence[str] | Sequence[Sequence[str]]
Pair = tuple[str, str]


@dataclass(frozen=True)
class Scores:
    """Candidate log-likelihoods, one row per prompt.

    ``total[p, c]`` is the summed log-prob of candidate ``c``'s tokens after prompt ``p`` and
    ``n_tokens[p, c]`` its token count. With per-prompt (ragged) candidate lists, missing cells
    hold ``-inf`` and ``0``. ``prompt_tokens`` is the number of prompt tokens over all prompts.

    >>> Scores(np.array([[-1.0, -np.inf]]), np.array([[2, 0]]), 4).normalized()
    array([[-0.5, -inf]])
    """

    total: np.ndarray
    n_tokens: np.ndarray
    prompt_tokens: int

    def normalized(self) -> np.ndarray:
        """Per-token log-likelihood (``-inf`` for missing cells)."""
        out = np.full(self.total.shape, -np.inf)
        np.divide(self.total, self.n_tokens, out=out, where=self.n_tokens > 0)
        return out


@dataclass(frozen=True)
class PairScores:
    """``log p(continuation | context)`` of every pair: one array per group, in pair order.

    ``tokens`` counts the tokens the backend ran (a shared prefix once per group).

    >>> int(PairScores([np.array([-1.5, -0.2])], 9).values[0].argmax())
    1
    """

    values: list[np.ndarray]
    tokens: int


@runtime_checkable
class LM(Protocol):
    """A language model as the prompting methods and scoring modes use it.

    >>> lm = load_lm("hf", "smollm2", device="cpu")                      # doctest: +SKIP
    >>> lm.score(["Q: 2+2?\\nA:"], [" 4", " 5"]).total.shape           # doctest: +SKIP
    (1, 2)
    >>> lm.score_pairs([[("Label: number\\nQ:", " 2+2?")]]).values[0].shape  # doctest: +SKIP
    (1,)
    """

    name: str
    """Model id, for rows and error messages."""
    max_length: int
    """Context window in tokens (prompt plus continuation)."""

    def score(self, prompts: Sequence[str], candidates: Candidates) -> Scores:
        """Log-likelihood of each candidate continuation of each prompt: one prefill per prompt,
        every candidate scored from it. ``candidates`` is one list shared by all prompts or one
        list per prompt; a candidate carries its own leading space (``" positive"``)."""
        ...

    def score_pairs(self, groups: Sequence[Sequence[Pair]]) -> PairScores:
        """``log p(continuation | context)`` of each ``(context, continuation)`` pair.

        The pairs of one group share a long common prefix (a demonstration set), which a
        backend may run once; ``score_pairs([[(p, c)]])`` equals ``score([p], [c]).total``.
        """
        ...

    def generate(self, prompts: Sequence[str], max_new_tokens: int = 16) -> list[str]:
        """Greedy continuation of each prompt (the new text only)."""
        ...

    def count_tokens(self, text: str, continuation: bool = False) -> int:
        """Tokens ``text`` takes as a prompt, or (``continuation=True``) scored after one."""
        ...

    def chat(self, messages: list[dict]) -> str:
        """Render ``[{"role", "content"}, ...]`` through the model's chat template into prompt
        text ending where the assistant's reply starts; a one-line error when it has none."""
        ...
