"""Meta-learning numerics (Reptile, first- and second-order MAML) and the training loop."""
import json

import pytest

from conftest import build_tiny_model, build_tiny_tokenizer
from iclmeta.data.example import Example
from iclmeta.errors import UserError
from iclmeta.prompts import PromptBuilder, Template

CLASSES = ("flight", "weather", "music")
SUPPORT = [Example("book a flight", "flight", "s1"), Example("weather today", "weather", "s2"),
           Example("play a song", "music", "s3")]
QUERY = [Example("cancel the flight", "flight", "q1"), Example("is it good weather", "weather", "q2"),
         Example("play music", "music", "q3")]
LABELS = ("flight", "weather", "music", "alarm", "timer", "song", "city", "movie", "film", "review")


@pytest.fixture()
def lora_setup():
    """Tiny model with eager attention (double backward), LoRA weights moved off zero."""
    import torch
    from iclmeta.meta.lora import LoraSpec, attach_lora, task_batch
    torch.set_num_threads(1)
    tok = build_tiny_tokenizer()
    model = build_tiny_model(len(tok), attn_implementation="eager")
    lora = attach_lora(model, tok, LoraSpec(rank=2, alpha=4.0))
    builder = PromptBuilder(Template(name="t", instruction="what is the label ?"), {})
    support = task_batch(builder, tok, SUPPORT, CLASSES)
    query = task_batch(builder, tok, QUERY, CLASSES)
    gen = torch.Generator().manual_seed(0)
    # B = 0 at a fresh init zeroes every gradient through A: start somewhere generic instead.
    params = {k: (v + 0.3 * torch.randn(v.shape, generator=gen)).requires_grad_(True)
              for k, v in lora.initial().items()}
    return lora, params, support, query


def flat(tensors):
    import torch
    return torch.cat([t.reshape(-1) for t in tensors])


def test_reptile_step_one_is_the_inner_loop_and_zero_is_identity(lora_setup):
    import torch
    from iclmeta.meta.adaptation import adapt
    from iclmeta.meta.reptile import reptile_update
    lora, params, support, _ = lora_setup
    inner = adapt(lora, params, support, steps=2, lr=0.5)
    moved, loss = reptile_update(lora, params, [support], 2, 0.5, step_size=1.0)
    still, _ = reptile_update(lora, params, [support], 2, 0.5, step_size=0.0)
    torch.testing.assert_close(flat(moved.values()), flat(inner.values()))
    torch.testing.assert_close(flat(still.values()), flat(params.values()).detach())
    assert loss == pytest.approx(float(lora.loss(params, support).detach()), rel=1e-5)


def test_reptile_averages_the_task_deltas(lora_setup):
    """Two tasks: the new weights are the mean of the adapted ones, not the summed deltas."""
    import torch
    from iclmeta.meta.adaptation import adapt
    from iclmeta.meta.reptile import reptile_update
    lora, params, support, query = lora_setup
    a, b = adapt(lora, params, support, 2, 0.5), adapt(lora, params, query, 2, 0.5)
    moved, loss = reptile_update(lora, params, [support, query], 2, 0.5, step_size=1.0)
    torch.testing.assert_close(flat(moved.values()), (flat(a.values()) + flat(b.values())) / 2)
    half, _ = reptile_update(lora, params, [support, query], 2, 0.5, step_size=0.5)
    expected = (2 * flat(params.values()).detach() + flat(a.values()) + flat(b.values())) / 4
    torch.testing.assert_close(flat(half.values()), expected)
    losses = [float(lora.loss(params, t).detach()) for t in (support, query)]
    assert loss == pytest.approx(sum(losses) / 2, rel=1e-5)
    assert (flat(a.values()) - flat(b.values())).norm() > 1e-3  # the tasks pull apart


def test_reptile_as_an_algorithm_is_reptile_update(lora_setup):
    """The trainer's route (outer_grads + the algorithm's optimizer) is the interpolation."""
    import torch
    from iclmeta.meta.algorithms import build_algorithm
    from iclmeta.meta.lora import join_batches
    from iclmeta.meta.reptile import reptile_update
    lora, params, support, query = lora_setup
    tasks = [(support, query), (query, query)]
    expected, expected_loss = reptile_update(lora, params, [join_batches(s, q) for s, q in tasks],
                                             1, 0.5, step_size=0.3)
    algo = build_algorithm("reptile", inner_steps=1, inner_lr=0.5)
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    loss, grads = algo.outer_grads(lora, leaves, tasks)
    opt = algo.optimizer(list(leaves.values()), 0.3)
    for p, g in zip(leaves.values(), grads):
        p.grad = g
    opt.step()
    torch.testing.assert_close(flat(leaves.values()).detach(), flat(expected.values()).detach())
    assert loss == pytest.approx(expected_loss)


