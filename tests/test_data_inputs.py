"""Bad data a user may bring (issue 14, "Inputs"): each is one line naming the problem and the
fix, through the CLI an ``error:`` line and exit status 2, never a traceback or a made-up class."""
import json

import pytest

from iclmeta.data.sources import load_dataset
from iclmeta.errors import UserError

ROWS = "text,label\nbonjour,greet\nau revoir,leave\n"


def _csv(tmp_path, text: str, name: str = "d.csv", encoding: str = "utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_non_utf8_file_names_the_encoding_and_the_flag_that_reads_it(tmp_path):
    path = _csv(tmp_path, "text,label\ncaf\u00e9 au lait,order\nthe bill,pay\n", "latin.csv",
                "latin-1")
    with pytest.raises(UserError, match=r"latin.csv:2: not valid utf-8 .*--encoding latin-1"):
        load_dataset(str(path))
    ds = load_dataset(str(path), encoding="latin-1")
    assert ds.examples[0].text == "caf\u00e9 au lait"
    with pytest.raises(UserError, match="unknown encoding 'klingon'"):
        load_dataset(str(path), encoding="klingon")


@pytest.mark.parametrize("name", ["bom.csv", "bom.tsv", "bom.jsonl", "bom.json"])
def test_a_utf8_bom_is_stripped_so_the_first_column_is_found(tmp_path, name):
    rows = [{"text": "bonjour", "label": "greet"}, {"text": "au revoir", "label": "leave"}]
    body = {".csv": ROWS, ".tsv": ROWS.replace(",", "\t"), ".json": json.dumps(rows),
            ".jsonl": "\n".join(json.dumps(r) for r in rows)}["." + name.split(".")[1]]
    path = tmp_path / name
    path.write_bytes(b"\xef\xbb\xbf" + body.encode())
    assert [e.text for e in load_dataset(str(path)).examples] == ["bonjour", "au revoir"]


def test_a_json_array_item_that_is_not_an_object_is_named(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps([{"text": "a", "label": "x"}, {"text": "b", "label": "y"},
                                ["c", "z"]]))
    with pytest.raises(UserError, match="item 2 of the JSON array is a list, not an object"):
        load_dataset(str(path))


def test_a_csv_row_with_extra_columns_names_its_line(tmp_path):
    path = _csv(tmp_path, "text,label\nhello there,greet\nsee you, later,leave\n")
    with pytest.raises(UserError, match=r"d.csv:3: CSV row has more columns than the header"):
        load_dataset(str(path))
    tsv = _csv(tmp_path, "text\tlabel\nhi\tgreet\nbye\tleave\textra\n", "d.tsv")
    with pytest.raises(UserError, match=r"d.tsv:3: TSV row has more columns"):
        load_dataset(str(tsv))


@pytest.mark.parametrize("name", ["notes.txt", "sheet.xlsx"])
def test_unsupported_file_types_say_what_is_supported(tmp_path, name):
    path = tmp_path / name
    path.write_text("hello\tgreet\n")
    with pytest.raises(UserError, match=r"unsupported file type '\.\w+'.*\.jsonl.*\.parquet"):
        load_dataset(str(path))


def test_missing_file_with_a_file_suffix_is_not_sent_to_the_hub(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_dataset("my_data.txt")


def test_a_dataset_folder_with_a_loading_script_is_refused(tmp_path):
    folder = tmp_path / "scripted"
    folder.mkdir()
    (folder / "train.jsonl").write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": "y"}')
    (folder / "scripted.py").write_text("raise SystemExit('data ran code')\n")
    with pytest.raises(UserError, match="loading script \\(scripted.py\\); iclmeta runs no code"):
        load_dataset(str(folder))


def test_a_single_class_dataset_needs_two(tmp_path):
    path = _csv(tmp_path, "text,label\nhi,greet\nhello,greet\n")
    with pytest.raises(UserError, match="needs at least 2 classes, found only 'greet'"):
        load_dataset(str(path))


def test_labels_differing_by_surrounding_whitespace_are_one_label(tmp_path):
    path = _csv(tmp_path, 'text,label\nhi,greet\nhello," greet "\nbye,leave\n')
    ds = load_dataset(str(path))
    assert ds.labels() == ["greet", "leave"] and len(ds.by_label()["greet"]) == 2


@pytest.mark.parametrize("a,b", [("Weather", "weather"), ("book_flight", "book flight")])
def test_labels_that_read_the_same_are_refused_by_name(tmp_path, a, b):
    path = _csv(tmp_path, f"text,label\nrain today?,{a}\nsunny?,{b}\nfly me,other\n")
    with pytest.raises(UserError, match=f"labels '{b}' and '{a}'|labels '{a}' and '{b}'"):
        load_dataset(str(path))


@pytest.mark.parametrize("typo,meant", [("snps", "snips"), ("trec50", "trec-50"),
                                        ("presup", "presup-nli")])
def test_a_mistyped_builtin_name_suggests_the_closest(typo, meant, monkeypatch):
    import iclmeta.data.hub as hub
    monkeypatch.setattr(hub, "_open", lambda *a: pytest.fail("sent to the hub"))
    with pytest.raises(UserError, match=f"unknown dataset '{typo}'; did you mean {meant}"):
        load_dataset(typo)


def test_a_hub_id_or_distant_name_still_goes_to_the_hub(monkeypatch):
    import iclmeta.data.hub as hub
    asked = []

    def fake_open(source, config):
        asked.append(source)
        raise UserError("reached the hub")
    monkeypatch.setattr(hub, "_open", fake_open)
    for name in ("clinc_oos", "stanfordnlp/snli"):
        with pytest.raises(UserError, match="reached the hub"):
            load_dataset(name)
    assert asked == ["clinc_oos", "stanfordnlp/snli"]


def test_the_cli_prints_one_line_and_exits_2(tmp_path, capsys):
    from iclmeta.cli.main import main
    path = _csv(tmp_path, "text,label\nhello there,greet\nsee you, later,leave\n")
    code = main(["eval", "--method", "knn", "--dataset", str(path), "--out",
                 str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "d.csv:3" in err
    assert not (tmp_path / "run").exists()


def test_a_field_holding_a_list_is_not_turned_into_text(tmp_path):
    path = tmp_path / "nested.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n{"text": ["b", "c"], "label": "y"}\n')
    with pytest.raises(UserError, match="row 2: 'text' holds a list, not text"):
        load_dataset(str(path))


def test_a_repeated_csv_column_is_refused_not_overwritten(tmp_path):
    path = _csv(tmp_path, "text,label,text\nhi,greet,hello\nbye,leave,ciao\n")
    with pytest.raises(UserError, match="d.csv:1: the CSV header names column 'text' twice"):
        load_dataset(str(path))


def test_a_pretty_printed_json_object_says_what_shape_is_expected(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"rows": [{"text": "a", "label": "x"}]}, indent=2))
    with pytest.raises(UserError, match="one JSON object spread over lines; give an array"):
        load_dataset(str(path))



def test_builtin_honours_text_field():
    # Regression: --text-field was silently ignored for builtins.
    hyp = load_dataset("presup-nli", text_field="hypothesis")
    assert hyp.examples[0].fields is None and "hypothesis:" not in hyp.examples[0].text
    both = load_dataset("presup-nli")
    assert both.examples[0].fields and list(both.examples[0].fields) == ["premise", "hypothesis"]
    with pytest.raises(UserError, match="nope"):
        load_dataset("snips", text_field="nope")
