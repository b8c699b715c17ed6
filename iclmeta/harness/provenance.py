"""Provenance: what produced a run's rows, recorded in ``config.yaml`` beside the settings.

``provenance(resources)`` lists the versions of iclmeta and of the libraries that decide scores,
the git commit of a source checkout (and whether it had uncommitted changes), the date (UTC),
the device and the LM's resolved dtype, and for each model the run actually loaded: where it
was loaded from and a sha256 of its weight files. The default LM is SmolLM2-135M-Instruct
shipped as a Q4_1 GGUF and dequantized once into float safetensors (``iclmeta.models``); its
entry says so under ``origin``, with the GGUF's own hash.

Hashing half a gigabyte takes a second or two, so digests are cached in ``hashes.json`` in the
model cache folder, keyed by path, size and modification time: a changed file is hashed again.

>>> sorted(library_versions())[:3]
['datasets', 'faiss', 'iclmeta']
>>> import tempfile
>>> file_digest(Path(__file__), Path(tempfile.mkdtemp())) == file_digest(Path(__file__), None)
True
"""
from __future__ import annotations

import hashlib
import json
import platform
import re
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from iclmeta.errors import UserError
from iclmeta.io import read_json_object, write_atomic

# Distribution names; the first one installed counts (FAISS ships as faiss-cpu or faiss-gpu).
LIBRARIES = {"iclmeta": ("iclmeta",), "torch": ("torch",), "transformers": ("transformers",),
             "peft": ("peft",), "sentence-transformers": ("sentence-transformers",),
             "faiss": ("faiss-cpu", "faiss-gpu", "faiss"), "datasets": ("datasets",)}
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")
_QUANT = re.compile(r"(?i)(?:^|[.\-_])((?:i?q\d(?:_[a-z0-9]+)*)|bf16|f16|f32)(?:\.gguf)?$")


def library_versions() -> dict[str, str | None]:
    """Installed version of each library in ``LIBRARIES``; None when it is absent."""
    found = {}
    for name, dists in LIBRARIES.items():
        found[name] = None
        for dist in dists:
            try:
                found[name] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    return found


def git_state(source: Path | None = None) -> dict | None:
    """``{"commit", "dirty"}`` of the checkout this package runs from; None when it is not in
    one (an installed wheel) or git is missing."""
    source = source or Path(__file__).resolve().parents[1]
    try:
        def git(*args):
            return subprocess.run(["git", "-C", str(source), *args], capture_output=True,
                                  text=True, timeout=10, check=True).stdout.strip()
        git("ls-files", "--error-unmatch", "__init__.py")  # our file is tracked: a checkout
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": dirty}


def file_digest(path: Path, cache: Path | None) -> str:
    """sha256 of ``path``, remembered in ``cache/hashes.json`` by (path, size, mtime)."""
    path = path.resolve()
    stat = path.stat()
    key = f"{path}:{stat.st_size}:{stat.st_mtime_ns}"
    index = cache / "hashes.json" if cache is not None else None
    known = _read_json(index) if index is not None else {}
    if key in known:
        return known[key]
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 22):
            digest.update(block)
    if index is not None:
        fresh = {k: v for k, v in known.items() if not k.startswith(f"{path}:")}
        try:
            write_atomic(index, json.dumps({**fresh, key: digest.hexdigest()}, indent=0))
        except OSError:
            pass  # a read-only cache only costs the next run the hashing again
    return digest.hexdigest()


def _read_json(path: Path) -> dict:
    """The JSON object in ``path``; {} when it is absent or damaged (a cache, rebuilt)."""
    try:
        return read_json_object(path)
    except ValueError:
        return {}


def model_record(name: str, location: str, cache: Path | None) -> dict:
    """Where a model came from and the sha256 of each weight file (a hub id: no files here)."""
    path = Path(location).expanduser()
    record: dict = {"name": name, "path": str(path.resolve()) if path.exists() else location}
    if not path.exists():
        record["weights_sha256"] = None  # a hub id: the library's cache holds the files
        return record
    files = [path] if path.is_file() else sorted(
        p for p in path.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    root = path.parent if path.is_file() else path
    record["weights_sha256"] = {str(p.relative_to(root)): file_digest(p, cache) for p in files}
    source = path / "iclmeta-source.json" if path.is_dir() else None
    if source is not None and source.is_file():
        record["origin"] = gguf_origin(Path(_read_json(source).get("gguf", "")), cache)
    return record


def gguf_origin(gguf: Path, cache: Path | None) -> dict:
    """The GGUF file a cached folder was converted from, its quantisation and its hash."""
    match = _QUANT.search(gguf.name)
    return {"format": "gguf", "file": str(gguf),
            "quantization": match.group(1).upper() if match else None,
            "sha256": file_digest(gguf, cache) if gguf.is_file() else None,
            "loaded_as": "dequantized to float safetensors (converted once, then cached)"}


def provenance(resources) -> dict:
    """Provenance of a run over ``resources`` (only the models it loaded are described)."""
    from iclmeta.models import DEFAULT_EMBEDDER, DEFAULT_LM, cache_root

    config, loaded = resources.config, vars(resources)  # cached_property values live there
    cache = cache_root(config.cache_dir)
    record = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "python": platform.python_version(), "libraries": library_versions(),
              "git": git_state(), "device": None, "dtype": None, "models": {}}
    if "lm" in loaded:
        model = getattr(loaded["lm"], "model", None)
        if model is not None:
            record["device"], record["dtype"] = str(model.device), str(model.dtype).split(".")[-1]
            record["models"]["lm"] = lm = model_record(config.model or DEFAULT_LM,
                                                       str(model.name_or_path), cache)
            if lm["weights_sha256"] is None:  # a hub model: its commit pins the files
                lm["revision"] = getattr(model.config, "_commit_hash", None)
    if "embedder" in loaded:
        embedder = loaded["embedder"]
        record["device"] = record["device"] or str(getattr(embedder.model, "device", "cpu"))
        record["models"]["embedder"] = model_record(config.embedder or DEFAULT_EMBEDDER,
                                                    embedder.name, cache)
    return record


def resumed(previous, current: dict, out) -> dict:
    """Provenance of a resumed run: the first session's, each later one under ``resumed``.

    A model whose weights differ from the first session's is refused: rows from two different
    models would be mixed in one run.
    """
    if not isinstance(previous, dict) or "date" not in previous:
        return current  # recorded by a version that wrote no provenance
    for role, now in current.get("models", {}).items():
        then = previous.get("models", {}).get(role) or {}
        if then.get("weights_sha256") and now.get("weights_sha256") \
                and then["weights_sha256"] != now["weights_sha256"]:
            raise UserError(f"--resume: the {role} ({now['name']}) has other weights than the "
                            f"run in {out} was started with; resume with the same model files "
                            "or choose a new --out")
    return {**previous, "resumed": [*previous.get("resumed", []), current]}
