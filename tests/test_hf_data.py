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
