"""Benchmark the shared-prefix scorer against the naive one-forward-per-candidate path.

Prints, for each label count: scorer and naive seconds, the speed-up, the max abs difference in
summed log-probs (float32), and how far bfloat16 scoring moves the log-probs. Also times the GGUF
conversion (into a fresh temporary cache) and the cached load.

    python eval/bench_scorer.py --labels 5 50 --prompts 8 --prompt-tokens 200
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time

import numpy as np
import torch

from iclmeta.lm import HFLM, encode_candidates, encode_prompts, naive_logprobs
from iclmeta.models import load_causal_lm

INTENTS = ("book flight|cancel reservation|check balance|transfer money|play music|set alarm|weather forecast|"
           "translate phrase|order pizza|find restaurant|pay bill|reset password|track package|schedule meeting|"
           "call contact|send text|tell joke|define word|convert currency|timer start|report lost card|"
           "car rental|hotel booking|flight status|credit limit|change pin|exchange rate|meal suggestion|"
           "nutrition info|recipe search|calendar update|reminder create|shopping list add|todo list show|"
           "traffic report|directions home|gas price|oil change due|tire pressure|smart home lights|"
           "thermostat set|volume up|next song|repeat last|spelling help|math calculation|date today|"
           "time zone|travel alert|vaccine requirements").split("|")
WORDS = ("please can you i need to want would like help me with my the a for from at on today tomorrow "
         "account card flight song alarm weather hotel car dinner meeting friend phone money home work").split()


def make_prompts(n_prompts: int, n_labels: int, prompt_tokens: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """CLINC-like few-shot prompts of roughly ``prompt_tokens`` tokens, and the candidate labels."""
    rng = random.Random(seed)
    labels = [" " + INTENTS[i % len(INTENTS)] + ("" if i < len(INTENTS) else f" {i // len(INTENTS)}")
              for i in range(n_labels)]
    prompts = []
    for _ in range(n_prompts):
        parts = ["Classify the intent of each request."]
        while sum(len(p.split()) for p in parts) * 1.3 < prompt_tokens:
            text = " ".join(rng.choices(WORDS, k=rng.randint(6, 12)))
            parts.append(f"Input: {text}\nLabel:{rng.choice(labels)}")
        parts.append(f"Input: {' '.join(rng.choices(WORDS, k=8))}\nLabel:")
        prompts.append("\n\n".join(parts))
    return prompts, labels


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def naive_scores(lm: HFLM, prompts: list[str], labels: list[str]) -> np.ndarray:
    prompt_ids = encode_prompts(lm.tokenizer, prompts)
    with torch.no_grad():
        return naive_logprobs(lm.model, prompt_ids, encode_candidates(lm.tokenizer, len(prompts), labels)).numpy()


def bench_labels(lm32: HFLM, lm16: HFLM, args, n_labels: int) -> str:
    prompts, labels = make_prompts(args.prompts, n_labels, args.prompt_tokens)
    lm32.score(prompts[:1], labels[:2])  # warm-up
    fast, t_fast = timed(lambda: lm32.score(prompts, labels))
    slow, t_slow = timed(lambda: naive_scores(lm32, prompts, labels))
    half, t_half = timed(lambda: lm16.score(prompts, labels))
    diff = np.abs(fast.total - slow).max()
    bf16 = np.abs(half.total - fast.total).max()
    bf16_norm = np.abs(half.normalized() - fast.normalized()).max()
    agree = (half.normalized().argmax(1) == fast.normalized().argmax(1)).mean()
    return (f"{n_labels:>6} {fast.prompt_tokens / len(prompts):>8.0f} {t_fast:>9.2f} {t_slow:>9.2f} "
            f"{t_slow / t_fast:>8.1f}x {diff:>10.2e} {t_half:>9.2f} {bf16:>9.3f} {bf16_norm:>9.3f} {agree:>6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--labels", type=int, nargs="+", default=[5, 50])
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--prompt-tokens", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1, help="1 is fastest on a shared, busy CPU")
    parser.add_argument("--skip-conversion", action="store_true", help="do not time a fresh GGUF conversion")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        cache = None if args.skip_conversion else tmp
        _, t_convert = timed(lambda: load_causal_lm(args.model, device="cpu", dtype="float32", cache_dir=cache))
        lm32, t_load = timed(lambda: HFLM.load(args.model, device="cpu", dtype="float32", cache_dir=cache))
        lm16 = HFLM.load(args.model, device="cpu", dtype="bfloat16", cache_dir=cache)
        print(f"model {args.model}: first load (conversion unless cached) {t_convert:.1f} s, "
              f"cached load {t_load:.2f} s")
        print(f"{'labels':>6} {'prompt_t':>8} {'scorer_s':>9} {'naive_s':>9} {'speedup':>9} {'max|diff|':>10} "
              f"{'bf16_s':>9} {'bf16_dif':>9} {'bf16_tok':>9} {'agree':>6}")
        for n_labels in args.labels:
            print(bench_labels(lm32, lm16, args, n_labels), flush=True)


if __name__ == "__main__":
    main()
