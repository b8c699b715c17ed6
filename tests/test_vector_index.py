"""VectorIndex (FAISS flat / ivf / hnsw), the KNN selector's index path, Retriever.add, the
harness's --index, and the FAISS-at-scale benchmark at tiny size."""
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from iclmeta.data.example import Example
from iclmeta.errors import UserError
from iclmeta.retrieval import search
from iclmeta.retrieval.search import rank_many
from iclmeta.retrieval.index import Retriever, cached_index
from iclmeta.retrieval.select import KNNSelector, rank_by_similarity
from iclmeta.retrieval.vectors import VectorIndex

pytest.importorskip("faiss")
ROOT = Path(__file__).resolve().parent.parent


def unit_rows(n, dim=16, seed=0, clusters=8):
    """Clustered unit vectors (so neighbours and near-ties are realistic)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    x = centres[rng.integers(clusters, size=n)] + 0.5 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


class TableEmbedder:
    """Vectors by text from a dict; records every batch of texts it was asked for."""

    def __init__(self, table, id="table-model"):
        self.table, self.id, self.spec, self.asked = table, id, None, []

    def encode(self, texts):
        self.asked.append(list(texts))
        return np.stack([self.table[t] for t in texts]).astype(np.float32)


def pool_and_queries(n=300, n_queries=12, labels=7, dupes=40):
    """Examples over ``labels`` labels; the last ``dupes`` texts repeat earlier ones (exact ties)."""
    vecs = unit_rows(n + n_queries, seed=1)
    texts = [f"t{i}" for i in range(n - dupes)] + [f"t{i}" for i in range(dupes)]
    table = {f"t{i}": vecs[i] for i in range(n)} | {f"q{j}": vecs[n + j] for j in range(n_queries)}
    pool = [Example(text, f"l{i % labels}", id=f"e{i}") for i, text in enumerate(texts)]
    queries = [Example(f"q{j}", "l0", id=f"q{j}") for j in range(n_queries)]
    return TableEmbedder(table), pool, queries


def test_flat_search_is_exact_batched_and_ids_continue_after_add():
    vecs = unit_rows(200)
    index = VectorIndex.build(vecs[:150])
    index.add(vecs[150:])
    scores, ids = index.search(vecs[:5], k=7)
    assert ids.shape == scores.shape == (5, 7) and index.ntotal == 200 and index.dim == 16
    exact = np.argsort(-(vecs[:5] @ vecs.T), axis=1, kind="stable")[:, :7]
    assert (ids == exact).all() and ids[:, 0].tolist() == [0, 1, 2, 3, 4]
    assert np.allclose(index.reconstruct([160, 3]), vecs[[160, 3]])
    assert index.search(vecs[:1], k=500)[1].shape == (1, 200)  # k clipped to what is there


@pytest.mark.parametrize("kind, params", [("ivf", {"nprobe": 4}), ("hnsw", {"M": 8, "efSearch": 32})])
def test_approximate_kinds_find_most_neighbours_and_keep_settings(kind, params, tmp_path):
    vecs = unit_rows(2000)
    index = VectorIndex.build(vecs[:1500], kind, **params)
    index.add(vecs[1500:])  # appended without retraining
    _, ids = index.search(vecs[:50], k=10)
    exact = np.argsort(-(vecs[:50] @ vecs.T), axis=1)[:, :10]
    hits = sum(len(set(a) & set(b)) for a, b in zip(ids.tolist(), exact.tolist()))
    assert hits / exact.size > 0.8 and index.ntotal == 2000
    assert np.allclose(index.reconstruct([1999]), vecs[[1999]])
    loaded = VectorIndex.load(index.save(tmp_path / "x.index"))
    assert (loaded.kind, loaded.params, loaded.ntotal) == (kind, index.params, 2000)
    assert (loaded.search(vecs[:50], 10)[1] == ids).all()


@pytest.mark.parametrize("call, message", [
    (lambda v: VectorIndex.build(v, "lsh"), "unknown index kind 'lsh'; choose one of: flat, ivf, hnsw"),
    (lambda v: VectorIndex.build(v, "flat", nprobe=3), "has no parameter nprobe"),
    (lambda v: VectorIndex.build(v, "hnsw", M=0), "M=0 must be a positive integer"),
    (lambda v: VectorIndex.build(v, "ivf", nlist=50), "needs at least 1950 vectors"),
    (lambda v: VectorIndex.build(v * 2), "L2-normalised"),
    (lambda v: VectorIndex.build(v[0]), "2-d array"),
    (lambda v: VectorIndex.build(v).search(unit_rows(2, dim=8), 3), "8 dims but the index has 16"),
    (lambda v: VectorIndex.build(v).add(unit_rows(2, dim=8)), "8 dims but the index has 16"),
    (lambda v: VectorIndex.build(v).search(v[:1], 0), "positive integer"),
    (lambda v: VectorIndex.build(v).reconstruct([100]), r"ids must be in \[0, 100\)"),
])
def test_bad_input_is_one_line_user_error(call, message):
    with pytest.raises(UserError, match=message) as err:
        call(unit_rows(100))
    assert "\n" not in str(err.value)


def test_ivf_sizes_its_lists_from_the_data():
    index = VectorIndex.build(unit_rows(100), "ivf")  # 100 vectors: 2 lists of >= 39
    assert index.params["nlist"] == 2 and index.search(unit_rows(3), 5)[1].shape == (3, 5)


def test_save_is_atomic_and_damage_is_one_line(tmp_path):
    vecs = unit_rows(50)
    path = VectorIndex.build(vecs).save(tmp_path / "pool.index")
    assert [p.name for p in tmp_path.iterdir()] == ["pool.index"]  # no temporary left behind
    assert (VectorIndex.load(path).search(vecs[:2], 3)[1] == VectorIndex.build(vecs).search(vecs[:2], 3)[1]).all()
    with pytest.raises(UserError, match="no vector index at"):
        VectorIndex.load(tmp_path / "absent.index")
    blob = path.read_bytes()
    for damaged in (blob[: len(blob) // 2], b"junk", blob[:-1] + bytes([blob[-1] ^ 1])):
        path.write_bytes(damaged)
        with pytest.raises(UserError, match="is damaged") as err:
            VectorIndex.load(path)
        assert "\n" not in str(err.value)


@pytest.mark.parametrize("opts", [{}, {"balance": True}, {"mmr_lambda": 0.5},
                                  {"balance": True, "mmr_lambda": 0.7}])
@pytest.mark.parametrize("k", [1, 5, 7, 12, 60, 300])
def test_flat_index_selects_exactly_what_numpy_selects(opts, k, monkeypatch):
    emb, pool, queries = pool_and_queries()
    by_numpy = KNNSelector(emb, **opts).select_many(queries, pool, k)  # no index: numpy
    searched = []
    monkeypatch.setattr(search, "rank_many", lambda *a, **kw: searched.append(1) or rank_many(*a, **kw))
    by_index = KNNSelector(emb, min_pool=0, **opts)
    by_index.use_index(pool, VectorIndex.build(emb.encode([ex.text for ex in pool])))
    assert by_index.select_many(queries, pool, k) == by_numpy
    assert searched == ([] if "mmr_lambda" in opts else [1])  # MMR with flat stays numpy
    assert [by_index.select(q, pool, k) for q in queries] == by_numpy


def test_shortlist_is_widened_until_balance_is_exact():
    # 40 labels, k=80: two rounds over every label; the first shortlist (176) misses some labels
    emb, pool, queries = pool_and_queries(n=400, labels=40, dupes=0)
    index = VectorIndex.build(emb.encode([ex.text for ex in pool]))
    labels = [ex.label for ex in pool]
    qvecs = emb.encode([q.text for q in queries])
    widened = rank_many(qvecs, index, 80, labels, balance=True)
    assert widened == [rank_by_similarity(q, index.reconstruct(np.arange(400)), 80, labels,
                                          balance=True) for q in qvecs]


def test_select_many_embeds_the_queries_in_one_call():
    emb, pool, queries = pool_and_queries()
    KNNSelector(emb).select_many(queries, pool, 4)
    assert emb.asked == [[q.text for q in queries], [ex.text for ex in pool]]


def test_registered_index_is_used_without_embedding_the_pool():
    emb, pool, queries = pool_and_queries()
    index = VectorIndex.build(emb.encode([ex.text for ex in pool]))
    expected = KNNSelector(emb).select_many(queries, pool, 6)
    for min_pool in (0, 10**9):  # searched through it, or its vectors ranked by numpy
        selector = KNNSelector(emb, min_pool=min_pool)
        selector.use_index(pool, index)
        emb.asked.clear()
        assert selector.select_many(queries, pool, 6) == expected
        assert emb.asked == [[q.text for q in queries]] and selector.index_of(pool) is index
    other = pool[:-1] + [Example("t0", pool[-1].label, id="other")]  # another pool: not used
    assert selector.index_of(other) is None
    selector.use_index(other, index)  # registering another pool replaces the first
    assert selector.index_of(pool) is None and selector.index_of(other) is index
    with pytest.raises(UserError, match="holds 300 vectors but the pool has 299"):
        selector.use_index(pool[:-1], index)


def test_cached_index_is_kept_on_disk_and_reused(tmp_path):
    emb, pool, _ = pool_and_queries()
    key = tuple((ex.id, ex.text) for ex in pool)

    def vectors():
        return emb.encode([ex.text for ex in pool])

    first = cached_index(vectors, key, emb, "hnsw", {"M": 8}, tmp_path)
    saved = list(tmp_path.glob("hnsw-*.index"))
    assert len(saved) == 1 and first.params["M"] == 8
    emb.asked.clear()
    again = cached_index(vectors, key, emb, "hnsw", {"M": 8}, tmp_path)
    assert not emb.asked and again.ntotal == 300  # read back, nothing embedded
    cached_index(vectors, key, emb, "flat", {}, tmp_path)
    cached_index(vectors, key[:-1] + (("x", "t0"),), emb, "flat", {}, tmp_path)
    assert len(list(tmp_path.glob("*.index"))) == 3  # another kind or pool, another file
    saved[0].write_bytes(b"junk")
    with pytest.warns(UserWarning, match="damaged.*rebuilding"):
        cached_index(vectors, key, emb, "hnsw", {"M": 8}, tmp_path)
    assert VectorIndex.load(saved[0]).ntotal == 300  # rebuilt and saved again
    with pytest.raises(UserError, match="unknown index kind"):
        cached_index(vectors, key, emb, "annoy", {}, tmp_path)


def test_retriever_add_appends_without_rebuild_and_saves(tmp_path):
    emb, pool, queries = pool_and_queries(n=120, dupes=0)
    grown = Retriever.build(pool[:70], emb, "hnsw", M=8)
    grown.add(pool[70:])
    whole = Retriever.build(pool, emb)
    assert grown.index.ntotal == 120 and grown.examples == pool
    for q in queries:
        assert grown.select(q, 6, balance=True) == whole.select(q, 6, balance=True)
    grown.save(tmp_path / "r")
    loaded = Retriever.load(tmp_path / "r", emb)
    assert (loaded.index.kind, loaded.index.params["M"]) == ("hnsw", 8)
    assert loaded.select(queries[0], 6) == grown.select(queries[0], 6)
    loaded.add([])  # nothing to add is fine
    with pytest.raises(UserError, match="id 'e3' is already in the retriever"):
        loaded.add([Example("t3", "l0", id="e3")])
    manifest = json.loads((tmp_path / "r" / "retriever.json").read_text())
    del manifest["index_kind"], manifest["index_params"]  # as saved before index kinds
    (tmp_path / "r" / "retriever.json").write_text(json.dumps(manifest))
    assert Retriever.load(tmp_path / "r", emb).index.params == loaded.index.params  # read from FAISS


def test_retriever_uses_the_same_rule_as_the_selector(monkeypatch):
    emb, pool, queries = pool_and_queries()
    retriever = Retriever.build(pool, emb)
    for min_pool in (0, 10**9):
        monkeypatch.setattr(search, "FAISS_MIN_POOL", min_pool)
        for opts in ({}, {"balance": True}, {"mmr_lambda": 0.4}):
            assert [retriever.select(q, 9, **opts) for q in queries] == \
                KNNSelector(emb, **opts).select_many(queries, pool, 9)


def test_index_modules_import_no_faiss_or_torch():
    code = ("import sys, iclmeta.retrieval, iclmeta.retrieval.index, iclmeta.retrieval.search, "
            "iclmeta.retrieval.vectors, iclmeta.prompting.methods; "
            "heavy = {'torch', 'faiss', 'sentence_transformers'} & set(sys.modules); "
            "sys.exit(sorted(heavy) or 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_faiss_scale_benchmark_runs_small():
    out = subprocess.run([sys.executable, str(ROOT / "eval" / "faiss_scale.py"), "--sizes", "400,800",
                          "--dim", "16", "--queries", "20", "--hnsw-ef-construction", "40"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-800:]
    rows = [line.split() for line in out.stdout.splitlines() if line.split()[:1] in (["400"], ["800"])]
    assert [(r[0], r[1]) for r in rows] == [(n, k) for n in ("400", "800") for k in ("flat", "ivf", "hnsw")]
    assert all(r[6] == "1.000" for r in rows if r[1] == "flat")
    assert "efConstruction=40" in out.stdout


def _episode(pool, queries):
    from iclmeta.data.episodes import Episode
    classes = sorted({ex.label for ex in pool})
    support = {c: [ex for ex in pool if ex.label == c] for c in classes}
    return Episode(id=0, classes=tuple(classes), support=support, query=queries, seed=0)


def test_retrieval_source_keeps_one_index_per_support_beside_the_cache(monkeypatch, tmp_path):
    from types import SimpleNamespace

    from iclmeta.config import EvalConfig
    from iclmeta.prompting.methods import RetrievalSource

    emb, pool, queries = pool_and_queries(n=280, labels=7, dupes=0)
    emb.use_cache, emb.cache_dir = True, tmp_path
    episode = _episode(pool, queries)

    def run(**cfg):
        source = RetrievalSource(SimpleNamespace(config=EvalConfig(**cfg), embedder=emb))
        source.prepare(episode, 40)
        return source, [source.demos(episode, 40, q, 9) for q in queries]

    plain, expected = run()  # 280 examples: below FAISS_MIN_POOL, numpy as before
    assert "index" not in plain.options and not (tmp_path / "indexes").exists()
    monkeypatch.setattr(search, "FAISS_MIN_POOL", 100)
    emb.asked.clear()
    source, picked = run(balance=False)
    assert picked == expected and len(list((tmp_path / "indexes").glob("flat-*.index"))) == 1
    emb.asked.clear()
    assert run()[1] == expected  # a later run reads the kept index: only the queries embedded
    assert emb.asked and all(text.startswith("q") for batch in emb.asked for text in batch)
    hnsw, _ = run(index="hnsw")
    assert hnsw.options["index"] == "hnsw" and len(list((tmp_path / "indexes").glob("hnsw-*"))) == 1
    assert hnsw.selector().index_of(episode.support_set(40)).kind == "hnsw"


def test_eval_rows_are_the_same_through_the_index_and_index_is_a_flag(
        monkeypatch, tmp_path, tiny_model_dir, tiny_embedder_dir, capsys):
    from iclmeta.cli import main

    rows = [{"text": f"{w} {v} the {u}", "label": f"c{i % 6}"}
            for i, (w, v, u) in enumerate(zip(*[["flight", "book", "city", "music", "play", "song",
                                                  "alarm", "set", "timer", "weather"] * 6] * 3))]
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({**r, "text": f"{r['text']} {i}"}) + "\n"
                            for i, r in enumerate(rows)))
    args = ["eval", "--method", "retrieval", "--dataset", str(data), "--model", tiny_model_dir,
            "--embedder", tiny_embedder_dir, "--cache-dir", str(tmp_path / "cache"),
            "--class-split", "all", "--ways", "3", "--shots", "2", "--queries", "2",
            "--episodes", "2", "--dtype", "float32", "--no-progress"]

    def result(out, *extra):
        assert main(args + ["--out", str(tmp_path / out), *extra]) == 0
        lines = (tmp_path / out / "results.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in lines]

    numpy_rows = result("a")
    monkeypatch.setattr(search, "FAISS_MIN_POOL", 1)
    assert result("b") == numpy_rows  # the same demonstrations through a flat index
    assert list((tmp_path / "cache" / "embeddings" / "indexes").glob("flat-*.index"))
    assert {r["options"]["index"] for r in result("c", "--index", "hnsw")} == {"hnsw"}
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    assert "--index {flat,ivf,hnsw}" in capsys.readouterr().out
