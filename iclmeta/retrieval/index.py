"""A FAISS retriever over labelled examples, for apps: build, query, save, load.

faiss is imported only when an index is built or loaded.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np

from iclmeta.data.example import Example
from iclmeta.errors import UserError
from iclmeta.io import read_json_object, read_verified, write_checkpoint
from iclmeta.retrieval.embedder import Embedder
from iclmeta.retrieval.select import check_k, check_order, order_demos, rank_by_similarity


class Retriever:
    """Nearest labelled examples for a query: a FAISS inner-product index over unit vectors.

    >>> r = Retriever.build(examples, Embedder())  # doctest: +SKIP
    >>> r.select("book a flight to paris", k=4, balance=True)  # most similar last  # doctest: +SKIP
    >>> r.save("my_index"); Retriever.load("my_index").select("fly to rome", k=2)  # doctest: +SKIP
    """

    MANIFEST = "retriever.json"

    def __init__(self, embedder: Embedder, examples: list[Example], index):
        self.embedder = embedder
        self.examples = list(examples)
        self.index = index

    @classmethod
    def build(cls, examples: list[Example], embedder: Embedder) -> "Retriever":
        """Embed ``examples`` and index them."""
        import faiss

        if not examples:
            raise UserError("cannot build a retriever from no examples; pass at least one Example")
        vectors = embedder.encode([ex.text for ex in examples])
        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(np.ascontiguousarray(vectors))
        return cls(embedder, examples, index)

    def select(self, query: str | Example, k: int, balance: bool = False,
               mmr_lambda: float | None = None, order: str = "nearest-last") -> list[Example]:
        """The ``k`` examples to show before ``query`` (see ``selectors.rank_by_similarity``)."""
        check_order(order)
        k = check_k(k, len(self.examples))
        if k == 0:
            return []
        text = query.text if isinstance(query, Example) else query
        query_vec = self.embedder.encode([text])
        if query_vec.shape[1] != self.index.d:
            raise UserError(f"query vectors have {query_vec.shape[1]} dims but the index has {self.index.d}; "
                            "load the retriever with the embedder it was built with")
        # Plain kNN needs only the top k; MMR re-ranks a shortlist; balancing needs every label.
        shortlist = len(self.examples) if balance else k if mmr_lambda is None else max(4 * k, 64)
        _, found = self.index.search(query_vec, min(shortlist, len(self.examples)))
        candidates = found[0][found[0] >= 0]
        vectors = self.index.reconstruct_batch(candidates)
        labels = [self.examples[i].label for i in candidates]
        ranked = rank_by_similarity(query_vec[0], vectors, k, labels, balance=balance, mmr_lambda=mmr_lambda)
        return order_demos([self.examples[candidates[i]] for i in ranked], order)

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the index and examples to ``directory``; an interrupted save leaves the old one valid."""
        import faiss

        blob = faiss.serialize_index(self.index).tobytes()
        spec = self.embedder.spec
        if spec is not None and Path(spec).expanduser().exists():
            spec = str(Path(spec).expanduser().resolve())
        manifest = {"format": 1, "embedder": spec, "embedder_id": self.embedder.id,
                    "examples": [{**asdict(ex), "meta": dict(ex.meta)} for ex in self.examples]}
        write_checkpoint(directory, "index", "faiss", lambda tmp: Path(tmp).write_bytes(blob),
                         self.MANIFEST, manifest)
        return Path(directory)

    @classmethod
    def load(cls, directory: str | os.PathLike, embedder: Embedder | None = None) -> "Retriever":
        """Read a saved retriever; ``embedder`` defaults to the one it was built with."""
        import faiss

        path = Path(directory) / cls.MANIFEST
        if not path.is_file():
            raise UserError(f"no retriever in {directory} ({cls.MANIFEST} missing); "
                            "build one with Retriever.build(examples, embedder).save(dir)")
        try:
            manifest = read_json_object(path)
            data = read_verified(directory, manifest["weights"], manifest["weights_sha256"])
            index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
            examples = [Example(**row) for row in manifest["examples"]]
            spec, built_with = manifest["embedder"], str(manifest["embedder_id"])
        except (OSError, KeyError, TypeError, ValueError, RuntimeError) as err:
            raise UserError(f"retriever in {directory} is damaged ({str(err).splitlines()[0]}); rebuild it") from None
        if index.ntotal != len(examples):
            raise UserError(f"retriever in {directory} is inconsistent ({index.ntotal} vectors, "
                            f"{len(examples)} examples); rebuild it")
        embedder = embedder or Embedder(spec)
        if embedder.id != built_with:
            warnings.warn(f"retriever in {directory} was built with {built_with}, "
                          f"querying with {embedder.id}; rebuild it if the model changed")
        return cls(embedder, examples, index)
