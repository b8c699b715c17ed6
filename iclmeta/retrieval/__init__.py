"""Demonstration retrieval: selection math (numpy only), the embedder and its on-disk cache,
and the FAISS-backed ``Retriever`` for apps.

>>> from iclmeta.retrieval import KNNSelector, RandomSelector
"""
from iclmeta.retrieval.select import KNNSelector, RandomSelector, Selector, order_demos, rank_by_similarity

__all__ = ["KNNSelector", "RandomSelector", "Selector", "order_demos", "rank_by_similarity"]
