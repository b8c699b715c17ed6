"""The ``iclmeta`` command line: a thin map from subcommands to library calls."""
from __future__ import annotations

import argparse
import sys

from iclmeta.cli.args import (add_data_args, add_episode_args, add_lora_eval_args, add_metric_args,
                       add_model_args, add_prompt_args, add_report_parser, add_show_prompt_parser,
                       add_train_parser, lora_eval_fields)
from iclmeta.errors import UserError

EPILOG = """examples:
  iclmeta eval --method retrieval
  iclmeta eval --method zero-shot --method icl --method retrieval --dataset trec --shots 0,1,4
  iclmeta eval --method icl --dataset my.csv --text-field text --label-field category
  iclmeta eval --method retrieval --dataset clinc_oos --hf-config plus --ways 5 --episodes 20
"""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one line and exit code 2."""

    def error(self, message):
        raise UserError(f"{message} (see '{self.prog} --help')")


def cmd_show_prompt(args) -> int:
    from iclmeta.harness.show_prompt import format_prompt, render_prompt
    args.methods = [args.method]
    print(format_prompt(render_prompt(config_from_args(args), args.episode, args.query, args.at)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from iclmeta.harness.registry import METHODS
    parser = _Parser(prog="iclmeta", description="Few-shot learning with language models on "
                     "one episodic benchmark harness.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    ev = sub.add_parser("eval", help="evaluate methods on the same episodes",
                        description="Evaluate methods on the same N-way K-shot episodes; writes "
                        "results.jsonl, summary.csv and config.yaml to --out.",
                        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ev.add_argument("--method", action="append", dest="methods", metavar="METHOD",
                    help=f"repeatable; one of: {', '.join(sorted(METHODS))} (default: retrieval)")
    add_data_args(ev)
    add_episode_args(ev)
    add_model_args(ev)
    add_prompt_args(ev)
    add_metric_args(ev)
    add_lora_eval_args(ev)
    ev.add_argument("--out", default="runs/latest", help="run folder (default: runs/latest)")
    ev.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    ev.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    ev.add_argument("--log-prompts", action="store_true",
                    help="store each query's prompt text in its result row ('prompts')")
    add_report_parser(sub)
    add_show_prompt_parser(sub)
    add_train_parser(sub, TRAINERS)
    return parser


def config_from_args(args):
    from iclmeta.config import EvalConfig
    return EvalConfig(
        methods=args.methods or ["retrieval"], dataset=args.dataset, text_field=args.text_field,
        label_field=args.label_field, split_field=args.split_field, hf_config=args.hf_config,
        model=args.model, embedder=args.embedder, template=args.template, ways=args.ways,
        shots=args.shots, queries=args.queries, episodes=args.episodes,
        seed=args.seed, split=args.split, split_seed=args.split_seed,
        class_split=args.class_split, scoring=args.scoring, demos=args.demos,
        chat_format=args.chat_format, log_prompts=getattr(args, "log_prompts", False),
        k=args.k, balance=args.balance,
        mmr=args.mmr, order=args.order, device=args.device, dtype=args.dtype,
        batch_size=args.batch_size, cache_dir=args.cache_dir,
        trust_remote_code=args.trust_remote_code, out=args.out,
        distance=args.distance, checkpoints=args.checkpoints or [],
        **lora_eval_fields(args))


def cmd_eval(args) -> int:
    from iclmeta.harness.evaluate import evaluate
    report = evaluate(config_from_args(args), resume=args.resume, progress=not args.no_progress)
    print(report.table())
    print(f"\nresults: {report.out}/results.jsonl  summary: {report.out}/summary.csv")
    return 0


def cmd_report(args) -> int:
    from iclmeta.report.writer import write_report
    written = write_report(args.runs, out=args.out, baseline=args.baseline,
                           n_boot=args.bootstrap, seed=args.seed)
    print(written.text)
    print(f"\n{written.describe()}")
    return 0


METRIC_TRAIN_ARGS = ("dataset", "text_field", "label_field", "split_field", "hf_config",
                     "embedder", "cache_dir", "ways", "shots", "queries", "steps", "lr", "seed",
                     "head", "distance", "hidden", "val_episodes", "eval_every", "split_seed",
                     "out")


def train_metric_cmd(args) -> int:
    from iclmeta.config import MetricTrainConfig
    from iclmeta.metric.train import train_metric
    given = {k: getattr(args, k) for k in METRIC_TRAIN_ARGS if getattr(args, k) is not None}
    path = train_metric(MetricTrainConfig(method=args.method, **given),
                        progress=not args.no_progress)
    print(f"checkpoint: {path}  (use: iclmeta eval --method {args.method} --checkpoint {path})")
    return 0


# Training families by method; each entry takes the parsed 'train' arguments.
LORA_TRAIN_ARGS = ("dataset", "text_field", "label_field", "split_field", "hf_config", "model",
                   "template", "scoring", "ways", "shots", "queries", "split_seed", "seed",
                   "steps", "inner_steps", "inner_lr", "meta_lr", "meta_batch", "lora_rank",
                   "lora_alpha", "lora_targets", "eval_every", "val_episodes", "device",
                   "dtype", "cache_dir", "out")


def train_lora_cmd(args) -> int:
    from iclmeta.config import MetaTrainConfig
    from iclmeta.meta.train import meta_train
    if args.lr is not None:
        raise UserError(f"--lr does not apply to {args.method}; use --inner-lr and --meta-lr")
    given = {k: getattr(args, k) for k in LORA_TRAIN_ARGS if getattr(args, k, None) is not None}
    given.setdefault("out", f"adapters/{args.method}")
    meta = meta_train(MetaTrainConfig(method=args.method, **given), progress=not args.no_progress)
    out = given["out"]
    print(f"adapter: {out} (step {meta['step']}, meta-val accuracy "
          f"{meta['meta_val_accuracy']:.3f}); use: iclmeta eval --method {args.method} "
          f"--adapter {out}")
    return 0


TRAINERS = {"protonet": train_metric_cmd, "matching": train_metric_cmd,
            "relation": train_metric_cmd, "maml": train_lora_cmd, "fomaml": train_lora_cmd,
            "reptile": train_lora_cmd, "multitask": train_lora_cmd}


def cmd_train(args) -> int:
    return TRAINERS[args.method](args)


COMMANDS = {"eval": cmd_eval, "report": cmd_report, "train": cmd_train, "prompt": cmd_show_prompt}


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: rows written so far are kept; rerun with --resume to continue",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
