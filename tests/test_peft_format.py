"""Adapters written by ``iclmeta train`` are PEFT LoRA adapter folders too.

``peft.PeftModel.from_pretrained(base, folder)`` must load exactly the weights iclmeta trained
(tensor names and shapes as PEFT saves them, ``scaling = alpha / rank``): its logits equal
iclmeta's own LoRA forward (``functional_call`` with the fast weights) in fp32. Folders saved
before the PEFT files existed still load, and ``export_peft`` adds the files to them.
"""
import json
import shutil

import pytest
import torch

LABELS = ("flight", "weather", "music", "alarm", "timer", "song", "city", "movie", "film",
          "review", "book", "cancel", "play", "set", "today")
WORDS = "the a what is good bad tomorrow question answer number location person".split()


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model_dir):
    """An adapter folder from one fomaml meta-step on the tiny Llama (rank 2, alpha 16)."""
    from iclmeta.config import MetaTrainConfig
    from iclmeta.meta.train import meta_train
    root = tmp_path_factory.mktemp("peft_format")
    rows = [{"text": f"{WORDS[(i + j) % len(WORDS)]} {label} {WORDS[(i * j) % len(WORDS)]}",
             "label": label} for i, label in enumerate(LABELS) for j in range(6)]
    (root / "tiny.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    meta_train(MetaTrainConfig(
        method="fomaml", dataset=str(root / "tiny.jsonl"), model=tiny_model_dir,
        dtype="float32", device="cpu", ways=3, shots=[1], queries=2, steps=1, inner_steps=1,
        inner_lr=0.5, meta_batch=1, lora_rank=2, eval_every=1, val_episodes=1, val_queries=2,
        out=str(root / "adapter")), progress=False, echo=lambda msg: None)
    return root / "adapter"


def _fresh_model():
    from conftest import build_tiny_model, build_tiny_tokenizer
    tokenizer = build_tiny_tokenizer()
    return build_tiny_model(len(tokenizer)), tokenizer


def _randomise(folder):
    """Replace the adapter's weights with large random ones (a trained B after one step is
    tiny, so equal logits would prove little), saved the way the trainer saves them."""
    from iclmeta.meta.checkpoints import export_peft, load_adapter, save_adapter
    tensors, meta = load_adapter(folder)
    gen = torch.Generator().manual_seed(0)
    noisy = {k: torch.randn(v.shape, generator=gen) * 0.5 for k, v in tensors.items()}
    keep = {k: v for k, v in meta.items() if k not in ("weights", "weights_sha256")}
    save_adapter(folder, "best", noisy, keep)
    export_peft(folder)
    return noisy


def _iclmeta_logits(folder, ids):
    """Logits of iclmeta's LoRA forward with the adapter's weights (what training scores)."""
    from torch.func import functional_call

    from iclmeta.meta.checkpoints import adapter_weights, load_adapter
    from iclmeta.meta.lora import LoraSpec, attach_lora
    tensors, meta = load_adapter(folder)
    model, tokenizer = _fresh_model()
    lora = attach_lora(model, tokenizer, LoraSpec.from_dict(meta["lora"]))
    params = adapter_weights(lora, tensors, folder / "adapter.json", "tiny")
    with torch.no_grad():
        weights = {k.removeprefix("model."): v for k, v in params.items()}
        return functional_call(model, weights, (ids,), strict=False).logits


def _peft_logits(folder, ids):
    from peft import PeftModel
    model, _ = _fresh_model()
    with torch.no_grad():
        return PeftModel.from_pretrained(model, str(folder)).eval()(ids).logits, model


def test_trained_adapter_is_a_peft_folder_with_iclmeta_metadata(trained):
    files = {p.name for p in trained.iterdir()}
    assert {"adapter.json", "adapter_config.json", "adapter_model.safetensors"} <= files
    config = json.loads((trained / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["task_type"] == "CAUSAL_LM"
    assert (config["r"], config["lora_alpha"]) == (2, 16.0)
    assert sorted(config["target_modules"]) == ["q_proj", "v_proj"]
    meta = json.loads((trained / "adapter.json").read_text())
    assert meta["method"] == "fomaml" and meta["step"] in (0, 1)
    assert meta["trained_on"]["fingerprint"] and meta["trained_on"]["train_classes"]
    ids = torch.tensor([[2, 10, 11, 12, 13, 14]])
    assert torch.allclose(_peft_logits(trained, ids)[0], _iclmeta_logits(trained, ids),
                          atol=1e-5, rtol=0)


def test_peft_names_shapes_and_scaling_match_peft_own(trained, tmp_path):
    """Against PEFT's own save of the same LoRA config, and logits equal at a large delta."""
    from peft import LoraConfig, get_peft_model
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import load_file
    folder = tmp_path / "adapter"
    shutil.copytree(trained, folder)
    _randomise(folder)
    ours = load_file(str(folder / "adapter_model.safetensors"))
    model, _ = _fresh_model()
    reference = get_peft_model_state_dict(get_peft_model(model, LoraConfig(
        r=2, lora_alpha=16, target_modules=["q_proj", "v_proj"], lora_dropout=0.0)))
    assert {k: list(v.shape) for k, v in ours.items()} == {
        k: list(v.shape) for k, v in reference.items()}
    ids = torch.tensor([[2, 10, 11, 12, 13, 14], [2, 20, 21, 22, 23, 24]])
    peft_logits = _peft_logits(folder, ids)[0]
    with torch.no_grad():
        plain = _fresh_model()[0](ids).logits
    assert (peft_logits - plain).abs().max() > 1e-2  # the adapter really changes the model
    assert torch.allclose(peft_logits, _iclmeta_logits(folder, ids), atol=1e-5, rtol=0)


def test_adapter_in_the_old_layout_still_loads_and_can_be_exported(trained, tmp_path):
    """A folder from before the PEFT files (adapter.json + best-*.safetensors only)."""
    from iclmeta.meta.checkpoints import export_peft, load_adapter
    folder = tmp_path / "old"
    shutil.copytree(trained, folder)
    (folder / "adapter_config.json").unlink()
    (folder / "adapter_model.safetensors").unlink()
    tensors, meta = load_adapter(folder)
    assert meta["method"] == "fomaml" and all(k.startswith("model.layers.") for k in tensors)
    ids = torch.tensor([[2, 10, 11, 12]])
    before = _iclmeta_logits(folder, ids)
    export_peft(folder)
    assert torch.allclose(_peft_logits(folder, ids)[0], before, atol=1e-5, rtol=0)


def test_resumed_run_keeps_the_peft_copy_in_step_with_adapter_json(trained, tmp_path):
    """A run stopped between adapter.json and the PEFT copy is healed by the next run."""
    from safetensors.torch import load_file

    from iclmeta.meta.checkpoints import PEFT_PREFIX, load_adapter
    folder = tmp_path / "stale"
    shutil.copytree(trained, folder)
    (folder / "adapter_model.safetensors").unlink()  # as if it stopped before writing it
    from iclmeta.config import MetaTrainConfig
    from iclmeta.io import load_yaml
    from iclmeta.meta.train import meta_train
    settings = load_yaml(folder / "train.yaml")
    meta_train(MetaTrainConfig(**{**settings, "out": str(folder)}), progress=False,
               echo=lambda msg: None)
    tensors, _ = load_adapter(folder)
    peft = load_file(str(folder / "adapter_model.safetensors"))
    assert peft.keys() == {PEFT_PREFIX + k for k in tensors}
    assert all(torch.equal(peft[PEFT_PREFIX + k], v) for k, v in tensors.items())
