"""Metric checkpoints: a folder with ``config.json`` and a content-named safetensors file.

Loading checks the folder whole before a tensor is used, and refuses a damaged one in one line
naming the file and the fix: ``config.json`` must be a JSON object with the keys loading reads;
the weights file must be the very file it names (its sha256); its tensors must be exactly those
of the net ``config.json`` describes, with finite values.
"""
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
        meta = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:  # ValueError: invalid JSON or not UTF-8
        raise _damaged(file, f"is not readable JSON ({str(err).splitlines()[0]})") from None
    if not isinstance(meta, dict):
        raise _damaged(file, f"holds a JSON {type(meta).__name__}, not an object")
    return meta


def load_checkpoint(path: str | os.PathLike) -> tuple[MetricNet, dict]:
    """(net in eval mode, its config) from a folder written by ``save_checkpoint``."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    meta = read_checkpoint_config(path)
    file = Path(path) / "config.json"
    if meta.get("family") != "metric" or meta.get("format") != FORMAT:
        raise UserError(f"{path} is not a metric checkpoint (family {meta.get('family')!r}); "
                        "pass one written by 'iclmeta train --method protonet|matching|relation'")
    for key, kind in (("weights", str), ("weights_sha256", str), ("net", dict)):
        if not isinstance(meta.get(key), kind):
            raise _damaged(file, f"has no valid {key!r} ({meta.get(key)!r})")
    weights = Path(path) / Path(meta["weights"]).name
    data = weights.read_bytes() if weights.is_file() else None
    if data is None or hashlib.sha256(data).hexdigest() != meta["weights_sha256"]:
        state = "is missing" if data is None else "is empty" if not data else \
            "is truncated or not the file saved with it"
        raise _damaged(file, f"its weights file {weights.name} {state} (incomplete or damaged)")
    try:
        net = MetricNet(**meta["net"])
        net.load_state_dict(load(data))
    except (TypeError, ValueError, RuntimeError, SafetensorError) as err:
        detail = " ".join(str(err).split())[:160]
        raise _damaged(file, f"its weights disagree with its 'net' settings ({detail})") from None
    if not all(bool(value.isfinite().all()) for value in net.state_dict().values()):
        raise _damaged(file, f"its weights file {weights.name} holds non-finite values")
    return net.eval(), meta


def _damaged(file: Path, problem: str) -> UserError:
    return UserError(f"checkpoint file {file}: {problem}; retrain it with 'iclmeta train' or "
                     "pass the right --checkpoint")
