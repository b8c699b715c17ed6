"""The user's own files: every format, multi-field inputs, one file per split, and the flags
that ask for them (--text-field a,b; --data-files train=..,test=..; --encoding)."""
import shutil
from pathlib import Path

import pytest

from iclmeta.data.sources import load_dataset, load_source
from iclmeta.errors import UserError

FIXTURES = Path(__file__).parent / "fixtures" / "data"
FORMATS = ("nli.csv", "nli.tsv", "nli.json", "nli.jsonl")
FIRST = {"premise": "A man is playing a guitar on stage.",
         "hypothesis": "A person is making music."}


def _parquet(path: Path) -> Path:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rows = load_dataset(str(FIXTURES / "nli.jsonl"), text_field="premise,hypothesis").examples
    pq.write_table(pa.Table.from_pylist([{**ex.fields, "label": ex.label} for ex in rows]), path)
    return path


@pytest.mark.parametrize("name", FORMATS + ("nli.parquet",))
def test_every_format_gives_the_same_two_field_examples(name, tmp_path):
    path = _parquet(tmp_path / name) if name.endswith(".parquet") else FIXTURES / name
    ds = load_dataset(str(path), text_field=["premise", "hypothesis"])
    assert ds.name == "nli" and len(ds.examples) == 6
    assert ds.labels() == ["contradiction", "entailment", "neutral"]
    first = ds.examples[0]
    assert first.fields == FIRST and first.label == "entailment"
    assert first.text == f"premise: {FIRST['premise']}\nhypothesis: {FIRST['hypothesis']}"
    assert ds.examples[2].fields["premise"] == "A woman reads a newspaper, on a bench."


def test_premise_hypothesis_pair_is_guessed_and_order_follows_the_flag():
    guessed = load_dataset(str(FIXTURES / "nli.csv"))
    assert list(guessed.examples[0].fields) == ["premise", "hypothesis"]
    flipped = load_dataset(str(FIXTURES / "nli.csv"), text_field="hypothesis, premise")
    assert flipped.examples[0].text.startswith("hypothesis: A person is making music.")


def test_one_text_field_keeps_the_plain_example():
    ds = load_dataset(str(FIXTURES / "nli.csv"), text_field="hypothesis")
    first = ds.examples[0]
    assert first.fields is None and first.text == FIRST["hypothesis"] and first.id == "nli:0"


def test_a_missing_input_field_names_the_field(tmp_path):
    with pytest.raises(UserError, match="no text field 'hypo'.*premise, hypothesis, label"):
        load_dataset(str(FIXTURES / "nli.csv"), text_field="premise,hypo")
    path = tmp_path / "gap.jsonl"
    path.write_text('{"premise": "p", "hypothesis": "h", "label": "a"}\n'
                    '{"premise": "q", "label": "b"}\n')
    with pytest.raises(UserError, match="row 2 has no 'hypothesis'"):
        load_dataset(str(path), text_field="premise,hypothesis")


def test_data_files_give_each_file_its_split(tmp_path):
    train, test = tmp_path / "nli_train.csv", tmp_path / "nli_test.jsonl"
    shutil.copy(FIXTURES / "nli.csv", train)
    lines = (FIXTURES / "nli.jsonl").read_text().splitlines()
    test.write_text("\n".join(lines[:2] + [lines[2].replace("bench", "step")]))
    ds = load_dataset("snips", data_files={"train": str(train), "test": str(test)})
    assert ds.name == "nli" and ds.splits() == ["test", "train"]
    # the first two test rows repeat train rows: deduplication keeps the test copies
    assert [ex.split for ex in ds.examples] == ["train"] * 4 + ["test"] * 3
    assert ds.duplicates_removed == 2 and ds.examples[-1].id == "nli:test:2"
    ds = load_dataset("mynli", data_files={"train": str(train), "validation": str(test)},
                      text_field="premise")
    assert ds.name == "mynli" and ds.splits() == ["train", "validation"]
    assert ds.examples[0].id == "mynli:train:2" and ds.examples[0].fields is None


def test_data_files_mistakes_are_one_line(tmp_path):
    good = str(FIXTURES / "nli.csv")
    with pytest.raises(UserError, match="the test file .*missing.csv does not exist"):
        load_dataset("snips", data_files={"train": good, "test": str(tmp_path / "missing.csv")})
    with pytest.raises(UserError, match="unknown split 'tset'"):
        load_dataset("snips", data_files={"train": good, "tset": good})
    with pytest.raises(UserError, match="--split-field does not apply"):
        load_dataset("snips", split_field="split", data_files={"train": good})
    with pytest.raises(UserError, match="data_files must map splits to files"):
        load_dataset("snips", data_files="train=a.csv")  # a task file's string, not a mapping
    with pytest.raises(UserError, match="--dataset .*other.csv and --data-files"):
        load_dataset(good.replace("nli.csv", "other.csv"), data_files={"train": good})


def test_parquet_classlabel_columns_become_names(tmp_path):
    datasets = pytest.importorskip("datasets")
    data = datasets.Dataset.from_dict({"text": ["lost card", "refund please", "card gone"],
                                       "label": [0, 1, 0]})
    data = data.cast_column("label", datasets.ClassLabel(names=["card_lost", "refund"]))
    data.to_parquet(str(tmp_path / "bank.parquet"))
    ds = load_dataset(str(tmp_path / "bank.parquet"))
    assert [ex.label for ex in ds.examples] == ["card_lost", "refund", "card_lost"]


def test_cli_flags_parse_into_the_data_source(tmp_path):
    from iclmeta.cli.main import eval_config, parse
    train, test = FIXTURES / "nli.csv", FIXTURES / "nli.tsv"
    config = eval_config(parse(["eval", "--method", "knn", "--text-field", "premise,hypothesis",
                                "--data-files", f"train={train},test={test}",
                                "--encoding", "latin-1"]))
    assert config.text_field == ["premise", "hypothesis"] and config.encoding == "latin-1"
    assert config.data_files == {"train": str(train), "test": str(test)}
    ds = load_source(config)
    assert ds.splits() == ["test"] and ds.examples[0].fields == FIRST
    for bad in ("train", "train=a.csv,train=b.csv", "=a.csv"):
        with pytest.raises(UserError, match="--data-files"):
            parse(["eval", "--data-files", bad])


def test_config_round_trip_keeps_the_data_fields():
    from iclmeta.config import EvalConfig
    cfg = EvalConfig(dataset="nli", text_field=["premise", "hypothesis"],
                     data_files={"train": "a.csv", "test": "b.csv"}, encoding="cp1252")
    assert EvalConfig.from_dict(cfg.to_dict()) == cfg
