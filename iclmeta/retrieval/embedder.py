"""Sentence embeddings with an on-disk cache (SQLite, keyed by model and text).

>>> Embedder("minilm").encode(["book a flight", "will it rain"]).shape  # doctest: +SKIP
(2, 384)

torch and sentence-transformers are imported only when a model loads.
"""
from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import time
import warnings
from pathlib import Path

import numpy as np

from iclmeta.errors import UserError

PROGRESS_MIN = 256  # show a progress bar only when this many texts need the model
LOCK_WAIT_S = 60.0  # how long a cache write waits for another process before giving up on the cache


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


class EmbeddingCache:
    """One SQLite file of float32 vectors keyed by sha256(text), for one model id.

    WAL mode lets several processes read and write at once; each write is one transaction,
    so a crash never leaves half a batch. The cache is an optimisation: if the file is locked
    for too long or damaged, a warning is shown and the vectors are simply recomputed.
    """

    def __init__(self, directory: str | os.PathLike, model: str):
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", "_".join(Path(model.split("@")[0]).parts[-2:]))
        self.path = Path(directory) / f"{slug[-48:]}-{hashlib.sha256(model.encode()).hexdigest()[:16]}.sqlite3"
        self.model = model
        self.enabled = True

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UserError(f"cannot create embedding cache folder {self.path.parent} ({err}); "
                            "pass another cache_dir or cache=False") from None
        # Autocommit mode: every transaction below is opened explicitly with BEGIN IMMEDIATE,
        # which takes the write lock up front, so SQLite's busy timeout applies instead of the
        # immediate "database is locked" a deferred read-then-write transaction can get.
        conn = sqlite3.connect(self.path, timeout=LOCK_WAIT_S, isolation_level=None)
        try:
            # Switching a fresh file to WAL needs an exclusive lock and does not wait for it.
            _retry_locked(lambda: conn.execute("PRAGMA journal_mode=WAL").fetchone())
            conn.execute("PRAGMA synchronous=NORMAL")
            _write(conn, lambda: (
                conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)"),
                conn.execute("CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, vec BLOB NOT NULL) WITHOUT ROWID"),
                conn.execute("INSERT OR IGNORE INTO meta VALUES ('model', ?)", (self.model,))))
        except BaseException:
            conn.close()
            raise
        return conn

    def _run(self, action, default):
        if not self.enabled:
            return default
        try:
            conn = self._connect()
            try:
                return _retry_locked(lambda: action(conn))
            finally:
                conn.close()
        except sqlite3.Error as err:
            warnings.warn(f"embedding cache {self.path} unusable ({err}); computing without it")
            self.enabled = False
            return default

    def get(self, texts: list[str]) -> dict[str, np.ndarray]:
        """Cached vectors of those ``texts`` that are in the cache."""
        by_key = {_key(t): t for t in texts}

        def read(conn):
            found, keys = {}, list(by_key)
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                marks = ",".join("?" * len(chunk))
                for key, blob in conn.execute(f"SELECT key, vec FROM vectors WHERE key IN ({marks})", chunk):
                    found[by_key[key]] = np.frombuffer(blob, dtype=np.float32)
            return found

        return self._run(read, {}) if texts else {}

    def put(self, texts: list[str], vectors: np.ndarray) -> None:
        rows = [(_key(t), np.asarray(v, dtype=np.float32).tobytes()) for t, v in zip(texts, vectors)]

        def write(conn):  # one transaction: all rows or none
            _write(conn, lambda: conn.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)", rows))

        if rows:
            self._run(write, None)


def _write(conn: sqlite3.Connection, body) -> None:
    """Run ``body`` in one write transaction, retried as a whole while the file is locked."""
    def attempt():
        conn.execute("BEGIN IMMEDIATE")
        try:
            body()
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    _retry_locked(attempt)


def _retry_locked(step, wait_s: float | None = None):
    """``step()``, retried with growing pauses while SQLite reports a lock, for up to ``wait_s``
    seconds (default ``LOCK_WAIT_S``); then the last error is raised."""
    deadline = time.monotonic() + (LOCK_WAIT_S if wait_s is None else wait_s)
    pause = 0.005
    while True:
        try:
            return step()
        except sqlite3.OperationalError as err:
            message = str(err).lower()
            if ("locked" not in message and "busy" not in message) or time.monotonic() > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.5)


def _key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


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
            self._cache = EmbeddingCache(self.cache_dir or default_cache_dir(), self.id)
        return self._cache

    def encode(self, texts: list[str]) -> np.ndarray:
        """float32 ``[len(texts), dim]``, each row L2-normalised; cached texts skip the model."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise UserError("Embedder.encode takes a list of strings; wrap a single text in a list")
        unique = list(dict.fromkeys(texts))
        store = self._store()
        found = store.get(unique) if store else {}
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
