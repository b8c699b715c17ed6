"""Meta-step time and peak memory of LoRA meta-learning on CUDA (bf16), beside the CPU.

Step time and memory depend on shapes, not weights, so everything is built in code and no model
file, dataset or network is needed: a randomly initialised Llama of SmolLM2-135M's shape, a
word-level tokenizer (it only has to produce token ids) and a synthetic 40-class dataset of
12-word texts. The sizes are those of the ``config.json`` of HuggingFaceTB/SmolLM2-135M and
-Instruct on the Hugging Face hub, which is also the config iclmeta writes when it dequantizes
its embedded default model: hidden 576, 30 layers, 9 attention heads, 3 key-value heads, MLP
1536, vocabulary 49,152, tied embeddings, rope theta 100,000.

Each (method, device) runs in a fresh process, through the library as a user would run it:
``meta_train`` (5-way 1-shot tasks, meta-batch 2, 2 inner steps, as ``eval/lora_cost.py``;
one warm-up meta-step, not counted) for fomaml and maml, then ``evaluate`` of the fomaml adapter
it wrote on meta-test episodes (the adapted method, 1 and 4 shots, 2 adaptation steps).
Printed: seconds per meta-step, seconds per evaluated episode and peak memory: on CUDA
``torch.cuda.max_memory_allocated`` (reset before training and before evaluation), on CPU the
peak RSS of the process (it includes the training before an evaluation). With ``--device cuda``
the same runs follow on CPU with fewer steps (``--cpu-steps``, ``--cpu-dtype``).

On a machine with a GPU, from the repository root (``pip install -e .`` done), about 2 minutes:

    python eval/gpu_meta.py --device cuda --steps 5 --episodes 3 --cpu-steps 1 --out runs/gpu_meta.json

Tiny and CPU only (what tests/test_gpu_meta.py runs):

    python eval/gpu_meta.py --device cpu --tiny --steps 1 --episodes 1 --out runs/gpu_meta_tiny.json
"""
from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

SMOLLM2_135M = dict(hidden_size=576, num_hidden_layers=30, num_attention_heads=9,
                    num_key_value_heads=3, intermediate_size=1536, vocab_size=49152,
                    max_position_embeddings=8192, rope_theta=100000.0, rms_norm_eps=1e-5,
                    tie_word_embeddings=True)
TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=128, vocab_size=512, max_position_embeddings=256,
            tie_word_embeddings=True)
SPECIALS = ["<pad>", "<unk>", "<s>", "</s>"]
CLASSES, PER_CLASS, TEXT_WORDS = 40, 16, 12


