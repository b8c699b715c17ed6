import json

import pytest

from iclmeta.data.sources import load_dataset
from iclmeta.data.example import readable
from iclmeta.errors import UserError


def test_builtin_trec_coarse_and_fine():
    coarse, fine = load_dataset("trec"), load_dataset("trec-50")
    assert len(coarse.labels()) == 6 and len(fine.labels()) == 50
    assert coarse.splits() == ["test", "train"]
    assert len(coarse.by_label("test")["ABBR"]) == 9
    assert sum(len(v) for v in coarse.by_label("test").values()) == 500
    # every fine label has a hand-written readable name, not the raw code
    assert all(":" not in fine.label_names[label] for label in fine.labels())
    assert fine.label_names["HUM:ind"] == "individual person"


def test_builtin_snips_skips_canary_line():
    ds = load_dataset("snips")
    assert len(ds.examples) == 693 and len(ds.labels()) == 7
    assert ds.label_names["book_restaurant"] == "book restaurant"


def test_jsonl_and_csv_with_user_fields(tmp_path):
    rows = [{"body": f"text {i}", "cat": "a" if i % 2 else "b"} for i in range(6)]
    jl = tmp_path / "my.jsonl"
    jl.write_text("\n".join(json.dumps(r) for r in rows))
    ds = load_dataset(str(jl), text_field="body", label_field="cat")
    assert ds.labels() == ["a", "b"] and ds.examples[0].text == "text 0"
    assert ds.examples[0].id == "my:0" and ds.examples[0].split is None
    csv_path = tmp_path / "my.csv"
    csv_path.write_text("text,category,split\nhello,greet,train\nbye,leave,test\n")
    ds = load_dataset(str(csv_path), label_field="category")
    assert [e.split for e in ds.examples] == ["train", "test"]


def test_unknown_field_names_available_fields(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("sentence,tag\nhi,x\n")
    with pytest.raises(UserError, match="no label field 'category'.*sentence, tag"):
        load_dataset(str(path), label_field="category")
    with pytest.raises(UserError, match="--label-field"):
        load_dataset(str(path))


def test_malformed_jsonl_names_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n{"text": "b", "label":\n')
    with pytest.raises(UserError, match=r"bad.jsonl:2: malformed JSON"):
        load_dataset(str(path))


def test_missing_file_and_empty_label(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_dataset(str(tmp_path / "nope.csv"))
    path = tmp_path / "e.csv"
    path.write_text("text,label\nhi,\n")
    with pytest.raises(UserError, match="row 1"):
        load_dataset(str(path))


def test_readable():
    assert readable("book_flight") == "book flight"


def test_single_text_builtins_load_exactly_as_before():
    """Fingerprints of the builtins' examples, taken before multi-field inputs existed: ids,
    texts, labels, splits, label names and the dedup count must not move."""
    import hashlib
    expected = {"trec": (5871, "f923a41184048b15"), "trec-50": (5871, "2011464e42ca3a3b"),
                "snips": (693, "a4e034ad2ccd00e9")}
    for name, (count, digest) in expected.items():
        ds = load_dataset(name)
        content = [(e.id, e.text, e.label, e.split) for e in ds.examples]
        content += [sorted(ds.label_names.items()), ds.duplicates_removed, ds.name]
        assert len(ds.examples) == count
        assert hashlib.sha256(json.dumps(content).encode()).hexdigest()[:16] == digest, name
        assert all(e.fields is None for e in ds.examples)


def test_builtin_presup_nli_is_multi_field_with_a_grouped_split():
    ds = load_dataset("presup-nli")
    assert ds.labels() == ["contradiction", "entailment", "neutral"]
    assert len(ds.examples) == 732 and ds.duplicates_removed == 3  # 735 in BIG-bench
    assert ds.splits() == ["test", "train"]
    first = ds.examples[0]
    assert list(first.fields) == ["premise", "hypothesis"]
    assert first.fields["hypothesis"] == "He was standing earlier."
    assert first.text.startswith("premise: The cops had him") and "\nhypothesis: " in first.text
    test = ds.by_label("test")
    assert {label: len(v) for label, v in test.items()} == {
        "contradiction": 45, "entailment": 116, "neutral": 137}
    # the variants of one BIG-bench item never straddle the split
    from iclmeta.data.shipped import BUILTIN_DIR
    rows = [json.loads(line) for line in (BUILTIN_DIR / "presup_nli.jsonl").open()][1:]
    splits_of = {}
    for row in rows:
        splits_of.setdefault(row["item"], set()).add(row["split"])
    assert len(rows) == 735 and all(len(s) == 1 for s in splits_of.values())
