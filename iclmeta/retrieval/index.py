"""A FAISS retriever over labelled examples, for apps: build, grow, query, save, load; and
``cached_index``, the on-disk index of one pool that the harness's retrieval searches.

It searches through the same ``VectorIndex`` and ranking code as the harness's ``retrieval``
method, so both choose the same demonstrations. faiss is imported only when an index is
built or loaded.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np

from iclmeta.data.example import Example
from iclmeta.errors import UserError
from iclmeta.io import read_json_object, read_verified, write_checkpoint
from iclmeta.retrieval.embedder import Embedder
from iclmeta.retrieval.search import rank_many, use_faiss
from iclmeta.retrieval.select import check_k, check_order, order_demos, rank_by_similarity
from iclmeta.retrieval.vectors import VectorIndex, check_kind


class Retriever:
    """Nearest labelled examples for a query, over a ``VectorIndex`` of their embeddings
    (``kind`` flat, exact, by default; ``ivf``/``hnsw`` with their parameters for large sets).

    >>> r = Retriever.build(examples, Embedder())  # doctest: +SKIP
    >>> r.add(more_examples)  # embedded and appended, no rebuild  # doctest: +SKIP
    >>> r.select("book a flight to paris", k=4, balance=True)  # most similar last  # doctest: +SKIP
    >>> r.save("my_index"); Retriever.load("my_index").select("fly to rome", k=2)  # doctest: +SKIP
    """

    MANIFEST = "retriever.json"

    def __init__(self, embedder: Embedder, examples: list[Example], index: VectorIndex):
        self.embedder = embedder
        self.examples = list(examples)
        self.index = index

    @classmethod
    def build(cls, examples: list[Example], embedder: Embedder, kind: str = "flat",
              **params) -> "Retriever":
        """Embed ``examples`` and index them (``kind`` and ``params`` as ``VectorIndex.build``)."""
        if not examples:
            raise UserError("cannot build a retriever from no examples; pass at least one Example")
        vectors = embedder.encode([ex.text for ex in examples])
        return cls(embedder, examples, VectorIndex.build(vectors, kind, **params))

    def add(self, examples: list[Example]) -> None:
        """Embed ``examples`` and append them to the index (no rebuild; an ``ivf`` index keeps
        the lists it was trained with). Ids must be new."""
        examples = list(examples)
        if not examples:
            return
        _check_new_ids(self.examples, examples)
        self.index.add(self.embedder.encode([ex.text for ex in examples]))
        self.examples.extend(examples)

    def select(self, query: str | Example, k: int, balance: bool = False,
               mmr_lambda: float | None = None, order: str = "nearest-last") -> list[Example]:
        """The ``k`` examples to show before ``query`` (see ``select.rank_by_similarity``)."""
        check_order(order)
        k = check_k(k, len(self.examples))
        if k == 0:
            return []
        text = query.text if isinstance(query, Example) else query
        query_vecs = self.embedder.encode([text])
        if query_vecs.shape[1] != self.index.dim:
            raise UserError(f"query vectors have {query_vecs.shape[1]} dims but the index has "
                            f"{self.index.dim}; load the retriever with the embedder it was built with")
        labels = [ex.label for ex in self.examples]
        if use_faiss(len(self.examples), self.index.kind, mmr_lambda):
            ranked = rank_many(query_vecs, self.index, k, labels, balance, mmr_lambda)[0]
        else:
            vectors = self.index.reconstruct(np.arange(self.index.ntotal))
            ranked = rank_by_similarity(query_vecs[0], vectors, k, labels, balance=balance,
                                        mmr_lambda=mmr_lambda)
        return order_demos([self.examples[i] for i in ranked], order)

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the index and examples to ``directory``; an interrupted save leaves the old one valid."""
        blob = self.index.to_bytes()
        spec = self.embedder.spec
        if spec is not None and Path(spec).expanduser().exists():
            spec = str(Path(spec).expanduser().resolve())
        manifest = {"format": 1, "embedder": spec, "embedder_id": self.embedder.id,
                    "index_kind": self.index.kind, "index_params": self.index.params,
                    "examples": [{**asdict(ex), "meta": dict(ex.meta)} for ex in self.examples]}
        write_checkpoint(directory, "index", "faiss", lambda tmp: Path(tmp).write_bytes(blob),
                         self.MANIFEST, manifest)
        return Path(directory)

    @classmethod
    def load(cls, directory: str | os.PathLike, embedder: Embedder | None = None) -> "Retriever":
        """Read a saved retriever; ``embedder`` defaults to the one it was built with."""
        path = Path(directory) / cls.MANIFEST
        if not path.is_file():
            raise UserError(f"no retriever in {directory} ({cls.MANIFEST} missing); "
                            "build one with Retriever.build(examples, embedder).save(dir)")
        try:
            manifest = read_json_object(path)
            data = read_verified(directory, manifest["weights"], manifest["weights_sha256"])
            index = VectorIndex.from_bytes(data)  # knows its kind (older saves: flat)
            examples = [Example(**row) for row in manifest["examples"]]
            spec, built_with = manifest["embedder"], str(manifest["embedder_id"])
        except (OSError, KeyError, TypeError, ValueError, UserError) as err:
            raise UserError(f"retriever in {directory} is damaged ({str(err).splitlines()[0]}); rebuild it") from None
        if index.ntotal != len(examples):
            raise UserError(f"retriever in {directory} is inconsistent ({index.ntotal} vectors, "
                            f"{len(examples)} examples); rebuild it")
        embedder = embedder or Embedder(spec)
        if embedder.id != built_with:
            warnings.warn(f"retriever in {directory} was built with {built_with}, "
                          f"querying with {embedder.id}; rebuild it if the model changed")
        return cls(embedder, examples, index)


def _check_new_ids(existing: list[Example], new: list[Example]) -> None:
    seen = {ex.id for ex in existing}
    for ex in new:
        if ex.id in seen:
            raise UserError(f"example id {ex.id!r} is already in the retriever; give each "
                            "example a unique id")
        seen.add(ex.id)


def cached_index(vectors, pool_key, embedder, kind: str = "flat", params: dict | None = None,
                 directory: str | os.PathLike | None = None) -> VectorIndex:
    """The index of one pool: read from ``directory`` if it was built before, else built from
    ``vectors()`` and saved there. The file is named by a hash of the embedder's id, the kind
    and parameters and the pool's ``(id, embedded text)`` pairs, so a changed pool, model or
    setting gets its own index. Like the embedding cache it is an optimisation: a damaged file
    or an unwritable folder is a warning, and the index is built in memory."""
    params = check_kind(kind, dict(params or {}))
    model = getattr(embedder, "id", None)
    if directory is None or model is None:
        return VectorIndex.build(vectors(), kind, **params)
    key = json.dumps([model, kind, params, list(pool_key)], ensure_ascii=False)
    path = Path(directory) / f"{kind}-{hashlib.sha256(key.encode()).hexdigest()[:32]}.index"
    if path.is_file():
        try:
            index = VectorIndex.load(path)
            if index.ntotal == len(pool_key):
                return index
        except UserError as err:
            warnings.warn(f"{err}; rebuilding it")
    index = VectorIndex.build(vectors(), kind, **params)
    try:
        index.save(path)
    except OSError as err:
        warnings.warn(f"cannot save vector index {path} ({err.strerror or err}); using it unsaved")
    return index
