"""Selection math on hand-built vectors, and the selectors built on it."""
import subprocess
import sys

import numpy as np
import pytest

from iclmeta.data.example import Example
from iclmeta.errors import UserError
from iclmeta.retrieval.select import (KNNSelector, RandomSelector, order_demos,
                               rank_by_similarity)


def unit(*xs):
    v = np.asarray(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


class TableEmbedder:
    """Looks vectors up in a dict; counts calls so tests can see what was re-encoded."""

    def __init__(self, table):
        self.table = table
        self.calls = 0

    def encode(self, texts):
        self.calls += 1
        return np.stack([self.table[t] for t in texts]).astype(np.float32)


# Query along x. Label a lies near x, b in between, c far away.
TABLE = {
    "q": unit(1, 0, 0),
    "a1": unit(1, 0.1, 0), "a2": unit(1, 0.2, 0), "a3": unit(1, 0.3, 0),
    "b1": unit(1, 1, 0), "b2": unit(1, 1.5, 0),
    "c1": unit(0, 1, 1),
}
POOL = [Example(text, text[0], id=text) for text in ["c1", "b2", "a3", "a1", "b1", "a2"]]
QUERY = Example("q", "a", id="query")


def vectors(pool=POOL):
    return np.stack([TABLE[ex.text] for ex in pool])


def ids(indices, pool=POOL):
    return [pool[i].id for i in indices]


def test_rank_plain_most_similar_first():
    assert ids(rank_by_similarity(TABLE["q"], vectors(), 4)) == ["a1", "a2", "a3", "b1"]
    assert order_demos(["near", "far"]) == ["far", "near"]
    assert order_demos(["near", "far"], "nearest-first") == ["near", "far"]


def test_rank_k_bounds():
    assert len(rank_by_similarity(TABLE["q"], vectors(), 50)) == len(POOL)
    assert rank_by_similarity(TABLE["q"], vectors(), 0) == []
    with pytest.raises(UserError, match="negative"):
        rank_by_similarity(TABLE["q"], vectors(), -2)


def test_balance_round_robin_by_label_similarity():
    labels = [ex.label for ex in POOL]
    # 3 labels, k=4: one each, the remainder to the most similar label (a), in round-robin order.
    assert ids(rank_by_similarity(TABLE["q"], vectors(), 4, labels, balance=True)) == ["a1", "b1", "c1", "a2"]
    # c has a single example: once it runs out, the other labels fill the remaining slots.
    assert ids(rank_by_similarity(TABLE["q"], vectors(), 6, labels, balance=True)) == \
        ["a1", "b1", "c1", "a2", "b2", "a3"]
    with pytest.raises(UserError, match="label"):
        rank_by_similarity(TABLE["q"], vectors(), 2, None, balance=True)


def test_mmr_trades_similarity_for_diversity():
    q = unit(1, 0, 0)
    pool = np.stack([unit(0.9, 0.436, 0), unit(0.9, 0.436, 0), unit(0.8, 0, 0.6)])  # 0 and 1 duplicates
    assert rank_by_similarity(q, pool, 2) == [0, 1]
    assert rank_by_similarity(q, pool, 2, mmr_lambda=1.0) == [0, 1]
    assert rank_by_similarity(q, pool, 2, mmr_lambda=0.5) == [0, 2]  # skips the duplicate
    with pytest.raises(UserError, match=r"\[0, 1\]"):
        rank_by_similarity(q, pool, 2, mmr_lambda=1.5)


def test_knn_selector_orders_and_reuses_pool_vectors():
    emb = TableEmbedder(TABLE)
    selector = KNNSelector(emb)
    assert [ex.id for ex in selector.select(QUERY, POOL, 3)] == ["a3", "a2", "a1"]  # nearest last
    assert emb.calls == 2  # query + pool
    selector.select(Example("a3", "a", id="other"), POOL, 3)
    assert emb.calls == 3  # same pool: only the query is encoded
    first = KNNSelector(emb, order="nearest-first").select(QUERY, POOL, 3)
    assert [ex.id for ex in first] == ["a1", "a2", "a3"]
    assert KNNSelector(emb).select(QUERY, POOL, 0) == []


def test_knn_selector_balance_and_mmr_match_rank():
    emb = TableEmbedder(TABLE)
    balanced = KNNSelector(emb, balance=True, order="nearest-first").select(QUERY, POOL, 3)
    assert [ex.id for ex in balanced] == ["a1", "b1", "c1"]
    mmr = KNNSelector(emb, mmr_lambda=0.3, order="nearest-first").select(QUERY, POOL, 3)
    expected = rank_by_similarity(TABLE["q"], vectors(), 3, mmr_lambda=0.3)
    assert [ex.id for ex in mmr] == ids(expected)


def test_retriever_and_knn_selector_agree():
    pytest.importorskip("faiss")
    from iclmeta.retrieval.index import Retriever

    emb = TableEmbedder(TABLE)
    retriever = Retriever.build(POOL, emb)
    for opts in [{}, {"balance": True}, {"mmr_lambda": 0.4}]:
        for k in (1, 3, 5):
            assert retriever.select(QUERY, k, **opts) == KNNSelector(emb, **opts).select(QUERY, POOL, k)


def test_random_selector_deterministic_and_nested():
    pool = [Example(f"t{i}", "ab"[i % 2], id=f"e{i}") for i in range(20)]
    selector = RandomSelector(seed=3)
    picks = {k: selector.select(QUERY, pool, k) for k in (1, 2, 4, 8)}
    for small, large in [(1, 2), (2, 4), (4, 8)]:
        assert picks[large][:small] == picks[small]
    assert RandomSelector(seed=3).select(QUERY, pool, 8) == picks[8]
    assert RandomSelector(seed=3).select(QUERY, pool[::-1], 8) == picks[8]  # pool order does not matter
    assert RandomSelector(seed=4).select(QUERY, pool, 8) != picks[8]
    assert selector.select(Example("x", "a", id="other"), pool, 8) != picks[8]
    assert len(selector.select(QUERY, pool, 99)) == 20
    with pytest.raises(UserError):
        selector.select(QUERY, pool, -1)


def test_import_stays_light():
    code = ("import sys, iclmeta.retrieval.select, iclmeta.retrieval.embedder; "
            "heavy = {'torch', 'faiss', 'sentence_transformers', 'transformers'} & set(sys.modules); "
            "sys.exit(sorted(heavy) or 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
