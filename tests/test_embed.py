"""Embedder cache and Retriever, on tiny random sentence-transformers models built from configs."""
import json
import os
import sqlite3
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

from conftest import build_tiny_embedder

from iclmeta.data.example import Example
from iclmeta.retrieval.embedder import Embedder, EmbeddingCache, model_id
from iclmeta.retrieval.index import Retriever
from iclmeta.errors import UserError

os.environ.setdefault("HF_HUB_OFFLINE", "1")

WORDS = ("book a flight to paris london tokyo plane ticket what is the weather like today "
         "will it rain tomorrow forecast sunny play some music song jazz").split()

FLIGHTS = ["book a flight to paris", "plane ticket to london", "flight to tokyo tomorrow"]
WEATHER = ["what is the weather like today", "will it rain tomorrow", "sunny forecast today"]
MUSIC = ["play some music", "play a jazz song"]


def _examples():
    rows = [(t, "flight") for t in FLIGHTS] + [(t, "weather") for t in WEATHER] + [(t, "music") for t in MUSIC]
    return [Example(text, label, id=f"ex{i}") for i, (text, label) in enumerate(rows)]


@pytest.fixture(scope="module")
def tiny_embedders(tmp_path_factory):
    import torch
    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("tiny_st")
    return build_tiny_embedder(root / "a", WORDS, seed=0), build_tiny_embedder(root / "b", WORDS, seed=1)


@pytest.fixture
def cache_dir(tmp_path):
    return tmp_path / "emb_cache"


def test_encode_normalised_float32(tiny_embedders, cache_dir):
    emb = Embedder(tiny_embedders[0], cache_dir=cache_dir).load()
    vecs = emb.encode(FLIGHTS + WEATHER)
    assert vecs.dtype == np.float32 and vecs.shape == (6, emb.dim) == (6, 32)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert emb.encode([]).shape == (0, 32)


def test_constructor_does_no_io(tmp_path):
    emb = Embedder(str(tmp_path / "missing"), cache_dir=tmp_path / "c")
    assert emb.model is None and not (tmp_path / "c").exists()


def test_cache_hits_and_persistence(tiny_embedders, cache_dir):
    first = Embedder(tiny_embedders[0], cache_dir=cache_dir)
    a = first.encode(FLIGHTS + FLIGHTS[:1])  # a duplicate counts once
    assert first.cache_stats == {"hits": 0, "misses": 3}
    b = first.encode(FLIGHTS + WEATHER[:1])
    assert first.cache_stats == {"hits": 3, "misses": 4}
    second = Embedder(tiny_embedders[0], cache_dir=cache_dir)
    c = second.encode(FLIGHTS + WEATHER[:1])
    assert second.cache_stats == {"hits": 4, "misses": 0}
    assert second.model is None  # everything was cached: the model never loaded
    np.testing.assert_array_equal(a[:3], c[:3])
    np.testing.assert_array_equal(b, c)
    fresh = Embedder(tiny_embedders[0], cache=False).encode(FLIGHTS + WEATHER[:1])
    np.testing.assert_allclose(fresh, c, atol=1e-5)


def test_cache_keys_separate_models(tiny_embedders, cache_dir):
    one = Embedder(tiny_embedders[0], cache_dir=cache_dir)
    two = Embedder(tiny_embedders[1], cache_dir=cache_dir)
    assert one.id != two.id
    va, vb = one.encode(FLIGHTS), two.encode(FLIGHTS)
    assert two.cache_stats == {"hits": 0, "misses": 3}
    assert not np.allclose(va, vb)
    assert len(list(cache_dir.glob("*.sqlite3"))) == 2


def test_model_id_changes_with_files(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    before = model_id(str(tmp_path))
    (tmp_path / "config.json").write_text('{"hidden_size": 8}')
    assert model_id(str(tmp_path)) != before
    assert model_id("org/some-model") == "org/some-model"


def test_cache_disabled_writes_nothing(tiny_embedders, cache_dir):
    emb = Embedder(tiny_embedders[0], cache_dir=cache_dir, cache=False)
    emb.encode(FLIGHTS)
    emb.encode(FLIGHTS)
    assert emb.cache_stats == {"hits": 0, "misses": 6} and not cache_dir.exists()


def test_damaged_cache_warns_and_recomputes(tiny_embedders, cache_dir):
    emb = Embedder(tiny_embedders[0], cache_dir=cache_dir)
    cache_dir.mkdir()
    EmbeddingCache(cache_dir, emb.id).path.write_bytes(b"not a database" * 100)
    with pytest.warns(UserWarning, match="unusable"):
        vecs = emb.encode(FLIGHTS)
    assert vecs.shape == (3, 32)


def store_blobs(path, blobs: dict[str, bytes]) -> None:
    """Write raw vectors for texts straight into the cache's SQLite file."""
    import hashlib
    conn = sqlite3.connect(path)
    conn.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)",
                     [(hashlib.sha256(t.encode()).digest(), b) for t, b in blobs.items()])
    conn.commit()
    conn.close()


