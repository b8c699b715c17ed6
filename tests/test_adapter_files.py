"""Damaged adapter and metric-checkpoint folders: one line naming the file and the fix, exit 2,
before any run folder is written, whatever part of the folder is wrong.

Each case damages a copy of a real adapter (one reptile meta-step on the tiny Llama). Cases that
change the tensors re-sign the weights file (its sha256 in ``adapter.json``), as a buggy tool or
a hand edit would, so that the checks behind the checksum are reached too.
"""
import hashlib
import json
import shutil

import pytest

from iclmeta.errors import UserError

LABELS = ("flight", "weather", "music", "alarm", "timer", "song", "city", "movie", "film",
          "review", "book", "cancel", "play", "set", "today")
WORDS = "the a what is good bad tomorrow question answer number location person".split()


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model_dir):
    """(dataset path, adapter folder) from one reptile meta-step."""
    from iclmeta.config import MetaTrainConfig
    from iclmeta.meta.train import meta_train
    root = tmp_path_factory.mktemp("adapter_files")
    rows = [{"text": f"{WORDS[(i + j) % len(WORDS)]} {label} {WORDS[(i * j) % len(WORDS)]}",
             "label": label} for i, label in enumerate(LABELS) for j in range(6)]
    (root / "tiny.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    meta_train(MetaTrainConfig(
        method="reptile", dataset=str(root / "tiny.jsonl"), model=tiny_model_dir,
        dtype="float32", device="cpu", ways=3, shots=[1, 2], queries=2, steps=1, inner_steps=1,
        inner_lr=0.5, meta_batch=2, lora_rank=2, eval_every=1, val_episodes=1, val_queries=2,
        out=str(root / "adapter")), progress=False, echo=lambda msg: None)
    return str(root / "tiny.jsonl"), root / "adapter"


def index(folder):
    return json.loads((folder / "adapter.json").read_text())


def rewrite(folder, **changes):
    (folder / "adapter.json").write_text(json.dumps({**index(folder), **changes}))


def weights(folder):
    return folder / index(folder)["weights"]


def retensor(change):
    """Change the stored tensors and re-sign them, so only the later checks can object."""
    def damage(folder):
        from safetensors.torch import load_file, save_file
        tensors = load_file(str(weights(folder)))
        change(tensors)
        save_file(tensors, str(weights(folder)))
        rewrite(folder, weights_sha256=hashlib.sha256(weights(folder).read_bytes()).hexdigest())
    return damage


def first(tensors):
    return next(iter(sorted(tensors)))


def lora(folder, **changes):
    rewrite(folder, lora={**index(folder)["lora"], **changes})


def _drop(folder, key):
    meta = index(folder)
    del meta[key]
    (folder / "adapter.json").write_text(json.dumps(meta))


def other_weights(folder):  # a complete file, but not the one adapter.json was saved with
    shutil.copy(next(folder.glob("last-*.safetensors")), weights(folder))


CASES = {  # name: (damage, what the line says)
    "truncated": (lambda f: weights(f).write_bytes(weights(f).read_bytes()[:300]),
                  "is truncated or not the file saved with it"),
    "empty": (lambda f: weights(f).write_bytes(b""), "is empty"),
    "missing": (lambda f: weights(f).unlink(), "is missing"),
    "mismatched": (other_weights, "is truncated or not the file saved with it"),
    "invalid json": (lambda f: (f / "adapter.json").write_text('{"format": '), "not readable JSON"),
    "not utf-8": (lambda f: (f / "adapter.json").write_bytes(b'{"x": "\xff"}'), "not readable JSON"),
    "json array": (lambda f: (f / "adapter.json").write_text("[]"), "a JSON list, not an object"),
    "missing key": (lambda f: _drop(f, "train"), "has no 'train'"),
    "wrong type": (lambda f: lora(f, rank="2"), "'lora.rank' = '2' of the wrong type"),
    "rank disagrees": (lambda f: lora(f, rank=4), "lora_B [64, 2], not rank 4"),
    "targets disagree": (lambda f: lora(f, targets=["q_proj"]),
                         "it adapts ['q_proj', 'v_proj'], the metadata says targets ['q_proj']"),
    "tensor missing": (retensor(lambda t: t.pop(first(t))), "without its partner"),
    "stray tensor": (retensor(lambda t: t.update(extra=t[first(t)].clone())), "'extra' is not a LoRA"),
    "non-finite": (retensor(lambda t: t[first(t)].fill_(float("nan"))), "non-finite values"),
    "integer dtype": (retensor(lambda t: t.update({k: v.int() for k, v in t.items()})),
                      "not floating point"),
}


def run_eval(data, model, adapter, out, capsys):
    from iclmeta.cli.main import main
    code = main(["eval", "--method", "reptile", "--adapter", str(adapter), "--dataset", data,
                 "--model", model, "--dtype", "float32", "--device", "cpu", "--class-split",
                 "disjoint", "--ways", "3", "--shots", "0,1", "--episodes", "1", "--out",
                 str(out), "--no-progress", "--allow-overlap"])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("case", CASES)
