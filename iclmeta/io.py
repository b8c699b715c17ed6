"""Files written safely: atomic writes (text, bytes, figures, tensors), YAML, and the lock that
keeps two processes from writing into one folder."""
from __future__ import annotations

import hashlib
import json
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


def read_json_object(file: str | Path) -> dict:
    """The JSON object in ``file`` (a checkpoint index); ``ValueError`` whose message finishes
    the phrase "FILE ..." when it is unreadable, not JSON or not an object."""
    try:
        data = json.loads(Path(file).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:  # ValueError: invalid JSON or not UTF-8
        raise ValueError(f"is not readable JSON ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ValueError(f"holds a JSON {type(data).__name__}, not an object")
    return data


def read_verified(folder: str | Path, name: str, sha256: str | None) -> bytes:
    """The bytes of the data file ``name`` of a checkpoint folder (see ``write_checkpoint``),
    checked against the ``sha256`` its index recorded (``None``: an index older than checksums,
    nothing to check). ``ValueError`` naming the file and what is wrong with it otherwise."""
    path = Path(folder) / Path(name).name  # never a path outside the folder
    if not path.is_file():
        raise ValueError(f"{path.name} is missing")
    data = path.read_bytes()
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        state = "is empty" if not data else "is truncated or not the file saved with it"
        raise ValueError(f"{path.name} {state} (sha256 differs)")
    return data


class FolderLock:
    """An exclusive, non-blocking lock on ``folder`` (a lock file inside it), held until
    ``release()`` or the process ends; the operating system drops it when a holder dies, so a
    crash never leaves a stale lock behind.

    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> lock = FolderLock.acquire(d, "a run")
    >>> FolderLock.acquire(d, "a run")
    Traceback (most recent call last):
    ...
    iclmeta.errors.UserError: ... is in use by a run (process ...); wait for it to finish or choose another folder
    >>> lock.release()
    >>> FolderLock.acquire(d, "a run").release()
    """

    NAME = ".iclmeta-lock"

    def __init__(self, handle):
        self._handle = handle

    @classmethod
    def acquire(cls, folder: str | Path, holder: str,
                fix: str = "wait for it to finish or choose another folder") -> "FolderLock":
        """Take the lock of an existing ``folder``, or raise a one-line ``UserError`` naming
        the ``holder`` and the ``fix``."""
        path = Path(folder) / cls.NAME
        handle = open(path, "a+", encoding="utf-8")
        try:
            _lock(handle)
        except OSError:
            handle.seek(0)
            pid = handle.read().strip() or "unknown"
            handle.close()
            raise UserError(f"{folder} is in use by {holder} (process {pid}); {fix}") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        return cls(handle)

    def release(self) -> None:
        self._handle.close()  # closing the file releases the lock


def _lock(handle) -> None:
    """Lock the whole file without waiting; ``OSError`` when another process holds it."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt
        handle.seek(0)  # msvcrt locks bytes from the current position
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        return
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
