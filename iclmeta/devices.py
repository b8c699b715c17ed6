"""Where a model runs and in what precision: ``--device`` and ``--dtype`` resolved against this
machine, with one line saying what is available when the asked-for device is not.

torch is imported inside the functions, so importing this module stays light.

>>> pick_device("cpu").type, str(pick_dtype("auto", "cpu"))
('cpu', 'torch.float32')
"""
from __future__ import annotations

from iclmeta.errors import UserError


def pick_device(device: str = "auto"):
    """``"auto"`` -> the first CUDA GPU when there is one, else the CPU; ``cpu``, ``mps``,
    ``cuda`` and ``cuda:N`` are checked against the machine first (``check_device``)."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as err:
        raise UserError(f"unknown device '{device}'; use auto, cpu, mps, cuda or cuda:N "
                        f"({err})") from None
    check_device(resolved)
    return resolved


def check_device(device) -> None:
    """Refuse a device this machine lacks, naming the ones it has.

    >>> import torch
    >>> check_device(torch.device("cpu"))
    """
    import torch

    kind, index = device.type, device.index
    if kind == "cuda":
        if not torch.cuda.is_available():
            why = (f"torch {torch.__version__} was built without CUDA"
                   if torch.version.cuda is None else "no CUDA GPU is visible")
            raise UserError(f"--device {device}: CUDA is not available on this machine ({why}); "
                            f"use {_others(torch)}")
        count = torch.cuda.device_count()
        if index is not None and index >= count:
            visible = ", ".join(f"cuda:{i}" for i in range(count))
            raise UserError(f"--device {device}: this machine has {count} CUDA GPU(s) "
                            f"({visible}); pick one of them or --device cuda")
    elif kind == "mps" and not _has_mps(torch):
        raise UserError(f"--device mps: Apple's MPS is not available on this machine; "
                        f"use {_others(torch)}")


def _has_mps(torch) -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def _others(torch) -> str:
    """The devices that do work here, as advice."""
    names = ["--device cpu"]
    if torch.cuda.is_available():
        names.append("--device cuda")
    if _has_mps(torch):
        names.append("--device mps")
    return " or ".join(names)


def pick_dtype(dtype: str = "auto", device=None):
    """``"auto"`` -> float32 on the CPU, bfloat16 on GPUs (float16 where bf16 is missing).

    float32 on the CPU because bfloat16 there flips a few percent of predictions with the batch
    size and with shared-prefix reuse (its rounding differs with the shapes of the matmuls);
    float32 costs 1.5-3.4x in scoring time there (``eval/determinism.py``; figures in
    ``eval/README.md``). ``--dtype bfloat16`` remains for speed over reproducibility.
    """
    import torch

    choices = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype == "auto":
        kind = torch.device(device).type if device is not None else "cpu"
        if kind == "cpu":
            return torch.float32
        return torch.float16 if kind == "cuda" and not torch.cuda.is_bf16_supported() else torch.bfloat16
    if dtype not in choices:
        raise UserError(f"unknown dtype '{dtype}'; choose one of: auto, {', '.join(choices)}")
    return choices[dtype]
