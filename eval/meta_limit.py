"""Seconds per LoRA meta-step beside the forward + backward passes the step needs (its limit).

A meta-step's floor is the model passes its math requires: for each task of the meta-batch,

- ``multitask``: one pass over support + query (plain task loss);
- ``fomaml``: ``inner_steps`` passes over the support, one over the query;
- ``maml``: the same, plus one more pass over the support per inner step (the meta-backward
  differentiates every inner step's gradient again; counted as one forward + backward);
- ``reptile``: ``inner_steps`` passes over support + query;
- ``retrieve-adapt``: ``inner_steps`` passes over every query's neighbours (queries x k rows),
  one over the queries.

Each pass is one forward and one backward (gradients of the LoRA weights only) over exactly the
tokens the loss reads: the prompts' common prefix once (where the library's scorer shares it),
then every prompt's own tokens followed by its label-candidate trie (candidates that start
alike share tokens) in one left-padded batch on that prefix, logits kept only at the positions
that score a label token. That is the cheapest layout of those tokens; the library's scorer
runs a prefill and a separate candidate pass instead. Both are timed on the same tasks, interleaved step by step, in one
fresh process per algorithm (same model, dtype and thread count). ratio = step / limit.

    python eval/meta_limit.py --data ../shared/data/clinc150.jsonl --steps 3 --out runs/meta_limit.json
    python eval/meta_limit.py --tiny --steps 1          # a random 2-layer model, seconds (tests)
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

METHODS = ("multitask", "fomaml", "reptile", "maml", "retrieve-adapt")


def trie_tokens(cand_ids: list[list[int]]) -> list[int]:
    """Tokens 1..n-1 of every candidate, shared prefixes once (the candidate pass's nodes)."""
    seen, out = set(), []
    for seq in cand_ids:
        for k in range(len(seq) - 1):
            if tuple(seq[:k + 1]) not in seen:
                seen.add(tuple(seq[:k + 1]))
                out.append(seq[k])
    return out


def needed_passes(method: str, tasks, inner_steps: int) -> list:
    """The task batches whose forward + backward the meta-step cannot avoid."""
    from iclmeta.meta.lora import join_batches
    from iclmeta.meta.lora import pick_rows
    out = []
    for task in tasks:
        if method == "retrieve-adapt":
            rows = pick_rows(task.support, [i for near in task.near for i in near])
            out += [rows] * inner_steps + [task.query]
        elif method == "multitask":
            out.append(join_batches(*task))
        elif method == "reptile":
            out += [join_batches(*task)] * inner_steps
        elif method == "maml":  # the meta-backward differentiates each inner step once more
            out += [task[0]] * (2 * inner_steps) + [task[1]]
        else:
            out += [task[0]] * inner_steps + [task[1]]
    return out


def plain(model):
    """The layout of the limit, as a module so ``functional_call`` swaps the fast weights in:
    the prompts' common prefix once (when the scorer's own rule would share it), then every
    prompt's own tokens and its candidate trie in one pass on that cache."""
    import torch

    from iclmeta.lm.candidates import cache_keyword
    from iclmeta.lm.kv import prefixed_cache
    from iclmeta.lm.prefix import left_pad, shared_prefix

    class Plain(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, prompt_ids, trie):
            prefix = shared_prefix(self.model, prompt_ids)
            skip = 0 if prefix is None else prefix.length
            device = next(self.model.parameters()).device
            ids, mask, positions = left_pad([p[skip:] + trie for p in prompt_ids], device)
            extra = {}
            if prefix is not None:
                extra[cache_keyword()] = prefixed_cache(prefix.cache)
                mask = torch.cat([mask.new_ones(len(prompt_ids), skip), mask], dim=1)
                positions = positions + skip
            return self.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                              logits_to_keep=len(trie) + 1, **extra).logits
    return Plain()


def limit_pass(lora, params, batch) -> None:
    """One forward + backward over the batch's prompts, each followed by its candidate trie."""
    import torch
    from torch.func import functional_call

    logits = functional_call(plain(lora.model), dict(params),
                             (batch.prompt_ids, trie_tokens(batch.cand_ids)), strict=False)
    loss = torch.logsumexp(logits.float(), dim=-1).sum()
    torch.autograd.grad(loss, list(params.values()))


def measure(method: str, data: str, model: str | None, dtype: str, steps: int, shots: int,
            embedder: str | None) -> dict:
    import torch

    from iclmeta.config import MetaTrainConfig
    from iclmeta.meta.trainer import MetaTrainer
    cfg = MetaTrainConfig(method=method, dataset=data, model=model, dtype=dtype, ways=5,
                          shots=[shots], queries=2, steps=steps + 1, inner_steps=2,
                          inner_lr=0.3, meta_batch=2, out="/dev/null",
                          embedder=embedder if method == "retrieve-adapt" else None)
    trainer = MetaTrainer(cfg, echo=lambda msg: None)
    trainer.setup()
    params = trainer.lora.initial()
    opt = trainer.algorithm.optimizer(list(params.values()), cfg.resolved_meta_lr())
    _, params = trainer.update(params, opt, trainer.step_tasks(0))  # warm-up, not counted
    limit_pass(trainer.lora, params, needed_passes(method, trainer.step_tasks(0), 1)[0])
    spent, floor = 0.0, 0.0
    for step in range(1, steps + 1):
        tasks = trainer.step_tasks(step)
        start = time.perf_counter()
        _, params = trainer.update(params, opt, tasks)
        spent += time.perf_counter() - start
        start = time.perf_counter()
        for batch in needed_passes(method, tasks, cfg.inner_steps):
            limit_pass(trainer.lora, params, batch)
        floor += time.perf_counter() - start
    return {"method": method, "shots": shots, "meta_batch": 2, "inner_steps": 2, "dtype": dtype,
            "threads": torch.get_num_threads(), "seconds_per_step": round(spent / steps, 3),
            "limit_seconds": round(floor / steps, 3), "ratio": round(spent / floor, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def tiny_inputs(folder: Path) -> tuple[str, str]:
    """The synthetic dataset and random 2-layer model of eval/gpu_meta.py."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from gpu_meta import build_inputs
    return build_inputs(folder, tiny=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/clinc150.jsonl")
    parser.add_argument("--model", default=None, help="default: the embedded SmolLM2-135M")
    parser.add_argument("--embedder", default=None, help="retrieve-adapt's (default: minilm)")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--steps", type=int, default=3, help="timed meta-steps per algorithm")
    parser.add_argument("--shots", type=int, default=1)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--tiny", action="store_true", help="random 2-layer model, synthetic data")
    parser.add_argument("--out", default="runs/meta_limit.json")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.data, args.model, args.dtype, args.steps,
                                 args.shots, args.embedder)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        if args.tiny:
            args.data, args.model = tiny_inputs(Path(tmp))
            args.dtype = "float32"
        if not Path(args.data).is_file():
            print(f"skip: {args.data} not found", file=sys.stderr)
            return
        rows = []
        for method in args.methods.split(","):
            cmd = [sys.executable, __file__, "--one", method, "--data", args.data, "--dtype",
                   args.dtype, "--steps", str(args.steps), "--shots", str(args.shots)]
            cmd += ["--model", args.model] if args.model else []
            cmd += ["--embedder", args.embedder] if args.embedder else []
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"{method} failed:\n{done.stderr[-3000:]}")
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    print("\n| algorithm | s / meta-step | limit (s) | ratio | peak RSS (MB) |\n|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['method']} | {r['seconds_per_step']} | {r['limit_seconds']} | {r['ratio']} | "
              f"{r['peak_rss_mb']} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
