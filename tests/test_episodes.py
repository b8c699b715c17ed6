import zlib
from types import SimpleNamespace

import numpy as np
import pytest

from iclmeta.config import EvalConfig
from iclmeta.data.example import Example, LabelledDataset
from iclmeta.data.sources import load_dataset
from iclmeta.data.episodes import meta_splits, plan_episodes, sample_episodes
from iclmeta.errors import UserError


def toy(n_classes=30, per_class=12, splits=False):
    ex = [Example(f"c{c} text {i}", f"c{c}", f"toy:{c}:{i}",
                  ("test" if i % 3 == 0 else "train") if splits else None)
          for c in range(n_classes) for i in range(per_class)]
    return LabelledDataset("toy", ex)


def test_meta_splits_disjoint_and_cover():
    labels = [f"c{i}" for i in range(30)]
    s = meta_splits(labels, seed=0)
    sets = [set(v) for v in s.values()]
    assert sum(len(x) for x in sets) == 30 and set().union(*sets) == set(labels)
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert [len(s[k]) for k in ("meta-train", "meta-val", "meta-test")] == [18, 6, 6]
    assert meta_splits(labels, 0) == s and meta_splits(labels, 1) != s


def test_episodes_use_only_their_split_classes():
    ds = toy()
    for split in ("meta-train", "meta-test"):
        plan = plan_episodes(ds, 5, [1, 4], 3, split=split)
        allowed = set(meta_splits(ds.labels(), 0)[split])
        for ep in sample_episodes(ds, plan, 10, seed=0):
            assert set(ep.classes) <= allowed
            assert {q.label for q in ep.query} <= set(ep.classes)


def test_nested_support_shared_queries_and_no_overlap():
    ds = toy()
    ep = sample_episodes(ds, plan_episodes(ds, 5, [1, 2, 4], 3), 1, seed=3)[0]
    one, four = ep.support_set(1), ep.support_set(4)
    assert set(one) <= set(ep.support_set(2)) <= set(four)
    assert len(four) == 20 and len(ep.query) == 15
    assert not {e.id for e in four} & {q.id for q in ep.query}
    assert [e.label for e in one] == list(ep.classes)  # interleaved class by class


def test_determinism_and_prefix_stability():
    ds = toy()
    plan = plan_episodes(ds, 5, [1, 4], 3)
    a, b = sample_episodes(ds, plan, 5, seed=7), sample_episodes(ds, plan, 8, seed=7)
    assert a == b[:5]  # episode i depends on (seed, i) only
    assert sample_episodes(ds, plan, 5, seed=8) != a


def test_impossible_requests_name_the_problem():
    ds = toy(per_class=6)
    with pytest.raises(UserError, match="--ways 7 is impossible"):
        plan_episodes(ds, 7, [1], 3)
    with pytest.raises(UserError, match=r"class 'c\d+' has 6 examples, fewer than 4 shots \+ 3"):
        plan_episodes(ds, 5, [4], 3)
    with pytest.raises(UserError, match="unknown split"):
        plan_episodes(ds, 5, [1], 3, split="meta-dev")


def test_few_class_dataset_uses_all_classes_and_own_splits():
    ds = load_dataset("trec")
    plan = plan_episodes(ds, None, [0, 1, 4, 8], None)
    assert plan.class_split == "all" and plan.ways == 6
    assert (plan.support_from, plan.query_from) == ("train", "test")
    ep = sample_episodes(ds, plan, 1, seed=0)[0]
    assert len(ep.query) == 500 and all(q.split == "test" for q in ep.query)
    assert all(e.split == "train" for e in ep.support_set(8))
    assert "support from the 'train' split" in plan.describe()
    # the rule is overridable: force a disjoint split on a small set
    forced = plan_episodes(toy(n_classes=10), 2, [1], 2, class_split="disjoint")
    assert forced.class_split == "disjoint" and len(forced.classes) == 2


def test_all_classes_without_dataset_splits():
    ds = load_dataset("snips")
    plan = plan_episodes(ds, 3, [1, 4], 5)
    assert plan.class_split == "all" and plan.support_from is None
    ep = sample_episodes(ds, plan, 1, seed=0)[0]
    assert len(ep.classes) == 3 and len(ep.query) == 15
    assert not {e.id for e in ep.support_set(4)} & {q.id for q in ep.query}


