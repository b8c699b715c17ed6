"""Speed benchmarks of iclmeta's scoring, measured side by side in one run.

Every arm of a comparison runs on the same prompts with the same thread count, and the arms'
repetitions alternate (A B C, B C A, ...), so load from other jobs on a shared machine hits them
alike; each figure is the median over repetitions, each ratio a ratio of medians.

    python eval/bench.py scoring   # scorer vs the forward limits (prompt; prompt + label trie) and naive, by labels
    python eval/bench.py prefix    # icl: demonstrations shared by every query, prefix reuse on/off, vs shots
    python eval/bench.py manyshot  # icl with a block of ~1k/4k/7k tokens: per-query cost and peak memory, reuse on/off
    python eval/bench.py embed     # embedding cache: first run vs second run
    python eval/bench.py all       # everything above

Arms (``scoring``): ``limit_prompt`` = the model's forward over exactly the scored prompt tokens
(same batches, same padding, logits of the last position only, no candidates); ``limit_trie`` = one
forward over each prompt followed by its label trie's tokens (the tokens the scorer must run: a
label's tokens 1..n-1, shared where labels start alike), same batches, keeping the logits of the
prompt's last position and of every trie token (all of them are needed); ``scorer`` =
``HFLM.score`` as shipped; ``naive`` = one full forward per (prompt, label), timed on
``--naive-prompts`` prompts x up to ``--naive-labels`` labels and scaled linearly (each of its
forwards is independent, so its cost is linear in both).

Arms (``manyshot``): ``reuse`` = ``HFLM.score`` as shipped on ``--block-queries`` icl prompts that
share one block of about ``--block-tokens`` tokens (the block runs once, every query reads its
KV); ``whole`` = the same with prefix reuse off, timed on ``--whole-queries`` of the prompts and
scaled per query. Peak memory is the process's peak resident set (CPU; reset before each arm
through ``/proc/self/clear_refs``) or ``torch.cuda.max_memory_allocated`` (CUDA), above what was
resident before the arm.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "clinc150.jsonl"
WORDS = ("please can you i need to want would like help me with my the a for from at on today tomorrow "
         "account card flight song alarm weather hotel car dinner meeting friend phone money home work").split()
INTENTS = ("book flight|cancel reservation|check balance|transfer money|play music|set alarm|weather forecast|"
           "translate phrase|order pizza|find restaurant|pay bill|reset password|track package|schedule meeting|"
           "call contact|send text|tell joke|define word|convert currency|timer start|report lost card|"
           "car rental|hotel booking|flight status|credit limit|change pin|exchange rate|meal suggestion|"
           "nutrition info|recipe search|calendar update|reminder create|shopping list add|todo list show|"
           "traffic report|directions home|gas price|oil change due|tire pressure|smart home lights").split("|")
HEADER = "Classify the intent of each user request."


def labels_for(n: int) -> list[str]:
    """``n`` distinct intent names as candidate continuations (CLINC-like, 1-4 tokens)."""
    return [" " + INTENTS[i % len(INTENTS)] + ("" if i < len(INTENTS) else f" {i // len(INTENTS)}")
            for i in range(n)]


def request(rng: random.Random) -> str:
    return " ".join(rng.choices(WORDS, k=rng.randint(6, 12)))


def demo_block(rng, labels: list[str], n_demos: int) -> list[str]:
    return [f"Request: {request(rng)}\nIntent:{rng.choice(labels)}" for _ in range(n_demos)]


def retrieval_prompts(n_prompts: int, labels: list[str], n_demos: int, seed: int = 0) -> list[str]:
    """Prompts with their own demonstrations each (as ``retrieval`` builds them): only the header is shared."""
    rng = random.Random(seed)
    return ["\n\n".join([HEADER, *demo_block(rng, labels, n_demos), f"Request: {request(rng)}\nIntent:"])
            for _ in range(n_prompts)]


def icl_prompts(n_prompts: int, labels: list[str], n_demos: int, seed: int = 0) -> list[str]:
    """Prompts sharing one demonstration set (as ``icl`` builds an episode's): only the query differs."""
    rng = random.Random(seed)
    demos = demo_block(rng, labels, n_demos)
    return ["\n\n".join([HEADER, *demos, f"Request: {request(rng)}\nIntent:"]) for _ in range(n_prompts)]


def alternate(arms: dict, reps: int) -> dict[str, float]:
    """Median seconds of each arm over ``reps`` rounds, the arms' order rotating every round."""
    names, times = list(arms), {name: [] for name in arms}
    for rep in range(reps):
        for name in names[rep % len(names):] + names[:rep % len(names)]:
            start = time.perf_counter()
            arms[name]()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def forward_limit(lm, prompts: list[str], labels: list[str] | None = None):
    """The raw forward over exactly the scored prompt tokens, in the scorer's batches and order;
    with ``labels``, each prompt followed by its label trie's tokens, keeping their logits."""
    import torch

    from iclmeta.lm.prefix import encode_prompts, left_pad

    ids = sorted(encode_prompts(lm.tokenizer, prompts), key=len)
    size = lm.batch_for(len(ids[-1]))
    trie = trie_tokens(lm, labels) if labels else []
    ids = [seq + trie for seq in ids]

    def run():
        with torch.no_grad():
            for start in range(0, len(ids), size):
                batch, mask, _ = left_pad(ids[start:start + size], lm.device)
                lm.model(input_ids=batch, attention_mask=mask, use_cache=False, logits_to_keep=len(trie) + 1)
    return run


def trie_tokens(lm, labels: list[str]) -> list[int]:
    """The tokens of the labels' trie (each label's tokens 1..n-1, shared prefixes once)."""
    from iclmeta.lm.candidates import _trie
    from iclmeta.lm.prefix import encode_candidates

    nodes, _ = _trie(encode_candidates(lm.tokenizer, 1, labels)[0])
    return [token for token, _, _ in nodes]


def naive_arm(lm, prompts: list[str], labels: list[str], args) -> tuple[object, float]:
    """A timed sample of the naive path and the factor that scales it to all prompts and labels."""
    import torch

    from iclmeta.lm.prefix import encode_candidates, encode_prompts, naive_logprobs

    sample = random.Random(1).sample(labels, min(len(labels), args.naive_labels))
    ids = encode_prompts(lm.tokenizer, prompts[:args.naive_prompts])
    cands = encode_candidates(lm.tokenizer, len(ids), sample)

    def run():
        with torch.no_grad():
            naive_logprobs(lm.model, ids, cands)
    return run, (len(prompts) / len(ids)) * (len(labels) / len(sample))


def agreement(lm, prompts: list[str], labels: list[str], args) -> float:
    """Max |log-prob difference| between the scorer and the naive path on the naive sample."""
    import torch

    from iclmeta.lm.prefix import encode_candidates, encode_prompts, naive_logprobs

    sample = random.Random(1).sample(labels, min(len(labels), args.naive_labels))
    head = prompts[:args.naive_prompts]
    ids = encode_prompts(lm.tokenizer, head)
    with torch.no_grad():
        slow = naive_logprobs(lm.model, ids, encode_candidates(lm.tokenizer, len(ids), sample))
    return float(abs(lm.score(head, sample).total - slow.numpy()).max())


def score_arms(lm, prompts, labels) -> dict:
    return {"reuse": lambda: lm.score(prompts, labels),
            "scorer": lambda: _without_reuse(lm, prompts, labels)}


def _without_reuse(lm, prompts, labels):
    lm.reuse_prefix = False
    try:
        return lm.score(prompts, labels)
    finally:
        lm.reuse_prefix = True


def prompt_tokens(lm, prompts) -> int:
    from iclmeta.lm.prefix import encode_prompts

    return sum(len(s) for s in encode_prompts(lm.tokenizer, prompts))


def bench_scoring(lm, args) -> list[dict]:
    """The scorer against its two forward limits (prompt only; prompt + label trie) and the naive path."""
    rows = []
    for n_labels in args.labels:
        labels = labels_for(n_labels)
        prompts = retrieval_prompts(args.prompts, labels, args.demos)
        lm.score(prompts[:1], labels[:2])  # warm-up
        naive, scale = naive_arm(lm, prompts, labels, args)
        secs = alternate({"limit_prompt": forward_limit(lm, prompts),
                          "limit_trie": forward_limit(lm, prompts, labels),
                          "scorer": lambda: lm.score(prompts, labels), "naive": naive}, args.reps)
        secs["naive"] *= scale
        tokens = prompt_tokens(lm, prompts)
        rows.append({"labels": n_labels, "prompts": len(prompts), "prompt_tokens": tokens,
                     "trie_tokens_per_prompt": len(trie_tokens(lm, labels)),
                     **{f"{k}_s": round(v, 3) for k, v in secs.items()},
                     "scorer_over_limit_trie": round(secs["scorer"] / secs["limit_trie"], 3),
                     "scorer_over_limit_prompt": round(secs["scorer"] / secs["limit_prompt"], 3),
                     "limit_trie_over_limit_prompt": round(secs["limit_trie"] / secs["limit_prompt"], 3),
                     "naive_over_scorer": round(secs["naive"] / secs["scorer"], 1),
                     "max_abs_diff_vs_naive": agreement(lm, prompts, labels, args)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def bench_prefix(lm, args) -> list[dict]:
    """icl prompts (one demonstration set for every query): prefix reuse on vs off, by shots."""
    rows = []
    labels = labels_for(args.ways)
    for shots in args.shots:
        prompts = icl_prompts(args.ways * args.queries, labels, args.ways * shots)
        lm.score(prompts[:1], labels[:2])
        secs = alternate(score_arms(lm, prompts, labels), args.reps)
        rows.append({"shots": shots, "ways": args.ways, "queries": len(prompts),
                     "prompt_tokens": prompt_tokens(lm, prompts),
                     "whole_s_per_query": round(secs["scorer"] / len(prompts), 4),
                     "reuse_s_per_query": round(secs["reuse"] / len(prompts), 4),
                     "reuse_speedup": round(secs["scorer"] / secs["reuse"], 2)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def bench_manyshot(lm, args) -> list[dict]:
    """One icl episode whose queries share a block of ~``--block-tokens``: per-query cost and peak
    memory with the block's KV reused vs every prompt run whole."""
    from iclmeta.lm.kv import kv_bytes_per_token
    from iclmeta.lm.prefix import encode_prompts, shared_prefix_length

    rows, labels, cuda = [], labels_for(args.manyshot_labels), lm.device.type == "cuda"
    per_token = kv_bytes_per_token(lm.model.config, next(lm.model.parameters()).dtype)
    for target in args.block_tokens:
        prompts = block_prompts(lm, labels, target, args.block_queries)
        sample = prompts[:args.whole_queries]
        lm.score(prompts[:1], labels[:2])  # warm-up
        peaks: dict[str, list[float]] = {"reuse": [], "whole": []}
        secs = alternate({"reuse": measured(peaks["reuse"], lambda: lm.score(prompts, labels), cuda),
                          "whole": measured(peaks["whole"], lambda: _without_reuse(lm, sample, labels), cuda)},
                         args.reps)
        block = shared_prefix_length(encode_prompts(lm.tokenizer, prompts))
        rows.append({"block_tokens": block, "queries": len(prompts), "labels": len(labels),
                     "trie_tokens": len(trie_tokens(lm, labels)), "whole_sampled": len(sample),
                     "reuse_s_per_query": round(secs["reuse"] / len(prompts), 3),
                     "whole_s_per_query": round(secs["whole"] / len(sample), 3),
                     "speedup": round(secs["whole"] / len(sample) / (secs["reuse"] / len(prompts)), 1),
                     "reuse_peak_mb": round(max(peaks["reuse"]) / 2**20),
                     "whole_peak_mb": round(max(peaks["whole"]) / 2**20),
                     "block_kv_mb": round(block * per_token / 2**20, 1)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def block_prompts(lm, labels: list[str], tokens: int, n_queries: int) -> list[str]:
    """``n_queries`` icl prompts sharing one block of about ``tokens`` tokens (header + demonstrations)."""
    rng = random.Random(0)
    demos = [HEADER]
    while prompt_tokens(lm, ["\n\n".join(demos)]) < tokens:
        demos += demo_block(rng, labels, max(1, (tokens - prompt_tokens(lm, ["\n\n".join(demos)])) // 20))
    return ["\n\n".join([*demos, f"Request: {request(rng)}\nIntent:"]) for _ in range(n_queries)]


def measured(peaks: list, run, cuda: bool):
    """``run`` wrapped to append its peak memory (bytes above what was resident before) to ``peaks``."""
    import torch

    def arm():
        if cuda:
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
            run()
            peaks.append(torch.cuda.max_memory_allocated() - before)
            return
        _release_freed_memory()
        before = _rss("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # resets the peak resident set (VmHWM)
        run()
        peaks.append(_rss("VmHWM") - before)
    return arm


def _release_freed_memory() -> None:
    """Hand memory freed by an earlier arm back to the OS (glibc), so it does not hide this arm's peak."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _rss(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def bench_embed(args) -> list[dict]:
    """Embedding ``--texts`` distinct texts into a fresh cache, then again from a new instance."""
    import numpy as np

    from iclmeta.retrieval.embedder import Embedder

    texts = read_texts(args.data, args.texts)
    with tempfile.TemporaryDirectory() as cache_dir:
        cold = Embedder(args.embedder, cache_dir=cache_dir).load()
        start = time.perf_counter()
        first = cold.encode(texts)
        cold_s = time.perf_counter() - start
        warm = Embedder(args.embedder, cache_dir=cache_dir)
        start = time.perf_counter()
        second = warm.encode(texts)
        warm_s = time.perf_counter() - start
        assert np.array_equal(first, second) and warm.model is None
    row = {"texts": len(texts), "first_s": round(cold_s, 3), "cached_s": round(warm_s, 3),
           "first_texts_s": round(len(texts) / cold_s), "cached_texts_s": round(len(texts) / warm_s),
           "speedup": round(cold_s / warm_s, 1), "hits_second_run": warm.cache_stats["hits"]}
    print(json.dumps(row), flush=True)
    return [row]


def read_texts(path: Path, n: int) -> list[str]:
    """``n`` distinct texts spread evenly over a JSONL file (every intent represented)."""
    rows = [json.loads(line)["text"] for line in path.open(encoding="utf-8") if line.strip()]
    distinct = list(dict.fromkeys(rows))
    return distinct[::max(1, len(distinct) // n)][:n]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("bench", choices=["scoring", "prefix", "manyshot", "embed", "all"])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto", help="auto: bfloat16 (CPU and GPUs with bf16)")
    parser.add_argument("--batch-size", default="8", help="an integer or 'auto' (fills a GPU)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, the same in every arm")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--prompts", type=int, default=8, help="scoring: prompts per call")
    parser.add_argument("--demos", type=int, default=20, help="scoring: demonstrations per prompt")
    parser.add_argument("--labels", type=int, nargs="+", default=[5, 50, 150], help="scoring: label counts")
    parser.add_argument("--naive-prompts", type=int, default=2)
    parser.add_argument("--naive-labels", type=int, default=10)
    parser.add_argument("--ways", type=int, default=5, help="prefix: labels and classes")
    parser.add_argument("--queries", type=int, default=5, help="prefix: queries per class")
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 4, 8], help="prefix: shots per class")
    parser.add_argument("--block-tokens", type=int, nargs="+", default=[1000, 4000, 7000],
                        help="manyshot: shared block sizes in tokens")
    parser.add_argument("--block-queries", type=int, default=20, help="manyshot: queries sharing a block")
    parser.add_argument("--whole-queries", type=int, default=2, help="manyshot: queries timed without reuse")
    parser.add_argument("--manyshot-labels", type=int, default=10, help="manyshot: labels")
    parser.add_argument("--embedder", default=None)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--json", type=Path, help="also write every row here")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    import torch

    from iclmeta.lm.hf import HFLM

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    results = {}
    if args.bench in ("embed", "all"):
        results["embed"] = bench_embed(args)
    if args.bench != "embed":
        batch = args.batch_size if args.batch_size == "auto" else int(args.batch_size)
        lm = HFLM.load(args.model, device=args.device, dtype=args.dtype, batch_size=batch)
        print(f"model {args.model} on {lm.device} ({next(lm.model.parameters()).dtype}), "
              f"{args.threads} thread(s), {args.reps} alternating reps", flush=True)
        if args.bench in ("scoring", "all"):
            results["scoring"] = bench_scoring(lm, args)
        if args.bench in ("prefix", "all"):
            results["prefix"] = bench_prefix(lm, args)
        if args.bench in ("manyshot", "all"):
            results["manyshot"] = bench_manyshot(lm, args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
