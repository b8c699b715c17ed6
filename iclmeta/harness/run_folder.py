"""The run folder: which one a run writes to, whether it may, and the lock held while it does.

- Without ``--out`` every run gets a new folder ``runs/DATE_TIME`` (local time; ``-2``, ``-3``
  ... when that name is taken), and ``runs/latest`` is a symbolic link to the newest one,
  replaced in one rename (where links cannot be made, ``runs/LATEST`` names it instead).
  ``--resume`` without ``--out`` continues that newest run.
- iclmeta writes only into a folder that is empty or that it made: a run leaves a marker file
  ``.iclmeta-run``. A folder written by an earlier version (no marker, but a ``config.yaml``
  with the ``config`` and ``episodes`` sections a run records) counts as iclmeta's and gets
  the marker; anything else is refused.
- While a run writes, it holds an exclusive lock on its folder (``io.FolderLock``); a second
  run on the same folder is refused at once. The operating system drops the lock if the
  process dies, so an interrupted run can always be resumed.
- Every check that can refuse a folder runs before anything is written (``check_folder``) and
  again under the lock (``claim``).

>>> default_out(Path("runs"), datetime(2026, 12, 1, 14, 3, 22)).as_posix()
'runs/2026-12-01_14-03-22'
"""
from __future__ import annotations

import os
import shutil
from datetime import datetime
from pathlib import Path

from iclmeta.errors import UserError
from iclmeta.harness.distributed import RANK_PATTERN
from iclmeta.io import FolderLock, load_yaml, write_atomic

RUNS = Path("runs")
MARKER = ".iclmeta-run"
LATEST = "latest"
LATEST_FILE = "LATEST"  # where symbolic links cannot be made
RESULTS = ("results.jsonl", RANK_PATTERN)
_IN_USE = "wait for it to finish, or choose another --out"


def default_out(runs: Path = RUNS, now: datetime | None = None) -> Path:
    """A new folder name under ``runs`` for a run starting ``now`` (not created here)."""
    stamp = (now or datetime.now()).strftime("%Y-%m-%d_%H-%M-%S")
    folder, n = runs / stamp, 1
    while folder.exists() or folder.is_symlink():
        n += 1
        folder = runs / f"{stamp}-{n}"
    return folder


def target(out: str | None, resume: bool, runs: Path = RUNS) -> tuple[Path, bool]:
    """The folder a run writes to, and whether it is a new default one (``out`` None)."""
    if out is not None:
        return Path(out).expanduser(), False
    return (latest_run(runs), False) if resume else (default_out(runs), True)


def latest_run(runs: Path = RUNS) -> Path:
    """The newest default run folder (what ``runs/latest`` names), for ``--resume``."""
    link, named = runs / LATEST, runs / LATEST_FILE
    if link.is_symlink():
        return link.resolve()
    if named.is_file():
        return runs / named.read_text(encoding="utf-8").strip()
    if link.is_dir():  # an earlier version wrote its default run there
        return link
    raise UserError(f"--resume without --out continues the newest run in {runs}/, and there is "
                    f"none ({link} does not exist); pass --out RUN_DIR")


def point_latest(folder: Path) -> str | None:
    """Make ``runs/latest`` name ``folder`` (a sibling of it) in one rename; returns the name
    it held before (None if none)."""
    runs = folder.parent
    link, named, tmp = runs / LATEST, runs / LATEST_FILE, runs / f".{LATEST}-{os.getpid()}"
    before = os.readlink(link) if link.is_symlink() else \
        named.read_text(encoding="utf-8").strip() if named.is_file() else None
    if link.exists() and not link.is_symlink():
        write_atomic(named, folder.name)  # keep an earlier version's real folder
        return before
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(folder.name, target_is_directory=True)
        os.replace(tmp, link)
        named.unlink(missing_ok=True)
    except (OSError, NotImplementedError):
        tmp.unlink(missing_ok=True)
        write_atomic(named, folder.name)
    return before


