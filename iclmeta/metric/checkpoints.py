"""Metric checkpoints: a folder with ``config.json`` and a content-named safetensors file.

Loading checks the folder whole before a tensor is used, and refuses a damaged one in one line
naming the file and the fix: ``config.json`` must be a JSON object with the keys loading reads;
the weights file must be the very file it names (its sha256); its tensors must be exactly those
of the net ``config.json`` describes, with finite values.
"""
from __future__ import annotations

import os
from pathlib import Path

from iclmeta.errors import UserError
from iclmeta.io import read_json_object, read_verified, write_checkpoint
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
        return read_json_object(file)
    except ValueError as err:
        raise _damaged(file, str(err)) from None


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
    try:
        data = read_verified(path, meta["weights"], meta["weights_sha256"])
    except ValueError as err:
        raise _damaged(file, f"its weights file {err}") from None
    try:
        net = MetricNet(**meta["net"])
        net.load_state_dict(load(data))
    except (TypeError, ValueError, RuntimeError, SafetensorError) as err:
        detail = " ".join(str(err).split())[:160]
        raise _damaged(file, f"its weights disagree with its 'net' settings ({detail})") from None
    if not all(bool(value.isfinite().all()) for value in net.state_dict().values()):
        raise _damaged(file, f"its weights file {meta['weights']} holds non-finite values")
    return net.eval(), meta


def _damaged(file: Path, problem: str) -> UserError:
    return UserError(f"checkpoint file {file}: {problem}; retrain it with 'iclmeta train' or "
                     "pass the right --checkpoint")
