"""LoRA adapter folders: ``adapter.json`` / ``checkpoint.json`` naming their safetensors file."""
from __future__ import annotations

import json
from pathlib import Path

from iclmeta.errors import UserError
from iclmeta.io import write_atomic, write_checkpoint

FORMAT = "iclmeta-lora/1"


def save_adapter(folder: Path, kind: str, tensors: dict, meta: dict,
                 extra_tensors: dict | None = None) -> None:
    """Write ``KIND-SHA16.safetensors`` then, atomically, ``adapter.json`` (kind ``best``) or
    ``checkpoint.json`` naming it, and prune older weights (``io.write_checkpoint``)."""
    from safetensors.torch import save_file
    weights = {**tensors, **(extra_tensors or {})}
    index = "adapter.json" if kind == "best" else "checkpoint.json"
    write_checkpoint(folder, kind, "safetensors", lambda tmp: save_file(weights, tmp), index, meta)


def load_adapter(path: str | Path, index: str = "adapter.json") -> tuple[dict, dict]:
    """``(tensors, meta)`` of an adapter folder written by ``meta_train``."""
    from safetensors.torch import load_file
    folder = Path(path)
    if not (folder / index).is_file():
        raise UserError(f"{folder} holds no {index}; pass a folder written by 'iclmeta train'")
    try:
        meta = json.loads((folder / index).read_text(encoding="utf-8"))
        tensors = load_file(str(folder / meta["weights"]))
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"cannot read the adapter in {folder} ({exc.__class__.__name__}); "
                        "retrain it with 'iclmeta train'") from None
    if meta.get("format") != FORMAT:
        raise UserError(f"{folder} is not an iclmeta LoRA adapter (format {meta.get('format')!r})")
    return tensors, meta


def adapter_method(path: str | Path) -> str | None:
    """The method an adapter folder was trained with (``None`` if it holds no adapter)."""
    try:
        return json.loads((Path(path) / "adapter.json").read_text(encoding="utf-8")).get("method")
    except (OSError, ValueError):
        return None


class TrainLog:
    """``log.jsonl``: appended and flushed line by line; lines past a resumed step are dropped."""

    def __init__(self, path: Path):
        self.path = path

    def truncate_after(self, step: int) -> None:
        if not self.path.exists():
            return
        keep = [line for line in self.path.read_text(encoding="utf-8").splitlines()
                if _line_step(line) is not None and _line_step(line) <= step]
        write_atomic(self.path, "".join(line + "\n" for line in keep))

    def append(self, row: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")


def _line_step(line: str) -> int | None:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None
