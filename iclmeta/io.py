"""Files written safely: atomic writes (text, bytes, figures, tensors) and YAML."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import yaml

from iclmeta.errors import UserError


def save_yaml(data: dict, path: str | Path) -> None:
    """Write YAML atomically: a crash never leaves a half-written file behind."""
    write_atomic(path, yaml.safe_dump(data, sort_keys=False))


def load_yaml(path: str | Path) -> dict:
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"cannot read {path}: {exc.__class__.__name__}; check the file") from None


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename.

    Whatever the body writes there (text, ``savefig``, safetensors) either lands whole with the
    usual permissions or, if the body fails, is removed: a crash never leaves a torn file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write text (UTF-8) or bytes to ``path`` atomically (see ``atomic_path``)."""
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


def write_checkpoint(folder: str | Path, stem: str, suffix: str, write, index: str,
                     meta: dict) -> str:
    """Publish a checkpoint folder: a content-named data file, then its JSON index, atomically.

    ``write(tmp_path)`` writes the data (safetensors, a FAISS index, ...) to a temporary file;
    it is renamed to ``STEM-SHA16.SUFFIX``, then ``index`` is replaced in one rename with
    ``meta`` plus ``weights`` (that name) and ``weights_sha256``. Older ``STEM-*.SUFFIX`` files
    are removed last, so a crash at any point leaves the previous checkpoint readable.
    Returns the data file's name.

    >>> import tempfile, json
    >>> d = tempfile.mkdtemp()
    >>> name = write_checkpoint(d, "model", "bin", lambda p: Path(p).write_bytes(b"w"),
    ...                         "config.json", {"format": 1})
    >>> json.loads((Path(d) / "config.json").read_text())["weights"] == name
    True
    """
    import hashlib
    import json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{stem}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        digest = hashlib.sha256(Path(tmp).read_bytes()).hexdigest()
        name = f"{stem}-{digest[:16]}.{suffix}"
        os.replace(tmp, folder / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    write_atomic(folder / index, json.dumps({**meta, "weights": name, "weights_sha256": digest},
                                            indent=1, ensure_ascii=False))
    for stale in folder.glob(f"{stem}-*.{suffix}"):
        if stale.name != name:
            stale.unlink(missing_ok=True)
    return name