def made_by_iclmeta(folder: Path) -> bool:
    """The folder holds the marker, or is a run folder of an earlier version (no marker yet)."""
    if (folder / MARKER).is_file():
        return True
    try:
        recorded = load_yaml(folder / "config.yaml")
    except UserError:
        return False
    return isinstance(recorded, dict) and isinstance(recorded.get("config"), dict) \
        and "episodes" in recorded


def has_results(folder: Path) -> bool:
    return any(p.stat().st_size > 0 for pattern in RESULTS for p in folder.glob(pattern))


def check_folder(out: Path, resume: bool, locked: bool = False) -> None:
    """Refuse, in one line and before anything is written, a folder this run may not use
    (``locked``: this process holds its lock already)."""
    if out.is_file():
        raise UserError(f"--out {out} is a file; pass a folder (new or written by iclmeta)")
    if not out.exists():
        parent = next(p for p in out.absolute().parents if p.exists())
        if not parent.is_dir():
            raise UserError(f"--out {out} cannot be created: {parent} is a file; pass a folder")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise UserError(f"--out {out} cannot be created: {parent} is not writable; choose "
                            "another --out")
        return
    if not os.access(out, os.W_OK | os.X_OK):
        raise UserError(f"--out {out} is not writable; choose another --out")
    if any(p.name != FolderLock.NAME for p in out.iterdir()) and not made_by_iclmeta(out):
        raise UserError(f"--out {out} holds files iclmeta did not write (no {MARKER}); choose "
                        "a new or empty folder")
    if not locked and (out / FolderLock.NAME).exists():  # no lock file: no run holds it
        FolderLock.acquire(out, "another iclmeta run", _IN_USE).release()
    if has_results(out) and not resume:
        raise UserError(f"{out} already holds results; pass --resume to continue that run "
                        "or choose a new --out")


class Claim:
    """A locked run folder: ``Claim.take(out, resume, fresh)`` creates (a ``fresh`` default
    folder: under a name no other run holds) and locks it, checks it again under the lock and
    marks it as iclmeta's; ``release(failed)`` unlocks it, and after a run that failed before
    writing a row, leaves a folder that was empty or absent as it found it (and restores
    ``runs/latest``)."""

    def __init__(self, out: Path, lock: FolderLock, created: bool, was_empty: bool,
                 latest_before=False):
        self.out, self.lock, self.created, self.was_empty = out, lock, created, was_empty
        self.latest_before = latest_before  # False: runs/latest was not touched

    @classmethod
    def take(cls, out: Path, resume: bool, fresh: bool) -> "Claim":
        created = not out.exists()
        was_empty = created or all(p.name == FolderLock.NAME for p in out.iterdir())
        while True:
            try:
                out.mkdir(parents=True, exist_ok=not fresh)
                break
            except FileExistsError:
                if not fresh:  # a file took the name since the check
                    raise UserError(f"--out {out} is a file; pass a folder") from None
                out = default_out(out.parent)  # a run started in the same second took it
            except OSError as err:
                raise UserError(f"cannot create --out {out}: {err.strerror}; choose another "
                                "--out") from None
        lock = FolderLock.acquire(out, "another iclmeta run", _IN_USE)
        try:
            check_folder(out, resume, locked=True)
            write_atomic(out / MARKER, "a run folder written by iclmeta\n")
        except BaseException:
            lock.release()
            raise
        return cls(out, lock, created, was_empty, point_latest(out) if fresh else False)

    def release(self, failed: bool = False) -> None:
        if failed and self.was_empty and not has_results(self.out):
            if self.created:
                shutil.rmtree(self.out, ignore_errors=True)
            else:  # everything in it is this run's (marker, config.yaml, lock)
                for child in self.out.iterdir():
                    child.unlink(missing_ok=True)
            if self.latest_before is not False:
                self._restore_latest()
        self.lock.release()

    def _restore_latest(self) -> None:
        runs = self.out.parent
        if self.latest_before is not None and (runs / self.latest_before).is_dir():
            point_latest(runs / self.latest_before)
            return
        for stale in (runs / LATEST, runs / LATEST_FILE):
            if stale.is_symlink() or stale.is_file():
                stale.unlink()
