"""How often numerics flip predictions: dtype x batch size x shared-prefix reuse, side by side.

Every arm scores the same prompts (icl: one episode over all classes, ``--shots`` per class as
demonstrations in one seeded order shared by every query, every test query of the dataset) with
the embedded SmolLM2-135M on the CPU. The reference arm is float32, batch 8, whole prompts (no
prefix reuse). For every arm it prints the share of queries whose predicted label differs from
the reference, the largest per-token log-prob difference, and seconds (one pass per arm, so
the seconds are indicative only; eval/bench.py times scoring properly).

    .venv/bin/python eval/determinism.py --datasets trec snips --shots 1
"""
from __future__ import annotations

import argparse
import random
import time

# (dtype, batch size, prefix reuse); the first is the reference. Batch 1 without reuse is left
# out: it costs the most and is the same computation as batch 8 without reuse, less padding.
ARMS = [("float32", 8, False), ("float32", 8, True), ("float32", 1, True),
        ("bfloat16", 8, False), ("bfloat16", 8, True), ("bfloat16", 1, True)]


def prompts_for(dataset: str, shots: int, seed: int):
    from iclmeta.data.episodes import plan_episodes, sample_episodes
    from iclmeta.data.sources import load_dataset
    from iclmeta.prompts import PromptBuilder, load_template, template_for

    ds = load_dataset(dataset)
    # Every test query; a dataset without its own test split gives every example not in support.
    queries = None if ds.splits() else min(map(len, ds.by_label().values())) - shots
    plan = plan_episodes(ds, None, [shots], queries)
    episode = sample_episodes(ds, plan, 1, seed)[0]
    demos = list(episode.support_set(shots))
    random.Random(seed).shuffle(demos)
    builder = PromptBuilder(load_template(template_for(None, ds.name)), ds.label_names)
    labels = list(episode.classes)
    prompts = [builder.render(demos, q) for q in episode.query]
    return prompts, builder.candidates(labels), labels, len(episode.query)


def main(argv=None) -> int:
    import numpy as np
    import torch

    from iclmeta.lm.hf import HFLM

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["trec", "snips"])
    parser.add_argument("--shots", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, help="score only the first N test queries")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    models = {d: HFLM.load(device="cpu", dtype=d) for d in ("float32", "bfloat16")}
    for dataset in args.datasets:
        prompts, candidates, labels, n = prompts_for(dataset, args.shots, args.seed)
        if args.limit:
            prompts, n = prompts[:args.limit], min(n, args.limit)
        results = {}
        for dtype, batch, reuse in ARMS:
            lm = models[dtype]
            lm.batch_size, lm.reuse_prefix = batch, reuse
            start = time.perf_counter()
            scores = lm.score(prompts, candidates).normalized()
            results[(dtype, batch, reuse)] = (scores, time.perf_counter() - start)
            print(f"  {dataset} {dtype} batch {batch} reuse {reuse}: "
                  f"{results[(dtype, batch, reuse)][1]:.1f} s", flush=True)
        ref = results[ARMS[0]][0]
        print(f"\n{dataset}: {n} queries, {len(labels)} labels, {args.shots}-shot icl prompts")
        print("| dtype | batch | prefix reuse | flipped vs fp32/b8/whole | flipped vs same dtype "
              "b8/whole | max abs dlogp/token vs fp32 | seconds |")
        print("|---|---|---|---|---|---|---|")
        for arm in ARMS:
            scores, secs = results[arm]
            own = results[(arm[0], 8, False)][0]
            flips = int((scores.argmax(1) != ref.argmax(1)).sum())
            own_flips = int((scores.argmax(1) != own.argmax(1)).sum())
            diff = float(np.nanmax(np.abs(scores - ref)))
            print(f"| {arm[0]} | {arm[1]} | {'on' if arm[2] else 'off'} | {flips} ({flips / n:.1%}) "
                  f"| {own_flips} ({own_flips / n:.1%}) | {diff:.2e} | {secs:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
