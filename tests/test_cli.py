"""The command line: flags generated from the config dataclasses, unused flags refused,
``--config`` reruns, and the flag names pinned (a field rename is a visible CLI change)."""
import dataclasses
import json
from typing import get_type_hints

import pytest

from iclmeta.cli.args import build_parser, option_strings, subcommands
from iclmeta.cli.flags import parser_kwargs
from iclmeta.cli.main import eval_config, main, parse, train_config
from iclmeta.config import EvalConfig, MetaTrainConfig, MetricTrainConfig
from iclmeta.config.fields import GRADIENT, METRIC, PROMPTING
from iclmeta.errors import UserError
from iclmeta.harness.registry import METHODS
from iclmeta.io import load_yaml

EVAL_FLAGS = """
--adapt-lr --adapt-steps --adapter --allow-overlap --balance --batch-size --cache-dir --chat-format --checkpoint
--class-split --config --data-files --dataset --demos --device --distance --drop-short-classes --dtype
--embed-template
--embedder --encoding --episodes --task
--help --hf-config --index --k --label-field --log-prompts --log-scores --lora-alpha --lora-rank --lora-targets
--method --mmr --model --no-progress --order --out --queries --resume --scoring --seed --shots
--split --split-field --split-seed --template --text-field --trust-remote-code --ways -h
""".split()
TRAIN_FLAGS = """
--cache-dir --data-files --dataset --distance --dtype --device --embed-template --embedder
--encoding --eval-every --head --help --task
--hf-config --hidden --inner-lr --inner-steps --label-field --lora-alpha --lora-rank
--k --lora-targets --lr --meta-batch --meta-lr --method --model --no-progress --out --queries
--scoring --seed --shots --split-field --split-seed --steps --template --text-field
--val-episodes --val-queries --ways -h
""".split()


def _flags(command: str) -> list[str]:
    return sorted(option_strings(subcommands(build_parser(sorted(METHODS)))[command]))


def test_eval_and_train_flag_names_are_pinned():
    assert _flags("eval") == sorted(EVAL_FLAGS)
    assert _flags("train") == sorted(TRAIN_FLAGS)


def test_every_field_has_help_and_a_parser_and_used_by_names_real_methods():
    assert set(PROMPTING + METRIC + GRADIENT) == set(METHODS)
    for cls in (EvalConfig, MetricTrainConfig, MetaTrainConfig):
        hints = get_type_hints(cls)
        for field in dataclasses.fields(cls):
            if field.name == "method":
                continue
            assert field.metadata.get("help"), (cls.__name__, field.name)
            parser_kwargs(hints[field.name], field)  # raises for a type with no parser
            assert set(field.metadata.get("used_by", ())) <= set(METHODS), field.name


@pytest.mark.parametrize("argv, expected", [
    (["--shots", "0,1,4"], {"shots": [0, 1, 4]}),
    (["--queries", "all"], {"queries": None}),
    (["--queries", "7"], {"queries": 7}),
    (["--batch-size", "auto"], {"batch_size": "auto"}),
    (["--batch-size", "16"], {"batch_size": 16}),
    (["--method", "finetune", "--lora-targets", "q_proj, k_proj"],
     {"lora_targets": ["q_proj", "k_proj"]}),
    (["--method", "knn", "--distance", "euclidean"], {"distance": "euclidean"}),
    (["--method", "icl", "--method", "knn"], {"methods": ["icl", "knn"]}),
    (["--method", "retrieval", "--balance", "--mmr", "0.5"], {"balance": True, "mmr": 0.5}),
    ([], {"methods": ["retrieval"], "shots": [0, 1, 4], "queries": 2, "batch_size": 8,
          "out": None, "checkpoints": []}),  # out None: a new runs/DATE_TIME folder
])
def test_each_type_rule_parses_into_the_config(argv, expected):
    config = eval_config(parse(["eval", *argv]))
    assert {k: getattr(config, k) for k in expected} == expected


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0], err
    return err[0]


LORA = "'train --method maml, fomaml, reptile, multitask, retrieve-adapt'"


