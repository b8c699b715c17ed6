"""Exported predictors answer as the harness does: ``Predictor`` and ``iclmeta export`` /
``iclmeta predict`` on a tiny random LM and a tiny embedder."""
import io
import json

import pytest

from conftest import TINY_WORDS
from iclmeta.cli.main import main
from iclmeta.config import EvalConfig

SHOTS = 2
LABELS = ("location", "number", "person", "entity")


@pytest.fixture(scope="module")
def tiny_embedder_dir(tmp_path_factory):
    """A tiny sentence-transformers folder whose tokenizer knows the words (so texts get
    different vectors and the scores below tell queries apart)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("predictor_embedder")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(set(TINY_WORDS))
    BertTokenizerFast(vocab={w: i for i, w in enumerate(words)}).save_pretrained(folder / "hf")
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=64,
                         max_position_embeddings=64)).save_pretrained(folder / "hf")
    SentenceTransformer(modules=[Transformer(str(folder / "hf")), Pooling(32, "mean")],
                        device="cpu").save(str(folder / "st"))
    return str(folder / "st")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """4 classes x 6 examples: class c's texts share two words; the labels are words of the
    tiny LM's vocabulary (so its label scores differ and LoRA steps change them)."""
    import numpy as np

    words = TINY_WORDS[20:44]
    rng = np.random.default_rng(0)
    rows = [{"text": " ".join([words[2 * c], words[2 * c + 1], *rng.choice(words, 2)]),
             "label": label} for c, label in enumerate(LABELS) for _ in range(6)]
    path = tmp_path_factory.mktemp("predictor_data") / "words.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def make_config(data, tiny_model_dir, tiny_embedder_dir, tmp_path):
    def make(name: str, **kw) -> EvalConfig:
        extra = {"adapt_steps": 1, "lora_rank": 2} if name == "finetune" else {}
        return EvalConfig(methods=[name], dataset=str(data), model=tiny_model_dir,
                          embedder=tiny_embedder_dir, cache_dir=str(tmp_path / "cache"),
                          shots=[SHOTS], queries=2, episodes=1, dtype="float32",
                          log_scores=True, **extra, **kw)
    return make


def _create(config, ds, support, classes):
    from iclmeta.deploy.export import resolve
    from iclmeta.deploy.predictor import Predictor
    return Predictor.create(resolve(config, SHOTS, len(classes), SHOTS), ds, support, classes,
                            SHOTS)


@pytest.mark.parametrize("name", ["retrieval", "icl", "protonet", "knn", "finetune"])
def test_predictions_are_the_harness_predictions(make_config, tmp_path, name):
    from iclmeta.deploy.predictor import Predictor
    from iclmeta.harness.evaluate import prepare
    from iclmeta.harness.registry import build_method
    from iclmeta.harness.resources import Resources

    config = make_config(name)
    ds, _, (episode,) = prepare(config)
    method = build_method(name, Resources(config, ds))
    method.fit()
    measured = method.predict(episode, SHOTS)
    predictor = _create(config, ds, episode.support_set(SHOTS), episode.classes)
    texts = [q.text for q in episode.query]
    labels, scores = predictor.predict(texts)
    assert (labels, scores) == (measured.labels, measured.scores)
    assert len({json.dumps(s, sort_keys=True) for s in scores}) == len(texts)  # real scores
    loaded = Predictor.load(predictor.save(tmp_path / "p"))
    assert loaded.predict(texts) == (labels, scores)
    batched_labels, batched = loaded.predict(texts, batch_size=2)
    assert batched_labels == labels
    for got, want in zip(batched, scores):
        assert got == pytest.approx(want, abs=1e-4)
    manifest = json.loads((tmp_path / "p" / "predictor.json").read_text())
    assert manifest["method"] == name and manifest["shots"] == SHOTS
    assert manifest["classes"] == list(episode.classes)
    assert {"config.yaml", "examples.jsonl", "template.yaml"} <= set(manifest["files"])
    model = "embedder" if name in ("protonet", "knn") else "lm"
    assert manifest["provenance"]["models"][model]["weights_sha256"]