def cache_warnings(record):
    return [w for w in record if "stored vectors" in str(w.message)]


def test_stored_vectors_of_the_wrong_size_or_type_are_recomputed_with_one_warning(
        tiny_embedders, cache_dir):
    texts = FLIGHTS + WEATHER
    good = Embedder(tiny_embedders[0], cache_dir=cache_dir).encode(texts)
    path = EmbeddingCache(cache_dir, Embedder(tiny_embedders[0]).id).path
    unit16 = np.full(16, 0.25, dtype=np.float32)
    store_blobs(path, {texts[0]: unit16.tobytes(),  # another model's size (16-d, unit length)
                       texts[1]: good[1].tobytes()[:-2],  # not a whole number of float32s
                       texts[2]: good[2][:16].astype(np.float64).tobytes(),  # float64: 32 "floats"
                       texts[3]: np.full(32, np.nan, dtype=np.float32).tobytes()})
    emb = Embedder(tiny_embedders[0], cache_dir=cache_dir)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        again = emb.encode(texts)
        store_blobs(path, {texts[4]: unit16.tobytes()})  # more damage: still one warning
        assert emb.encode(texts[4:5]).shape == (1, 32)
    assert len(cache_warnings(record)) == 1, [str(w.message) for w in record]
    assert "4 stored vectors are not 32 finite float32 values" in str(cache_warnings(record)[0].message)
    np.testing.assert_allclose(again, good, atol=1e-5)
    assert emb.cache_stats == {"hits": 2, "misses": 5}
    conn = sqlite3.connect(path)  # the bad vectors were replaced
    sizes = {len(blob) for (blob,) in conn.execute("SELECT vec FROM vectors")}
    conn.close()
    assert sizes == {32 * 4}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fresh = Embedder(tiny_embedders[0], cache_dir=cache_dir)
        np.testing.assert_allclose(fresh.encode(texts), good, atol=1e-5)
        assert fresh.model is None  # all sound and cached again: no model needed


def test_cache_without_a_recorded_size_trusts_the_common_one(cache_dir):
    """A cache file from before sizes were recorded: the odd vector out is the bad one."""
    cache = EmbeddingCache(cache_dir, "old-model")
    cache.put(["a", "b", "c"], np.ones((3, 4), dtype=np.float32))
    conn = sqlite3.connect(cache.path)
    conn.execute("DELETE FROM meta WHERE key = 'dim'")
    conn.commit()
    conn.close()
    store_blobs(cache.path, {"c": np.ones(3, dtype=np.float32).tobytes()})
    with pytest.warns(UserWarning, match="1 stored vectors are not 4 finite float32"):
        assert sorted(EmbeddingCache(cache_dir, "old-model").get(["a", "b", "c"])) == ["a", "b"]


def test_cache_file_is_wal_sqlite(tiny_embedders, cache_dir):
    emb = Embedder(tiny_embedders[0], cache_dir=cache_dir)
    emb.encode(FLIGHTS)
    conn = sqlite3.connect(EmbeddingCache(cache_dir, emb.id).path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT count(*) FROM vectors").fetchone()[0] == 3
    conn.close()


WRITER = """
import sys, warnings
import numpy as np
from iclmeta.retrieval.embedder import EmbeddingCache
warnings.simplefilter("error")  # a lock timeout would disable the cache with a warning: fail instead
directory, worker = sys.argv[1], int(sys.argv[2])
cache = EmbeddingCache(directory, "shared-model")
for batch in range(30):
    cache.put([f"w{worker} b{batch} t{i}" for i in range(20)], np.full((20, 4), worker + batch, dtype=np.float32))
"""


def test_cache_two_processes_write_at_once(cache_dir):
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(cache_dir), str(w)], stderr=subprocess.PIPE)
             for w in range(2)]
    errors = [proc.communicate(timeout=120)[1].decode() for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], errors
    found = EmbeddingCache(cache_dir, "shared-model").get([f"w1 b29 t{i}" for i in range(20)] + ["absent"])
    assert len(found) == 20 and all((v == 30).all() for v in found.values())


FRESH_WRITER = """
import sys, time, warnings
import numpy as np
from iclmeta.retrieval.embedder import EmbeddingCache
warnings.simplefilter("error")
directory, start = sys.argv[1], float(sys.argv[2])
cache = EmbeddingCache(directory, "fresh-model")
while time.time() < start:  # all writers open the not-yet-existing file at the same moment
    pass
cache.put(["a text"], np.ones((1, 4), dtype=np.float32))
"""


def test_cache_file_created_by_several_processes_at_once(tmp_path):
    # Regression: switching a new file to WAL and creating its tables used to fail at once with
    # "database is locked" (and silently disable the cache) when another process did the same.
    for trial in range(5):
        directory, start = tmp_path / f"cache{trial}", time.time() + 1.0
        procs = [subprocess.Popen([sys.executable, "-c", FRESH_WRITER, str(directory), str(start)],
                                  stderr=subprocess.PIPE) for _ in range(4)]
        errors = [proc.communicate(timeout=120)[1].decode() for proc in procs]
        assert [proc.returncode for proc in procs] == [0] * 4, errors
        assert len(EmbeddingCache(directory, "fresh-model").get(["a text"])) == 1