def test_registry_builds_each_meta_method():
    from iclmeta.config import META_METHODS
    from iclmeta.errors import UserError
    from iclmeta.meta.algorithms import ALGORITHMS, build_algorithm
    from iclmeta.meta.maml import MAML
    assert set(ALGORITHMS) == set(META_METHODS)
    assert build_algorithm("fomaml", 1, 0.1) == MAML(1, 0.1, first_order=True)
    assert build_algorithm("maml", 1, 0.1).second_order
    assert not any(build_algorithm(m, 1, 0.1).second_order for m in ("fomaml", "reptile",
                                                                      "multitask"))
    with pytest.raises(UserError, match="choose one of: fomaml, maml"):
        build_algorithm("anil", 1, 0.1)


def test_first_order_gradient_is_the_query_gradient_at_adapted_weights(lora_setup):
    import torch
    from iclmeta.meta.adaptation import adapt
    from iclmeta.meta.maml import meta_gradient
    lora, params, support, query = lora_setup
    _, fo = meta_gradient(lora, params, [(support, query)], 2, 0.5, first_order=True)
    fast = adapt(lora, params, support, steps=2, lr=0.5)
    expected = torch.autograd.grad(lora.loss(fast, query), list(fast.values()))
    torch.testing.assert_close(flat(fo), flat(expected))
    _, so = meta_gradient(lora, params, [(support, query)], 2, 0.5, first_order=False)
    assert (flat(fo) - flat(so)).norm() > 1e-3 * flat(so).norm()  # the test can tell them apart


def test_second_order_gradient_matches_finite_differences(lora_setup):
    import torch
    from iclmeta.meta.adaptation import adapt
    from iclmeta.meta.maml import meta_gradient
    lora, params, support, query = lora_setup
    steps, lr, eps = 2, 0.5, 1e-2

    def meta_loss(p):
        with torch.enable_grad():
            return float(lora.loss(adapt(lora, p, support, steps, lr), query).detach())

    _, so = meta_gradient(lora, params, [(support, query)], steps, lr, first_order=False)
    _, fo = meta_gradient(lora, params, [(support, query)], steps, lr, first_order=True)
    gen = torch.Generator().manual_seed(1)
    for _ in range(2):
        direction = {k: torch.randn(v.shape, generator=gen) for k, v in params.items()}
        plus = {k: (v.detach() + eps * direction[k]) for k, v in params.items()}
        minus = {k: (v.detach() - eps * direction[k]) for k, v in params.items()}
        numeric = (meta_loss(plus) - meta_loss(minus)) / (2 * eps)
        analytic = float(flat(so) @ flat(direction.values()))
        first_order = float(flat(fo) @ flat(direction.values()))
        assert analytic == pytest.approx(numeric, rel=2e-2, abs=2e-4)
        assert abs(first_order - numeric) > 5 * abs(analytic - numeric)


def test_meta_gradient_averages_tasks(lora_setup):
    import torch
    from iclmeta.meta.maml import meta_gradient
    lora, params, support, query = lora_setup
    la, ga = meta_gradient(lora, params, [(support, query)], 1, 0.5, first_order=True)
    lb, gb = meta_gradient(lora, params, [(query, support)], 1, 0.5, first_order=True)
    lab, gab = meta_gradient(lora, params, [(support, query), (query, support)], 1, 0.5, True)
    assert lab == pytest.approx((la + lb) / 2)
    torch.testing.assert_close(flat(gab), (flat(ga) + flat(gb)) / 2)


# -- the training loop on a tiny model saved to disk ---------------------------------------
@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("meta")
    tok = build_tiny_tokenizer()
    build_tiny_model(len(tok)).save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    words = "the a what is book play set city today tomorrow good".split()
    with open(root / "tiny.jsonl", "w") as handle:
        for i, label in enumerate(LABELS):
            for j in range(6):
                text = f"{words[(i + j) % len(words)]} {label} {words[(i * j) % len(words)]}"
                handle.write(json.dumps({"text": text, "label": label}) + "\n")
    return root


def train_config(root, out, method="fomaml", steps=2):
    from iclmeta.config import MetaTrainConfig
    return MetaTrainConfig(method=method, dataset=str(root / "tiny.jsonl"),
                           model=str(root / "model"), dtype="float32", device="cpu", ways=2,
                           shots=[1, 2], queries=2, steps=steps, inner_steps=1, inner_lr=0.5,
                           meta_batch=2, lora_rank=2, eval_every=1, val_episodes=2, val_queries=2,
                           out=str(out))


