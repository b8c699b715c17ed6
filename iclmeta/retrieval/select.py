"""Demonstration selectors: which support examples go into a prompt, and in what order.

A selector picks ``k`` demonstrations for one query from a pool (an episode's support set).
The selection math lives in :func:`rank_by_similarity`, shared with :class:`iclmeta.retrieval.index.Retriever`,
so the harness and apps built on the retriever choose the same demonstrations.

>>> sel = RandomSelector(seed=1)
>>> pool = [Example(f"text {i}", "a", id=str(i)) for i in range(6)]
>>> [ex.id for ex in sel.select(Example("q", "a", id="q1"), pool, 3)]
['3', '4', '0']

Only numpy is imported here; the embedder (torch) loads when a KNN selector first encodes.
"""
from __future__ import annotations

import hashlib
from typing import Protocol, Sequence

import numpy as np

from iclmeta.data.example import Example
from iclmeta.errors import UserError

ORDERS = ("nearest-last", "nearest-first")


class Selector(Protocol):
    """Anything that picks ``k`` demonstrations for ``query`` out of ``pool``."""

    def select(self, query: Example, pool: list[Example], k: int) -> list[Example]: ...


class TextEncoder(Protocol):
    """What a KNN selector needs from an embedder: L2-normalised float vectors, one row per text."""

    def encode(self, texts: list[str]) -> np.ndarray: ...


def check_k(k: int, n: int) -> int:
    """``k`` clipped to the pool size ``n``; a negative ``k`` is a user error."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise UserError(f"k must be an integer number of demonstrations, got {k!r}")
    if k < 0:
        raise UserError(f"k={k} is negative; ask for 0 or more demonstrations")
    return min(int(k), n)


def check_order(order: str) -> str:
    if order not in ORDERS:
        raise UserError(f"unknown demonstration order '{order}'; choose one of: {', '.join(ORDERS)}")
    return order


def order_demos(ranked: Sequence, order: str = "nearest-last") -> list:
    """Put ``ranked`` (most similar first) in prompt order.

    ``nearest-last`` places the most similar demonstration right before the query, where a
    causal LM attends to it most.
    """
    return list(ranked)[::-1] if check_order(order) == "nearest-last" else list(ranked)


def rank_by_similarity(query_vec, pool_vecs, k: int, labels: Sequence[str] | None = None,
                       balance: bool = False, mmr_lambda: float | None = None,
                       sims=None) -> list[int]:
    """Indices of the ``k`` pool vectors to show, most similar (first pick) first.

    Vectors are L2-normalised, so the dot product is cosine similarity.
    ``balance``: round-robin over labels (labels ordered by their best similarity), each turn
    taking that label's best remaining example, so each label gets ``k // n_labels`` and the
    remainder goes to the most similar labels. ``mmr_lambda`` in [0, 1]: each pick maximises
    ``lambda * sim(q, d) - (1 - lambda) * max sim(d, picked)`` (maximal marginal relevance).
    ``sims``: the query's similarities to the pool when already computed (see ``similarities``).

    >>> rank_by_similarity([1.0, 0.0], [[0.0, 1.0], [1.0, 0.0], [0.6, 0.8]], 2)
    [1, 2]
    """
    q = np.asarray(query_vec, dtype=np.float32).reshape(-1)
    pool = np.asarray(pool_vecs, dtype=np.float32).reshape(-1, q.shape[0])
    k = check_k(k, len(pool))
    if mmr_lambda is not None and not 0.0 <= mmr_lambda <= 1.0:
        raise UserError(f"mmr_lambda={mmr_lambda} is outside [0, 1]; 1 is pure similarity")
    sims = pool @ q if sims is None else np.asarray(sims, dtype=np.float32)
    by_sim = np.argsort(-sims, kind="stable")
    if not balance and mmr_lambda is None:
        return by_sim[:k].tolist()
    groups = _label_groups(by_sim, labels) if balance else [by_sim.tolist()]
    return _round_robin(groups, pool, sims, k, mmr_lambda)


def similarities(pool: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``pool @ q`` computed row by row, so that a row's value does not depend on where it sits
    (BLAS rounds a row differently by its position; equal vectors may then differ in the last
    bit). A shortlist ranked with these orders and breaks ties (pool order) the same way
    whichever rows it holds."""
    return np.einsum("ij,j->i", pool, q)


def _label_groups(by_sim: np.ndarray, labels: Sequence[str] | None) -> list[list[int]]:
    """Pool indices grouped per label, each group and the group order by similarity."""
    if labels is None or len(labels) != len(by_sim):
        raise UserError("balanced selection needs one label per pool example")
    groups: dict[str, list[int]] = {}
    for i in by_sim.tolist():  # dict keeps first-seen order = order of each label's best example
        groups.setdefault(labels[i], []).append(i)
    return list(groups.values())


def _round_robin(groups: list[list[int]], pool: np.ndarray, sims: np.ndarray, k: int,
                 mmr_lambda: float | None) -> list[int]:
    picked: list[int] = []
    closest = np.zeros(len(pool), dtype=np.float32)  # max similarity to anything picked so far
    while len(picked) < k:
        for group in groups:
            if not group or len(picked) == k:
                continue
            if mmr_lambda is None:
                best = group[0]  # groups are sorted by similarity
            else:
                scores = mmr_lambda * sims[group] - (1.0 - mmr_lambda) * closest[group]
                best = group[int(np.argmax(scores))]  # ties go to the more similar example
            group.remove(best)
            to_best = pool @ pool[best]
            closest = to_best if not picked else np.maximum(closest, to_best)
            picked.append(best)
    return picked


