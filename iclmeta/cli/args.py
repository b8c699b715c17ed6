"""The ``iclmeta`` subcommands' parsers: config flags generated from the dataclasses
(``flags.py``), plus the few flags that steer a command rather than configure a run."""
from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
from typing import get_type_hints

from iclmeta.cli.flags import add_fields, add_flag, sections, shared_help
from iclmeta.config import (META_METHODS, TRAINABLE, EvalConfig, MetaTrainConfig,
                            MetricTrainConfig)
from iclmeta.errors import UserError

EVAL_SECTIONS = {"data": "data", "episodes": "episodes", "models": "models",
                 "prompting": "prompting",
                 "metric": "metric methods (knn, protonet, matching, relation)",
                 "gradient": "gradient methods (finetune, multitask, maml, fomaml, reptile)"}
PROMPT_SECTIONS = ("data", "episodes", "models", "prompting")  # what 'iclmeta prompt' takes
# 'iclmeta train --method M' fills the config of M's family.
TRAIN_FAMILIES = {"metric": (TRAINABLE, MetricTrainConfig), "LoRA": (META_METHODS, MetaTrainConfig)}
TRAIN_SECTIONS = {"data": "data", "models": "models", "training": "training (both families)",
                  "metric": f"metric methods ({', '.join(TRAINABLE)})",
                  "LoRA": f"LoRA meta-learning ({', '.join(META_METHODS)})"}

EVAL_EPILOG = """examples:
  iclmeta eval --method retrieval
  iclmeta eval --method zero-shot --method icl --method retrieval --dataset trec --shots 0,1,4
  iclmeta eval --method icl --dataset my.csv --text-field text --label-field category
  iclmeta eval --method retrieval --dataset clinc_oos --hf-config plus --ways 5 --episodes 20
  iclmeta eval --config runs/latest/config.yaml --out runs/rerun   # rerun a recorded run
"""
TRAIN_EPILOG = """examples:
  iclmeta train --method protonet --dataset trec-50 --shots 1,5 --queries 4 --out checkpoints/proto
  iclmeta eval --method protonet --checkpoint checkpoints/proto --dataset trec-50
  iclmeta train --method reptile --dataset clinc150.jsonl --steps 50 --inner-steps 2 \\
      --inner-lr 0.3 --meta-batch 2 --out adapters/reptile
  iclmeta eval --method reptile --adapter adapters/reptile --adapt-steps 2 --dataset clinc150.jsonl
"""


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one line and exit code 2."""

    def error(self, message):
        raise UserError(f"{message} (see '{self.prog} --help')")


def _sub(sub, name: str, help: str, description: str, epilog: str | None = None):
    return sub.add_parser(name, help=help, description=description, epilog=epilog,
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def add_eval_parser(sub, methods: list[str]) -> None:
    ev = _sub(sub, "eval", "evaluate methods on the same episodes", "Evaluate methods on the "
              "same N-way K-shot episodes; writes results.jsonl, summary.csv and config.yaml "
              "to --out.", EVAL_EPILOG)
    ev.add_argument("--config", dest="config_file", metavar="RUN/config.yaml",
                    help="rerun a recorded run: its settings, with the flags given here on top "
                         "(its --out is not reused)")
    add_fields(ev, EvalConfig, {f.name for f in dataclasses.fields(EvalConfig)}, EVAL_SECTIONS,
               context={"methods": ", ".join(methods)})
    ev.add_argument("--resume", action="store_true", help="continue an interrupted run in --out "
                    "(default: the newest run, runs/latest)")
    ev.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def add_prompt_parser(sub) -> None:
    sp = _sub(sub, "prompt", "print the exact prompt a method builds for one query",
              "Print what the model sees for one query of one episode (the same episodes as "
              "'eval' with the same settings): the prompt text or chat messages, the "
              "demonstration ids and the scored candidates.", "example:\n  iclmeta prompt "
              "--dataset trec --method retrieval --shots 4 --query 3")
    sp.add_argument("--method", default="retrieval", help="a prompting method: zero-shot, icl, "
                    "retrieval or instruct (default: retrieval)")
    sp.add_argument("--episode", type=int, default=0, help="episode index (default: 0)")
    sp.add_argument("--query", type=int, default=0, help="query index in the episode (default: 0)")
    sp.add_argument("--at", type=lambda v: v if v == "all" else int(v), metavar="K|all",
                    help="which of --shots to show (default: the largest)")
    names = {f.name for f in dataclasses.fields(EvalConfig)
             if f.metadata.get("group") in PROMPT_SECTIONS}
    add_fields(sp, EvalConfig, names, {k: EVAL_SECTIONS[k] for k in PROMPT_SECTIONS})


def add_train_parser(sub) -> None:
    tr = _sub(sub, "train", "meta-train a method on meta-train class episodes",
              "Episodic meta-training on the meta-train classes of a class-disjoint split; the "
              "best step on meta-val is saved to --out. --method picks the family: flags of the "
              "other family are errors.", TRAIN_EPILOG)
    tr.add_argument("--method", required=True, choices=sorted(TRAINABLE + META_METHODS),
                    help=f"what to train: a metric method ({', '.join(TRAINABLE)}) or a LoRA "
                         f"meta-learner ({', '.join(META_METHODS)}); it picks the family")
    groups = sections(tr, TRAIN_SECTIONS)
    families = [(label, {f.name: f for f in dataclasses.fields(cls)},
                 get_type_hints(cls, include_extras=True))
                for label, (_, cls) in TRAIN_FAMILIES.items()]
    names = dict.fromkeys(n for _, fs, _ in families for n in fs if n != "method")
    for name in names:
        owners = [(label, fs[name], hints[name]) for label, fs, hints in families if name in fs]
        label, field, hint = owners[0]
        section = field.metadata.get("group") if len(owners) > 1 else label
        add_flag(groups[section], field, hint, shared_help([(lb, f) for lb, f, _ in owners]))
    tr.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def add_report_parser(sub) -> None:
    from iclmeta.report.files import files_help  # light: names and descriptions only
    rp = _sub(sub, "report", "merge runs into tables, paired differences, metrics and plots",
              "Merge run folders and write report.md, CSV tables and figures: accuracy vs shots "
              "with 95% CIs,\npaired differences with the best method at each shot count (or "
              "--baseline) on the same\nepisodes, macro-F1, per-class accuracy, confusion "
              "matrices, expected calibration error when\nper-label scores were logged, and "
              "accuracy vs adaptation steps for gradient methods.",
              files_help() + "\n\nexamples:\n  iclmeta report runs/latest\n  iclmeta report "
              "runs/icl runs/maml --baseline icl --out runs/compare")
    rp.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders written by 'eval'")
    rp.add_argument("--out", help="report folder (default: FIRST_RUN_DIR/report)")
    rp.add_argument("--baseline", metavar="LABEL", help="compare every method with this one "
                    "(default: with the best method at each shot count)")


def add_ls_parser(sub) -> None:
    ls = _sub(sub, "ls", "list methods, datasets, tasks, templates and models",
              "List what there is to choose from, one line each (loads no model).",
              "examples:\n  iclmeta ls\n  iclmeta ls tasks")
    ls.add_argument("section", nargs="?", metavar="SECTION",
                    choices=("methods", "datasets", "tasks", "templates", "models"),
                    help="one of methods, datasets, tasks, templates, models (default: all)")


EXPORT_SECTIONS = ("data", "models", "prompting", "metric", "gradient")
DEPLOY_EPILOG = """examples:
  iclmeta export --method retrieval --dataset my.csv --out predictor/
  iclmeta export --method protonet --dataset my.csv --shots 8 --out predictor/
  iclmeta export --from runs/recommend --out predictor/
  iclmeta predict predictor/ "book a table for two" "play some jazz"
  iclmeta predict predictor/ < queries.jsonl > labels.jsonl
