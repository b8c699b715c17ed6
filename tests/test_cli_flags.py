"""Flag polish: every flag of every command has help, ``--method a,b`` reads like
``--shots 0,1,4``, and ``--device`` takes ``cuda:N``."""
import argparse

import pytest

from iclmeta.cli.args import build_parser, subcommands
from iclmeta.cli.main import eval_config, main, parse, train_config
from iclmeta.config import EvalConfig, MetaTrainConfig
from iclmeta.errors import UserError
from iclmeta.harness.registry import METHODS


def _actions():
    parser = build_parser(sorted(METHODS))
    yield "iclmeta", parser._actions
    for name, sub in subcommands(parser).items():
        yield f"iclmeta {name}", sub._actions
    # each subcommand's line in 'iclmeta --help'
    yield "iclmeta commands", [a for a in parser._actions
                               if isinstance(a, argparse._SubParsersAction)][0]._choices_actions


def test_every_flag_of_every_command_has_help():
    missing = [(command, action.option_strings or action.dest)
               for command, actions in _actions() for action in actions
               if not (action.help or "").strip() or action.help == argparse.SUPPRESS]
    assert missing == []


@pytest.mark.parametrize("command", ["eval", "train", "prompt"])
def test_device_dtype_and_order_help_say_what_the_values_mean(capsys, command):
    with pytest.raises(SystemExit):
        main([command, *(["--method", "maml"] if command == "train" else []), "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "cuda:N" in text and "float32 on the CPU" in text
    if command != "train":
        assert "where the nearest demonstration goes" in text


@pytest.mark.parametrize("argv, methods", [
    (["--method", "icl,knn"], ["icl", "knn"]),
    (["--method", "zero-shot, icl"], ["zero-shot", "icl"]),
    (["--method", "icl,knn", "--method", "retrieval"], ["icl", "knn", "retrieval"]),
    (["--method", "icl", "--method", "knn"], ["icl", "knn"]),
])
def test_method_takes_a_comma_list_like_shots(argv, methods):
    assert eval_config(parse(["eval", *argv])).methods == methods


@pytest.mark.parametrize("argv, message", [
    (["--method", "icl,nope"], "unknown method 'nope'"),
    (["--method", "icl,icl"], "--method repeats icl"),
    (["--method", ","], "give at least one value"),
    (["--device", "gpu"], "'gpu' is not one of: auto, cpu, mps, cuda or cuda:N"),
    (["--device", "cuda:x"], "'cuda:x' is not one of"),
])
def test_bad_method_lists_and_devices_are_one_line(capsys, argv, message):
    assert main(["eval", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


@pytest.mark.parametrize("device", ["auto", "cpu", "mps", "cuda", "cuda:0", "cuda:1", "cuda:12"])
def test_device_accepts_a_gpu_number(device):
    assert eval_config(parse(["eval", "--method", "icl", "--device", device])).device == device
    meta = train_config(parse(["train", "--method", "reptile", "--device", device]))
    assert meta.device == device


def test_a_recorded_config_is_checked_the_same_way():
    assert EvalConfig.from_dict({"device": "cuda:3"}).device == "cuda:3"
    with pytest.raises(UserError, match="unknown device 'cuda1'; choose one of: auto, cpu, mps"):
        EvalConfig.from_dict({"device": "cuda1"})
    with pytest.raises(UserError, match="unknown device"):
        MetaTrainConfig(method="maml", device="tpu").validate()
