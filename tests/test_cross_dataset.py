"""Meta-train on one dataset's classes, evaluate on another (e.g. CLINC150 -> SNIPS).

Across datasets the leakage guard compares texts, never class names (both CLINC150 and SNIPS
have a ``play_music`` class); on the training dataset it compares both, as before. A dataset
too small for a class-disjoint meta-split is refused in one line that says where to train.
"""
import json

import pytest

from iclmeta.data.example import Example, LabelledDataset
from iclmeta.data.leakage import overlap, training_record

LABELS = ("flight", "weather", "music", "alarm", "timer", "song", "city", "movie", "film",
          "review", "book", "cancel", "play", "set", "today")
WORDS = "the a what is good bad tomorrow question answer number location person".split()


def _dataset(name, labels, texts):
    return LabelledDataset(name, [Example(t, lab, f"{lab}:{i}") for lab in labels
                                  for i, t in enumerate(texts(lab))])


def test_same_class_name_on_another_dataset_is_not_a_leak():
    clinc = _dataset("clinc150", ["play_music", "book_flight"], lambda c: [f"{c} one", f"{c} two"])
    record = training_record(clinc, ["play_music", "book_flight"], 0, "disjoint")
    snips = _dataset("snips", ["play_music", "get_weather"], lambda c: [f"snips {c} x"])
    assert overlap(record, snips, ["play_music", "get_weather"]) is None


def test_a_file_that_only_shares_the_training_datasets_name_compares_texts_only():
    """Two unrelated ``intents.jsonl`` files: same name, other data -> no class leak."""
    first = _dataset("intents", ["play_music", "alarm"], lambda c: [f"first {c}"])
    record = training_record(first, ["play_music"], 0, "disjoint")
    second = _dataset("intents", ["play_music", "alarm"], lambda c: [f"second {c}"])
    assert overlap(record, second, ["play_music", "alarm"]) is None


def test_a_shared_text_across_datasets_is_named_as_a_text_not_a_class():
    clinc = _dataset("clinc150", ["play_music"], lambda c: ["play some jazz", "next song"])
    record = training_record(clinc, ["play_music"], 0, "disjoint")
    snips = _dataset("snips", ["play_music"], lambda c: ["Play some  jazz", "weather today"])
    assert overlap(record, snips, ["play_music"]) == "1 evaluated text(s) were in its training data"


def test_the_training_dataset_edited_still_compares_classes():
    """Same name, one example added (another fingerprint): still the training dataset."""
    ds = _dataset("intents", ["a", "b"], lambda c: [f"{c} one", f"{c} two"])
    record = training_record(ds, ["a"], 0, "disjoint")
    edited = LabelledDataset("intents", ds.examples + [Example("a three", "a", "a:3")])
    found = overlap(record, edited, ["a", "b"])
    assert found.startswith("1 evaluated class(es) were meta-train classes of the checkpoint (a)")