@pytest.mark.parametrize("name", ["retrieval", "knn"])
def test_added_example_is_seen_and_kept(make_config, tmp_path, name):
    from iclmeta.data.sources import load_source
    from iclmeta.deploy.export import choose_support
    from iclmeta.deploy.predictor import Predictor

    config = make_config(name)
    ds = load_source(config)
    classes, support = choose_support(ds, SHOTS, config.seed)
    predictor = _create(config, ds, support, classes)
    unseen = next(e for e in ds.examples if e not in support)
    before = predictor.predict([unseen.text])[0][0]
    other = next(c for c in classes if c != before)
    index = getattr(predictor.part, "index", None)
    predictor.add([(unseen.text, other)])
    new_id = f"added:{len(support)}"
    answer = predictor.prediction([unseen.text])
    if name == "knn":  # its own copy is the nearest example
        assert answer.labels == [other] and answer.demo_ids == [[new_id]]
    else:  # the index grew in place, and the copy is the nearest demonstration (shown last)
        assert predictor.part.index is index and index.ntotal == len(support) + 1
        assert answer.demo_ids[0][-1] == new_id
    loaded = Predictor.load(predictor.save(tmp_path / "p"))
    assert loaded.prediction([unseen.text]).demo_ids == answer.demo_ids
    assert len(loaded.pool) == len(support) + 1 and loaded.pool[-1].label == other
    with pytest.raises(Exception, match="not one of this predictor's classes"):
        loaded.add([("a new text", "no_such_class")])


def _export_args(data, tiny_embedder_dir, tmp_path, out, *extra):
    return ["export", "--method", "protonet", "--dataset", str(data), "--embedder",
            tiny_embedder_dir, "--cache-dir", str(tmp_path / "cache"), "--out", str(out),
            "--no-progress", *extra]


def _one_error(err: str) -> str:
    """The one ``error:`` line of stderr (model loading may print progress before it)."""
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


def _lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def test_cli_export_then_predict_texts_and_stdin(data, tiny_embedder_dir, tmp_path, capsys,
                                                monkeypatch):
    from iclmeta.deploy.predictor import Predictor

    out = tmp_path / "pred"
    assert main(_export_args(data, tiny_embedder_dir, tmp_path, out)) == 0
    assert "iclmeta predict" in capsys.readouterr().out
    manifest = json.loads((out / "predictor.json").read_text())
    assert manifest["shots"] == "all" and sum(manifest["support_per_class"].values()) == 24
    texts = ["flight book city", "music play song"]
    assert main(["predict", str(out), *texts]) == 0
    rows = _lines(capsys.readouterr().out)
    labels, scores = Predictor.load(out).predict(texts)
    assert rows == [{"text": t, "label": lb, "scores": s}
                    for t, lb, s in zip(texts, labels, scores)]
    monkeypatch.setattr("sys.stdin", io.StringIO(
        json.dumps({"id": 7, "text": texts[0], "label": "ignored"}) + "\n\n" + texts[1] + "\n"))
    assert main(["predict", str(out), "--no-scores", "--batch-size", "1"]) == 0
    assert _lines(capsys.readouterr().out) == [{"id": 7, "text": texts[0], "label": labels[0]},
                                               {"text": texts[1], "label": labels[1]}]
    monkeypatch.setattr("sys.stdin", io.StringIO('{"body": "flight"}\n'))
    assert main(["predict", str(out)]) == 2
    assert "stdin line 1 has no 'text' field" in _one_error(capsys.readouterr().err)
    # exporting again into a predictor folder replaces it whole
    assert main(_export_args(data, tiny_embedder_dir, tmp_path, out, "--shots", "3")) == 0
    assert json.loads((out / "predictor.json").read_text())["support_per_class"] == {
        label: 3 for label in sorted(LABELS)}


def test_export_from_a_recommend_folder(data, tiny_embedder_dir, tmp_path, capsys):
    raced = EvalConfig(methods=["zero-shot", "knn"], dataset=str(data), shots=[3],
                       embedder=tiny_embedder_dir, cache_dir=str(tmp_path / "cache"))
    folder = tmp_path / "rec"
    folder.mkdir()
    (folder / "recommend.json").write_text(json.dumps(
        {"winner": "knn", "shots": 3, "config": raced.to_dict()}))
    out = tmp_path / "pred"
    assert main(["export", "--from", str(folder), "--out", str(out), "--no-progress"]) == 0
    manifest = json.loads((out / "predictor.json").read_text())
    assert (manifest["method"], manifest["shots"]) == ("knn", 3)
    assert set(manifest["support_per_class"].values()) == {3}


