"""Sentence embeddings with an on-disk cache (SQLite, keyed by model and text).

>>> Embedder("minilm").encode(["book a flight", "will it rain"]).shape  # doctest: +SKIP
(2, 384)

torch and sentence-transformers are imported only when a model loads.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from iclmeta.errors import UserError
from iclmeta.retrieval.cache import EmbeddingCache

__all__ = ["Embedder", "EmbeddingCache", "default_cache_dir", "model_id"]

PROGRESS_MIN = 256  # show a progress bar only when this many texts need the model


def default_cache_dir() -> Path:
    """``$ICLMETA_CACHE/embeddings``, else ``~/.cache/iclmeta/embeddings``."""
    from iclmeta.models import cache_root
    return cache_root() / "embeddings"


def model_id(resolved: str) -> str:
    """Cache identity of a model: a hub id as is; a local folder as its path plus a fingerprint
    of its files (name, size, mtime), so a replaced or retrained model gets a fresh cache."""
    folder = Path(resolved)
    if not folder.is_dir():
        return resolved
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(folder)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return f"{folder.resolve()}@{digest.hexdigest()[:16]}"


class Embedder:
    """A sentence-transformers model with an on-disk embedding cache.

    ``name``: ``None``/``"minilm"`` (the embedded default), a hub id or a local folder.
    The constructor does no I/O; ``load()`` loads the model, and ``encode`` loads it on first
    need (texts that are all cached never load it). ``cache=False`` turns the cache off.

    >>> emb = Embedder().load()  # doctest: +SKIP
    >>> vecs = emb.encode(["hello", "hi"]); emb.cache_stats  # doctest: +SKIP
    {'hits': 0, 'misses': 2}
    """

    def __init__(self, name: str | None = None, cache_dir: str | os.PathLike | None = None,
                 device: str = "cpu", batch_size: int = 64, cache: bool = True):
        self.spec = name
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else None
        self.device = device
        self.batch_size = batch_size
        self.use_cache = cache
        self.model = None
        self._name = self._id = self._cache = self._dim = None  # resolved / computed on first use
        self._hits = self._misses = 0

    @property
    def name(self) -> str:
        """The resolved model path or hub id."""
        if self._name is None:
            from iclmeta.models import resolve_embedder
            self._name = resolve_embedder(self.spec)
        return self._name

    @property
    def id(self) -> str:
        """Cache identity: the name, plus a fingerprint of the files for a local folder."""
        if self._id is None:
            self._id = model_id(self.name)
        return self._id

    @property
    def dim(self) -> int:
        """Vector size; loads the model unless a cached vector already told it."""
        if self._dim is None:
            self.load()
        return self._dim

    @property
    def cache_stats(self) -> dict:
        """Distinct texts per ``encode`` call found in the cache (hits) or computed (misses)."""
        return {"hits": self._hits, "misses": self._misses}

    def load(self) -> "Embedder":
        """Load the model (once); returns ``self``."""
        if self.model is not None:
            return self
        from sentence_transformers import SentenceTransformer
        try:
            model = SentenceTransformer(self.name, device=None if self.device == "auto" else self.device)
        except (OSError, ValueError) as err:
            raise UserError(f"cannot load embedder '{self.spec or 'minilm'}' ({str(err).splitlines()[0]}); "
                            "pass 'minilm', a local sentence-transformers folder or a reachable hub id") from None
        dim_of = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.model, self._dim = model, int(dim_of())
        return self

    def _store(self) -> EmbeddingCache | None:
        if self.use_cache and self._cache is None:
            self._cache = EmbeddingCache(self.cache_dir or default_cache_dir(), self.id, unit=True)
        return self._cache

    def encode(self, texts: list[str]) -> np.ndarray:
        """float32 ``[len(texts), dim]``, each row L2-normalised; cached texts skip the model."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise UserError("Embedder.encode takes a list of strings; wrap a single text in a list")
        unique = list(dict.fromkeys(texts))
        store = self._store()
        found = store.get(unique, self._dim) if store else {}
        if store and len(found) < len(unique) and self.model is None:
            found = store.get(unique, self.load()._dim)  # it loads anyway: check sizes by it
        missing = [t for t in unique if t not in found]
        self._hits += len(unique) - len(missing)
        self._misses += len(missing)
        if missing:
            vectors = self._compute(missing)
            found.update(zip(missing, vectors))
            if store:
                store.put(missing, vectors)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        self._dim = self._dim or len(found[texts[0]])
        return np.stack([found[t] for t in texts]).astype(np.float32, copy=False)

    def _compute(self, texts: list[str]) -> np.ndarray:
        self.load()
        vectors = self.model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                                    normalize_embeddings=True, show_progress_bar=len(texts) > PROGRESS_MIN)
        return np.asarray(vectors, dtype=np.float32)
