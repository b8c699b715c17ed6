"""Copy a training folder's latest state (``checkpoint.json``) into an adapter folder of its own.

The trainer keeps the best meta-val step as the adapter; this makes the last step evaluable
beside it (eval/README.md, "The real schedule"):

    python eval/last_adapter.py runs/lora_bench/adapters/fomaml_seed0 runs/lora_bench/adapters/fomaml_seed0_last
"""
import argparse
import json
from pathlib import Path

from safetensors.torch import load_file

from iclmeta.meta.checkpoints import _LORA_KEY, export_peft, save_adapter

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("src", type=Path, help="folder written by 'iclmeta train'")
parser.add_argument("dst", type=Path, help="new adapter folder")
args = parser.parse_args()
meta = json.loads((args.src / "checkpoint.json").read_text())
tensors = {k: v for k, v in load_file(args.src / meta["weights"]).items() if _LORA_KEY.fullmatch(k)}
meta = {k: v for k, v in meta.items() if k not in ("optimizer", "weights", "weights_sha256")}
args.dst.mkdir(parents=True, exist_ok=True)
save_adapter(args.dst, "best", tensors, meta)
export_peft(args.dst)
print(f"{args.dst}: step {meta['step']}, {len(tensors)} tensors")
