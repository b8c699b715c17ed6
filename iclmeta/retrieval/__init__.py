"""Demonstration retrieval for the harness and for apps.

``select`` holds the selection math (numpy only: k nearest, label balance, MMR, order),
``embedder`` the sentence-transformers embedder with its on-disk cache, ``index`` the FAISS
``Retriever`` an app builds once, saves and loads. Importing this package loads neither torch
nor FAISS; they load when an embedder or index is first used.

>>> from iclmeta.retrieval import Embedder, Retriever
"""
from iclmeta.retrieval.embedder import Embedder
from iclmeta.retrieval.index import Retriever
from iclmeta.retrieval.select import KNNSelector, RandomSelector

__all__ = ["Embedder", "KNNSelector", "RandomSelector", "Retriever"]