@pytest.mark.parametrize("argv, message", [
    # flags 'train' used to accept and silently ignore
    (["--method", "protonet", "--batch-size", "4"],
     "--batch-size does not apply to 'train --method protonet'; it is used by eval"),
    (["--method", "reptile", "--batch-size", "4"],
     "--batch-size does not apply to 'train --method reptile'"),
    (["--method", "protonet", "--trust-remote-code"],
     "--trust-remote-code does not apply to 'train --method protonet'"),
    (["--method", "maml", "--trust-remote-code"], "--trust-remote-code does not apply"),
    (["--method", "protonet", "--device", "cpu"],
     f"--device does not apply to 'train --method protonet'; it is used by {LORA}"),
    (["--method", "matching", "--dtype", "float32"], f"it is used by {LORA}"),
    # the other family's flags
    (["--method", "reptile", "--lr", "0.1"],
     "--lr does not apply to 'train --method reptile'; it is used by "
     "'train --method protonet, matching, relation'"),
    (["--method", "relation", "--inner-steps", "2"], f"it is used by {LORA}"),
    (["--method", "fomaml", "--head", "mlp"], "--head does not apply"),
])
def test_train_refuses_flags_its_family_ignores(capsys, tmp_path, argv, message):
    out = tmp_path / "never"
    assert message in _one_line_error(capsys, ["train", *argv, "--out", str(out)])
    assert not out.exists()


@pytest.mark.parametrize("argv, message", [
    (["--method", "icl", "--adapt-steps", "2"],
     "--adapt-steps does not apply to 'eval --method icl'; it is used by --method finetune, "
     "multitask, maml, fomaml, reptile"),
    (["--method", "finetune", "--adapter", "a"], "it is used by --method multitask, maml, fomaml"),
    (["--method", "reptile", "--lora-rank", "4"], "--lora-rank does not apply"),
    (["--method", "knn", "--dtype", "float32"], "--dtype does not apply to 'eval --method knn'"),
    (["--method", "knn", "--batch-size", "4"], "--batch-size does not apply"),
    (["--method", "icl", "--distance", "cosine"], "used by --method knn, protonet, matching"),
    (["--method", "icl", "--checkpoint", "c"], "--checkpoint does not apply"),
    (["--method", "icl", "--balance"], "--balance does not apply to 'eval --method icl'"),
    (["--method", "zero-shot", "--k", "3"], "--k does not apply"),
    (["--method", "retrieval", "--chat-format", "packed"], "used by --method instruct"),
    (["--method", "knn", "--log-prompts"], "--log-prompts does not apply"),
    (["--baseline", "icl"], "--baseline does not apply to 'eval'; it is used by report"),
])
def test_eval_refuses_flags_no_selected_method_uses(capsys, argv, message):
    assert message in _one_line_error(capsys, ["eval", *argv])


def test_a_flag_counts_when_any_selected_method_uses_it_and_defaults_never_count():
    config = eval_config(parse(["eval", "--method", "icl", "--method", "finetune",
                                "--adapt-steps", "2", "--dtype", "float32"]))
    assert config.adapt_steps == 2 and config.dtype == "float32"
    assert eval_config(parse(["eval", "--method", "knn"])).methods == ["knn"]


@pytest.mark.parametrize("argv, message", [
    (["eval", "--shots", "1,x"], "not a comma-separated list of integers"),
    (["eval", "--queries", "lots"], "'lots' is not an integer or 'all'"),
    (["eval", "--batch-size", "x"], "'x' is not an integer or 'auto'"),
    (["eval", "--batch-size", "0"], "--batch-size 0 must be a positive integer"),
    (["eval", "--method", "icl", "--k", "-1"], "--k -1 is negative"),
    (["eval", "--scoring", "loud"], "invalid choice: 'loud'"),
    (["eval", "--method", "nope"], "unknown method 'nope'"),
    (["eval", "stray"], "unrecognized arguments: stray"),
    (["train", "--method", "protonet", "--steps", "0"], "must be positive"),
    (["train", "--method", "knn"], "invalid choice: 'knn'"),
    (["prompt", "--method", "icl", "--mmr", "0.5"],
     "--mmr does not apply to 'prompt --method icl'"),
])
def test_bad_input_is_one_line_exit_2(capsys, argv, message):
    assert message in _one_line_error(capsys, argv)


