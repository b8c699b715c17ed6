"""Metric baselines (knn, protonet, matching, relation) and their episodic training.

Unit tests use a fake embedder (a dict from text to vector) and hand-built episodes whose right
answers are known; the CLI test builds a tiny sentence-transformers folder from a BERT config.
"""
import json
import zlib
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import build_tiny_embedder, write_word_dataset

from iclmeta.cli.main import main
from iclmeta.config import EvalConfig
from iclmeta.data.example import Example, LabelledDataset
from iclmeta.data.episodes import Episode
from iclmeta.errors import UserError


class FakeEmbedder:
    """``encode`` looks texts up in ``table``; unknown texts get a seeded random vector."""

    def __init__(self, table: dict, dim: int, name="fake"):
        self.table, self.dim, self.name = table, dim, name

    def encode(self, texts):
        rows = []
        for t in texts:
            v = self.table.get(t)
            if v is None:
                v = np.random.default_rng(zlib.crc32(t.encode())).normal(size=self.dim)
            rows.append(np.asarray(v, dtype=np.float32) / np.linalg.norm(v))
        return np.stack(rows).astype(np.float32)


def _resources(table, dim=2, **cfg):
    labels = {"a": "alpha", "b": "beta"}
    return SimpleNamespace(config=EvalConfig(methods=["knn"], **cfg),
                           embedder=FakeEmbedder(table, dim),
                           dataset=LabelledDataset("toy", [], labels))


def _episode(support: dict, query: list[tuple[str, str]]) -> Episode:
    sup = {c: [Example(t, c, id=f"{c}{i}") for i, t in enumerate(ts)] for c, ts in support.items()}
    qry = [Example(t, c, id=f"q{i}") for i, (t, c) in enumerate(query)]
    return Episode(0, tuple(support), sup, qry, seed=0)


def _predict(method, episode, shots, resources):
    from iclmeta.harness.registry import build_method

    m = build_method(method, resources)
    m.fit()
    return m.predict(episode, shots)


# Class "a" has one support example right next to the query but its mean lies far away;
# class "b"'s mean is the nearer one. Nearest-neighbour methods say "a", prototypes say "b".
SPLIT_TABLE = {"a-near": [1.0, 0.05], "a-far": [-1.0, 0.4], "b1": [0.6, 0.8],
               "b2": [0.8, 0.6], "q": [1.0, 0.0]}
SPLIT_EPISODE = _episode({"a": ["a-near", "a-far"], "b": ["b1", "b2"]}, [("q", "a")])


def test_knn_and_matching_follow_the_nearest_example():
    res = _resources(SPLIT_TABLE)
    knn = _predict("knn", SPLIT_EPISODE, 2, res)
    assert knn.labels == ["a"] and knn.demo_ids == [["a0"]]
    assert _predict("matching", SPLIT_EPISODE, 2, res).labels == ["a"]


def test_protonet_follows_the_nearest_mean():
    pred = _predict("protonet", SPLIT_EPISODE, 2, _resources(SPLIT_TABLE))
    assert pred.labels == ["b"]
    assert sorted(pred.demo_ids[0]) == ["a0", "a1", "b0", "b1"]


def test_protonet_distance_option_changes_the_answer():
    # The mean of two orthogonal unit vectors is short: close in angle, far in space.
    table = {"a1": [1.0, 0.0], "a2": [0.0, 1.0], "b1": [0.6, 0.8], "q": [1.0, 1.0]}
    ep = _episode({"a": ["a1", "a2"], "b": ["b1", "b1"]}, [("q", "a")])
    assert _predict("protonet", ep, 2, _resources(table, distance="cosine")).labels == ["a"]
    assert _predict("protonet", ep, 2, _resources(table, distance="euclidean")).labels == ["b"]


def test_one_shot_uses_only_the_first_support_example():
    # At 1 shot only "a-near" and "b1" are support; the query sits by "a-near".
    for method in ("knn", "protonet", "matching"):
        assert _predict(method, SPLIT_EPISODE, 1, _resources(SPLIT_TABLE)).labels == ["a"]


