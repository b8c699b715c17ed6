"""The ``iclmeta`` command line: a thin map from subcommands to library calls.

Config flags come from the dataclasses in ``iclmeta.config`` (see ``flags.py``); a flag that
the chosen command or methods do not use is an error naming who uses it.
"""
from __future__ import annotations

import dataclasses
import sys
import warnings

from iclmeta.cli.args import TRAIN_FAMILIES, build_parser, option_strings, subcommands
from iclmeta.cli.extras import missing_extra
from iclmeta.cli.flags import check_used, flag_name, given
from iclmeta.config import EvalConfig, MetricTrainConfig
from iclmeta.errors import UserError


def _who(command: str, methods: list[str]) -> str:
    return " ".join([command] + [f"--method {m}" for m in methods])


def eval_config(args, command: str = "eval", methods: list[str] | None = None) -> EvalConfig:
    """The run's config: a recorded one (``--config``) or the defaults, the given flags on top."""
    from iclmeta.harness.registry import check_methods
    from iclmeta.io import load_yaml
    typed = given(args, EvalConfig)
    flags = typed if methods is None else {**typed, "methods": methods}
    flags = with_task(flags, EvalConfig)
    recorded = getattr(args, "config_file", None)
    config = EvalConfig.from_recorded(load_yaml(recorded), **flags) if recorded \
        else EvalConfig.from_dict(flags)
    check_methods(config.methods)
    check_used(typed, EvalConfig, config.methods, _who(command, config.methods))
    return config


def with_task(flags: dict, cls) -> dict:
    """``--task``'s values for ``cls`` with the given flags on top (flags override the task)."""
    if not flags.get("task"):
        return flags
    from iclmeta.tasks import task_values
    return {**task_values(flags["task"], cls), **{k: v for k, v in flags.items() if k != "task"}}


def cmd_eval(args) -> int:
    from iclmeta.harness.evaluate import evaluate
    report = evaluate(eval_config(args), resume=args.resume, progress=not args.no_progress)
    print(report.table())
    if any(row.get("support_losses") for row in report.rows):  # a gradient method ran
        import pandas as pd
        from iclmeta.report.writer import divergence_note
        note = divergence_note(pd.DataFrame(report.rows))
        print(f"\n{note}" if note else "", end="")
    print(f"\nresults: {report.out}/results.jsonl  summary: {report.out}/summary.csv")
    return 0


def cmd_show_prompt(args) -> int:
    from iclmeta.harness.show_prompt import format_prompt, render_prompt
    config = eval_config(args, "prompt", [args.method])
    print(format_prompt(render_prompt(config, args.episode, args.query, args.at)))
    return 0


def cmd_report(args) -> int:
    from iclmeta.report.writer import write_report
    written = write_report(args.runs, out=args.out, baseline=args.baseline)
    print(written.text)
    print(f"\n{written.describe()}")
    return 0


def train_config(args):
    """The config of ``--method``'s family; a flag only the other family uses is an error."""
    cls = next(cls for methods, cls in TRAIN_FAMILIES.values() if args.method in methods)
    mine = {k: v for k, v in given(args, cls).items() if k != "method"}
    for methods, other in TRAIN_FAMILIES.values():
        theirs = given(args, other)
        foreign = [f for f in dataclasses.fields(other) if f.name in theirs
                   and f.name not in mine and f.name != "method"]
        if foreign:
            raise UserError(f"{flag_name(foreign[0])} does not apply to "
                            f"'{_who('train', [args.method])}'; it is used by "
                            f"'train --method {', '.join(methods)}'")
    if "embed_template" in mine and cls is not MetricTrainConfig:  # LoRA embeds nothing
        raise UserError(f"--embed-template does not apply to '{_who('train', [args.method])}'; "
                        f"it is used by 'train --method {', '.join(TRAIN_FAMILIES['metric'][0])}'")
    return cls(method=args.method, **with_task(mine, cls))


