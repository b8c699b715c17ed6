"""Metric checkpoints: a folder with ``config.json`` and a content-named safetensors file."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from iclmeta.errors import UserError
from iclmeta.io import write_checkpoint
from iclmeta.metric.nets import MetricNet

FORMAT = 1


def save_checkpoint(net: MetricNet, out: str | os.PathLike, meta: dict) -> Path:
    """Write ``net`` + ``meta`` to folder ``out``; the config switches in one atomic rename."""
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    config = {"format": FORMAT, "family": "metric", "method": net.method, "net": net.spec(), **meta}
    write_checkpoint(out, "model", "safetensors", lambda tmp: save_file(state, tmp),
                     "config.json", config)
    return Path(out)


def read_checkpoint_config(path: str | os.PathLike) -> dict:
    """The ``config.json`` of a checkpoint folder (no torch needed)."""
    file = Path(path) / "config.json"
    if not file.is_file():
        raise UserError(f"no checkpoint at {path} (config.json missing); train one with "
                        f"'iclmeta train --method protonet --out {path}' or fix --checkpoint")
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"cannot read {file} ({err.__class__.__name__}); retrain the "
                        "checkpoint") from None


def load_checkpoint(path: str | os.PathLike) -> tuple[MetricNet, dict]:
    """(net in eval mode, its config) from a folder written by ``save_checkpoint``."""
    from safetensors.torch import load_file

    meta = read_checkpoint_config(path)
    if meta.get("family") != "metric" or meta.get("format") != FORMAT:
        raise UserError(f"{path} is not a metric checkpoint (family {meta.get('family')!r}); "
                        "pass one written by 'iclmeta train --method protonet|matching|relation'")
    weights = Path(path) / meta["weights"]
    if not weights.is_file() or hashlib.sha256(weights.read_bytes()).hexdigest() != meta[
            "weights_sha256"]:
        raise UserError(f"checkpoint {path} is incomplete or damaged ({meta['weights']}); "
                        "retrain it")
    net = MetricNet(**meta["net"])
    net.load_state_dict(load_file(str(weights)))
    return net.eval(), meta