def test_train_help_shows_each_familys_output_folder(capsys):
    with pytest.raises(SystemExit) as done:
        main(["train", "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "checkpoints/METHOD" in text and "adapters/METHOD" in text
    assert "--batch-size" not in text and "--trust-remote-code" not in text


def test_train_flags_fill_the_chosen_familys_config():
    metric = train_config(parse(["train", "--method", "matching", "--shots", "1,2",
                                 "--head", "mlp", "--steps", "7"]))
    assert isinstance(metric, MetricTrainConfig)
    assert (metric.shots, metric.head, metric.steps, metric.out) == ([1, 2], "mlp", 7,
                                                                     "checkpoints/matching")
    meta = train_config(parse(["train", "--method", "reptile", "--lora-targets", "q_proj",
                               "--meta-lr", "0.3", "--device", "cpu"]))
    assert isinstance(meta, MetaTrainConfig)
    assert (meta.lora_targets, meta.meta_lr, meta.device, meta.out, meta.steps) == (
        ["q_proj"], 0.3, "cpu", "adapters/reptile", 50)


def test_recorded_config_is_read_without_provenance_or_its_out(tmp_path):
    recorded = EvalConfig(methods=["finetune"], shots=[1], out="runs/old").to_dict()
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps({"config": recorded, "episodes": {"ways": 5},
                                "provenance": {"version": "x"}}))  # JSON is YAML
    config = eval_config(parse(["eval", "--config", str(path), "--adapt-steps", "1"]))
    assert (config.methods, config.shots, config.adapt_steps, config.out) == (
        ["finetune"], [1], 1, None)
    # the recorded methods decide which flags apply; a flag on the line replaces the value
    with pytest.raises(UserError, match="--balance does not apply"):
        eval_config(parse(["eval", "--config", str(path), "--balance"]))
    assert eval_config(parse(["eval", "--config", str(path), "--method", "icl"])).methods == ["icl"]


def test_report_and_prompt_keep_their_flags():
    assert {"--out", "--baseline"} <= set(_flags("report"))
    prompt = set(_flags("prompt"))
    assert {"--method", "--episode", "--query", "--at", "--shots", "--scoring"} <= prompt
    assert not prompt & {"--out", "--adapter", "--checkpoint", "--resume"}


# ---- --config reruns a recorded run exactly (tiny random LM and embedder) --------------------

WORDS = ["flight", "book", "cancel", "weather", "today", "tomorrow", "music", "play", "song",
         "alarm", "set", "timer"]


def _rows(folder):
    rows = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    return {(r["method"], r["shots"], r["episode"]): (r["predictions"], r["accuracy"],
                                                      r["demo_ids"], r["options"]) for r in rows}


def test_config_reruns_a_recorded_run_exactly(tmp_path, tiny_model_dir, tiny_embedder_dir):
    rows = [{"text": f"{WORDS[c % 12]} {WORDS[(c + i) % 12]} the {WORDS[i % 12]}",
             "label": f"intent_{c:02d}"} for c in range(24) for i in range(8)]
    data = tmp_path / "tiny.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    first, rerun = tmp_path / "first", tmp_path / "rerun"
    assert main(["eval", "--method", "icl", "--method", "retrieval", "--method", "knn",
                 "--method", "finetune", "--adapt-steps", "1", "--lora-rank", "2",
                 "--dataset", str(data), "--model", tiny_model_dir, "--embedder",
                 tiny_embedder_dir, "--cache-dir", str(tmp_path / "cache"), "--ways", "3",
                 "--shots", "0,1", "--queries", "2", "--episodes", "2", "--dtype", "float32",
                 "--seed", "3", "--out", str(first), "--no-progress"]) == 0
    assert main(["eval", "--config", str(first / "config.yaml"), "--out", str(rerun),
                 "--no-progress"]) == 0
    before, after = _rows(first), _rows(rerun)
    assert len(before) == 2 * 4 * 2 and after == before
    saved = [load_yaml(f / "config.yaml")["config"] for f in (first, rerun)]
    assert {k: v for k, v in saved[0].items() if k != "out"} == \
        {k: v for k, v in saved[1].items() if k != "out"}
    # a folder that holds results is never overwritten
    assert main(["eval", "--config", str(rerun / "config.yaml"), "--out", str(rerun),
                 "--no-progress"]) == 2


@pytest.mark.parametrize("argv, problem", [
    (["--shots", "0,0"], "--shots repeats 0"),
    (["--shots", "1,4,1"], "--shots repeats 1"),
    (["--method", "icl", "--method", "icl"], "--method repeats icl"),
])
def test_repeated_values_are_refused_before_anything_runs(tmp_path, capsys, argv, problem):
    """A repeated shot count or method would write every row twice."""
    out = tmp_path / "run"
    assert main(["eval", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and problem in err[0]
    assert not out.exists()


@pytest.mark.parametrize("flags, message", [
    (["--split", "meta-tset"], "invalid choice: 'meta-tset'"),  # was accepted and ignored
    (["--episodes", "100000000000000000000"], "more than 100000"),  # hung sampling episodes
    (["--dataset", ""], "--dataset is empty"),  # was a traceback from the hub loader
])
def test_hostile_values_are_one_line_before_anything_is_written(flags, message, tmp_path,
                                                                capsys):
    out = tmp_path / "run"
    assert main(["eval", "--method", "knn", "--out", str(out), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and not out.exists()
