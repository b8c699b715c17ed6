"""Ranking through a vector index: when to search with FAISS, how to do it so that a flat
index chooses exactly what :func:`iclmeta.retrieval.select.rank_by_similarity` chooses over
the whole pool.

The index returns a shortlist of nearest candidates for all queries in one batched call; the
shortlist is re-ranked with the same numpy code as the small-pool path (so balancing and MMR
behave the same), and it is widened (doubled) for any query where it cannot be shown to hold
every example the full ranking would pick.

>>> use_faiss(50), use_faiss(50_000), use_faiss(50_000, "flat", mmr_lambda=0.5)
(False, True, False)

Only numpy is imported here (``select`` imports this module; it must stay light).
"""
from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np

from iclmeta.retrieval.select import check_k, rank_by_similarity, similarities

FAISS_MIN_POOL = 1024  # below this an exhaustive numpy ranking is as fast and needs no index
TIE_MARGIN = 1e-4  # FAISS and numpy may round a dot product differently; keep clear of both


def use_faiss(n_pool: int, kind: str = "flat", mmr_lambda: float | None = None,
              min_pool: int | None = None) -> bool:
    """The one rule for where a pool is ranked: FAISS from ``min_pool`` examples on, numpy below.

    MMR with an exact (``flat``) index stays with numpy at any size: its diversity term can
    prefer any example of the pool, so an exact MMR ranking has to read every vector anyway.
    """
    min_pool = FAISS_MIN_POOL if min_pool is None else min_pool
    return n_pool >= min_pool and not (kind == "flat" and mmr_lambda is not None)


def first_shortlist(k: int, n: int, mmr_lambda: float | None) -> int:
    """How many candidates the first search asks for: a margin over ``k``; MMR (approximate
    kinds only) re-ranks a fixed ``max(4k, 64)``."""
    wanted = max(4 * k, 64) if mmr_lambda is not None else 2 * k + 16
    return min(n, wanted)


def rank_many(query_vecs: np.ndarray, index, k: int, labels: Sequence[str] | None = None,
              balance: bool = False, mmr_lambda: float | None = None) -> list[list[int]]:
    """For each query vector, the index ids to show, most similar first (as ``rank_by_similarity``).

    ``index`` is a :class:`iclmeta.retrieval.vectors.VectorIndex` (``search``, ``reconstruct``,
    ``ntotal``); ``labels`` gives the label of every indexed vector (needed for ``balance``).

    >>> from iclmeta.retrieval.vectors import VectorIndex
    >>> vecs = np.eye(3, dtype=np.float32)
    >>> rank_many(vecs[[1]], VectorIndex.build(vecs), 2)
    [[1, 0]]
    """
    n = index.ntotal
    k = check_k(k, n)
    queries = np.asarray(query_vecs, dtype=np.float32).reshape(len(query_vecs), -1)
    if k == 0:
        return [[] for _ in range(len(queries))]
    totals = Counter(labels) if balance else None
    results: list[list[int] | None] = [None] * len(queries)
    pending = list(range(len(queries)))
    shortlist = first_shortlist(k, n, mmr_lambda)
    while pending:
        _, found = index.search(queries[pending], shortlist)
        for row, qi in enumerate(pending):
            cand = np.sort(found[row][found[row] >= 0])
            cand_labels = None if labels is None else [labels[i] for i in cand]
            vecs = index.reconstruct(cand)
            # The whole pool is ranked exactly as numpy ranks it; a part, position-independently.
            whole = len(cand) == n
            sims = None if whole else similarities(vecs, queries[qi])
            local = rank_by_similarity(queries[qi], vecs, k, cand_labels, balance=balance,
                                       mmr_lambda=mmr_lambda, sims=sims)
            if whole or shortlist >= n or mmr_lambda is not None or \
                    _holds_picks(sims, local, k, cand_labels, totals):
                results[qi] = cand[local].tolist()
        pending = [qi for qi in pending if results[qi] is None]
        shortlist = min(n, 2 * shortlist)
    return results


def _holds_picks(sims: np.ndarray, picked: list[int], k: int, cand_labels, totals) -> bool:
    """Whether a shortlist (every example outside it is no more similar than its least similar
    member) surely contains what ranking the whole pool would pick."""
    if len(picked) < k or np.any(sims[picked] <= sims.min() + TIE_MARGIN):
        return False  # too few found, or a pick might tie with an example outside
    if totals is None:
        return True
    # Balanced round-robin: a label whose examples are not all in the shortlist must have at
    # least as many there as rounds were played, and once a round wraps, every label counts.
    have = Counter(cand_labels)
    rounds = max(Counter(cand_labels[i] for i in picked).values())
    if rounds > 1 and len(have) < len(totals):
        return False
    return all(have[label] >= rounds or have[label] == totals[label] for label in have)

