"""Provenance in config.yaml: versions, git state, date, device and dtype, and a hash of every
model the run used (cached by path, size and mtime); ``--config`` ignores it."""
import hashlib
import json
import os
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from iclmeta.cli.main import main
from iclmeta.errors import UserError
from iclmeta.harness.provenance import (file_digest, git_state, gguf_origin, library_versions,
                                        model_record, resumed)
from iclmeta.io import load_yaml

from test_harness import run_args, tiny_data, with_methods  # noqa: F401  (fixtures)


def _sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_a_run_records_versions_models_and_their_hashes(run_args, tmp_path,  # noqa: F811
                                                        tiny_model_dir, tiny_embedder_dir):
    out = tmp_path / "run"
    assert main(run_args + ["--out", str(out)]) == 0
    recorded = load_yaml(out / "config.yaml")
    prov = recorded["provenance"]
    import torch
    import transformers
    assert prov["libraries"]["torch"] == torch.__version__
    assert prov["libraries"]["transformers"] == transformers.__version__
    assert set(prov["libraries"]) == {"iclmeta", "torch", "transformers", "peft",
                                      "sentence-transformers", "faiss", "datasets"}
    assert datetime.fromisoformat(prov["date"]).utcoffset().total_seconds() == 0
    assert (prov["device"], prov["dtype"]) == ("cpu", "float32")
    lm, embedder = prov["models"]["lm"], prov["models"]["embedder"]
    assert lm["path"] == str(Path(tiny_model_dir).resolve())
    assert lm["weights_sha256"] == {"model.safetensors":
                                    _sha(Path(tiny_model_dir) / "model.safetensors")}
    assert embedder["weights_sha256"] and all(
        _sha(Path(embedder["path"]) / name) == digest
        for name, digest in embedder["weights_sha256"].items())
    # the hashes are cached in the model cache, keyed by path, size and mtime
    cached = json.loads((tmp_path / "cache" / "hashes.json").read_text())
    assert set(cached.values()) >= set(lm["weights_sha256"].values())
    assert recorded["config"]["out"] == str(out)


def test_only_the_models_a_run_uses_are_described(run_args, tmp_path):  # noqa: F811
    args = with_methods(run_args, "knn", drop=("--dtype",))
    out = tmp_path / "metric"
    assert main(args + ["--out", str(out)]) == 0
    prov = load_yaml(out / "config.yaml")["provenance"]
    assert set(prov["models"]) == {"embedder"} and prov["dtype"] is None


def test_file_digests_are_cached_by_path_size_and_mtime(tmp_path):
    weights, cache = tmp_path / "w.safetensors", tmp_path / "cache"
    weights.write_bytes(b"weights")
    assert file_digest(weights, cache) == _sha(weights)
    index = cache / "hashes.json"
    entries = json.loads(index.read_text())
    index.write_text(json.dumps({k: "from the cache" for k in entries}))
    assert file_digest(weights, cache) == "from the cache"  # not hashed again
    weights.write_bytes(b"other weights")
    os.utime(weights, ns=(1, 1))
    assert file_digest(weights, cache) == _sha(weights)
    assert len(json.loads(index.read_text())) == 1  # the stale entry is replaced


def test_a_dequantized_gguf_model_names_its_origin(tmp_path):
    gguf = tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    gguf.write_bytes(b"gguf bytes")
    folder = tmp_path / "converted"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"float weights")
    (folder / "iclmeta-source.json").write_text(json.dumps({"gguf": str(gguf)}))
    record = model_record("smollm2", str(folder), tmp_path / "cache")
    assert record["origin"]["quantization"] == "Q4_1"
    assert record["origin"]["sha256"] == _sha(gguf)
    assert "dequantized" in record["origin"]["loaded_as"]
    assert gguf_origin(Path("gemma-3-270m-q4_k_m.gguf"), None)["quantization"] == "Q4_K_M"
    assert gguf_origin(Path("gone.gguf"), None)["sha256"] is None
    assert model_record("org/model", "org/model", None)["weights_sha256"] is None  # a hub id


def test_versions_and_git_state_never_fail(tmp_path, monkeypatch):
    assert library_versions()["iclmeta"]
    assert git_state(tmp_path) is None  # not a checkout
    monkeypatch.setenv("PATH", str(tmp_path))  # no git at all
    assert git_state() is None
    monkeypatch.undo()
    try:
        subprocess.run(["git", "--version"], capture_output=True, check=True)
    except (OSError, subprocess.SubprocessError):
        pytest.skip("git is not installed")
    state = git_state()
    assert state is None or (len(state["commit"]) == 40 and isinstance(state["dirty"], bool))


def test_resume_keeps_the_first_sessions_provenance_and_refuses_other_weights():
    first = {"date": "d1", "models": {"lm": {"name": "m", "weights_sha256": {"w": "a"}}}}
    later = {"date": "d2", "models": {"lm": {"name": "m", "weights_sha256": {"w": "a"}}}}
    merged = resumed(first, later, "runs/x")
    assert merged["date"] == "d1" and merged["resumed"] == [later]
    assert resumed(merged, later, "runs/x")["resumed"] == [later, later]
    assert resumed(None, later, "runs/x") == later  # an earlier version recorded none
    changed = {"date": "d3", "models": {"lm": {"name": "m", "weights_sha256": {"w": "b"}}}}
    with pytest.raises(UserError, match="the lm .m. has other weights"):
        resumed(first, changed, "runs/x")
