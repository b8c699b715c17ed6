"""The on-disk embedding cache: one SQLite file of float32 vectors per model, keyed by text.

>>> import tempfile
>>> cache = EmbeddingCache(tempfile.mkdtemp(), "some-model")
>>> cache.put(["hi"], np.ones((1, 3), dtype=np.float32)); cache.get(["hi", "absent"])
{'hi': array([1., 1., 1.], dtype=float32)}
"""
from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from iclmeta.errors import UserError

LOCK_WAIT_S = 60.0  # how long a cache write waits for another process before giving up on the cache


class EmbeddingCache:
    """One SQLite file of float32 vectors keyed by sha256(text), for one model id.

    WAL mode lets several processes read and write at once; each write is one transaction,
    so a crash never leaves half a batch. The cache is an optimisation: if the file is locked
    for too long or damaged, a warning is shown and the vectors are simply recomputed.

    A stored vector is used only if it is ``dim`` finite float32 values (``dim``: the caller's,
    else the one recorded with the vectors, else the most common size), and of unit length
    when ``unit``; any other is left out of ``get`` (so it is recomputed and replaced), with
    one warning per cache.
    """

    def __init__(self, directory: str | os.PathLike, model: str, unit: bool = False):
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", "_".join(Path(model.split("@")[0]).parts[-2:]))
        self.path = Path(directory) / f"{slug[-48:]}-{hashlib.sha256(model.encode()).hexdigest()[:16]}.sqlite3"
        self.model = model
        self.unit = unit
        self.enabled = True
        self.warned = False  # a bad stored vector was reported (once per cache)

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

    def get(self, texts: list[str], dim: int | None = None) -> dict[str, np.ndarray]:
        """Cached vectors of those ``texts`` that are in the cache and sound (see the class)."""
        by_key = {_key(t): t for t in texts}

        def read(conn):
            blobs, keys = {}, list(by_key)
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                marks = ",".join("?" * len(chunk))
                for key, blob in conn.execute(f"SELECT key, vec FROM vectors WHERE key IN ({marks})", chunk):
                    blobs[by_key[key]] = bytes(blob)
            return blobs, dim or _recorded_dim(conn)

        blobs, size = self._run(read, ({}, None)) if texts else ({}, None)
        if size is None and blobs:  # a cache from before sizes were recorded
            size = Counter(len(b) for b in blobs.values()).most_common(1)[0][0] / 4
        found = {t: v for t, v in ((t, self._vector(b, size)) for t, b in blobs.items())
                 if v is not None}
        if len(found) < len(blobs) and not self.warned:
            self.warned = True
            warnings.warn(f"embedding cache {self.path}: {len(blobs) - len(found)} stored vectors "
                          f"are not {size:g} finite float32 values{' of unit length' * self.unit}; "
                          "recomputing them (they are replaced in the cache)")
        return found

    def _vector(self, blob: bytes, dim: float) -> np.ndarray | None:
        if len(blob) != dim * 4:
            return None
        vec = np.frombuffer(blob, dtype=np.float32)
        if not np.isfinite(vec).all():
            return None
        norm = float(np.linalg.norm(vec))
        return vec if not self.unit or norm == 0 or abs(norm - 1) < 1e-3 else None

    def put(self, texts: list[str], vectors: np.ndarray) -> None:
        rows = [(_key(t), np.asarray(v, dtype=np.float32).tobytes()) for t, v in zip(texts, vectors)]
        sizes = {len(blob) // 4 for _, blob in rows}

        def write(conn):  # one transaction: all rows (and their size) or none
            def body():
                conn.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)", rows)
                if len(sizes) == 1:  # what later reads check stored vectors against
                    conn.execute("INSERT OR REPLACE INTO meta VALUES ('dim', ?)", (str(*sizes),))
            _write(conn, body)

        if rows:
            self._run(write, None)


def _recorded_dim(conn: sqlite3.Connection) -> int | None:
    row = conn.execute("SELECT value FROM meta WHERE key = 'dim'").fetchone()
    return int(row[0]) if row and str(row[0]).isdigit() else None


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