def test_queries_are_drawn_first_and_ignore_the_shot_list():
    ds = toy()
    small = sample_episodes(ds, plan_episodes(ds, 5, [0, 1, 4], 3), 6, seed=2)
    large = sample_episodes(ds, plan_episodes(ds, 5, [0, 1, 8], 3), 6, seed=2)
    for a, b in zip(small, large):
        assert a.classes == b.classes
        assert [q.id for q in a.query] == [q.id for q in b.query]
        assert a.query_hash == b.query_hash
        # the budget K is the same K examples whatever else was asked for
        assert a.support_set(1) == b.support_set(1) and a.support_set(4) == b.support_set(4)
    with_splits = toy(per_class=24, splits=True)
    plans = [plan_episodes(with_splits, 5, s, 3, class_split="all") for s in ([1], [1, 8])]
    a, b = (sample_episodes(with_splits, p, 3, seed=0) for p in plans)
    assert [[q.id for q in e.query] for e in a] == [[q.id for q in e.query] for e in b]
    assert [e.support_set(1) for e in a] == [e.support_set(1) for e in b]


def test_support_holds_exactly_the_budget():
    ds = toy()
    ep = sample_episodes(ds, plan_episodes(ds, 5, [1, 4], 3), 1, seed=0)[0]
    assert all(len(v) == 4 for v in ep.support.values())
    with pytest.raises(ValueError, match="holds 4 per class"):
        ep.support_set(5)
    assert not hasattr(ep, "pool")
    with pytest.raises(TypeError):
        plan_episodes(ds, 5, [1, 4], 3, pool=8)  # the pool concept is gone


def test_query_all_without_own_splits_is_refused():
    # with support and queries from the same examples, "all the rest" would depend on --shots
    with pytest.raises(UserError, match="--queries all"):
        plan_episodes(toy(), 5, [1, 4], None)


def _sources_demo_ids(ds, shots, source):
    """Demo ids the source picks for every query of 3 episodes at 1 shot, k = all K x N."""
    plan = plan_episodes(ds, 5, shots, 3)
    out = []
    for ep in sample_episodes(ds, plan, 3, seed=5):
        source.prepare(ep, 1)
        n = len(ep.classes)
        out.append([[d.id for d in source.demos(ep, 1, q, n)] for q in ep.query])
        assert all(set(ids) <= {e.id for e in ep.support_set(1)} for ids in out[-1])
    return out


@pytest.mark.parametrize("name", ["icl", "retrieval"])
def test_demos_at_one_shot_ignore_the_other_shot_counts(name):
    from iclmeta.prompting.methods import RandomSource, RetrievalSource

    class HashEmbedder:  # a deterministic stand-in for the sentence encoder
        def encode(self, texts):
            vecs = [np.random.default_rng(zlib.crc32(t.encode())).normal(size=8) for t in texts]
            return np.stack(vecs).astype(np.float32)

    ds = toy()
    res = SimpleNamespace(config=EvalConfig(methods=[name]), embedder=HashEmbedder())

    def source():
        return RandomSource() if name == "icl" else RetrievalSource(res)

    assert _sources_demo_ids(ds, [1, 4], source()) == _sources_demo_ids(ds, [1, 8], source())


def test_ways_all_puts_every_class_of_the_split_in_every_episode():
    ds = toy(30, 12, splits=True)
    disjoint = plan_episodes(ds, "all", [1], 2, class_split="disjoint")
    assert disjoint.ways == len(meta_splits(ds.labels(), 0)["meta-test"]) == 6
    every = plan_episodes(ds, "all", [1, 2], 2, class_split="all")
    assert every.ways == 30 and every.support_from == "train" and every.query_from == "test"
    ep = sample_episodes(ds, every, n=1, seed=0)[0]
    assert sorted(ep.classes) == sorted(ds.labels()) and len(ep.query) == 60
    assert all(q.split == "test" for q in ep.query)


def test_ways_all_from_the_command_line(tmp_path):
    from iclmeta.cli.main import eval_config, parse
    config = eval_config(parse(["eval", "--method", "knn", "--ways", "all"]))
    assert config.ways == "all"
    with pytest.raises(UserError, match="--ways"):
        parse(["eval", "--method", "knn", "--ways", "every"])
