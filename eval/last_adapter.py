"""Copy a training folder's latest state (``checkpoint.json``) into an adapter folder of its own.

The trainer keeps the best meta-val step as the adapter; this makes the last step evaluable
beside it (eval/README.md, "The real schedule"):

    python eval/last_adapter.py runs/lora_bench/adapters/fomaml_seed0 runs/lora_bench/adapters/fomaml_seed0_last
"""
import argparse
import sys
from pathlib import Path

from iclmeta.errors import UserError
from iclmeta.meta.checkpoints import export_peft, load_adapter, save_adapter

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("src", type=Path, help="folder written by 'iclmeta train'")
parser.add_argument("dst", type=Path, help="new adapter folder")
args = parser.parse_args()
try:
    tensors, meta = load_adapter(args.src, "checkpoint.json")  # checked whole: sha256, layout
except UserError as err:
    print(f"error: {err}", file=sys.stderr)
    sys.exit(2)
tensors = {k: v for k, v in tensors.items() if not k.startswith("optimizer.")}
meta = {k: v for k, v in meta.items() if k not in ("optimizer", "weights", "weights_sha256")}
args.dst.mkdir(parents=True, exist_ok=True)
save_adapter(args.dst, "best", tensors, meta)
export_peft(args.dst)
print(f"{args.dst}: step {meta['step']}, {len(tensors)} tensors")