@pytest.mark.parametrize("method", ["maml", "fomaml", "reptile", "multitask"])
def test_meta_training_leaves_base_weights_untouched(tiny_folder, tmp_path, method):
    import torch
    from iclmeta.meta.trainer import MetaTrainer
    from iclmeta.meta.checkpoints import load_adapter
    from iclmeta.models import load_causal_lm
    trainer = MetaTrainer(train_config(tiny_folder, tmp_path / method, method), echo=print)
    trainer.cfg.validate()
    trainer.run(progress=False)
    fresh, _ = load_causal_lm(str(tiny_folder / "model"), device="cpu", dtype="float32")
    trained = {n.replace(".base_layer", ""): p for n, p in trainer.lora.model.named_parameters()
               if "lora_" not in n}
    assert trained.keys() == dict(fresh.named_parameters()).keys()
    for name, value in fresh.named_parameters():
        assert torch.equal(trained[name], value), name
    tensors, meta = load_adapter(tmp_path / method)
    assert meta["method"] == method and meta["lora"]["rank"] == 2
    final, _ = load_adapter(tmp_path / method, "checkpoint.json")
    assert any(not torch.equal(final[k], v) for k, v in trainer.lora.portable(
        trainer.lora.initial()).items())  # it did learn something


@pytest.mark.parametrize("method", ["fomaml", "reptile"])
def test_resume_continues_where_it_stopped(tiny_folder, tmp_path, method):
    import torch
    from iclmeta.meta.checkpoints import load_adapter
    from iclmeta.meta.train import meta_train
    meta_train(train_config(tiny_folder, tmp_path / "a", method, steps=3), progress=False)
    meta_train(train_config(tiny_folder, tmp_path / "b", method, steps=2), progress=False)
    meta_train(train_config(tiny_folder, tmp_path / "b", method, steps=3), progress=False)
    a, _ = load_adapter(tmp_path / "a", "checkpoint.json")
    b, _ = load_adapter(tmp_path / "b", "checkpoint.json")
    # Adam carries moments across steps; Reptile's plain SGD carries nothing but the weights.
    assert a.keys() == b.keys()
    assert any(k.startswith("optimizer.") for k in a) == (method == "fomaml")
    for k in a:
        torch.testing.assert_close(a[k], b[k])
    steps = [json.loads(line).get("loss") is not None and json.loads(line)["step"]
             for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [s for s in steps if s] == [1, 2, 3]


class NanAlgorithm:
    """Any registered algorithm: the trainer looks it up by name and never names it."""

    second_order = False

    def outer_grads(self, lora, params, tasks):
        import torch
        return float("nan"), [torch.zeros_like(p) for p in params.values()]

    def optimizer(self, params, lr):
        import torch
        return torch.optim.SGD(params, lr=lr)


def test_nan_loss_stops_without_touching_checkpoints(tiny_folder, tmp_path, monkeypatch):
    from iclmeta.meta.algorithms import ALGORITHMS
    from iclmeta.meta.train import meta_train
    out = tmp_path / "r"
    meta_train(train_config(tiny_folder, out, "reptile", steps=1), progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.name not in ("log.jsonl", "train.yaml")}
    monkeypatch.setitem(ALGORITHMS, "reptile", lambda **settings: NanAlgorithm())
    with pytest.raises(UserError, match="non-finite loss"):
        meta_train(train_config(tiny_folder, out, "reptile", steps=3), progress=False)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name not in ("log.jsonl", "train.yaml")} == before


def test_changed_settings_refuse_to_resume(tiny_folder, tmp_path):
    from iclmeta.meta.train import meta_train
    meta_train(train_config(tiny_folder, tmp_path / "c", steps=1), progress=False)
    cfg = train_config(tiny_folder, tmp_path / "c", steps=2)
    cfg.inner_steps = 2
    with pytest.raises(UserError, match="different settings \\(inner_steps\\)"):
        meta_train(cfg, progress=False)


def log_steps(out):
    return [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]


def test_log_has_one_line_per_step_across_resumes(tiny_folder, tmp_path):
    """The step's loss and its meta-val accuracy share its line; a resume repeats none."""
    from iclmeta.meta.train import meta_train
    meta_train(train_config(tiny_folder, tmp_path / "l", "reptile", steps=2), progress=False)
    meta_train(train_config(tiny_folder, tmp_path / "l", "reptile", steps=4), progress=False)
    assert log_steps(tmp_path / "l") == [0, 1, 2, 3, 4]
    lines = [json.loads(x) for x in (tmp_path / "l" / "log.jsonl").read_text().splitlines()]
    assert all("meta_val_accuracy" in x for x in lines) and all("loss" in x for x in lines[1:])