def test_encode_rejects_single_string(tiny_embedders, cache_dir):
    with pytest.raises(UserError, match="list of strings"):
        Embedder(tiny_embedders[0], cache_dir=cache_dir).encode("book a flight")


def test_retriever_nearest_last(tiny_embedders, cache_dir):
    emb = Embedder(tiny_embedders[0], cache_dir=cache_dir)
    examples = _examples()
    retriever = Retriever.build(examples, emb)
    picked = retriever.select(examples[0], k=3)
    assert picked[-1] == examples[0]  # an exact match is the most similar, placed last
    sims = emb.encode([ex.text for ex in picked]) @ emb.encode([examples[0].text])[0]
    assert list(sims) == sorted(sims)
    assert retriever.select(examples[0], k=3, order="nearest-first") == picked[::-1]


def test_retriever_k_validation(tiny_embedders, cache_dir):
    retriever = Retriever.build(_examples(), Embedder(tiny_embedders[0], cache_dir=cache_dir))
    assert len(retriever.select("play jazz", k=100)) == len(_examples())
    assert retriever.select("play jazz", k=0) == []
    with pytest.raises(UserError, match="negative"):
        retriever.select("play jazz", k=-1)
    with pytest.raises(UserError, match="order"):
        retriever.select("play jazz", k=2, order="random")


def test_retriever_balance_covers_labels(tiny_embedders, cache_dir):
    retriever = Retriever.build(_examples(), Embedder(tiny_embedders[0], cache_dir=cache_dir))
    picked = retriever.select("book a flight to paris", k=6, balance=True)
    counts = {label: sum(ex.label == label for ex in picked) for label in ("flight", "weather", "music")}
    assert counts == {"flight": 2, "weather": 2, "music": 2}
    picked = retriever.select("book a flight to paris", k=4, balance=True)
    assert sorted(ex.label for ex in picked).count("flight") >= 1 and len({ex.label for ex in picked}) == 3


def test_retriever_save_load_round_trip(tiny_embedders, cache_dir, tmp_path):
    emb = Embedder(tiny_embedders[0], cache_dir=cache_dir)
    retriever = Retriever.build(_examples(), emb)
    folder = retriever.save(tmp_path / "index")
    retriever.save(folder)  # saving twice keeps one index file
    assert len(list(folder.glob("index-*.faiss"))) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = Retriever.load(folder)  # embedder rebuilt from the saved name
    assert loaded.embedder.id == emb.id
    for query, opts in [("will it rain", {}), ("book a flight", {"balance": True}),
                        ("play music", {"mmr_lambda": 0.3})]:
        assert loaded.select(query, k=4, **opts) == retriever.select(query, k=4, **opts)


def test_retriever_load_errors(tiny_embedders, cache_dir, tmp_path):
    with pytest.raises(UserError, match="retriever.json missing"):
        Retriever.load(tmp_path / "nothing")
    folder = Retriever.build(_examples(), Embedder(tiny_embedders[0], cache_dir=cache_dir)).save(tmp_path / "ix")
    with pytest.warns(UserWarning, match="built with"):
        Retriever.load(folder, Embedder(tiny_embedders[1], cache_dir=cache_dir))
    index_file = next(folder.glob("index-*.faiss"))
    blob = index_file.read_bytes()
    index_file.write_bytes(blob[:len(blob) // 2])  # truncated: refused, not read half
    with pytest.raises(UserError, match="damaged .*not the file saved with it"):
        Retriever.load(folder)
    index_file.write_bytes(blob)
    manifest = json.loads((folder / "retriever.json").read_text())
    del manifest["embedder_id"]
    (folder / "retriever.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="damaged .*embedder_id"):
        Retriever.load(folder)
    index_file.unlink()
    with pytest.raises(UserError, match="damaged"):
        Retriever.load(folder)
    with pytest.raises(UserError, match="no examples"):
        Retriever.build([], Embedder(tiny_embedders[0], cache_dir=cache_dir))


@pytest.mark.integration
def test_minilm_retrieves_flight_before_weather(tmp_path):
    from iclmeta.models import resolve_embedder

    emb = Embedder(resolve_embedder(None), cache_dir=tmp_path).load()
    assert emb.dim == 384
    examples = [Example("what is the weather like in paris", "weather", id="w1"),
                Example("what is the weather report for seattle", "weather", id="w2"),
                Example("i need a flight from nyc to paris with delta", "book_flight", id="f1"),
                Example("book me a plane ticket to london", "book_flight", id="f2"),
                Example("play my workout playlist", "play_music", id="m")]
    picked = Retriever.build(examples, emb).select("book a flight to paris", k=3)
    # Both flights outrank the weather example that shares the city; the nearest comes last.
    assert [ex.id for ex in picked] == ["w1", "f2", "f1"]