def cmd_train(args) -> int:
    config = train_config(args)
    if isinstance(config, MetricTrainConfig):
        from iclmeta.metric.train import train_metric
        path = train_metric(config, progress=not args.no_progress)
        print(f"checkpoint: {path}  (use: iclmeta eval --method {args.method} --checkpoint "
              f"{path})")
        return 0
    from iclmeta.meta.train import meta_train
    meta = meta_train(config, progress=not args.no_progress)
    print(f"adapter: {config.out} (step {meta['step']}, meta-val accuracy "
          f"{meta['meta_val_accuracy']:.3f}); use: iclmeta eval --method {args.method} "
          f"--adapter {config.out}")
    return 0


def cmd_ls(args) -> int:
    from iclmeta.cli.catalogue import catalogue
    print(catalogue(args.section))
    return 0


def cmd_recommend(args) -> int:
    from iclmeta.cli.recommend import cmd_recommend as run
    return run(args, with_task)


COMMANDS = {"recommend": cmd_recommend, "eval": cmd_eval, "report": cmd_report, "train": cmd_train, "prompt": cmd_show_prompt,
            "ls": cmd_ls}


def cmd_export(args) -> int:
    """``export``: a method's config from the flags (or a recommend folder's, flags on top)."""
    from iclmeta.deploy.export import export, recommended
    from iclmeta.harness.registry import check_methods
    base, shots = recommended(args.recommend_dir) if args.recommend_dir else (None, "all")
    method = args.method or (base.methods[0] if base else None)
    if method is None:
        raise UserError("export needs --method M or --from RECOMMEND_DIR")
    check_methods([method])
    typed = given(args, EvalConfig)
    flags = with_task({**typed, "methods": [method]}, EvalConfig)
    config = EvalConfig.from_recorded({"config": base.to_dict()}, **flags) if base \
        else EvalConfig.from_dict(flags)
    check_used(typed, EvalConfig, [method], _who("export", [method]))
    out = export(config, args.predictor_out, args.support_shots or shots,
                 progress=not args.no_progress)
    print(f"predictor: {out}  (use: iclmeta predict {out} \"some text\")")
    return 0


def cmd_predict(args) -> int:
    import json

    from iclmeta.deploy.inputs import predict_stream
    from iclmeta.deploy.predictor import Predictor
    if args.texts_per_call < 1:
        raise UserError(f"--batch-size {args.texts_per_call} must be at least 1")
    predictor = Predictor.load(args.predictor)
    lines = [json.dumps({"text": t}) for t in args.texts] if args.texts else sys.stdin
    for row in predict_stream(predictor, lines, args.texts_per_call, not args.no_scores):
        print(json.dumps(row, ensure_ascii=False), flush=True)
    return 0


COMMANDS.update(export=cmd_export, predict=cmd_predict)


def parse(argv: list[str] | None):
    """Parse ``argv``; a flag the subcommand does not take names the commands that do."""
    from iclmeta.harness.registry import METHODS
    parser = build_parser(sorted(METHODS))
    args, extra = parser.parse_known_args(argv)
    if extra:
        flag = next((a.split("=")[0] for a in extra if a.startswith("--")), None)
        users = [name for name, sub in subcommands(parser).items()
                 if flag in option_strings(sub)]
        if not users:
            subcommands(parser)[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
        here = _who(args.command, [args.method] if args.command == "train" else [])
        raise UserError(f"{flag} does not apply to '{here}'; it is used by "
                        f"{', '.join(users)} (see 'iclmeta {args.command} --help')")
    return args


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    warnings.formatwarning = _one_line_warning  # a warning is one line, like an error
    try:
        args = parse(argv)
        return COMMANDS[args.command](args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:  # an optional package (pip install iclmeta, no extras)
        if (fix := missing_extra(exc)) is None:
            raise
        print(f"error: {fix}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: rows written so far are kept; rerun with --resume to continue",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
