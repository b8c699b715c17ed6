"""The ``iclmeta`` command line: a thin map from subcommands to library calls."""
from __future__ import annotations

import argparse
import sys

from .errors import UserError

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


def int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers, "
                                         "e.g. 0,1,4,8") from None
    if not values:
        raise argparse.ArgumentTypeError("give at least one shot count, e.g. 0,1,4")
    return values


def count_or_all(text: str) -> int | None:
    if text == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer or 'all'") from None


def add_data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--dataset", default="snips",
                   help="builtin name (trec, trec-50, snips), a .jsonl/.csv file, or a Hugging "
                        "Face dataset id or folder (default: snips)")
    g.add_argument("--text-field", help="field holding the text (default: guessed)")
    g.add_argument("--label-field", help="field holding the label (default: guessed)")
    g.add_argument("--split-field", help="field naming each example's split (default: 'split' "
                                         "when present)")
    g.add_argument("--hf-config", help="configuration of a Hugging Face dataset, e.g. plus")


def add_episode_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("episodes")
    g.add_argument("--ways", type=int, help="classes per episode (default: 5, or every class "
                                            "when evaluating over all classes)")
    g.add_argument("--shots", type=int_list, default=[0, 1, 4],
                   help="comma-separated shot counts (default: 0,1,4)")
    g.add_argument("--queries", type=count_or_all, default=5,
                   help="query examples per class, or 'all' (default: 5)")
    g.add_argument("--episodes", type=int, default=10, help="episodes (default: 10)")
    g.add_argument("--pool", type=int, help="support pool per class (default: largest shots)")
    g.add_argument("--seed", type=int, default=0, help="episode seed (default: 0)")
    g.add_argument("--split", default="meta-test",
                   help="meta-train, meta-val or meta-test classes (default: meta-test)")
    g.add_argument("--split-seed", type=int, default=0, help="seed of the class split")
    g.add_argument("--class-split", choices=["auto", "disjoint", "all"], default="auto",
                   help="disjoint: class-disjoint meta-splits; all: every class, support from "
                        "the train split and queries from the test split when the dataset has "
                        "them; auto: 'all' below 20 classes (default: auto)")


def add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("models")
    g.add_argument("--model", help="LM: smollm2 (default, embedded), gemma3-270m, a Hugging "
                                   "Face id, a local folder or a .gguf file")
    g.add_argument("--embedder", help="sentence-transformers model: minilm (default, embedded), "
                                      "a Hugging Face id or a local folder")
    g.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto")
    g.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"], default="auto")
    g.add_argument("--batch-size", type=int, default=8, help="prompts per forward (default: 8)")
    g.add_argument("--cache-dir", help="model and embedding cache (default: $ICLMETA_CACHE or "
                                       "~/.cache/iclmeta)")
    g.add_argument("--trust-remote-code", action="store_true",
                   help="allow a hub model's own code to run (off by default)")


def add_prompt_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("prompting")
    g.add_argument("--template", help="prompt template name in prompts/ or a YAML file "
                                      "(default: by dataset)")
    g.add_argument("--scoring", choices=["direct", "normalized"], default="normalized",
                   help="label score: summed or per-token log-likelihood (default: normalized)")
    g.add_argument("--k", type=int, help="demonstrations per prompt (default: ways x shots)")
    g.add_argument("--balance", action="store_true", help="retrieval: same count per label")
    g.add_argument("--mmr", type=float, help="retrieval: MMR lambda in [0, 1] for diversity")
    g.add_argument("--order", choices=["nearest-last", "nearest-first"], default="nearest-last")


def build_parser() -> argparse.ArgumentParser:
    from .methods import METHODS
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
    ev.add_argument("--out", default="runs/latest", help="run folder (default: runs/latest)")
    ev.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    ev.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def config_from_args(args):
    from .config import EvalConfig
    return EvalConfig(
        methods=args.methods or ["retrieval"], dataset=args.dataset, text_field=args.text_field,
        label_field=args.label_field, split_field=args.split_field, hf_config=args.hf_config,
        model=args.model, embedder=args.embedder, template=args.template, ways=args.ways,
        shots=args.shots, queries=args.queries, episodes=args.episodes, pool=args.pool,
        seed=args.seed, split=args.split, split_seed=args.split_seed,
        class_split=args.class_split, scoring=args.scoring, k=args.k, balance=args.balance,
        mmr=args.mmr, order=args.order, device=args.device, dtype=args.dtype,
        batch_size=args.batch_size, cache_dir=args.cache_dir,
        trust_remote_code=args.trust_remote_code, out=args.out)


def cmd_eval(args) -> int:
    from .harness import evaluate
    report = evaluate(config_from_args(args), resume=args.resume, progress=not args.no_progress)
    print(report.table())
    print(f"\nresults: {report.out}/results.jsonl  summary: {report.out}/summary.csv")
    return 0


COMMANDS = {"eval": cmd_eval}


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
