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


def test_eval_refuses_a_checkpoint_trained_on_meta_test_classes(tmp_path, capsys):
    """Trained with --split-seed 1, evaluated with the default 0: its meta-train classes leak."""
    import json

    from conftest import build_tiny_embedder, write_word_dataset
    from iclmeta.cli.main import main

    words = [f"w{i}" for i in range(48)]
    data = write_word_dataset(tmp_path, words, extra=3)
    common = ["--dataset", str(data), "--embedder", build_tiny_embedder(tmp_path, words, dim=16),
              "--cache-dir", str(tmp_path / "cache"), "--ways", "3", "--queries", "2",
              "--no-progress"]
    ckpt = tmp_path / "ck"
    assert main(["train", "--method", "protonet", *common, "--shots", "1", "--steps", "2",
                 "--eval-every", "1", "--val-episodes", "1", "--split-seed", "1",
                 "--out", str(ckpt)]) == 0
    evaluate = ["eval", "--method", "protonet", "--checkpoint", str(ckpt), *common, "--shots",
                "1", "--episodes", "1", "--class-split", "disjoint"]
    capsys.readouterr()
    assert main([*evaluate, "--out", str(tmp_path / "leak")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(err) == 1 and "meta-train classes of the checkpoint" in err[0]
    assert "--split-seed 1" in err[0] and "--allow-overlap" in err[0]
    assert not (tmp_path / "leak").exists()  # refused before anything was written
    assert main([*evaluate, "--split-seed", "1", "--out", str(tmp_path / "clean")]) == 0
    clean = json.loads((tmp_path / "clean" / "results.jsonl").read_text().splitlines()[0])
    assert clean["options"]["overlap"] is None
    assert main([*evaluate, "--allow-overlap", "--out", str(tmp_path / "allowed")]) == 0
    allowed = json.loads((tmp_path / "allowed" / "results.jsonl").read_text().splitlines()[0])
    assert "meta-train classes of the checkpoint" in allowed["options"]["overlap"]
