"""Argument types and argument groups of the ``iclmeta`` subcommands (parsing only, no logic)."""
from __future__ import annotations

import argparse


def int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers, "
                                         "e.g. 0,1,4,8") from None
    if not values:
        raise argparse.ArgumentTypeError("give at least one shot count, e.g. 0,1,4")
    return values


def batch_size(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer or 'auto'")
    return value


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
    g.add_argument("--queries", type=count_or_all, default=2,
                   help="query examples per class, or 'all' (default: 2; the defaults keep a "
                        "first run near a minute on 2 CPU cores, raise them for tighter CIs)")
    g.add_argument("--episodes", type=int, default=5, help="episodes (default: 5)")
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
    g.add_argument("--batch-size", type=batch_size, default=8,
                   help="prompts per forward, or 'auto' to fill a CUDA device (default: 8)")
    g.add_argument("--cache-dir", help="model and embedding cache (default: $ICLMETA_CACHE or "
                                       "~/.cache/iclmeta)")
    g.add_argument("--trust-remote-code", action="store_true",
                   help="allow a hub model's own code to run (off by default)")


def add_prompt_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("prompting")
    g.add_argument("--template", help="prompt template name in prompts/ or a YAML file "
                                      "(default: by dataset)")
    g.add_argument("--scoring", default="normalized",
                   choices=["direct", "normalized", "calibrated", "channel", "generate"],
                   help="label score: summed (direct) or per-token (normalized) log-likelihood, "
                        "contextual calibration, channel p(text | label), or generation parsed "
                        "onto the labels (default: normalized)")
    g.add_argument("--demos", choices=["random", "retrieval"], default="random",
                   help="instruct: which demonstrations (default: random)")
    g.add_argument("--chat-format", choices=["turns", "packed"], default="turns",
                   help="instruct: demonstrations as user/assistant turns or packed into one "
                        "user turn (default: turns)")
    g.add_argument("--k", type=int, help="demonstrations per prompt (default: ways x shots)")
    g.add_argument("--balance", action="store_true", help="retrieval: same count per label")
    g.add_argument("--mmr", type=float, help="retrieval: MMR lambda in [0, 1] for diversity")
    g.add_argument("--order", choices=["nearest-last", "nearest-first"], default="nearest-last")


def add_report_parser(sub) -> None:
    rp = sub.add_parser("report", help="merge runs into tables, paired differences and plots",
                        description="Merge run folders and write report.md, CSV tables "
                        "(shot_curve, paired_differences,\nadapt_curve) and PNG/SVG figures: "
                        "accuracy vs shots with 95% CI bands, paired differences\nbetween "
                        "methods on the same episodes, and accuracy vs adaptation steps for "
                        "gradient methods.",
                        epilog="examples:\n  iclmeta report runs/latest\n  iclmeta report "
                        "runs/icl runs/maml --baseline icl --out runs/compare",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    rp.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders written by 'eval'")
    rp.add_argument("--out", help="report folder (default: FIRST_RUN_DIR/report)")
    rp.add_argument("--baseline", metavar="LABEL", help="compare every method with this one "
                    "(default: every pair, the better of the two first)")
    rp.add_argument("--bootstrap", type=int, default=10_000, metavar="N",
                    help="paired bootstrap resamples of episodes (default: 10000)")
    rp.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")


def add_metric_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("metric methods (knn, protonet, matching, relation)")
    g.add_argument("--distance", choices=["cosine", "euclidean"],
                   help="similarity of embeddings (default: the checkpoint's, else cosine)")
    g.add_argument("--checkpoint", action="append", dest="checkpoints", metavar="DIR",
                   help="repeatable; a folder written by 'iclmeta train'; each method uses the "
                        "one trained for it (relation requires one)")


def add_lora_eval_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("gradient methods (finetune, multitask, maml, fomaml, reptile)")
    g.add_argument("--adapter", action="append", dest="adapters", metavar="DIR",
                   help="repeatable; a LoRA folder written by 'iclmeta train'; each method uses "
                        "the one trained for it (all but finetune require one)")
    g.add_argument("--adapt-steps", type=int, help="SGD steps on each episode's support set; 0 "
                   "evaluates the initialisation itself (default: the adapter's inner steps; "
                   "finetune: 3)")
    g.add_argument("--adapt-lr", type=float, help="SGD learning rate of those steps (default: "
                   "the adapter's inner lr; finetune: 0.1)")
    add_lora_layout_args(g)


def add_lora_layout_args(g) -> None:
    g.add_argument("--lora-rank", type=int, help="LoRA rank of a fresh adapter (default: 8)")
    g.add_argument("--lora-alpha", type=float, help="LoRA alpha (default: 16)")
    g.add_argument("--lora-targets", type=name_list,
                   help="comma-separated module names to adapt (default: q_proj,v_proj)")


def name_list(text: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one module name, e.g. q_proj,v_proj")
    return names


LORA_EVAL_ARGS = ("adapt_steps", "adapt_lr", "lora_rank", "lora_alpha", "lora_targets")


def lora_eval_fields(args) -> dict:
    given = {k: getattr(args, k) for k in LORA_EVAL_ARGS if getattr(args, k) is not None}
    return {"adapters": args.adapters or [], **given}


def add_lora_train_args(tr: argparse.ArgumentParser) -> None:
    g = tr.add_argument_group("LoRA meta-learning (maml, fomaml, reptile, multitask)")
    g.add_argument("--inner-steps", type=int, help="SGD steps on each task's support (default: 2)")
    g.add_argument("--inner-lr", type=float, help="inner SGD learning rate (default: 0.1)")
    g.add_argument("--meta-lr", type=float, help="Adam learning rate (maml, fomaml, multitask; "
                   "default 1e-3) or Reptile's interpolation step in (0, 1] (default 0.5)")
    g.add_argument("--meta-batch", type=int, help="tasks per meta-step (default: 2)")
    g.add_argument("--template", help="prompt template (default: by dataset)")
    g.add_argument("--scoring", choices=["direct", "normalized"],
                   help="label score the task loss uses (default: normalized)")
    add_lora_layout_args(g)


def add_train_parser(sub, methods) -> None:
    tr = sub.add_parser("train", help="meta-train a method on meta-train class episodes",
                        description="Episodic meta-training on the meta-train classes of a "
                        "class-disjoint split; the best step on meta-val is saved to --out.",
                        epilog="examples:\n  iclmeta train --method protonet --dataset trec-50 "
                        "--shots 1,5 --queries 4 --out checkpoints/proto\n  iclmeta eval "
                        "--method protonet --checkpoint checkpoints/proto --dataset trec-50"
                        "\n  iclmeta train --method reptile --dataset clinc150.jsonl --steps 50 "
                        "--inner-steps 2 --inner-lr 0.3 --meta-batch 2 --out adapters/reptile"
                        "\n  iclmeta eval --method reptile --adapter adapters/reptile "
                        "--adapt-steps 2 --dataset clinc150.jsonl",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    tr.add_argument("--method", required=True, choices=sorted(methods))
    add_data_args(tr)
    add_model_args(tr)
    g = tr.add_argument_group("training (unset values take the method's defaults)")
    g.add_argument("--ways", type=int, help="classes per episode (metric default: 5)")
    g.add_argument("--shots", type=int_list, help="shot counts, cycled over steps (metric "
                                                  "default: 1,5)")
    g.add_argument("--queries", type=int, help="queries per class (metric default: 5)")
    g.add_argument("--steps", type=int, help="training episodes (metric default: 500)")
    g.add_argument("--lr", type=float, help="learning rate (metric default: 1e-3)")
    g.add_argument("--seed", type=int, help="seed of episodes and initialisation (default: 0)")
    g.add_argument("--split-seed", type=int, help="seed of the class split (default: 0)")
    g.add_argument("--val-episodes", type=int, help="meta-val episodes (metric default: 50)")
    g.add_argument("--eval-every", type=int, help="steps between meta-val checks (default: 50)")
    g.add_argument("--head", choices=["linear", "mlp", "none"],
                   help="metric: projection head over the embeddings (default: linear)")
    g.add_argument("--distance", choices=["cosine", "euclidean"],
                   help="metric: similarity (default: cosine)")
    g.add_argument("--hidden", type=int, help="metric: hidden width of MLPs (default: 256)")
    add_lora_train_args(tr)
    tr.add_argument("--out", metavar="CHECKPOINT_DIR",
                    help="checkpoint folder (default: checkpoints/METHOD)")
    tr.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def add_show_prompt_parser(sub) -> None:
    sp = sub.add_parser("prompt", help="print the exact prompt a method builds for one query",
                        description="Print what the model sees for one query of one episode "
                        "(the same episodes as 'eval' with the same settings): the prompt text "
                        "or chat messages, the demonstration ids and the scored candidates.",
                        epilog="example:\n  iclmeta prompt --dataset trec --method retrieval "
                        "--shots 4 --query 3", formatter_class=argparse.RawDescriptionHelpFormatter)
    sp.add_argument("--method", default="retrieval", help="a prompting method: zero-shot, icl, "
                    "retrieval or instruct (default: retrieval)")
    sp.add_argument("--episode", type=int, default=0, help="episode index (default: 0)")
    sp.add_argument("--query", type=int, default=0, help="query index in the episode (default: 0)")
    sp.add_argument("--at", type=int, help="which of --shots to show (default: the largest)")
    for group in (add_data_args, add_episode_args, add_model_args, add_prompt_args):
        group(sp)
    sp.set_defaults(out="runs/prompt", distance=None, checkpoints=None, adapters=None,
                    **{name: None for name in LORA_EVAL_ARGS})
