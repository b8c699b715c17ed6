"""Demonstration retrieval for the harness and for apps.

``select`` holds the selection math (numpy only: k nearest, label balance, MMR, order),
``embedder`` the sentence-transformers embedder with its on-disk cache, ``vectors`` the
``VectorIndex`` (FAISS flat / ivf / hnsw) that large pools are searched through, ``search``
the rule for when that happens, ``index`` the ``Retriever`` an app builds once, grows, saves
and loads. Importing this package loads neither torch nor FAISS; they load when an embedder or
index is first used.

>>> from iclmeta.retrieval import Embedder, Retriever
"""
from iclmeta.retrieval.embedder import Embedder
from iclmeta.retrieval.index import Retriever
from iclmeta.retrieval.select import KNNSelector, RandomSelector
from iclmeta.retrieval.vectors import VectorIndex

__all__ = ["Embedder", "KNNSelector", "RandomSelector", "Retriever", "VectorIndex"]