def _seeded_key(seed: int, query_id: str, example_id: str) -> bytes:
    return hashlib.sha256(f"{seed}\x1f{query_id}\x1f{example_id}".encode()).digest()


class RandomSelector:
    """Random demonstrations, deterministic per (seed, query id) and nested in ``k``.

    Each pool example gets a seeded pseudo-random key; the demonstrations are the ``k`` smallest
    keys in key order, so the demonstrations for ``k=1`` are the first of those for ``k=4``, and
    the choice does not depend on the order of the pool.

    >>> pool = [Example(f"t{i}", "a", id=str(i)) for i in range(8)]
    >>> sel = RandomSelector(seed=0)
    >>> q = Example("q", "a", id="q")
    >>> sel.select(q, pool, 4)[:1] == sel.select(q, pool, 1)
    True
    """

    def __init__(self, seed: int = 0):
        self.seed = seed

    def select(self, query: Example | str, pool: list[Example], k: int) -> list[Example]:
        k = check_k(k, len(pool))
        qid = query.id if isinstance(query, Example) else str(query)
        keys = [(_seeded_key(self.seed, qid, ex.id), i) for i, ex in enumerate(pool)]
        return [pool[i] for _, i in sorted(keys)[:k]]


class KNNSelector:
    """The ``k`` pool examples nearest to the query in embedding space.

    ``balance``: equal demonstrations per label; ``mmr_lambda``: trade similarity for diversity
    (see :func:`rank_by_similarity`); ``order``: ``nearest-last`` (default) or ``nearest-first``;
    ``text_of``: what is embedded for an example (default its ``text``). A pool with a
    registered ``VectorIndex`` (``use_index``) is not embedded; from ``min_pool`` examples on
    (``search.use_faiss``) it is searched through that index, all queries in one call; a flat
    index selects what ranking the whole pool with numpy selects.

    >>> sel = KNNSelector(Embedder("minilm"), mmr_lambda=0.5)  # doctest: +SKIP
    >>> demos = sel.select(query, episode.support_set(4), k=8)  # doctest: +SKIP
    >>> sel.use_index(pool, VectorIndex.build(pool_vectors))  # doctest: +SKIP
    >>> per_query = sel.select_many(queries, pool, k=8)  # one batched search  # doctest: +SKIP
    """

    def __init__(self, embedder: TextEncoder, balance: bool = False,
                 mmr_lambda: float | None = None, order: str = "nearest-last", text_of=None,
                 min_pool: int | None = None):
        if mmr_lambda is not None and not 0.0 <= mmr_lambda <= 1.0:
            raise UserError(f"mmr_lambda={mmr_lambda} is outside [0, 1]; 1 is pure similarity")
        self.embedder = embedder
        self.balance = balance
        self.mmr_lambda = mmr_lambda
        self.order = check_order(order)
        # What the embedder reads of an example (``prompts.EmbedText``); default its text.
        self.text_of = text_of or (lambda ex: ex.text if isinstance(ex, Example) else str(ex))
        self.min_pool = min_pool  # None: search.FAISS_MIN_POOL
        self._pool_key: tuple | None = None
        self._pool_vecs: np.ndarray | None = None
        self._registered: tuple | None = None  # (pool key, VectorIndex) from use_index

    def select(self, query: Example | str, pool: list[Example], k: int) -> list[Example]:
        return self.select_many([query], pool, k)[0]

    def select_many(self, queries: Sequence[Example | str], pool: list[Example],
                    k: int) -> list[list[Example]]:
        """``select`` for every query, the queries embedded and searched in one batch."""
        k = check_k(k, len(pool))
        if k == 0 or not queries:
            return [[] for _ in queries]
        from iclmeta.retrieval.search import rank_many, use_faiss
        query_vecs = self.embedder.encode([self.text_of(q) for q in queries])
        labels = [ex.label for ex in pool]
        index = self.index_of(pool)
        if index is not None and use_faiss(len(pool), index.kind, self.mmr_lambda, self.min_pool):
            ranked = rank_many(query_vecs, index, k, labels, balance=self.balance,
                               mmr_lambda=self.mmr_lambda)
        else:
            vecs = self._vectors(pool)
            ranked = [rank_by_similarity(q, vecs, k, labels, balance=self.balance,
                                         mmr_lambda=self.mmr_lambda) for q in query_vecs]
        return [order_demos([pool[i] for i in r], self.order) for r in ranked]

    def use_index(self, pool: list[Example], index) -> None:
        """Select from ``pool`` through ``index`` (a ``VectorIndex`` of its vectors in pool
        order) instead of embedding it. It applies to exactly this pool (same ids and embedded
        texts in the same order) and replaces the index registered before."""
        if index.ntotal != len(pool):
            raise UserError(f"the index holds {index.ntotal} vectors but the pool has "
                            f"{len(pool)} examples; build it from exactly this pool")
        self._registered = (self.pool_key(pool), index)

    def index_of(self, pool: list[Example]):
        """The index registered for ``pool``, else ``None``."""
        if self._registered is not None and self._registered[0] == self.pool_key(pool):
            return self._registered[1]
        return None

    def pool_key(self, pool: list[Example]) -> tuple:
        """What identifies a pool: its examples' ``(id, embedded text)`` pairs, in order."""
        return tuple(zip((ex.id for ex in pool), (self.text_of(ex) for ex in pool)))

    def _vectors(self, pool: list[Example]) -> np.ndarray:
        # All queries of an episode share one pool: embed it once, not once per query.
        key = self.pool_key(pool)
        if key != self._pool_key:
            index = self.index_of(pool)
            self._pool_vecs = index.reconstruct(np.arange(index.ntotal)) if index is not None \
                else self.embedder.encode([text for _, text in key])
            self._pool_key = key
        return self._pool_vecs