def test_zero_shot_compares_with_label_names():
    table = {"alpha": [1.0, 0.0], "beta": [0.0, 1.0], "q": [0.9, 0.2], "a-near": [0, 1],
             "b1": [1, 0]}
    ep = _episode({"a": ["a-near"], "b": ["b1"]}, [("q", "a")])
    pred = _predict("protonet", ep, 0, _resources(table))
    assert pred.labels == ["a"] and pred.demo_ids == [[]]


def test_relation_without_checkpoint_is_a_user_error():
    with pytest.raises(UserError, match="iclmeta train --method relation"):
        _predict("relation", SPLIT_EPISODE, 1, _resources(SPLIT_TABLE))


# ---- training on a synthetic dataset: clusters in a random space, with loud nuisance dims


def _clusters(n_classes=20, per_class=12, dim=16, seed=0):
    """Class signal in 4 dimensions, large shared noise in the rest (a head can learn this)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, 4))
    table, examples = {}, []
    for c in range(n_classes):
        for i in range(per_class):
            text = f"class{c} item{i}"
            table[text] = np.concatenate([centres[c] + 0.3 * rng.normal(size=4),
                                          1.5 * rng.normal(size=dim - 4)])
            examples.append({"text": text, "label": f"c{c:02d}"})
    return table, examples


@pytest.fixture
def synthetic(tmp_path):
    table, rows = _clusters()
    path = tmp_path / "clusters.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path), FakeEmbedder(table, 16)


def _train_cfg(path, method, tmp_path, **kw):
    from iclmeta.config import MetricTrainConfig

    base = dict(method=method, dataset=path, ways=3, shots=[1, 3], queries=3, steps=150,
                lr=5e-3, val_episodes=10, eval_every=50, out=str(tmp_path / method))
    return MetricTrainConfig(**{**base, **kw})


def test_training_reduces_the_episodic_loss(synthetic, tmp_path):
    import torch
    from iclmeta.data.sources import load_dataset
    from iclmeta.metric.nets import MetricNet
    from iclmeta.metric.train import EpisodeTensors, episodic_loss, fit_net, trainable_plan

    torch.set_num_threads(1)
    path, emb = synthetic
    cfg = _train_cfg(path, "protonet", tmp_path, head="mlp", hidden=32)
    ds = load_dataset(path)
    held = EpisodeTensors(ds, trainable_plan(ds, cfg, "meta-train"), emb, 20, seed=99)
    before = episodic_loss(MetricNet("protonet", 16, "mlp", hidden=32), held, 1)
    net, record = fit_net(cfg, ds, emb, progress=False)
    assert episodic_loss(net, held, 1) < 0.8 * before
    assert record["history"][-1]["loss"] < record["history"][1]["loss"]


def test_relation_learns_and_save_load_gives_identical_predictions(synthetic, tmp_path):
    import torch
    from iclmeta.metric.checkpoints import load_checkpoint
    from iclmeta.metric.train import train_metric

    torch.set_num_threads(1)
    path, emb = synthetic
    out = train_metric(_train_cfg(path, "relation", tmp_path, hidden=32), embedder=emb,
                       progress=False, echo=lambda m: None)
    meta = json.loads((out / "config.json").read_text())
    assert meta["method"] == "relation" and meta["best_val_accuracy"] > 0.6
    net, _ = load_checkpoint(out)
    again, _ = load_checkpoint(out)
    xs, xq = torch.randn(6, 16), torch.randn(9, 16)
    ys = torch.tensor([0, 1, 2, 0, 1, 2])
    assert torch.equal(net(xs, ys, 3, xq), again(xs, ys, 3, xq))


def test_save_load_round_trip_is_exact(tmp_path):
    import torch
    from iclmeta.metric.nets import MetricNet
    from iclmeta.metric.checkpoints import load_checkpoint, save_checkpoint

    torch.manual_seed(0)
    net = MetricNet("matching", 8, head="linear", distance="euclidean").eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    save_checkpoint(net, tmp_path / "ck", {"embedder": "fake"})
    save_checkpoint(net, tmp_path / "ck", {"embedder": "fake"})  # rewrite leaves one weights file
    assert len(list((tmp_path / "ck").glob("model-*.safetensors"))) == 1
    loaded, meta = load_checkpoint(tmp_path / "ck")
    xs, xq, ys = torch.randn(10, 8), torch.randn(7, 8), torch.arange(5).repeat(2)
    assert meta["net"]["distance"] == "euclidean"
    assert torch.equal(net(xs, ys, 5, xq), loaded(xs, ys, 5, xq))


def test_damaged_checkpoint_is_a_user_error(tmp_path):
    from iclmeta.metric.nets import MetricNet
    from iclmeta.metric.checkpoints import load_checkpoint, save_checkpoint

    folder = save_checkpoint(MetricNet("protonet", 4, head="linear"), tmp_path / "ck", {})
    next(folder.glob("model-*.safetensors")).write_bytes(b"garbage")
    with pytest.raises(UserError, match="damaged"):
        load_checkpoint(folder)
    with pytest.raises(UserError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing")


# ---- CLI end to end with a tiny sentence-transformers model built from a config

WORDS = [f"w{i}" for i in range(40)]


def test_cli_train_then_eval_with_checkpoint(tmp_path, capsys):
    data = write_word_dataset(tmp_path, WORDS, extra=2)
    common = ["--dataset", str(data), "--embedder", build_tiny_embedder(tmp_path, WORDS, dim=16),
              "--cache-dir", str(tmp_path / "cache"), "--ways", "3", "--queries", "2"]
    ckpt = tmp_path / "ck"
    assert main(["train", "--method", "protonet", *common, "--shots", "1,2", "--steps", "20",
                 "--eval-every", "10", "--val-episodes", "3", "--out", str(ckpt),
                 "--no-progress"]) == 0
    assert (ckpt / "config.json").is_file()
    run = tmp_path / "run"
    assert main(["eval", "--method", "knn", "--method", "protonet", "--checkpoint", str(ckpt),
                 *common, "--shots", "1,2", "--episodes", "2", "--class-split", "disjoint",
                 "--out", str(run), "--no-progress"]) == 0
    rows = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    options = {r["method"]: r["options"] for r in rows}
    assert options["protonet"]["checkpoint"] == str(ckpt)
    assert options["protonet"]["head"] == "linear" and options["knn"]["checkpoint"] is None
    capsys.readouterr()
    code = main(["eval", "--method", "relation", *common, "--shots", "1", "--episodes", "1",
                 "--class-split", "disjoint", "--out", str(tmp_path / "r"), "--no-progress"])
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line.lower()]
    assert code == 2 and len(err) == 1 and "iclmeta train" in err[0], err
    code = main(["eval", "--method", "protonet", "--checkpoint", str(tmp_path / "nope"),
                 *common, "--shots", "1", "--episodes", "1", "--class-split", "disjoint",
                 "--out", str(tmp_path / "r2"), "--no-progress"])
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line.lower()]
    assert code == 2 and len(err) == 1 and "no checkpoint" in err[0], err


def test_checkpoint_must_match_embedder_and_distance(tmp_path):
    from iclmeta.metric.nets import MetricNet
    from iclmeta.metric.checkpoints import save_checkpoint

    ck = str(save_checkpoint(MetricNet("protonet", 2, head="linear"), tmp_path / "p",
                             {"embedder": "fake"}))
    other = str(save_checkpoint(MetricNet("matching", 2), tmp_path / "m", {"embedder": "fake"}))
    pred = _predict("protonet", SPLIT_EPISODE, 2, _resources(SPLIT_TABLE, checkpoints=[other, ck]))
    assert pred.labels == ["b"]  # identity head: same answer as frozen; matching's is ignored
    with pytest.raises(UserError, match="--distance cosine"):
        _predict("protonet", SPLIT_EPISODE, 2,
                 _resources(SPLIT_TABLE, checkpoints=[ck], distance="euclidean"))
    res = _resources(SPLIT_TABLE, checkpoints=[ck])
    res.embedder.name = "another-model"
    with pytest.raises(UserError, match="--embedder fake"):
        _predict("protonet", SPLIT_EPISODE, 2, res)
