"""retrieve-adapt: each query adapts a LoRA on its own nearest support examples, all in one pass."""
import pytest

from test_gradient_methods import adapters, eval_config, run, tiny_data  # noqa: F401 (fixtures)


def _method(config):
    from iclmeta.data.episodes import plan_episodes, sample_episodes
    from iclmeta.data.sources import load_source
    from iclmeta.harness.registry import build_method
    from iclmeta.harness.resources import Resources
    ds = load_source(config)
    plan = plan_episodes(ds, config.ways, config.shots, config.queries, config.split,
                         config.class_split, config.split_seed)
    method = build_method("retrieve-adapt", Resources(config, ds))
    method.fit()
    return method, sample_episodes(ds, plan, 1, config.seed)[0]


def test_neighbours_as_large_as_the_support_is_finetune(tiny_data, tiny_model_dir,  # noqa: F811
                                                        tiny_embedder_dir, tmp_path):
    """k = the whole support: every query trains on what finetune trains on, from the same fresh
    LoRA, so the labels and the label scores are finetune's."""
    rows = run(eval_config(tiny_data, tiny_model_dir, tmp_path / "run",
                           ["finetune", "retrieve-adapt"], embedder=tiny_embedder_dir, k=6,
                           adapt_steps=2, adapt_lr=0.5, log_scores=True))
    by = {(r["method"], r["shots"], r["episode"]): r for r in rows}
    compared = 0
    for (method, shots, episode), row in by.items():
        if method != "retrieve-adapt":
            continue
        tuned = by[("finetune", shots, episode)]
        assert row["query_ids"] == tuned["query_ids"]
        assert row["predictions"] == tuned["predictions"]
        for ours, theirs in zip(row["label_scores"], tuned["label_scores"]):
            assert ours == pytest.approx(theirs, abs=1e-4)
        compared += shots > 0
    assert compared == 4  # 1 and 2 shots x 2 episodes really adapted
    moved = [r for r in rows if r["method"] == "finetune" and r["shots"] > 0]
    assert all(r["support_losses"][0] != r["support_losses"][-1] for r in moved)


def test_each_query_is_labelled_by_weights_adapted_on_its_own_neighbours(
        tiny_data, tiny_model_dir, tiny_embedder_dir, tmp_path):  # noqa: F811
    import torch
    from iclmeta.meta.adaptation import adapt
    from iclmeta.meta.lora import task_batch
    from iclmeta.retrieval.select import KNNSelector
    config = eval_config(tiny_data, tiny_model_dir, tmp_path / "run", ["retrieve-adapt"],
                         embedder=tiny_embedder_dir, k=2, adapt_steps=2, adapt_lr=0.5,
                         log_scores=True)
    method, episode = _method(config)
    # words, not the random tiny embedder (which ranks the same two first for every query)
    method.selector = KNNSelector(BagOfWords())
    pred = method.predict(episode, 2)
    support = episode.support_set(2)
    expected = KNNSelector(BagOfWords()).select_many(episode.query, support, 2)
    assert pred.demo_ids == [[e.id for e in chosen] for chosen in expected]
    assert len({tuple(sorted(ids)) for ids in pred.demo_ids}) > 1  # queries differ
    classes, builder, lora = list(episode.classes), method.res.builder, method.lora
    for q, (query, chosen) in enumerate(zip(episode.query, expected)):
        alone = adapt(lora, method.init, task_batch(builder, lora.tokenizer, chosen, classes),
                      steps=2, lr=0.5)
        logits = lora.logits(alone, task_batch(builder, lora.tokenizer, [query], classes))
        assert pred.labels[q] == classes[int(logits.argmax())]
        scores = [pred.scores[q][c] for c in classes]
        torch.testing.assert_close(torch.tensor(scores), logits[0].detach().float(),
                                   rtol=1e-4, atol=1e-4)
    assert pred.extra["k"] == 2 and len(pred.extra["support_losses"]) == 2