def test_damaged_adapter_is_one_line_before_anything_is_written(trained, tiny_model_dir, tmp_path,
                                                                capsys, case):
    data, adapter = trained
    damage, says = CASES[case]
    folder = tmp_path / "adapter"
    shutil.copytree(adapter, folder)
    damage(folder)
    code, err = run_eval(data, tiny_model_dir, folder, tmp_path / "run", capsys)
    assert code == 2 and "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"error: adapter file {folder / 'adapter.json'}: "), line
    assert says in line and line.endswith("retrain it with 'iclmeta train' or pass the right "
                                          "--adapter"), line
    assert not (tmp_path / "run").exists()


def test_adapter_for_another_base_model_is_refused_by_its_shapes(trained, tmp_path, capsys):
    """Metadata naming this model over tensors shaped for another (hidden size 64 vs 32)."""
    from conftest import build_tiny_model, build_tiny_tokenizer
    data, adapter = trained
    tok = build_tiny_tokenizer()
    build_tiny_model(len(tok), hidden_size=32, intermediate_size=64).save_pretrained(
        tmp_path / "narrow")
    tok.save_pretrained(tmp_path / "narrow")
    folder = tmp_path / "adapter"
    shutil.copytree(adapter, folder)
    rewrite(folder, model=str(tmp_path / "narrow"))
    code, err = run_eval(data, str(tmp_path / "narrow"), folder, tmp_path / "run", capsys)
    line = err.strip().splitlines()[-1]
    assert code == 2 and "Traceback" not in err
    assert f"adapter file {folder / 'adapter.json'}: it does not fit model" in line
    assert "has shape [2, 64] where the model needs [2, 32]" in line
    assert not (tmp_path / "run").exists()


def test_lora_target_that_names_no_module_is_one_line(tiny_model_and_tokenizer):
    from conftest import build_tiny_model
    from iclmeta.meta.lora import LoraSpec, attach_lora
    _, tok = tiny_model_and_tokenizer
    with pytest.raises(UserError, match="LoRA target 'c_attn' names no module of this model; "
                                        "its linear layers are .*q_proj"):
        attach_lora(build_tiny_model(len(tok)), tok, LoraSpec(rank=2, targets=("c_attn",)))


# -- metric checkpoints: the same checks ------------------------------------------------------
def metric_checkpoint(folder):
    from iclmeta.metric.checkpoints import save_checkpoint
    from iclmeta.metric.nets import MetricNet
    return save_checkpoint(MetricNet("protonet", 4, head="linear"), folder, {"embedder": "e"})


def resign(folder, change):
    from safetensors.torch import load_file, save_file
    config = json.loads((folder / "config.json").read_text())
    path = folder / config["weights"]
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path))
    config["weights_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (folder / "config.json").write_text(json.dumps(config))


def edit_config(folder, change):
    config = json.loads((folder / "config.json").read_text())
    change(config)
    (folder / "config.json").write_text(json.dumps(config))


METRIC_CASES = {
    "json array": (lambda f: (f / "config.json").write_text("[1]"), "a JSON list"),
    "not utf-8": (lambda f: (f / "config.json").write_bytes(b"\xff\xfe"), "not readable JSON"),
    "missing net": (lambda f: edit_config(f, lambda c: c.pop("net")), "no valid 'net'"),
    "net disagrees": (lambda f: edit_config(f, lambda c: c["net"].update(dim=8)),
                      "its weights disagree with its 'net' settings"),
    "net bad key": (lambda f: edit_config(f, lambda c: c["net"].update(width=3)),
                    "its weights disagree with its 'net' settings"),
    "empty weights": (lambda f: next(f.glob("model-*")).write_bytes(b""), "is empty"),
    "non-finite": (lambda f: resign(f, lambda t: t["log_scale"].fill_(float("inf"))),
                   "non-finite values"),
}


@pytest.mark.parametrize("case", METRIC_CASES)
def test_damaged_metric_checkpoint_is_one_line(tmp_path, case):
    from iclmeta.metric.checkpoints import load_checkpoint
    folder = metric_checkpoint(tmp_path / "ck")
    damage, says = METRIC_CASES[case]
    damage(folder)
    with pytest.raises(UserError) as caught:
        load_checkpoint(folder)
    message = str(caught.value)
    assert message.startswith(f"checkpoint file {folder / 'config.json'}: ") and says in message
    assert message.endswith("retrain it with 'iclmeta train' or pass the right --checkpoint")
    assert "\n" not in message


def test_adapter_saved_before_checksums_still_loads_and_is_still_checked(trained):
    """An adapter.json without weights_sha256 (older iclmeta) loads; damage is still caught."""
    from iclmeta.meta.checkpoints import load_adapter
    _, adapter = trained
    folder = adapter.parent / "unsigned"
    shutil.copytree(adapter, folder)
    _drop(folder, "weights_sha256")
    tensors, meta = load_adapter(folder)
    assert meta["method"] == "reptile" and tensors
    weights(folder).write_bytes(weights(folder).read_bytes()[:300])
    with pytest.raises(UserError, match="is unreadable"):
        load_adapter(folder)
    shutil.rmtree(folder)
