"""Fitting demonstrations into the model's window: the fewest least-relevant ones dropped."""
from __future__ import annotations

from iclmeta.data.example import Example
from iclmeta.errors import UserError
from iclmeta.lm.protocol import LM


def fit_context(lm: LM, demos: list[Example], render, reserve: int, query: Example,
                drop_last: bool = False) -> list[Example]:
    """The demos to keep: the fewest least-relevant ones dropped so that every prompt fits.

    ``render(kept)`` returns the prompt texts that must fit with ``reserve`` tokens after them.
    Dropping a demonstration never lengthens a prompt, so the least number to drop is found by
    bisection (a handful of renders even for thousands of demonstrations). The query itself is
    never truncated: a query that cannot fit alone is an error.
    """
    def kept_after(n_dropped: int) -> list[Example]:
        return demos[:len(demos) - n_dropped] if drop_last else demos[n_dropped:]

    def fits(n_dropped: int) -> bool:
        longest = max(lm.count_tokens(text) for text in render(kept_after(n_dropped)))
        return longest + reserve <= lm.max_length

    if fits(0):
        return list(demos)
    if not fits(len(demos)):
        raise UserError(f"query {query.id} does not fit the model's context window "
                        f"({lm.max_length} tokens) even without demonstrations; "
                        "use a model with a longer context or shorter inputs")
    low, high = 0, len(demos)  # fits(high), not fits(low)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if fits(mid) else (mid, high)
    return kept_after(high)