@pytest.fixture
def exported(data, tiny_embedder_dir, tmp_path, capsys):
    out = tmp_path / "pred"
    assert main(_export_args(data, tiny_embedder_dir, tmp_path, out, "--shots", "2")) == 0
    capsys.readouterr()
    return out


def _edit_manifest(out, **changes):
    manifest = json.loads((out / "predictor.json").read_text())
    (out / "predictor.json").write_text(json.dumps({**manifest, **changes}))


@pytest.mark.parametrize("damage, message", [
    (lambda out: (out / "examples.jsonl").unlink(), "is missing examples.jsonl; re-export it"),
    (lambda out: (out / "config.yaml").write_text("config: {}\n"),
     "config.yaml differs from the exported file (sha256)"),
    (lambda out: _edit_manifest(out, format=99, iclmeta="9.9"),
     "made by iclmeta 9.9 (predictor format 99)"),
    (lambda out: (out / "predictor.json").unlink(), "holds no predictor.json"),
])
def test_damaged_predictor_folder_is_one_line_exit_2(exported, capsys, damage, message):
    damage(exported)
    assert main(["predict", str(exported), "flight"]) == 2
    assert message in _one_error(capsys.readouterr().err)


@pytest.mark.parametrize("extra, message", [
    (["--shots", "7"], "has 6 labelled examples, fewer than --shots 7"),
    (["--shots", "0"], "must be a positive number of examples per class, or 'all'"),
    (["--method", "nope"], "unknown method 'nope'"),
    (["--adapt-steps", "2"], "--adapt-steps does not apply to 'export --method protonet'"),
    (["--method", "retrieve-adapt"], "retrieve-adapt adapts a LoRA per query at prediction"),
])
def test_bad_export_is_one_line_exit_2(data, tiny_embedder_dir, tmp_path, capsys, extra,
                                       message):
    out = tmp_path / "pred"
    assert main(_export_args(data, tiny_embedder_dir, tmp_path, out, *extra)) == 2
    assert message in _one_error(capsys.readouterr().err)
    assert not out.exists()


def test_export_refuses_a_folder_it_did_not_make(data, tiny_embedder_dir, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert main(_export_args(data, tiny_embedder_dir, tmp_path, out)) == 2
    assert "is not empty and was not made by 'iclmeta export'" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert main(["export", "--out", str(tmp_path / "p"), "--dataset", str(data)]) == 2
    assert "export needs --method M or --from RECOMMEND_DIR" in capsys.readouterr().err


def test_multi_field_predictor_takes_dicts_of_fields(make_config, tmp_path, capsys,
                                                    monkeypatch):
    from iclmeta.deploy.predictor import Predictor
    from iclmeta.harness.evaluate import prepare
    from iclmeta.harness.registry import build_method
    from iclmeta.harness.resources import Resources

    words = TINY_WORDS[20:44]
    rows = [{"premise": f"{words[i]} {words[i + c + 1]}", "hypothesis": f"{words[2 * i + c]}",
             "label": label} for c, label in enumerate(("yes", "no")) for i in range(8)]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = make_config("knn")
    config.dataset, config.text_field = str(path), ["premise", "hypothesis"]
    ds, _, (episode,) = prepare(config)
    method = build_method("knn", Resources(config, ds))
    method.fit()
    measured = method.predict(episode, SHOTS)
    predictor = _create(config, ds, episode.support_set(SHOTS), episode.classes)
    inputs = [dict(q.fields) for q in episode.query]
    assert predictor.predict(inputs) == (measured.labels, measured.scores)
    with pytest.raises(Exception, match="takes the fields 'premise', 'hypothesis'"):
        predictor.predict(["just text"])
    with pytest.raises(Exception, match="input 1 has no 'hypothesis' field"):
        predictor.predict([{"premise": "flight"}])
    out = predictor.save(tmp_path / "p")
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(inputs[0]) + "\n"))
    assert main(["predict", str(out)]) == 0
    (row,) = _lines(capsys.readouterr().out)  # one query alone: scores equal to float error
    assert row == {**inputs[0], "label": measured.labels[0], "scores": row["scores"]}
    assert row["scores"] == pytest.approx(measured.scores[0], abs=1e-4)
    assert Predictor.load(out).fields == ["premise", "hypothesis"]
