"""Hugging Face dataset loading, exercised offline with local folders."""
import json

import pytest

from iclmeta.data.sources import load_dataset
from iclmeta.errors import UserError

datasets = pytest.importorskip("datasets")


def test_folder_of_split_files(tmp_path):
    folder = tmp_path / "intents"
    folder.mkdir()
    for split, n in (("train", 6), ("test", 3)):
        rows = [{"utterance": f"{split} {i}", "intent": f"i{i % 3}"} for i in range(n)]
        (folder / f"{split}.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    ds = load_dataset(str(folder))
    assert ds.labels() == ["i0", "i1", "i2"] and ds.splits() == ["test", "train"]
    assert len(ds.by_label("test")["i0"]) == 1


def test_saved_dataset_dict_with_classlabel(tmp_path):
    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["card_lost", "refund"])})
    dd = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"text": ["lost my card", "money back"],
                                             "label": [0, 1]}, features=features),
        "validation": datasets.Dataset.from_dict({"text": ["where is my card"], "label": [0]},
                                                 features=features)})
    dd.save_to_disk(str(tmp_path / "banking"))
    ds = load_dataset(str(tmp_path / "banking"))
    assert ds.labels() == ["card_lost", "refund"] and ds.splits() == ["train", "val"]
    assert ds.label_names["card_lost"] == "card lost"


def test_unreachable_hub_id_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(UserError, match="nonexistent-org/nonexistent-set"):
        load_dataset("nonexistent-org/nonexistent-set")


def test_unknown_field_on_hub_folder(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "train.jsonl").write_text(json.dumps({"body": "x", "y": "a"}))
    with pytest.raises(UserError, match="--text-field"):
        load_dataset(str(folder))


def test_saved_classlabel_dataset_gets_names_and_drops_unlabelled_rows(tmp_path):
    data = datasets.Dataset.from_dict({"premise": ["a dog runs", "a cat naps", "rain", "sun"],
                                       "hypothesis": ["an animal moves", "a dog runs", "wet",
                                                      "dry"],
                                       "label": [0, 1, 0, -1]})
    data = data.cast_column("label", datasets.ClassLabel(names=["entailment", "contradiction"]))
    data.save_to_disk(str(tmp_path / "tiny_nli"))
    ds = load_dataset(str(tmp_path / "tiny_nli"))
    # -1 marks an unlabelled row on the hub: left out, not read as the last class
    assert [e.label for e in ds.examples] == ["entailment", "contradiction", "entailment"]
    assert ds.examples[0].fields == {"premise": "a dog runs", "hypothesis": "an animal moves"}
    one = load_dataset(str(tmp_path / "tiny_nli"), text_field=["hypothesis"])
    assert one.examples[0].fields is None and one.examples[0].text == "an animal moves"


def test_hub_folder_labels_are_trimmed_and_checked(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    rows = [{"text": "x", "label": "yes "}, {"text": "y", "label": "yes"}]
    (folder / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    with pytest.raises(UserError, match="at least 2 classes, found only 'yes'"):
        load_dataset(str(folder))