def _write(path, labels, text):
    rows = [{"text": text(i, j, label), "label": label}
            for i, label in enumerate(labels) for j in range(6)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture(scope="module")
def adapter(tmp_path_factory, tiny_model_dir):
    """fomaml meta-trained on a 15-class dataset ("many")."""
    from iclmeta.config import MetaTrainConfig
    from iclmeta.meta.train import meta_train
    root = tmp_path_factory.mktemp("cross")
    data = _write(root / "many.jsonl", LABELS, lambda i, j, label:
                  f"{WORDS[(i + j) % len(WORDS)]} {label} {WORDS[(i * j) % len(WORDS)]}")
    meta_train(MetaTrainConfig(
        method="fomaml", dataset=data, model=tiny_model_dir, dtype="float32", device="cpu",
        ways=3, shots=[1], queries=2, steps=1, inner_steps=1, inner_lr=0.5, meta_batch=1,
        lora_rank=2, eval_every=1, val_episodes=1, val_queries=2, out=str(root / "fomaml")),
        progress=False, echo=lambda msg: None)
    return root / "fomaml"


def _eval(tmp_path, data, model, adapter, capsys, *extra):
    from iclmeta.cli.main import main
    code = main(["eval", "--method", "fomaml", "--adapter", str(adapter), "--dataset", data,
                 "--model", model, "--dtype", "float32", "--device", "cpu", "--shots", "1",
                 "--queries", "2", "--episodes", "1", "--out", str(tmp_path / "run"),
                 "--no-progress", *extra])
    return code, capsys.readouterr().err


def test_adapter_from_one_dataset_evaluates_on_another_without_allow_overlap(
        adapter, tiny_model_dir, tmp_path, capsys):
    """The small dataset shares class names with the training one (music, weather, ...) and
    none of its texts: no --allow-overlap needed, and every row says there is no overlap."""
    small = _write(tmp_path / "small.jsonl", ("music", "weather", "flight", "alarm"),
                   lambda i, j, label: f"{label} {WORDS[j]} {WORDS[-1 - i]} please")
    code, err = _eval(tmp_path, small, tiny_model_dir, adapter, capsys)
    assert code == 0, err
    rows = [json.loads(line) for line in (tmp_path / "run" / "results.jsonl").open()]
    assert rows and all(r["options"]["overlap"] is None for r in rows)
    assert {r["dataset"] for r in rows} == {"small"}


def test_a_text_the_adapter_saw_is_refused_on_another_dataset(adapter, tiny_model_dir, tmp_path,
                                                              capsys):
    seen = f"{WORDS[0]} flight {WORDS[0]}"  # row (i=0, j=0) of the training data
    small = _write(tmp_path / "small.jsonl", ("flight", "weather"), lambda i, j, label:
                   seen if (i, j) == (0, 0) else f"{label} {WORDS[j]} {WORDS[-1 - i]} please")
    code, err = _eval(tmp_path, small, tiny_model_dir, adapter, capsys)
    line = err.strip().splitlines()[-1]
    assert code == 2 and "1 evaluated text(s) were in its training data" in line, err
    assert "meta-train classes" not in line and not (tmp_path / "run").exists()


def test_training_on_a_dataset_too_small_for_a_meta_split_says_where_to_train(
        tiny_model_dir, tmp_path, capsys):
    """Seven classes (SNIPS' count): 60/20/20 leaves 1 meta-val class, whatever --ways."""
    from iclmeta.cli.main import main
    data = _write(tmp_path / "snips.jsonl", LABELS[:7], lambda i, j, label: f"{label} {WORDS[j]}")
    code = main(["train", "--method", "fomaml", "--dataset", data, "--model", tiny_model_dir,
                 "--device", "cpu", "--out", str(tmp_path / "a"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "Traceback" not in "\n".join(err)
    assert err[-1] == ("error: snips has 7 classes, too few for a class-disjoint meta-split: "
                       "--ways 5 needs at least 23 (60% meta-train, 20% meta-val); meta-train on a "
                       "dataset with more classes, e.g. --dataset clinc150.jsonl, then evaluate "
                       "here with --adapter")
    # Nothing written: the corrected command into the same --out is not refused as a resume
    # of a run "with different settings".
    assert not (tmp_path / "a").exists()


def test_too_many_ways_for_the_meta_val_split_names_the_largest_that_fits(tiny_model_dir,
                                                                          tmp_path, capsys):
    from iclmeta.cli.main import main
    data = _write(tmp_path / "mid.jsonl", LABELS, lambda i, j, label: f"{label} {WORDS[j]}")
    code = main(["train", "--method", "fomaml", "--dataset", data, "--model", tiny_model_dir,
                 "--device", "cpu", "--ways", "4", "--out", str(tmp_path / "a"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1] == ("error: --ways 4 is too many for mid's meta-val split (3 of "
                                     "its 15 classes); choose --ways between 2 and 3")