"""


def add_export_parser(sub, methods: list[str]) -> None:
    ex = _sub(sub, "export", "write a method over labelled data as a predictor folder",
              "Fit one method over a dataset's labelled examples and write a self-contained "
              "predictor folder (config, examples, template, index or adapted weights, model "
              "hashes) that 'iclmeta predict' and Predictor.load run through the code path "
              "'eval' measures.", DEPLOY_EPILOG)
    ex.add_argument("--method", help=f"the method to export, one of: {', '.join(methods)}")
    ex.add_argument("--from", dest="recommend_dir", metavar="RECOMMEND_DIR",
                    help="export the winner of a folder written by 'iclmeta recommend', with "
                         "its settings and shot count (flags given here go on top)")
    ex.add_argument("--shots", dest="support_shots", metavar="K|all",
                    help="labelled examples kept per class (a seeded K), or all of them "
                         "(default: all; with --from, the shot count raced)")
    ex.add_argument("--out", dest="predictor_out", required=True, metavar="DIR",
                    help="predictor folder: new, empty, or one export wrote (replaced whole)")
    # no overlap check at export (the data is the user's own): --allow-overlap has no use
    names = {f.name for f in dataclasses.fields(EvalConfig)
             if f.metadata.get("group") in EXPORT_SECTIONS or f.name == "seed"} - {"allow_overlap"}
    add_fields(ex, EvalConfig, names, {"episodes": "support",
                                       **{k: EVAL_SECTIONS[k] for k in EXPORT_SECTIONS}},
               context={"methods": ", ".join(methods)})
    ex.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def add_predict_parser(sub) -> None:
    pr = _sub(sub, "predict", "label texts with a predictor folder written by 'export'",
              "Print one JSON line per text: the text, its label and its score for every "
              "label (higher is more likely). With no TEXT, read JSON lines (objects with the "
              "input field(s), and 'id' if wanted) or plain lines from stdin and write JSON "
              "lines to stdout.", DEPLOY_EPILOG)
    pr.add_argument("predictor", metavar="PREDICTOR_DIR", help="a folder written by 'export'")
    pr.add_argument("texts", nargs="*", metavar="TEXT", help="texts to label (default: stdin)")
    pr.add_argument("--batch-size", dest="texts_per_call", type=int, default=32, metavar="N",
                    help="texts labelled per call (default: 32)")
    pr.add_argument("--no-scores", action="store_true", help="leave the scores out")


def version() -> str:
    """The installed distribution's version; in a checkout that was never installed, the
    package's own ``__version__``."""
    try:
        return importlib.metadata.version("iclmeta")
    except importlib.metadata.PackageNotFoundError:
        from iclmeta import __version__
        return __version__


def build_parser(methods: list[str]) -> Parser:
    """The whole command line; ``methods`` are the registry's names (for ``--method`` help)."""
    parser = Parser(prog="iclmeta", description="Few-shot learning with language models on "
                    "one episodic benchmark harness.")
    parser.add_argument("--version", action="version", version=f"iclmeta {version()}",
                        help="print the installed version and exit")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser,
                                title="commands", help="'iclmeta COMMAND --help' for its flags")
    add_eval_parser(sub, methods)
    add_report_parser(sub)
    add_prompt_parser(sub)
    add_train_parser(sub)
    add_export_parser(sub, methods)
    add_predict_parser(sub)
    add_ls_parser(sub)
    from iclmeta.cli.recommend import add_recommend_parser
    add_recommend_parser(sub, EVAL_SECTIONS, _sub)
    return parser


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Each subcommand's parser by name."""
    return next(a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def option_strings(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings}
