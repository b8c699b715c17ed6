"""The predictor folder on disk: its manifest, its file checksums, and how it is published.

A folder is written whole into a temporary sibling and renamed into place, so an interrupted
export or ``save`` leaves the previous predictor (or nothing) behind, never a mix. Reading it
checks the manifest's format and the sha256 of every file it lists before anything is used.

>>> import tempfile
>>> out = Path(tempfile.mkdtemp()) / "p"
>>> publish(out, lambda tmp: (tmp / "a.txt").write_text("hi") and {"method": "knn"})
>>> read_manifest(out)["files"]
{'a.txt': '8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4'}
>>> (out / "a.txt").write_text("changed")
7
>>> read_manifest(out)
Traceback (most recent call last):
...
iclmeta.errors.UserError: predictor ... a.txt differs from the exported file (sha256); re-export it or restore the file
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from iclmeta.errors import UserError
from iclmeta.io import read_json_object, write_atomic

MANIFEST = "predictor.json"
FORMAT = 1  # bump when a folder written before could be read wrongly


def iclmeta_version() -> str:
    from importlib import metadata
    try:
        return metadata.version("iclmeta")
    except metadata.PackageNotFoundError:  # a checkout that was never installed
        from iclmeta import __version__
        return __version__


def check_target(out: str | os.PathLike) -> Path:
    """``out`` if export may write there: absent, empty, or a predictor folder (replaced)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; choose a new or empty folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise UserError(f"--out {out} is not empty and was not made by 'iclmeta export'; "
                        "choose a new or empty folder")
    return out


def file_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (hidden files and the manifest aside)."""
    found = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.is_file() and rel.as_posix() != MANIFEST and \
                not any(part.startswith(".") for part in rel.parts):
            found[rel.as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def publish(out: str | os.PathLike, write: Callable[[Path], dict]) -> None:
    """Write a predictor folder: ``write(tmp)`` fills a temporary folder and returns the
    manifest's fields; the checksums and the manifest are added; the folder replaces ``out``."""
    out = check_target(out)
    parent = out.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        manifest = {"format": FORMAT, "iclmeta": iclmeta_version(), **write(tmp)}
        manifest["files"] = file_hashes(tmp)
        write_atomic(tmp / MANIFEST, json.dumps(manifest, indent=1, ensure_ascii=False))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes a private folder
        _swap(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _swap(new: Path, out: Path) -> None:
    """Put ``new`` where ``out`` is; an old predictor is moved aside first, then removed."""
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    if not out.exists():
        os.replace(new, out)
        return
    old = Path(tempfile.mkdtemp(dir=out.absolute().parent, prefix=f".{out.name}.", suffix=".old"))
    old.rmdir()
    os.replace(out, old)
    os.replace(new, out)
    shutil.rmtree(old, ignore_errors=True)


def read_manifest(folder: str | os.PathLike) -> dict:
    """The manifest of a predictor folder, after checking its format and every file's sha256."""
    folder = Path(folder)
    fix = "pass a folder written by 'iclmeta export'"
    if not folder.is_dir():
        raise UserError(f"no predictor folder {folder}; {fix}")
    if not (folder / MANIFEST).is_file():
        raise UserError(f"{folder} holds no {MANIFEST}; {fix}")
    try:
        manifest = read_json_object(folder / MANIFEST)
    except ValueError as err:
        raise UserError(f"predictor {folder}: {MANIFEST} {err}; re-export it") from None
    if manifest.get("format") != FORMAT:
        raise UserError(f"predictor {folder} was made by iclmeta {manifest.get('iclmeta', '?')} "
                        f"(predictor format {manifest.get('format')!r}); this is iclmeta "
                        f"{iclmeta_version()} (format {FORMAT}): re-export it with this version")
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise UserError(f"predictor {folder}: {MANIFEST} lists no files; re-export it")
    for name, digest in files.items():
        path = folder / name
        if Path(name).is_absolute() or ".." in Path(name).parts or not path.is_file():
            raise UserError(f"predictor {folder} is missing {name}; re-export it")
        if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            raise UserError(f"predictor {folder}: {name} differs from the exported file "
                            "(sha256); re-export it or restore the file")
    return manifest


def inside(folder: Path, rel: str) -> Path:
    """``folder / rel`` for a path the manifest or config names, never one outside ``folder``."""
    if Path(rel).is_absolute() or ".." in Path(rel).parts:
        raise UserError(f"predictor {folder} names {rel!r}, outside its folder; re-export it")
    return folder / rel
