"""``VectorIndex``: one FAISS inner-product index over unit vectors, exact or approximate.

``flat`` searches exhaustively (exact, the default); ``ivf`` clusters the vectors into
``nlist`` lists and searches the ``nprobe`` nearest lists; ``hnsw`` walks a graph of ``M``
links per vector, built with ``efConstruction`` candidates and searched with ``efSearch``.
The harness's retrieval and the app-facing ``Retriever`` both search through this class.

>>> import numpy as np
>>> vecs = np.eye(4, dtype=np.float32)
>>> index = VectorIndex.build(vecs)
>>> scores, ids = index.search(vecs[[2]], k=2)
>>> int(ids[0, 0]), float(scores[0, 0]), index.ntotal, index.kind
(2, 1.0, 4, 'flat')

faiss is imported only when an index is built, loaded or read from bytes.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np

from iclmeta.errors import UserError
from iclmeta.io import write_atomic

# Each kind's parameters and their defaults (ivf's nlist: None sizes it from the data).
KINDS = {"flat": {}, "ivf": {"nlist": None, "nprobe": 16},
         "hnsw": {"M": 32, "efSearch": 128, "efConstruction": 200}}
IVF_POINTS_PER_LIST = 39  # k-means wants this many training vectors per list (FAISS's own rule)
IVF_TRAIN_PER_LIST = 64  # k-means trains on at most this many per list (FAISS samples 256)
UNIT_TOLERANCE = 1e-3
MAGIC = b"iclmeta-vector-index\n"


def ivf_lists(n: int) -> int:
    """The automatic ``nlist`` for ``n`` vectors: about ``4 sqrt(n)``, never more lists than
    the training data can fill (at least one).

    >>> ivf_lists(10_000), ivf_lists(1_000_000), ivf_lists(100)
    (256, 4000, 2)
    """
    return max(1, min(int(4 * n ** 0.5 // 1), n // IVF_POINTS_PER_LIST))


def check_kind(kind: str, params: dict) -> dict:
    """``params`` completed with the kind's defaults; an unknown kind or parameter, or a
    value that is not a positive integer, is a user error."""
    if kind not in KINDS:
        raise UserError(f"unknown index kind {kind!r}; choose one of: {', '.join(KINDS)}")
    unknown = sorted(set(params) - set(KINDS[kind]))
    if unknown:
        allowed = ", ".join(KINDS[kind]) or "none"
        raise UserError(f"index kind {kind!r} has no parameter {', '.join(unknown)}; "
                        f"its parameters: {allowed}")
    full = {**KINDS[kind], **params}
    for name, value in full.items():
        if value is None and name == "nlist":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise UserError(f"index parameter {name}={value!r} must be a positive integer")
        full[name] = int(value)
    return full


def as_unit_rows(vectors, what: str = "vectors") -> np.ndarray:
    """``vectors`` as a C-contiguous float32 ``[n, d]`` array of finite unit rows."""
    array = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    if array.ndim != 2 or array.shape[1] == 0:
        raise UserError(f"{what} must be a 2-d array [n, dim], got shape {array.shape}")
    norms = np.linalg.norm(array, axis=1)
    if not np.all(np.abs(norms - 1.0) <= UNIT_TOLERANCE):  # also catches NaN and inf
        raise UserError(f"{what} must be finite and L2-normalised (row norms 1), got norms "
                        f"from {np.nanmin(norms):.3g} to {np.nanmax(norms):.3g}; normalise them")
    return array


class VectorIndex:
    """Inner-product search over unit vectors (cosine similarity); ids count from 0 in order
    of addition. Construct with ``build`` or ``load``; the constructor does no I/O.

    >>> index = VectorIndex.build(vecs, "hnsw", efSearch=256)  # doctest: +SKIP
    >>> index.add(more_vecs); scores, ids = index.search(queries, k=10)  # doctest: +SKIP
    >>> index.save("pool.index"); VectorIndex.load("pool.index").ntotal  # doctest: +SKIP
    """

    def __init__(self, index, kind: str, params: dict):
        self.index = index
        self.kind = kind
        self.params = dict(params)

    @classmethod
    def build(cls, vectors: np.ndarray, kind: str = "flat", **params) -> "VectorIndex":
        """Index ``vectors`` (``[n, dim]`` unit rows); ``ivf`` trains its lists on them."""
        params = check_kind(kind, params)
        vectors = as_unit_rows(vectors)
        import faiss

        n, dim = vectors.shape
        if kind == "flat":
            index = faiss.IndexFlatIP(dim)
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, params["M"], faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = params["efConstruction"]
            index.hnsw.efSearch = params["efSearch"]
        else:
            index = cls._ivf(vectors, params)
        index.add(vectors)
        return cls(index, kind, params)

    @staticmethod
    def _ivf(vectors: np.ndarray, params: dict):
        import faiss

        n, dim = vectors.shape
        if params["nlist"] is None:
            params["nlist"] = ivf_lists(n)
        needed = IVF_POINTS_PER_LIST * params["nlist"]
        if n < needed:
            raise UserError(f"an ivf index with nlist={params['nlist']} needs at least {needed} "
                            f"vectors to train on, got {n}; lower nlist, leave it out (sized "
                            "from the data) or use kind 'flat'")
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, params["nlist"],
                                   faiss.METRIC_INNER_PRODUCT)
        index.cp.max_points_per_centroid = IVF_TRAIN_PER_LIST  # a sample trains the lists
        index.train(vectors)
        index.make_direct_map()  # so reconstruct works
        index.nprobe = params["nprobe"] = min(params["nprobe"], params["nlist"])
        return index

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    def add(self, vectors: np.ndarray) -> None:
        """Append ``vectors``; their ids continue after the last one (an ``ivf`` index keeps
        the lists it was trained with)."""
        vectors = as_unit_rows(vectors)
        self._check_dim(vectors, "added vectors")
        self.index.add(vectors)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Scores and ids ``[n_queries, min(k, ntotal)]``, best first, all queries in one call.
        An approximate index that finds fewer than ``k`` fills the rest with id -1."""
        queries = as_unit_rows(queries, "queries")
        self._check_dim(queries, "queries")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise UserError(f"k={k!r} must be a positive integer number of neighbours")
        return self.index.search(queries, min(int(k), self.ntotal))

    def reconstruct(self, ids) -> np.ndarray:
        """The stored vectors of ``ids``, ``[len(ids), dim]``."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if len(ids) and (ids.min() < 0 or ids.max() >= self.ntotal):
            raise UserError(f"index ids must be in [0, {self.ntotal}); got {ids.min()}..{ids.max()}")
        if not len(ids):
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.index.reconstruct_batch(ids)

    def _check_dim(self, vectors: np.ndarray, what: str) -> None:
        if vectors.shape[1] != self.dim:
            raise UserError(f"{what} have {vectors.shape[1]} dims but the index has {self.dim}; "
                            "use the embedder the index was built with")

    def to_bytes(self) -> bytes:
        """The FAISS index serialised (what ``from_bytes`` reads back)."""
        import faiss
        return faiss.serialize_index(self.index).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> "VectorIndex":
        """Read ``to_bytes`` output; its kind and settings come from the index itself.
        ``ValueError`` if it is not a FAISS inner-product index of a supported kind."""
        import faiss
        try:
            index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))  # its own class
        except RuntimeError as err:
            raise ValueError(f"not a FAISS index ({_first_line(err)})") from None
        kind = {"IndexFlatIP": "flat", "IndexIVFFlat": "ivf", "IndexHNSWFlat": "hnsw"}.get(
            type(index).__name__)
        if kind is None or index.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise ValueError(f"a {type(index).__name__} is not an inner-product flat, ivf or "
                             "hnsw index")
        if kind == "ivf":
            params = {"nlist": int(index.nlist), "nprobe": int(index.nprobe)}
        elif kind == "hnsw":
            hnsw = index.hnsw
            params = {"M": int(hnsw.nb_neighbors(1)), "efSearch": int(hnsw.efSearch),
                      "efConstruction": int(hnsw.efConstruction)}
        else:
            params = {}
        return cls(index, kind, params)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the index to one file, atomically (an interrupted save leaves the old file)."""
        blob = self.to_bytes()
        header = {"format": 1, "kind": self.kind, "params": self.params, "dim": self.dim,
                  "ntotal": self.ntotal, "sha256": hashlib.sha256(blob).hexdigest()}
        write_atomic(path, MAGIC + json.dumps(header).encode() + b"\n" + blob)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "VectorIndex":
        """Read a saved index; a missing or damaged file is a one-line user error."""
        path = Path(path)
        if not path.is_file():
            raise UserError(f"no vector index at {path}; build one with VectorIndex.build(vectors)"
                            ".save(path)")
        try:
            data = path.read_bytes()
            if not data.startswith(MAGIC):
                raise ValueError("not an iclmeta vector index")
            header_line, _, blob = data[len(MAGIC):].partition(b"\n")
            header = json.loads(header_line)
            if hashlib.sha256(blob).hexdigest() != header["sha256"]:
                raise ValueError("truncated or altered (sha256 differs)")
            index = cls.from_bytes(blob)
        except (OSError, ValueError, KeyError, TypeError, UserError) as err:
            raise UserError(f"vector index {path} is damaged ({_first_line(err)}); "
                            "delete it and build it again") from None
        return index


def _first_line(err: Exception) -> str:
    return re.sub(r"\s+", " ", str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__)