def test_a_meta_learned_adapter_is_the_starting_point(tiny_data, tiny_model_dir,  # noqa: F811
                                                      tiny_embedder_dir, adapters, tmp_path):
    config = eval_config(tiny_data, tiny_model_dir, tmp_path / "run", ["retrieve-adapt"],
                         embedder=tiny_embedder_dir, adapters=[adapters["fomaml"]], k=2,
                         shots=[0, 1])
    method, _ = _method(config)
    assert method.options["init"] == "adapter" and method.options["adapter"] == adapters["fomaml"]
    assert method.trained_on is not None  # the leakage guard sees what the adapter trained on
    fresh, _ = _method(eval_config(tiny_data, tiny_model_dir, tmp_path / "fresh",
                                   ["retrieve-adapt"], embedder=tiny_embedder_dir))
    assert fresh.options["init"] == "fresh"
    # the starting weights are the ones fomaml itself evaluates from
    from iclmeta.data.sources import load_source
    from iclmeta.harness.registry import build_method
    from iclmeta.harness.resources import Resources
    fomaml = build_method("fomaml", Resources(config, load_source(config)))
    fomaml.fit()
    assert all(torch_equal(method.init[k], fomaml.init[k]) for k in fomaml.init)
    assert (method.steps, method.lr) == (fomaml.steps, fomaml.lr)  # its inner-loop settings


class BagOfWords:
    """Unit vectors of word counts (hashed into 64 dims): texts sharing words are near."""

    def encode(self, texts):
        import zlib

        import numpy as np
        out = np.zeros((len(texts), 64), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.split():
                out[i, zlib.crc32(word.encode()) % 64] += 1.0
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def torch_equal(a, b) -> bool:
    import torch
    return bool(torch.equal(a.detach(), b.detach()))


@pytest.mark.parametrize("argv, message", [
    (["--k", "0"], "--k 0: retrieve-adapt adapts each query on its k nearest"),
    (["--scoring", "calibrated"], "--method retrieve-adapt supports --scoring direct or normalized"),
])
def test_bad_settings_are_one_line(tiny_data, tiny_model_dir, tiny_embedder_dir, tmp_path,  # noqa: F811
                                   capsys, argv, message):
    from iclmeta.cli.main import main
    out = tmp_path / "run"
    code = main(["eval", "--method", "retrieve-adapt", "--dataset", tiny_data, "--model",
                 tiny_model_dir, "--embedder", tiny_embedder_dir, "--dtype", "float32",
                 "--device", "cpu", "--class-split", "disjoint", "--ways", "3", "--shots", "1",
                 "--episodes", "1", "--out", str(out), "--no-progress", *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and message in err[-1] and "Traceback" not in "\n".join(err)
    assert not (out / "results.jsonl").exists() or (out / "results.jsonl").read_text() == ""


def test_meta_training_on_neighbours_writes_an_adapter_retrieve_adapt_uses(
        tiny_data, tiny_model_dir, tiny_embedder_dir, tmp_path):  # noqa: F811
    import json

    from iclmeta.config import MetaTrainConfig
    from iclmeta.meta.train import meta_train
    out = tmp_path / "adapter"
    meta = meta_train(MetaTrainConfig(
        method="retrieve-adapt", dataset=tiny_data, model=tiny_model_dir, dtype="float32",
        device="cpu", embedder=tiny_embedder_dir, k=2, ways=3, shots=[2], queries=2, steps=2,
        inner_steps=1, inner_lr=0.5, meta_lr=0.05, meta_batch=2, lora_rank=2, eval_every=1,
        val_episodes=1, val_queries=2, out=str(out)), progress=False, echo=lambda msg: None)
    assert meta["method"] == "retrieve-adapt" and meta["train"]["k"] == 2
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [0, 1, 2]
    assert all(r["loss"] > 0 for r in log[1:]) and "meta_val_accuracy" in log[-1]
    rows = run(eval_config(tiny_data, tiny_model_dir, tmp_path / "run", ["retrieve-adapt"],
                           embedder=tiny_embedder_dir, adapters=[str(out)], k=2, shots=[0, 2]))
    assert {r["shots"] for r in rows} == {0, 2} and all(r["n_queries"] == 6 for r in rows)
    assert all(r["options"]["adapter"] == str(out) for r in rows)


def test_k_is_for_retrieve_adapt_only_in_training(capsys):
    from iclmeta.cli.main import main
    assert main(["train", "--method", "fomaml", "--k", "3"]) == 2
    assert "only retrieve-adapt takes --k" in capsys.readouterr().err


def test_embedder_is_refused_for_meta_learners_that_embed_nothing(capsys):
    from iclmeta.cli.main import main
    assert main(["train", "--method", "reptile", "--embedder", "minilm"]) == 2
    assert "only retrieve-adapt embeds" in capsys.readouterr().err