def test_resume_from_the_step_0_checkpoint_does_not_repeat_its_line(tiny_folder, tmp_path,
                                                                    monkeypatch):
    from iclmeta.meta.algorithms import ALGORITHMS
    from iclmeta.meta.train import meta_train
    out = tmp_path / "z"
    with monkeypatch.context() as patch:  # fails at step 1: only step 0 is checkpointed
        patch.setitem(ALGORITHMS, "reptile", lambda **settings: NanAlgorithm())
        with pytest.raises(UserError, match="checkpoint of step 0"):
            meta_train(train_config(tiny_folder, out, "reptile", steps=2), progress=False)
    meta_train(train_config(tiny_folder, out, "reptile", steps=2), progress=False)
    assert log_steps(out) == [0, 1, 2]


def test_finite_loss_is_called_finite_and_the_advice_resumes(tiny_folder, tmp_path, capsys):
    """Reptile's loss is measured before its inner loop, which a huge --inner-lr blows up: the
    guard says the loss is finite and the update is not; the advised rerun (lower --inner-lr,
    same --out) resumes from the kept checkpoint and records the change."""
    from iclmeta.cli.main import main
    from iclmeta.meta.checkpoints import load_adapter
    out = tmp_path / "g"
    args = ["train", "--method", "reptile", "--dataset", str(tiny_folder / "tiny.jsonl"),
            "--model", str(tiny_folder / "model"), "--dtype", "float32", "--device", "cpu",
            "--ways", "2", "--shots", "1,2", "--queries", "2", "--steps", "2",
            "--inner-steps", "2", "--meta-batch", "2", "--lora-rank", "2", "--eval-every", "1",
            "--val-episodes", "2", "--val-queries", "2", "--out", str(out), "--no-progress"]
    assert main(args + ["--inner-lr", "1e10"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "finite loss (" in err and "non-finite loss" not in err and "non-finite update" in err
    assert "lower --inner-lr (now 1e+10)" in err and "same --out" in err
    kept = log_steps(out)[-1]
    assert f"checkpoint of step {kept} " in err
    assert main(args + ["--inner-lr", "0.5"]) == 0
    assert f"resuming from step {kept}" in capsys.readouterr().err
    lines = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [0, 1, 2]
    assert lines[kept + 1]["lr_changed"] == {"inner_lr": [1e10, 0.5]}  # its first step
    _, meta = load_adapter(out, "checkpoint.json")
    assert meta["lr_changes"] == [{"step": kept, "inner_lr": [1e10, 0.5]}]
    assert meta["step"] == 2 and meta["train"]["inner_lr"] == 0.5
    # Accuracies validated with the diverging rate do not count: the best adapter is one
    # validated (and so evaluated by default) with the new rate.
    _, best = load_adapter(out)
    assert best["step"] > kept and best["train"]["inner_lr"] == 0.5


def test_resume_applies_a_changed_meta_lr_to_adam(tiny_folder, tmp_path):
    """Adam's saved state holds the old rate: the resumed run must step with the new one."""
    from iclmeta.meta.checkpoints import load_adapter
    from iclmeta.meta.train import meta_train
    meta_train(train_config(tiny_folder, tmp_path / "m", "fomaml", steps=1), progress=False)
    cfg = train_config(tiny_folder, tmp_path / "m", "fomaml", steps=2)
    cfg.meta_lr = 1e-4
    meta_train(cfg, progress=False)
    _, meta = load_adapter(tmp_path / "m", "checkpoint.json")
    assert [g["lr"] for g in meta["optimizer"]["param_groups"]] == [1e-4]
    assert meta["lr_changes"] == [{"step": 1, "meta_lr": [1e-3, 1e-4]}]


def test_damaged_checkpoint_refuses_to_resume_in_one_line(tiny_folder, tmp_path):
    from iclmeta.meta.train import meta_train
    out = tmp_path / "d"
    meta_train(train_config(tiny_folder, out, "reptile", steps=1), progress=False)
    next(out.glob("last-*.safetensors")).write_bytes(b"")
    with pytest.raises(UserError, match=r"checkpoint\.json: its weights file last-.* is empty"
                                        r".*train into a new --out"):
        meta_train(train_config(tiny_folder, out, "reptile", steps=2), progress=False)


def test_eval_needs_an_adapter_for_meta_learned_methods(tmp_path, capsys):
    from iclmeta.cli.main import main
    code = main(["eval", "--method", "reptile", "--dataset", "snips", "--episodes", "1",
                 "--out", str(tmp_path / "run"), "--no-progress"])
    assert code == 2
    assert "iclmeta train --method reptile" in capsys.readouterr().err
