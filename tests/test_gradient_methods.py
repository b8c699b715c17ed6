"""Every gradient method's evaluation path end to end, on the tiny Llama saved as a model folder.

The meta-learned methods get an adapter from a one-step ``meta_train`` on the same tiny data;
``evaluate`` then adapts on each episode's support and writes one row per (shots, episode).
"""
import json

import pytest

from iclmeta.errors import UserError

LABELS = ("flight", "weather", "music", "alarm", "timer", "song", "city", "movie", "film",
          "review", "book", "cancel", "play", "set", "today")  # words the tiny tokenizer knows
WORDS = "the a what is good bad tomorrow question answer number location person".split()
META = ("multitask", "maml", "fomaml", "reptile")
SHOTS, EPISODES = [0, 1, 2], 2


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """15 classes x 6 examples: a class-disjoint split of 9 / 3 / 3 classes."""
    path = tmp_path_factory.mktemp("gradient") / "tiny.jsonl"
    rows = [{"text": f"{WORDS[(i + j) % len(WORDS)]} {label} {WORDS[(i * j) % len(WORDS)]}",
             "label": label} for i, label in enumerate(LABELS) for j in range(6)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture(scope="module")
def adapters(tmp_path_factory, tiny_data, tiny_model_dir):
    """One adapter folder per meta-learned method, each from a single meta-step."""
    from iclmeta.config import MetaTrainConfig
    from iclmeta.meta.train import meta_train
    root = tmp_path_factory.mktemp("adapters")
    for method in META:
        meta_train(MetaTrainConfig(
            method=method, dataset=tiny_data, model=tiny_model_dir, dtype="float32",
            device="cpu", ways=3, shots=[1, 2], queries=2, steps=1, inner_steps=1, inner_lr=0.5,
            meta_batch=2, lora_rank=2, eval_every=1, val_episodes=1, val_queries=2,
            out=str(root / method)), progress=False, echo=lambda msg: None)
    return {method: str(root / method) for method in META}


def eval_config(tiny_data, tiny_model_dir, out, methods, **overrides):
    from iclmeta.config import EvalConfig
    settings = dict(methods=list(methods), dataset=tiny_data, model=tiny_model_dir,
                    dtype="float32", device="cpu", ways=3, shots=SHOTS, queries=2,
                    episodes=EPISODES, class_split="disjoint", batch_size="auto", lora_rank=2,
                    out=str(out))
    return EvalConfig(**{**settings, **overrides})


def run(config):
    from iclmeta.harness.evaluate import evaluate
    return evaluate(config, progress=False, echo=lambda msg: None).rows


def check_rows(rows, method, adapt_steps, adapt_lr):
    """One sane row per (shots, episode), recording what was really done."""
    assert sorted((r["shots"], r["episode"]) for r in rows) == sorted(
        (s, e) for s in SHOTS for e in range(EPISODES))
    for r in rows:
        assert r["method"] == method and 0.0 <= r["accuracy"] <= 1.0 and r["n_queries"] == 6
        assert r["n_correct"] == sum(p == g for p, g in zip(r["predictions"], r["gold"]))
        assert set(r["predictions"]) <= set(r["gold"])  # 2 queries per class: gold = classes
        assert r["prompt_tokens"] > 0
        options = r["options"]
        assert options["scoring"] == "normalized" and options["prompt"] == "zero-shot"
        assert (options["adapt_steps"], options["adapt_lr"]) == (adapt_steps, adapt_lr)
        assert r["adapt_steps"] == (adapt_steps if r["shots"] else 0)  # 0 shots: no support
        assert len(r["support_losses"]) == r["adapt_steps"]


def test_finetune_end_to_end_and_zero_steps_is_zero_shot(tiny_data, tiny_model_dir, tmp_path):
    """A fresh LoRA (B = 0) without steps scores exactly what zero-shot scores."""
    rows = run(eval_config(tiny_data, tiny_model_dir, tmp_path / "ft", ["zero-shot", "finetune"]))
    tuned = [r for r in rows if r["method"] == "finetune"]
    check_rows(tuned, "finetune", 3, 0.1)
    assert tuned[0]["options"]["lora"]["rank"] == 2
    zero = {r["episode"]: r["predictions"] for r in rows if r["method"] == "zero-shot"}
    for r in tuned:
        if r["shots"] == 0:
            assert r["predictions"] == zero[r["episode"]]


@pytest.mark.parametrize("method", META)
def test_meta_learned_method_end_to_end(tiny_data, tiny_model_dir, adapters, tmp_path, method):
    config = eval_config(tiny_data, tiny_model_dir, tmp_path / method, [method],
                         adapters=list(adapters.values()))
    rows = run(config)
    check_rows(rows, method, 1, 0.5)  # the adapter's inner loop is the default adaptation
    assert {r["options"]["adapter"] for r in rows} == {adapters[method]}
    assert {r["options"]["adapter_step"] for r in rows} <= {0, 1}
    assert (tmp_path / method / "summary.csv").is_file()


@pytest.mark.parametrize("method", ("finetune",) + META)
def test_unsupported_scoring_is_one_line_before_any_row(tiny_data, tiny_model_dir, adapters,
                                                        tmp_path, capsys, method):
    from iclmeta.cli.main import main
    out = tmp_path / "run"
    adapter = ["--adapter", adapters[method]] if method in adapters else []
    code = main(["eval", "--method", method, "--scoring", "calibrated", "--dataset", tiny_data,
                 "--model", tiny_model_dir, "--dtype", "float32", "--device", "cpu",
                 "--class-split", "disjoint", "--ways", "3", "--shots", "0,1", "--episodes", "1",
                 "--out", str(out), "--no-progress"] + adapter)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert "direct or normalized" in err[-1] and "zero-shot, icl, retrieval, instruct" in err[-1]
    assert "Traceback" not in "\n".join(err)
    results = out / "results.jsonl"
    assert not results.exists() or results.read_text() == ""


def test_scoring_is_checked_at_fit_before_loading_anything(tiny_data, tiny_model_dir, tmp_path):
    """The check needs no model: fit() refuses before the LM or the adapter is touched."""
    from iclmeta.meta.methods import FineTune, MetaLearned

    class NoLM:
        config = eval_config(tiny_data, tiny_model_dir, tmp_path, ["maml"], scoring="channel")

        @property
        def lm(self):
            raise AssertionError("the LM was loaded")

    for method in (FineTune("finetune", NoLM()), MetaLearned("maml", NoLM())):
        with pytest.raises(UserError, match="supports --scoring direct or normalized, not channel"):
            method.fit()


def test_named_prompting_methods_are_the_registry_s():
    """The error names the methods that support every scoring mode: the prompting family."""
    from iclmeta.harness.registry import METHODS
    from iclmeta.meta.methods import PROMPTING_METHODS
    assert set(PROMPTING_METHODS) == {n for n, target in METHODS.items()
                                      if target.startswith("iclmeta.prompting.")}


def test_gradient_methods_need_the_hugging_face_backend():
    """Any LM behind the seam serves prompting; LoRA training needs the torch model itself."""
    from types import SimpleNamespace

    from iclmeta.config import EvalConfig
    from iclmeta.errors import UserError
    from iclmeta.meta.methods import FineTune

    other_backend = SimpleNamespace(name="server", max_length=2048)
    res = SimpleNamespace(config=EvalConfig(methods=["finetune"]), lm=other_backend,
                          builder=SimpleNamespace(check=lambda dataset: None), dataset=None)
    with pytest.raises(UserError, match="needs the Hugging Face backend"):
        FineTune("finetune", res).fit()