def build_inputs(folder: Path, tiny: bool, seed: int = 0) -> tuple[str, str]:
    """Write the synthetic dataset and the random model + tokenizer; return their paths."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    rng = random.Random(seed)
    words = [f"w{i}" for i in range(300)]
    labels = [f"{rng.choice(words)} {rng.choice(words)}" for _ in range(CLASSES)]
    labels = [f"{label} {i}" for i, label in enumerate(labels)]  # distinct two/three-word names
    rows = [{"text": " ".join(rng.choice(words) for _ in range(TEXT_WORDS)), "label": label}
            for label in labels for _ in range(PER_CLASS)]
    data = folder / "synthetic.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    vocab = {tok: i for i, tok in enumerate(SPECIALS + words + [str(d) for d in range(10)])}
    raw = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()  # template words become <unk>: one id each
    raw.post_processor = processors.TemplateProcessing(single="<s> $A",
                                                       special_tokens=[("<s>", vocab["<s>"])])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<s>", eos_token="</s>",
                                        pad_token="<pad>", unk_token="<unk>")
    sizes = TINY if tiny else SMOLLM2_135M
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(**sizes, pad_token_id=0, bos_token_id=2,
                                         eos_token_id=3))
    model.to(torch.float32 if tiny else torch.bfloat16).save_pretrained(folder / "model")
    tokenizer.save_pretrained(folder / "model")
    return str(data), str(folder / "model")


def _peak_mb(cuda: bool) -> float:
    import torch
    if cuda:
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _reset_peak(cuda: bool) -> None:
    import torch
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def measure(spec: dict) -> dict:
    """One (method, device, dtype): a short meta-training, then (``episodes``) an evaluation."""
    from iclmeta.config import EvalConfig, MetaTrainConfig
    from iclmeta.harness.evaluate import evaluate
    from iclmeta.meta.train import meta_train
    cuda = spec["device"].startswith("cuda")
    work = Path(tempfile.mkdtemp(prefix=f"{spec['method']}-", dir=spec["work"]))
    common = dict(dataset=spec["data"], model=spec["model"], device=spec["device"],
                  dtype=spec["dtype"])
    steps = spec["steps"] + 1  # the first meta-step warms up (kernels, allocator) and is dropped
    _reset_peak(cuda)
    meta_train(MetaTrainConfig(
        method=spec["method"], ways=5, shots=[1], queries=2, steps=steps, inner_steps=2,
        inner_lr=0.1, meta_batch=2, eval_every=steps, val_episodes=1, val_queries=2,
        out=str(work / "adapter"), **common), progress=False, echo=lambda msg: None)
    log = [json.loads(line) for line in (work / "adapter" / "log.jsonl").open()]
    seconds = [row["seconds"] for row in log if "loss" in row][1:]
    result = {"method": spec["method"], "device": spec["device"], "dtype": spec["dtype"],
              "meta_steps": len(seconds),
              "seconds_per_step": round(sum(seconds) / len(seconds), 3),
              "train_peak_mb": _peak_mb(cuda)}
    if spec["episodes"]:
        _reset_peak(cuda)
        evaluate(EvalConfig(methods=[spec["method"]], adapters=[str(work / "adapter")],
                            shots=[1, 4], queries=2, ways=5, episodes=spec["episodes"],
                            class_split="disjoint", out=str(work / "run"), **common),
                 progress=False)
        rows = [json.loads(line) for line in (work / "run" / "results.jsonl").open()]
        result.update(eval_episodes=spec["episodes"], eval_seconds_per_episode=round(
            sum(r["seconds"] for r in rows) / spec["episodes"], 3), eval_peak_mb=_peak_mb(cuda),
            eval_accuracy=round(sum(r["accuracy"] for r in rows) / len(rows), 3))
    if cuda:
        import torch
        result["gpu"] = torch.cuda.get_device_name()
    return result


def _run_one(spec: dict) -> dict:
    """``measure(spec)`` in a fresh process: peak memory is then that run's own."""
    done = subprocess.run([sys.executable, __file__, "--one", json.dumps(spec)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{spec['method']} on {spec['device']} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def plan(args) -> list[tuple[str, str, int]]:
    """(method, device, dtype, steps) of every run: the asked device, then the CPU beside it."""
    runs = [(m, args.device, args.dtype, args.steps) for m in ("fomaml", "maml")]
    if args.device != "cpu" and args.cpu_steps > 0:
        runs += [(m, "cpu", args.cpu_dtype, args.cpu_steps) for m in ("fomaml", "maml")]
    return runs


def table(rows: list[dict]) -> str:
    head = (f"{'method':8} {'device':7} {'dtype':9} {'s/meta-step':>11} {'peak MB':>9} "
            f"{'s/episode':>9} {'eval MB':>9}")
    lines = [head]
    for r in rows:
        lines.append(f"{r['method']:8} {r['device']:7} {r['dtype']:9} "
                     f"{r['seconds_per_step']:>11.3f} {r['train_peak_mb']:>9.0f} "
                     f"{r.get('eval_seconds_per_episode', float('nan')):>9.3f} "
                     f"{r.get('eval_peak_mb', float('nan')):>9.0f}")
    return "\n".join(lines) + ("\npeak MB: torch.cuda.max_memory_allocated on CUDA, peak RSS of "
                               "the process on CPU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    parser.add_argument("--dtype", default=None, help="default: bfloat16 on CUDA, float32 on CPU")
    parser.add_argument("--steps", type=int, default=5, help="timed meta-steps per method")
    parser.add_argument("--episodes", type=int, default=3, help="evaluated episodes (fomaml; 0: "
                        "none)")
    parser.add_argument("--cpu-steps", type=int, default=1, help="timed meta-steps of the CPU "
                        "runs beside a CUDA run (0: skip them)")
    parser.add_argument("--cpu-dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--tiny", action="store_true", help="a 2-layer, 64-wide model instead "
                        "of SmolLM2-135M's shape (for tests)")
    parser.add_argument("--out", default="runs/gpu_meta.json")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(json.loads(args.one))))
        return
    args.dtype = args.dtype or ("float32" if args.device == "cpu" else "bfloat16")
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    with tempfile.TemporaryDirectory(prefix="gpu_meta-") as tmp:
        data, model = build_inputs(Path(tmp), args.tiny)
        rows = []
        for method, device, dtype, steps in plan(args):
            episodes = args.episodes if method == "fomaml" else 0
            rows.append(_run_one({"method": method, "device": device, "dtype": dtype,
                                  "steps": steps, "episodes": episodes, "data": data,
                                  "model": model, "work": tmp}))
            print(json.dumps(rows[-1]), flush=True)
    print(table(rows))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"shape": "tiny" if args.tiny else "SmolLM2-135M",
                                          "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
