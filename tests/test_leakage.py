"""Meta-test leakage: duplicate texts across splits, and checkpoints trained on evaluated data."""
from __future__ import annotations

from iclmeta.data.episodes import meta_splits
from iclmeta.data.example import Example, LabelledDataset
from iclmeta.data.leakage import overlap, training_record
from iclmeta.data.sources import load_dataset


def _norm(text: str) -> str:
    return " ".join(text.split())


def test_trec_queries_never_have_a_copy_in_the_support_split():
    """TREC-6 holds exact duplicates across train and test: a query could see its own copy."""
    ds = load_dataset("trec")
    train = {_norm(e.text) for e in ds.examples if e.split == "train"}
    test = {_norm(e.text) for e in ds.examples if e.split == "test"}
    assert not train & test
    assert len(test) == 500  # the published test set stays whole: the train copy is dropped
    assert ds.duplicates_removed == 81
    assert len({_norm(e.text) for e in ds.examples}) == len(ds.examples)


def _many_classes(n_classes: int = 30, per_class: int = 6) -> LabelledDataset:
    return LabelledDataset("synthetic", [Example(f"text {c} {i}", f"c{c:02d}", f"{c}:{i}")
                                         for c in range(n_classes) for i in range(per_class)])


def test_a_checkpoint_from_another_split_seed_overlaps_meta_test():
    ds = _many_classes()
    trained = training_record(ds, meta_splits(ds.labels(), 1)["meta-train"], split_seed=1,
                              class_split="disjoint")
    evaluated = meta_splits(ds.labels(), 0)["meta-test"]
    found = overlap(trained, ds, evaluated)
    assert found is not None and "meta-train classes of the checkpoint" in found
    same_seed = training_record(ds, meta_splits(ds.labels(), 0)["meta-train"], split_seed=0,
                                class_split="disjoint")
    assert overlap(same_seed, ds, evaluated) is None


def test_texts_seen_in_training_count_on_any_dataset():
    ds = _many_classes()
    other = LabelledDataset("renamed", [Example(e.text, "x" + e.label, e.id) for e in ds.examples])
    trained = training_record(ds, ["c00"], split_seed=0, class_split="disjoint")
    found = overlap(trained, other, ["xc00", "xc01"])
    assert found == "6 evaluated text(s) were in its training data"
    assert overlap(None, ds, ["c00"]) is None  # a checkpoint from before these records
