"""Bad inputs and faults, tried as a hostile user would: one table of cases, each run as a real
``iclmeta`` command in its own folder, with the outcome a user should get beside what happened.

Every case names the issue section it comes from, the command(s), and the good outcome: usually
"exit 2, one ``error:`` line, no traceback, nothing written", or "exit 0" where the input is
legitimate. The script records each command's exit code, whether stderr holds a Python
traceback, the last line of stderr, what the case's own check saw (row counts, lost or
duplicated rows, files changed), and prints PASS / FAIL / SKIP per case.

It runs any copy of the code: the working tree (``--root .``, the default), another checkout
(``--root PATH``) or a git revision (``--rev REV``, extracted with ``git archive`` into a
temporary folder), always with this interpreter's packages. Models are tiny ones built here
(a 2-layer Llama, a 1-layer sentence embedder, a LoRA adapter trained for one step by the code
under test), so the whole table runs in a few minutes on 2 cores.

    python eval/bad_inputs.py --rev 33209ed --json before.json        # the code before the fixes
    python eval/bad_inputs.py --before before.json --markdown table.md # now, beside that
    python eval/bad_inputs.py --only out-is-file,csv-latin1           # a few cases
    python eval/bad_inputs.py --list
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
TRACEBACK = "Traceback (most recent call last)"
WORDS = "words.jsonl"


def iclmeta(head: str, **flags) -> str:
    """``head`` plus ``--flag value`` for each keyword (``True``: the bare flag; ``None``: left
    out), so a case's command shows each flag once."""
    parts = [head]
    for name, value in flags.items():
        flag = "--" + name.replace("_", "-")
        if value is not None:
            parts.append(flag if value is True else f"{flag} {value}")
    return " ".join(parts)


def knn(head: str = "eval --method knn", **over) -> str:
    """A metric run on the tiny embedder: loads no LM."""
    return iclmeta(head, **{"embedder": "tiny-st", "dataset": WORDS, "shots": 1, "queries": 1,
                            "episodes": 1, "no_progress": True, "out": "run", **over})


def lm(method: str, **over) -> str:
    """A run of ``method`` on the tiny LM."""
    return iclmeta(f"eval --method {method}", **{"model": "tiny-lm", "dataset": WORDS, "shots": 0,
                                                 "queries": 1, "episodes": 1, "no_progress": True,
                                                 "out": "run", **over})


ADAPTED = lm("fomaml", adapter="adapter", class_split="disjoint", ways=2, shots=1, adapt_steps=0)
RUN3 = knn(episodes=3, cache_dir="cache")
TRAIN = iclmeta("train --method fomaml", dataset=WORDS, model="tiny-lm", ways=2, shots=1, queries=1,
                steps=1, inner_steps=1, meta_batch=1, lora_rank=2, eval_every=1, val_episodes=1,
                val_queries=1, dtype="float32", no_progress=True)
HEAVY = ("torch", "transformers", "sentence_transformers", "faiss", "peft", "accelerate",
         "safetensors", "gguf", "datasets")


# -- the case table -------------------------------------------------------------------------
@dataclass
class Step:
    """A step between commands that is not an ``iclmeta`` call (shown as ``text``)."""

    text: str
    run: Callable[[Path], None]


@dataclass
class Case:
    id: str
    section: str
    what: str
    commands: list            # ``iclmeta`` argument strings (or lists, or Steps), run in order
    expect: str               # the good outcome, in words
    codes: tuple = (2,)       # exit codes the last command may give; earlier ones must give 0
    prep_codes: tuple = (0,)
    setup: Callable[[Path], None] | None = None
    needs: tuple = ()         # fixtures or preps beyond those the commands name (see needs())
    says: str | None = None   # a regex (case-insensitive) the error line must match
    check: Callable | None = None  # (folder, runs) -> (problem or None, observation)
    untouched: bool = True    # when the last command fails, the folder must be as before it
    parallel: bool = False    # run the commands at once instead of in order
    env: dict = field(default_factory=dict)
    skip: Callable[[], str | None] | None = None
    timeout: int = 150


@dataclass
class Run:
    command: str
    code: int
    stdout: str
    stderr: str
    seconds: float


def write(name: str, text: str | bytes, encoding: str = "utf-8"):
    def setup(folder: Path) -> None:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text if isinstance(text, bytes) else text.encode(encoding))
    return setup


def both(*setups):
    def setup(folder: Path) -> None:
        for s in setups:
            s(folder)
    return setup


def csv_rows(labels: dict, header: str = "text,label") -> str:
    """A CSV with ``n`` distinct texts per label (``labels``: label -> n)."""
    lines, words = [header], "where who what when how which city music song flight book".split()
    for j, (label, n) in enumerate(labels.items()):
        for i in range(n):
            lines.append(f"{words[i % len(words)]} {words[(i + j) % len(words)]} {j} {i},{label}")
    return "\n".join(lines) + "\n"


def jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def labelled(labels: list, n: int = 4) -> list[dict]:
    return [{"text": f"what is the {i} {j} thing", "label": lab}
            for j, lab in enumerate(labels) for i in range(n)]


# -- checks ---------------------------------------------------------------------------------
def rows_of(path: Path) -> list:
    """Parsable rows of a results file (a bad line counts as None)."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            out.append(None)
    return out


def keys(rows) -> list:
    return [(r.get("method"), r.get("shots"), r.get("episode")) for r in rows if r]


def no_duplicate_rows(name: str = "run"):
    def check(folder: Path, runs):
        rows = rows_of(folder / name / "results.jsonl")
        ks = keys(rows)
        seen = f"{len(rows)} rows, {len(set(ks))} distinct"
        return (f"duplicated rows ({seen})" if len(ks) != len(set(ks)) else None), seen
    return check


def concurrent_check(folder: Path, runs):
    problem, seen = no_duplicate_rows()(folder, runs)
    codes = sorted(r.code for r in runs)
    if codes != [0, 2]:
        problem = problem or f"exits {codes}: the second run was not refused"
    return problem, f"exits {codes}; {seen}"


def rows_unchanged(expected: int, name: str = "run"):
    def check(folder: Path, runs):
        rows = rows_of(folder / name / "results.jsonl")
        seen = f"{len(rows)} rows after (expected {expected})"
        return (None if len(rows) == expected and len(set(keys(rows))) == expected
                else f"rows changed: {seen}"), seen
    return check


def lines_kept(expected: int):
    def check(folder: Path, runs):
        rows = rows_of(folder / "run" / "results.jsonl")
        seen = f"{len(rows)} lines after, {sum(r is not None for r in rows)} readable"
        return (None if len(rows) == expected else f"lines lost: {seen}"), seen
    return check


def results_files(folder: Path) -> list[Path]:
    found = []
    for top, dirs, files in os.walk(folder / "runs"):  # links are not followed
        found += [Path(top) / f for f in files if f == "results.jsonl"]
    return found


def twice_check(folder: Path, runs):
    files = results_files(folder)
    latest = folder / "runs" / "latest"
    seen = f"{len(files)} results files under runs/; runs/latest " + \
        ("is a link" if latest.is_symlink() else "is a folder" if latest.is_dir() else "missing")
    return (None if len(files) == 2 else "the second run did not get its own folder"), seen


def mentions(*words: str, name: str = "run"):
    """Row check: the first row has a key containing each word."""
    def check(folder: Path, runs):
        rows = [r for r in rows_of(folder / name / "results.jsonl") if r]
        if not rows:
            return "no rows written", "no rows"
        missing = [w for w in words if not any(w in k for k in rows[0])]
        return (f"no {', '.join(missing)} in the rows" if missing else None), \
            f"row keys with {'/'.join(words)}: " + \
            (", ".join(k for k in rows[0] if any(w in k for w in words)) or "none")
    return check


def methods_in_rows(*methods: str):
    def check(folder: Path, runs):
        got = sorted({r["method"] for r in rows_of(folder / "run" / "results.jsonl") if r})
        return (None if got == sorted(methods) else f"methods in rows: {got}"), f"methods {got}"
    return check


def labels_in_rows(expected: int):
    def check(folder: Path, runs):
        rows = [r for r in rows_of(folder / "run" / "results.jsonl") if r]
        gold = sorted({g for r in rows for g in r.get("gold", [])})
        seen = f"classes {gold}"
        bad = len(gold) != expected or any(g != g.strip() for g in gold)
        return (f"expected {expected} clean classes, got {gold}" if bad else None), seen
    return check


PROVENANCE = {"iclmeta": "iclmeta", "torch": "torch", "transformers": "transformers",
              "peft": "peft", "sentence-transformers": "sentence", "faiss": "faiss",
              "a hash": "sha|hash", "the date": "date|time", "device": "device",
              "dtype": "dtype"}


def provenance_check(folder: Path, runs):
    import yaml
    path = folder / "run" / "config.yaml"
    data = yaml.safe_load(path.read_text()) if path.is_file() else {}
    prov = data.get("provenance") if isinstance(data, dict) else None
    text = yaml.safe_dump(prov).lower() if prov else ""
    missing = [name for name, pattern in PROVENANCE.items() if not re.search(pattern, text)]
    return (f"provenance lacks {', '.join(missing)}" if missing else None), \
        ("no provenance section" if not prov else f"provenance keys: {', '.join(map(str, prov))}")


def help_check(folder: Path, runs):
    bare = []
    for run in runs:
        lines = run.stdout.splitlines()
        for i, line in enumerate(lines):
            m = re.match(r"^  (-[-\w]+)", line)
            if not m or m.group(1) in ("-h", "--help"):
                continue
            nxt = lines[i + 1] if i + 1 < len(lines) else ""
            inline = len(re.split(r"\s{2,}", line.strip())) > 1
            below = re.match(r"^\s{8,}[^\s\[{-]", nxt)
            if not (inline or below):
                bare.append(f"{run.command.split()[1]} {m.group(1)}")
    return (f"no help: {', '.join(bare)}" if bare else None), \
        f"{len(bare)} flags without help" + (f" ({', '.join(bare[:6])})" if bare else "")


def parsed(folder: Path, runs):
    bad = "invalid choice" in runs[-1].stderr
    return ("refused by the parser" if bad else None), ("not parsed" if bad else "parsed")


def version_check(folder: Path, runs):
    out = last_line(runs[-1].stdout) or last_line(runs[-1].stderr)
    return (None if re.search(r"\d+\.\d+", out) else "no version printed"), out[:60]


def marker_absent(folder: Path, runs):
    ran = (folder / "SCRIPT_RAN").exists()
    return ("the dataset's script was executed" if ran else None), \
        "script ran" if ran else "script not run"


def report_pairs(folder: Path, runs):
    path = folder / "run" / "report" / "paired_differences.csv"
    if not path.is_file():
        return "no paired_differences.csv", "no paired table"
    n = max(0, len(path.read_text().strip().splitlines()) - 1)
    return (None if n == 2 else f"{n} comparisons for 3 methods (every pair)"), \
        f"{n} paired comparisons for 3 methods at 1 shot"


def report_contents(*patterns: str):
    def check(folder: Path, runs):
        report = folder / "run" / "report"
        text = " ".join(p.read_text(errors="replace") for p in report.glob("*.md")) + " " + \
            " ".join(p.name for p in report.rglob("*"))
        missing = [p for p in patterns if not re.search(p, text, re.I)]
        return (f"report lacks {', '.join(missing)}" if missing else None), \
            f"report files: {', '.join(sorted(p.name for p in report.glob('*')))[:120]}"
    return check


def same_predictions(folder: Path, runs):
    a = [r["predictions"] for r in rows_of(folder / "run" / "results.jsonl") if r]
    b = [r["predictions"] for r in rows_of(folder / "run2" / "results.jsonl") if r]
    notes = [ln for ln in runs[-1].stderr.splitlines() if "cache" in ln.lower()]
    problem = None if a and a == b else "predictions differ from a clean cache"
    if not problem and len(notes) != 1:
        problem = f"the damaged cache was reported {len(notes)} times (expected once)"
    return problem, f"predictions {'equal' if a == b else 'differ'}; {len(notes)} cache lines"


def finite_advice(folder: Path, runs):
    m = re.search(r"non-finite loss \(([^)]*)\)", runs[0].stderr)
    called = m and _finite(m.group(1))
    problem = f"a finite loss ({m.group(1)}) called non-finite" if called else None
    step0 = step0_lines(folder)
    if runs[-1].code == 0 and step0 != 1:
        problem = problem or f"log.jsonl has {step0} step-0 lines"
    return problem, f"first: {last_line(runs[0].stderr)[:90]}; step-0 lines {step0}"


def _finite(text: str) -> bool:
    try:
        return abs(float(text)) < float("inf")
    except ValueError:
        return False


def step0_lines(folder: Path) -> int:
    path = folder / "adapter" / "log.jsonl"
    lines = path.read_text().splitlines() if path.is_file() else []
    return sum(1 for ln in lines if '"step": 0,' in ln or '"step": 0}' in ln)


def log_step0(folder: Path, runs):
    n = step0_lines(folder)
    return (None if n == 1 else f"log.jsonl repeats step 0 ({n} lines)"), f"{n} step-0 lines"


def wheel_license(folder: Path, runs):
    licence = folder / "code" / "LICENSE"
    text = licence.read_text() if licence.is_file() else ""
    wheels = list((folder / "dist").glob("*.whl"))
    import zipfile
    shipped = wheels and any("LICENSE" in n for n in zipfile.ZipFile(wheels[0]).namelist())
    urls = "[project.urls]" in (folder / "code" / "pyproject.toml").read_text()
    problems = [p for p, bad in (("no Apache-2.0 LICENSE", "Apache License" not in text),
                                 ("LICENSE not in the wheel", not shipped),
                                 ("no [project.urls]", not urls)) if bad]
    return ("; ".join(problems) or None), \
        f"LICENSE {'yes' if text else 'no'}, in wheel {'yes' if shipped else 'no'}, " \
        f"urls {'yes' if urls else 'no'}"


def docs_check(folder: Path, runs):
    code = folder / "code"
    readme = (code / "README.md").read_text()
    problems = [p for p, bad in (
        ("no CHANGELOG.md", not (code / "CHANGELOG.md").is_file()),
        ("README says nothing of benchmark texts in pretraining data",
         not re.search(r"contamina|training data|pretrain\w* data", readme, re.I))) if bad]
    return ("; ".join(problems) or None), "checked CHANGELOG.md and README"


# -- setups that need code ------------------------------------------------------------------
def corrupt_line(n: int, path: str = "run/results.jsonl"):
    def run(folder: Path) -> None:
        p = folder / path
        lines = p.read_text().splitlines(keepends=True)
        lines[n - 1] = '{"method": "knn", "shots": 1, "epis\n'
        p.write_text("".join(lines))
    return Step(f"damage line {n} of {path}", run)


def damage_cache(kind: str):
    def run(folder: Path) -> None:
        for db in (folder / "cache").rglob("*.sqlite3"):
            with sqlite3.connect(db) as conn:
                import numpy as np
                rng = np.random.default_rng(0)
                for key, vec in conn.execute("SELECT key, vec FROM vectors").fetchall():
                    v = np.frombuffer(vec, dtype=np.float32)
                    new = rng.standard_normal(len(v) // 2).astype(np.float32) if kind == "dim" \
                        else v.astype(np.float64)
                    conn.execute("UPDATE vectors SET vec = ? WHERE key = ?", (new.tobytes(), key))
    text = "replace every cached vector by a random one of half the size" if kind == "dim" \
        else "store every cached vector as float64"
    return Step(f"{text} in cache/", run)


def edit_adapter(kind: str):
    def setup(folder: Path) -> None:
        a = folder / "adapter"
        meta = json.loads((a / "adapter.json").read_text())
        weights = a / meta["weights"]
        if kind == "empty":
            weights.write_bytes(b"")
        elif kind == "truncated":
            weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
        elif kind == "json":
            (a / "adapter.json").write_text('{"format": "iclmeta-lora/1", "weights": ')
        elif kind == "rank":
            meta["lora"]["rank"] = 2 * int(meta["lora"]["rank"])
            (a / "adapter.json").write_text(json.dumps(meta))
    return setup


def block_heavy(folder: Path) -> None:
    """A sitecustomize that makes the [models] extras look uninstalled."""
    (folder / "site").mkdir()
    (folder / "site" / "sitecustomize.py").write_text(
        "import sys\nBLOCKED = %r\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in BLOCKED:\n"
        "            raise ModuleNotFoundError(f\"No module named '{name}'\", name=name)\n"
        "sys.meta_path.insert(0, Block())\n" % (HEAVY,))


def read_only(folder: Path) -> None:
    (folder / "ro").mkdir()
    os.chmod(folder / "ro", 0o555)


def script_folder(folder: Path) -> None:
    d = folder / "mydata"
    d.mkdir()
    (d / "mydata.py").write_text(f"open({str(folder / 'SCRIPT_RAN')!r}, 'w').write('ran')\n"
                                 "import datasets\n")
    (d / "README.md").write_text("a dataset with a loading script\n")


def parquet_file(folder: Path) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        (folder / "data.parquet").write_bytes(b"PAR1 not really")
        return
    rows = labelled(["music", "flight"])
    pq.write_table(pa.table({"text": [r["text"] for r in rows],
                             "label": [r["label"] for r in rows]}), folder / "data.parquet")


def build_wheel(folder: Path) -> None:
    code = folder / "code"
    wheel = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                            "--no-build-isolation", "-q", "-w", str(folder / "dist"), str(code)],
                           capture_output=True, text=True, cwd=folder)
    if wheel.returncode:
        (folder / "dist").mkdir(exist_ok=True)


def cuda_here() -> str | None:
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.is_available())"],
                         capture_output=True, text=True)
    return "this machine has CUDA" if out.stdout.strip() == "True" else None


def not_root() -> str | None:
    return "running as root: permission bits are not enforced (see out-unwritable)" \
        if hasattr(os, "geteuid") and os.geteuid() == 0 else None


def no_sys() -> str | None:
    return None if Path("/sys/kernel").is_dir() else "no /sys on this system"


def move(src: str, dst: str) -> Step:
    return Step(f"mv {src} {dst}", lambda f: shutil.move(str(f / src), str(f / dst)))


def symlink_loop(folder: Path) -> None:
    os.symlink("b.jsonl", folder / "a.jsonl")
    os.symlink("a.jsonl", folder / "b.jsonl")


THREE = csv_rows({"music": 4, "flight": 4, "weather": 4})
CTRL = "control"
OUT = "Output folders and concurrency"
INP = "Inputs"
INS = "Install and provenance"
REP = "Reports"
ALSO = "Also expected"
MINE = "hostile (new)"
ONE_LINE = "exit 2, one line, nothing written"
LINE = r"(line|row) \d|:\d+:"  # names the line: 'line 14', 'row 14' or 'FILE:14:'


def cases() -> list[Case]:
    """Every case of the issue, then the new hostile ones."""
    return [
        # -- controls: the fixtures work, so a failure below is the case's, not the instrument's
        Case("control-knn", CTRL, "the shared knn run (prep 'run', 3 episodes)",
             [Step("(nothing more)", lambda f: None)], "3 rows", codes=(0,), needs=("run",),
             check=rows_unchanged(3)),
        Case("control-lm", CTRL, "a good zero-shot run on the tiny LM", [lm("zero-shot")],
             "exit 0", codes=(0,), check=rows_unchanged(1)),
        Case("control-adapter", CTRL, "a good run of the trained adapter", [ADAPTED], "exit 0",
             codes=(0,), check=rows_unchanged(1)),
        # -- output folders and concurrency
        Case("out-concurrent", OUT, "two runs started at once on one --out (finetune, so that "
             "the first row takes seconds)",
             [lm("finetune", shots=1, adapt_steps=1000, adapt_lr=0.001)] * 2,
             "one exits 0, the other exits 2; no duplicate rows", codes=(0, 2), parallel=True,
             check=concurrent_check),
        Case("out-repeated-shots", OUT, "--shots 1,1", [knn(shots="1,1")],
             "exit 2, or exit 0 without duplicate rows", codes=(0, 2), check=no_duplicate_rows()),
        Case("out-user-folder", OUT, "--out is a folder holding the user's own config.yaml "
             "and summary.csv", [knn(out="mine")], "exit 2, the user's files untouched",
             setup=both(write("mine/config.yaml", "my: own settings\n"),
                        write("mine/summary.csv", "mine,1\n"))),
        Case("out-is-file", OUT, "--out names an existing file", [knn(out="notes.txt")],
             ONE_LINE, setup=write("notes.txt", "keep me\n")),
        Case("out-read-only", OUT, "--out inside a read-only folder (chmod 555)",
             [knn(out="ro/run")], ONE_LINE, setup=read_only, skip=not_root),
        Case("out-unwritable", OUT, "--out where nobody may create a folder (under /sys)",
             [knn(out="/sys/iclmeta-run")], ONE_LINE, skip=no_sys),
        Case("refused-template", OUT, "a missing --template file",
             [lm("zero-shot", template="nosuch.yaml")], ONE_LINE + " (no config.yaml)"),
        Case("refused-k", OUT, "--k -1", [lm("icl", shots=1, k=-1)],
             ONE_LINE + " (no config.yaml)"),
        Case("refused-model", OUT, "--model names a folder that does not exist",
             [lm("zero-shot", model="./no-such-model")], ONE_LINE + " (no config.yaml)"),
        Case("refused-embedder", OUT, "--embedder names a folder that does not exist",
             [knn(embedder="./no-such-st")], ONE_LINE + " (no config.yaml)"),
        Case("refused-adapter", OUT, "--adapter names an empty folder",
             [ADAPTED.replace("--adapter adapter", "--adapter empty")],
             ONE_LINE + " (no config.yaml)", setup=lambda f: (f / "empty").mkdir()),
        Case("resume-trailing-slash", OUT, "--resume with --out run/ after --out run",
             [knn(episodes=3, cache_dir="cache", out="run/", resume=True)],
             "exit 0, nothing to redo, rows kept", codes=(0,), needs=("run",),
             check=rows_unchanged(3)),
        Case("resume-absolute", OUT, "--resume with an absolute --out after --out run",
             [knn(episodes=3, cache_dir="cache", out="$PWD/run", resume=True)],
             "exit 0, nothing to redo, rows kept", codes=(0,), needs=("run",),
             check=rows_unchanged(3)),
        Case("resume-moved", OUT, "--resume after moving the run folder",
             [move("run", "moved"), knn(episodes=3, cache_dir="cache", out="moved", resume=True)],
             "exit 0, nothing to redo, rows kept", codes=(0,), needs=("run",),
             check=rows_unchanged(3, "moved")),
        Case("resume-corrupt-middle", OUT, "a corrupt line in the middle of results.jsonl, "
             "then --resume", [corrupt_line(2), f"{RUN3} --resume"],
             "exit 2 naming the line; nothing discarded", needs=("run",), says=r"\b2\b",
             check=lines_kept(3)),
        Case("readme-twice", OUT, "the README's first command twice in a row, without --out "
             "(knn on tiny models for speed: the default --out is what matters)",
             [knn(out=None)] * 2, "both exit 0, each in its own folder", codes=(0,),
             check=twice_check),
        # -- inputs
        Case("csv-latin1", INP, "a Latin-1 CSV", [knn(dataset="latin.csv")],
             ONE_LINE + ", naming the encoding",
             setup=write("latin.csv", THREE.replace("music", "caf\u00e9"), "latin-1"),
             says="utf-?8|encoding"),
        Case("jsonl-latin1", INP, "a Latin-1 JSONL file", [knn(dataset="latin.jsonl")],
             ONE_LINE + ", naming the encoding",
             setup=write("latin.jsonl", jsonl(labelled(["caf\u00e9", "th\u00e9"])), "latin-1"),
             says="utf-?8|encoding"),
        Case("csv-bom", INP, "a CSV with a UTF-8 byte-order mark", [knn(dataset="bom.csv")],
             "exit 0 (the mark stripped)", codes=(0,), setup=write("bom.csv", "\ufeff" + THREE)),
        Case("json-array-nonobject", INP, "a JSON array holding a number among the objects",
             [knn(dataset="data.json")], ONE_LINE + ", naming the item",
             setup=write("data.json", json.dumps(labelled(["a", "b"]) + [5])), says="object"),
        Case("csv-extra-columns", INP, "a CSV row with an unquoted comma (extra column)",
             [knn(dataset="extra.csv")], ONE_LINE + ", naming the line",
             setup=write("extra.csv", THREE + "where is it, today,music\n"),
             says=LINE),
        Case("txt-file", INP, "a .txt dataset", [knn(dataset="data.txt")],
             ONE_LINE + ", saying which formats work",
             setup=write("data.txt", "hello\tmusic\n"), says=r"\.csv|\.jsonl"),
        Case("parquet-file", INP, "a .parquet dataset", [knn(dataset="data.parquet")],
             "exit 0 (read), or exit 2 saying which formats work", codes=(0, 2),
             setup=parquet_file, says=r"\.csv|\.jsonl"),
        Case("folder-with-script", INP, "a dataset folder holding a loading script",
             [knn(dataset="mydata")], ONE_LINE + ", the script never run",
             setup=script_folder, says="script", check=marker_absent),
        Case("single-class", INP, "a dataset with one class", [knn(dataset="one.csv")],
             ONE_LINE + ": needs at least 2 classes",
             setup=write("one.csv", csv_rows({"music": 6})),
             says=r"at least (2|two)|(2|two) or more"),
        Case("labels-case", INP, "labels 'Music' and 'music'", [knn(dataset="case.csv")],
             ONE_LINE + ", naming both labels",
             setup=write("case.csv", csv_rows({"Music": 4, "music": 4, "flight": 4})),
             says="Music.*music|music.*Music"),
        Case("labels-whitespace", INP, "labels 'music', 'music ', ' flight', 'flight'",
             [knn(dataset="ws.csv")], "exit 0 with 2 classes (whitespace stripped)", codes=(0,),
             check=labels_in_rows(2),
             setup=write("ws.csv", csv_rows({"music": 3, "music ": 3, " flight": 3, "flight": 3}))),
        Case("template-types", INP, "a template whose instruction is a list and separator a "
             "number", [lm("zero-shot", template="bad.yaml")], ONE_LINE + ", naming the field",
             says="instruction|separator",
             setup=write("bad.yaml", "instruction: [not, a, string]\ndemo: 'T: {text} L: {label}'"
                         "\nquery: 'T: {text} L:'\nseparator: 3\n")),
        Case("device-cuda", INP, "--device cuda on a machine without CUDA",
             [lm("zero-shot", device="cuda")], ONE_LINE + ", saying what is available",
             says="cuda.*(cpu|avail)", skip=cuda_here),
        Case("adapter-empty", INP, "an adapter whose weights file is empty", [ADAPTED], ONE_LINE,
             setup=edit_adapter("empty")),
        Case("adapter-truncated", INP, "an adapter whose weights file is cut in half", [ADAPTED],
             ONE_LINE, setup=edit_adapter("truncated")),
        Case("adapter-json", INP, "a corrupt adapter.json", [ADAPTED],
             ONE_LINE + ", saying it is damaged (not missing)", setup=edit_adapter("json"),
             says=r"not readable|corrupt|malformed|not valid|cannot (read|parse)|invalid"),
        Case("adapter-mismatch", INP, "adapter.json says rank 4, the tensors have rank 2",
             [ADAPTED], ONE_LINE, setup=edit_adapter("rank"), says="rank"),
        Case("cache-wrong-dim", INP, "embedding cache vectors of the wrong dimension",
             [damage_cache("dim"), knn(episodes=3, cache_dir="cache", out="run2")],
             "exit 0, reported once, same predictions", codes=(0,), needs=("run",),
             check=same_predictions),
        Case("cache-wrong-dtype", INP, "embedding cache vectors stored as float64",
             [damage_cache("dtype"), knn(episodes=3, cache_dir="cache", out="run2")],
             "exit 0, reported once, same predictions", codes=(0,), needs=("run",),
             check=same_predictions),
        Case("train-nonfinite-advice", INP, "meta-training stopped by the non-finite guard, "
             "then rerun with a lower --inner-lr as advised",
             [f"{TRAIN} --inner-lr inf --out adapter", f"{TRAIN} --inner-lr 0.1 --out adapter"],
             "the rerun exits 0; the guard names what was non-finite", codes=(0,),
             prep_codes=(2,), check=finite_advice),
        Case("train-log-step0", INP, "meta-training resumed from its step-0 checkpoint",
             [f"{TRAIN} --inner-lr inf --out adapter"] * 2,
             "log.jsonl holds one step-0 line", codes=(2,), prep_codes=(2,), check=log_step0,
             untouched=False),
        # -- install and provenance
        Case("no-extras", INS, "pip install iclmeta without [models] (torch etc. blocked)",
             [knn()], ONE_LINE + ": what to pip install", setup=block_heavy,
             env={"SITE": "site"}, says=r"pip install"),
        Case("version", INS, "--version", ["--version"], "exit 0, the version", codes=(0,),
             check=version_check),
        Case("help-every-flag", INS, "every flag of every subcommand has help text",
             ["eval --help", "train --help", "prompt --help", "report --help"],
             "exit 0, no flag without help", codes=(0,), check=help_check),
        Case("device-cuda-index", INS, "--device cuda:1", [lm("zero-shot", device="cuda:1")],
             "accepted (exit 0 on a GPU; on CPU exit 2 saying CUDA is missing)", codes=(0, 2),
             says="cuda", untouched=False, check=parsed),
        Case("method-comma", INS, "--method knn,protonet", [knn("eval --method knn,protonet")],
             "exit 0 with both methods", codes=(0,), check=methods_in_rows("knn", "protonet")),
        Case("provenance", INS, "config.yaml records versions, hashes, date, device, dtype",
             [lm("retrieval", embedder="tiny-st", shots=1)], "exit 0, provenance complete",
             codes=(0,), check=provenance_check),
        Case("log-scores", INS, "--log-scores", [lm("zero-shot", log_scores=True)],
             "exit 0, per-label scores in each row", codes=(0,), check=mentions("score")),
        Case("license", INS, "LICENSE (Apache-2.0) in the checkout and the wheel, project URLs",
             [Step("pip wheel --no-deps .", build_wheel)], "all present", codes=(0,),
             check=wheel_license),
        # -- reports
        Case("report-vs-best", REP, "report without --baseline, 3 methods", ["report run"],
             "each method against the best (2 rows)", codes=(0,), needs=("three",),
             check=report_pairs),
        Case("report-f1", REP, "report: macro-F1, per-class accuracy, confusion matrix",
             ["report run"], "all three in the report", codes=(0,), needs=("three",),
             check=report_contents(r"f1", r"per.class", r"confusion")),
        Case("report-ece", REP, "report with logged scores: calibration error",
             [lm("zero-shot", log_scores=True), "report run"], "ECE in the report", codes=(0,),
             check=report_contents(r"\bECE\b|calibration error")),
        Case("docs", ALSO, "CHANGELOG.md; README on benchmark texts in pretraining data",
             [Step("test -f CHANGELOG.md; grep README.md", lambda f: None)], "both present",
             codes=(0,), check=docs_check),
        *hostile(),
    ]


def hostile() -> list[Case]:
    """Thirty-odd more bad inputs of our own."""
    h = lambda id, what, cmd, expect=ONE_LINE, codes=(2,), **kw: Case(  # noqa: E731
        id, MINE, what, cmd if isinstance(cmd, list) else [cmd], expect, codes, **kw)
    either = "exit 0, or exit 2 one line"
    return [
        h("ways-1", "--ways 1", knn(ways=1)),
        h("episodes-0", "--episodes 0", knn(episodes=0)),
        h("queries-negative", "--queries -1", knn(queries=-1)),
        h("ways-too-many", "--ways 50 on 10 classes", knn(ways=50)),
        h("shots-beyond-data", "--shots 1000", knn(shots=1000)),
        h("huge-k", "--k 1000000 with icl", lm("icl", shots=1, k=1000000),
          "exit 2 (k beyond the support), or exit 0 showing all", codes=(0, 2)),
        h("huge-episodes", "--episodes 10**20", knn(episodes=10 ** 20), ONE_LINE + ", quickly",
          timeout=20),
        h("batch-size-0", "--batch-size 0", lm("zero-shot", batch_size=0)),
        h("seed-negative", "--seed -1", knn(seed=-1), either, codes=(0, 2)),
        h("split-typo", "--split meta-tset", knn(split="meta-tset")),
        h("same-field", "--text-field label --label-field label",
          knn(text_field="label", label_field="label")),
        h("csv-empty-label", "a CSV row with an empty label", knn(dataset="e.csv"),
          setup=write("e.csv", THREE + "where is the city,\n"), says=LINE),
        h("csv-duplicate-columns", "a CSV header 'text,label,label'", knn(dataset="dup.csv"),
          ONE_LINE + ", naming the column", says="label",
          setup=write("dup.csv", "text,label,label\n" + "".join(
              f"what is {i} {lab},{lab},{other}\n" for lab, other in (("music", "flight"),
                                                                     ("flight", "music"))
              for i in range(4)))),
        h("csv-header-only", "a CSV with only its header", knn(dataset="h.csv"),
          setup=write("h.csv", "text,label\n"), says="empty|no rows"),
        h("csv-nul", "a CSV with a NUL byte in a text", knn(dataset="nul.csv"), either,
          codes=(0, 2), setup=write("nul.csv", THREE + "wh\x00ere,music\n")),
        h("empty-file", "a 0-byte .jsonl", knn(dataset="empty.jsonl"),
          setup=write("empty.jsonl", ""), says="empty"),
        h("jsonl-bom", "a JSONL file with a byte-order mark", knn(dataset="bom.jsonl"),
          "exit 0 (the mark stripped)", codes=(0,),
          setup=write("bom.jsonl", "\ufeff" + jsonl(labelled(["music", "flight"])))),
        h("json-single-object", "a pretty-printed .json holding one object",
          knn(dataset="one.json"),
          setup=write("one.json", json.dumps({"text": "a b", "label": "x"}, indent=2))),
        h("json-nested-text", "a JSONL row whose text is an object", knn(dataset="nested.jsonl"),
          ONE_LINE + ", naming the row", says=r"(line|row) \d|:\d+",
          setup=write("nested.jsonl", jsonl(labelled(["a", "b"]) + [{"text": {"x": 1},
                                                                   "label": "a"}]))),
        h("emoji-labels", "labels that are emoji", knn(dataset="emoji.jsonl"), "exit 0",
          codes=(0,), setup=write("emoji.jsonl", jsonl(labelled(
              ["\U0001F600", "\U0001F622", "\U0001F4E6 box"])))),
        h("numeric-labels", "labels that are JSON numbers (1, 2, 10)", knn(dataset="num.jsonl"),
          "exit 0", codes=(0,), setup=write("num.jsonl", jsonl(labelled([1, 2, 10])))),
        h("dataset-empty-dir", "--dataset is an empty folder", knn(dataset="nothing"),
          setup=lambda f: (f / "nothing").mkdir()),
        h("dataset-empty-string", "--dataset ''", knn(dataset="''")),
        h("dataset-symlink-loop", "--dataset is a symlink loop", knn(dataset="a.jsonl"),
          setup=symlink_loop),
        h("embedder-is-file", "--embedder names a data file", knn(embedder=WORDS)),
        h("checkpoint-is-adapter", "--checkpoint names a LoRA adapter folder",
          knn("eval --method protonet", checkpoint="adapter")),
        h("template-is-list", "a template file holding a YAML list",
          lm("zero-shot", template="list.yaml"),
          setup=write("list.yaml", "- instruction\n- demo\n")),
        h("lora-target-missing", "finetune with --lora-targets nope_proj",
          lm("finetune", shots=1, lora_targets="nope_proj"), ONE_LINE + ", naming the modules"),
        h("config-is-results", "--config names a results.jsonl",
          knn(config="run/results.jsonl", out="run2"), needs=("run",)),
        h("config-missing", "--config names a missing file", knn(config="nope.yaml")),
        h("cache-dir-is-file", "--cache-dir names a file", knn(cache_dir=WORDS),
          "exit 2 one line, or exit 0 without the cache", codes=(0, 2), untouched=False),
        h("out-newline", "--out with a newline in its name",
          [shlex.split(knn(out=None)) + ["--out", "run\nx"]], "exit 0 or exit 2, no traceback",
          codes=(0, 2), untouched=False),
        h("report-empty-folder", "report on an empty folder", "report nothing",
          setup=lambda f: (f / "nothing").mkdir()),
        h("report-on-file", "report on a results.jsonl instead of its folder",
          "report run/results.jsonl", "exit 0 (its folder), or exit 2 one line", codes=(0, 2),
          needs=("run",), untouched=False),
        h("no-subcommand", "iclmeta with no subcommand", [[]], "exit 2, one line"),
        h("fp16-on-cpu", "--dtype float16 on the CPU", lm("zero-shot", dtype="float16"), either,
          codes=(0, 2), untouched=False),
    ]


# -- fixtures: tiny models and data, built once per session -----------------------------------
VOCAB = ("the a an is was what where who when how why which to of in on for and or not "
         "flight book cancel weather today tomorrow city music play song alarm set timer "
         "positive negative neutral good bad great film movie review sentiment label input "
         "question answer number location person entity description abbreviation yes no "
         "user assistant system text : , . ? ! 0 1 2 3 4 5 6 7 8 9").split()
CLASSES = ["flight", "book", "weather", "music", "alarm", "timer", "film", "song", "city",
           "review"]


def build_words(folder: Path) -> None:
    """Ten classes of eight distinct short texts over the tiny vocabulary."""
    rng, rows = random.Random(0), []
    for c, label in enumerate(CLASSES):
        for i in range(8):
            extra = " ".join(rng.choice(VOCAB[:20]) for _ in range(3))
            rows.append({"text": f"{label} {CLASSES[(c + 1) % 10]} {extra} {i} {c}",
                         "label": label})
    (folder / WORDS).write_text(jsonl(rows))


def build_lm(folder: Path) -> None:
    """A 2-layer random Llama with a word-level tokenizer, saved as a model folder."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<s>", "</s>"]
    vocab = {t: i for i, t in enumerate(specials + VOCAB)}
    raw = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    raw.post_processor = processors.TemplateProcessing(single="<s> $A",
                                                       special_tokens=[("<s>", vocab["<s>"])])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=raw, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
        unk_token="<unk>", chat_template="{% for m in messages %}<s> {{ m['role'] }} : "
        "{{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}<s> assistant :{% endif %}")
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        pad_token_id=0, bos_token_id=2, eos_token_id=3, tie_word_embeddings=False))
    model.save_pretrained(folder / "tiny-lm")
    tok.save_pretrained(folder / "tiny-lm")


def build_st(folder: Path) -> None:
    """A 1-layer BERT with mean pooling, saved as a sentence-transformers folder."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    torch.manual_seed(0)
    hf = folder / "tiny-st-hf"
    hf.mkdir()
    (hf / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
                                            + sorted(set(VOCAB))) + "\n")
    BertTokenizerFast(vocab_file=str(hf / "vocab.txt")).save_pretrained(hf)
    BertModel(BertConfig(vocab_size=len(VOCAB) + 5, hidden_size=32, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=64,
                         max_position_embeddings=64)).save_pretrained(hf)
    SentenceTransformer(modules=[models.Transformer(str(hf)), models.Pooling(32, "mean")],
                        device="cpu").save(str(folder / "tiny-st"))


BUILDERS = {"words": build_words, "lm": build_lm, "st": build_st}
# name -> (fixtures it needs, the iclmeta command, what it leaves behind for the cases)
PREPS = {"adapter": (("words", "lm"), f"{TRAIN} --inner-lr 0.1 --out adapter", ("adapter",)),
         "run": (("words", "st"), RUN3, ("run", "cache")),
         "three": (("words", "st"), knn("eval --method knn --method protonet --method matching",
                                        episodes=2), ("run",))}


class Fixtures:
    """Tiny models and data, built on first need; prepared runs ("preps": the adapter, a knn
    run) made once by the code under test and copied into each case that starts from them."""

    def __init__(self, folder: Path, runner: "Runner"):
        self.folder, self.runner, self.failed = folder, runner, {}
        self.built: dict[str, Path] = {}
        self.locks = {name: threading.Lock() for name in (*BUILDERS, *PREPS)}

    def get(self, name: str) -> Path:
        with self.locks[name]:
            if name not in self.built and name not in self.failed:
                try:
                    self.built[name] = self._build(name)
                except Exception as exc:
                    self.failed[name] = f"fixture {name}: {exc}"
            if name in self.failed:
                raise RuntimeError(self.failed[name])
            return self.built[name]

    def _build(self, name: str) -> Path:
        if name in BUILDERS:  # in a child process: heavy imports and progress bars stay there
            built = subprocess.run([sys.executable, __file__, "--fixture", name, str(self.folder)],
                                   capture_output=True, text=True,
                                   env={**os.environ, "OMP_NUM_THREADS": "1"})
            if built.returncode:
                raise RuntimeError(last_line(built.stderr))
            return self.folder / {"words": WORDS, "lm": "tiny-lm", "st": "tiny-st"}[name]
        needs, command, outputs = PREPS[name]
        folder = self.folder / f"prep-{name}"
        folder.mkdir()
        self.link(needs, folder)
        run = self.runner.run(command, folder, {}, 600)
        if run.code:
            raise RuntimeError(f"'{show(command)}' exited {run.code}: {last_line(run.stderr)}")
        return folder

    def link(self, names, folder: Path) -> None:
        for name in names:
            src = self.get(name)
            if name in PREPS:  # cases change what they start from: a copy each
                self.link(PREPS[name][0], folder)
                for output in PREPS[name][2]:
                    shutil.copytree(src / output, folder / output, symlinks=True)
            elif not (folder / src.name).exists():
                (folder / src.name).symlink_to(src, target_is_directory=src.is_dir())


# -- running --------------------------------------------------------------------------------
def last_line(text: str) -> str:
    lines = [ln.split("\r")[-1].strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    return lines[-1] if lines else ""


def snapshot(folder: Path) -> dict:
    """Every path under ``folder`` (links not followed) with a digest of its content."""
    seen = {}
    for top, dirs, files in os.walk(folder):
        for name in dirs + files:
            p = Path(top) / name
            rel = str(p.relative_to(folder))
            if p.is_symlink():
                seen[rel] = "link"
            elif p.is_file():
                seen[rel] = hashlib.sha1(p.read_bytes()).hexdigest()
            else:
                seen[rel] = "dir"
    return seen


def changes(before: dict, after: dict) -> list[str]:
    """Paths added, removed or changed; a lock file that was already there may change (it holds
    the pid of whoever took it last)."""
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k)
                  and not ("lock" in Path(k).name and k in before and k in after))


class Runner:
    def __init__(self, root: Path, work: Path):
        self.root, self.work = root, work
        self.fixtures = Fixtures(work / "fixtures", self)
        self.fixtures.folder.mkdir(parents=True, exist_ok=True)

    def env(self, folder: Path, extra: dict) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ICLMETA")}
        path = [str(self.root)]
        if extra.get("SITE"):
            path.insert(0, str(folder / extra["SITE"]))
        env.update({k: v for k, v in extra.items() if k != "SITE"})
        env.update(PYTHONPATH=os.pathsep.join(path), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
                   TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
                   TRANSFORMERS_OFFLINE="1", HF_HOME=str(self.work / "hf"),
                   ICLMETA_CACHE=str(self.work / "cache"), PYTHONDONTWRITEBYTECODE="1")
        return env

    def argv(self, command, folder: Path) -> list[str]:
        args = command if isinstance(command, list) else shlex.split(command)
        return [sys.executable, "-m", "iclmeta"] + [a.replace("$PWD", str(folder)) for a in args]

    def start(self, command, folder: Path, extra: dict):
        return subprocess.Popen(self.argv(command, folder), cwd=folder, env=self.env(folder, extra),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                errors="replace", stdin=subprocess.DEVNULL)

    def finish(self, proc, command, started: float, timeout: int) -> Run:
        try:
            out, err = proc.communicate(timeout=max(1, timeout - (time.time() - started)))
            code = proc.returncode
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            code, err = 124, err + f"\n(timed out after {timeout} s)"
        return Run(show(command), code, out, err, round(time.time() - started, 1))

    def run(self, command, folder: Path, extra: dict, timeout: int) -> Run:
        t = time.time()
        return self.finish(self.start(command, folder, extra), command, t, timeout)

    def case(self, case: Case) -> dict:
        result = {"id": case.id, "section": case.section, "what": case.what,
                  "command": " && ".join([f"[prep {n}]" for n in needs(case) if n in PREPS]
                                         + [show(c) for c in case.commands]),
                  "expect": case.expect, "exits": [], "traceback": False, "message": "",
                  "observed": "", "verdict": "", "problem": "", "seconds": 0.0}
        reason = case.skip() if case.skip else None
        if reason:
            return {**result, "verdict": "SKIP", "problem": reason}
        folder = self.work / "cases" / case.id
        folder.mkdir(parents=True)
        start = time.time()
        try:
            self.fixtures.link(needs(case), folder)
            if case.setup:
                case.setup(folder)
            if case.id in ("license", "docs"):
                shutil.copytree(self.root, folder / "code", ignore=shutil.ignore_patterns(
                    ".venv", ".git", "runs", "__pycache__", "*.egg-info", "build", "dist"))
            runs, before = self.commands(case, folder)
        except Exception as exc:  # the instrument failed (a fixture, a setup), not the code
            return {**result, "verdict": "ERROR", "problem": f"{exc.__class__.__name__}: {exc}"}
        after = snapshot(folder)
        result.update(exits=[r.code for r in runs], seconds=round(time.time() - start, 1),
                      traceback=any(TRACEBACK in r.stderr for r in runs),
                      runs=[asdict(r) for r in runs])
        failing = next((r for r in runs if TRACEBACK in r.stderr), None) or runs[-1]
        result["message"] = self.clean(last_line(failing.stdout if failing.code == 0
                                                 else failing.stderr) or last_line(failing.stderr),
                                       folder)
        problems = self.judge(case, runs, before, after)
        if case.check:
            try:
                problem, seen = case.check(folder, runs)
            except Exception as exc:  # a check that cannot read what it looks for: a failure
                problem, seen = f"check failed: {exc.__class__.__name__}: {exc}", ""
            result["observed"] = self.clean(seen, folder)
            problems += [problem] if problem else []
        if os.path.isdir(folder / "ro"):
            os.chmod(folder / "ro", 0o755)
        result.update(verdict="FAIL" if problems else "PASS", problem="; ".join(problems))
        return result

    def clean(self, text: str, folder: Path) -> str:
        """No machine paths in the table: the case folder is $PWD, the code ROOT."""
        return text.replace(str(folder), "$PWD").replace(str(self.work), "$WORK") \
            .replace(str(self.root), "ROOT")

    def commands(self, case: Case, folder: Path) -> tuple[list[Run], dict]:
        calls = [c for c in case.commands if not isinstance(c, Step)]
        if case.parallel:
            before, t = snapshot(folder), time.time()
            procs = [self.start(c, folder, case.env) for c in calls]
            return [self.finish(p, c, t, case.timeout) for p, c in zip(procs, calls)], before
        runs, before = [], {}
        for i, command in enumerate(case.commands):
            if i == len(case.commands) - 1:
                before = snapshot(folder)
            if isinstance(command, Step):
                command.run(folder)
                if i == len(case.commands) - 1:
                    runs.append(Run(command.text, 0, "", "", 0.0))
            else:
                runs.append(self.run(command, folder, case.env, case.timeout))
        return runs, before

    @staticmethod
    def judge(case: Case, runs: list[Run], before: dict, after: dict) -> list[str]:
        problems = []
        if any(TRACEBACK in r.stderr for r in runs):
            problems.append("traceback")
        if case.parallel:
            return problems
        for r in runs[:-1]:
            if r.code not in case.prep_codes:
                problems.append(f"'{r.command[:40]}...' exited {r.code}")
        last = runs[-1]
        if last.code not in case.codes:
            problems.append(f"exit {last.code}, expected {' or '.join(map(str, case.codes))}")
        if last.code != 0:
            line = last_line(last.stderr)
            if last.code == 2 and not line.startswith("error:"):
                problems.append("the last stderr line is not one 'error:' line")
            elif last.code == 2 and case.says and not re.search(case.says, line, re.I | re.S):
                problems.append(f"the message does not say /{case.says}/")
            if case.untouched and changes(before, after):
                problems.append("wrote " + ", ".join(changes(before, after))[:120])
        return problems


def needs(case: Case) -> list[str]:
    """The fixtures a case names, plus those its commands mention (tiny-lm, tiny-st, ...)."""
    words = [w for c in case.commands if not isinstance(c, Step)
             for w in (c if isinstance(c, list) else shlex.split(c))]
    pairs = set(zip(words, words[1:]))
    found = {"words": WORDS in words, "lm": "tiny-lm" in words, "st": "tiny-st" in words,
             "adapter": bool({("--adapter", "adapter"), ("--checkpoint", "adapter")} & pairs)}
    return list(dict.fromkeys([*case.needs, *(n for n, used in found.items() if used)]))


def show(command) -> str:
    if isinstance(command, Step):
        return command.text
    if isinstance(command, list):
        return " ".join(["iclmeta", *(shlex.quote(a) for a in command)]).replace("\n", "\\n")
    return f"iclmeta {command}".strip()


# -- output ---------------------------------------------------------------------------------
def cell(text: str, width: int = 160) -> str:
    text = str(text).replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def outcome(r: dict) -> str:
    if r["verdict"] in ("SKIP", "ERROR"):
        return f"{r['verdict']}: {r['problem']}"
    exits = ",".join(map(str, r["exits"]))
    tb = "traceback; " if r["traceback"] else ""
    seen = f" [{r['observed']}]" if r["observed"] else ""
    return f"**{r['verdict']}** exit {exits}; {tb}`{cell(r['message'], 140)}`{seen}"


def markdown(results: list[dict], before: dict | None, labels=("before", "outcome")) -> str:
    head = "| case | section | command | expected | " + \
        (f"{labels[0]} | {labels[1]} |" if before else f"{labels[1]} |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        row = [f"`{r['id']}`: {cell(r['what'], 100)}", r["section"], f"`{cell(r['command'], 400)}`",
               cell(r["expect"], 80)]
        if before:
            old = before.get(r["id"])
            row.append(outcome(old) if old else "(not run)")
        row.append(outcome(r))
        lines.append("| " + " | ".join(row) + " |")
    counts = {v: sum(r["verdict"] == v for r in results) for v in ("PASS", "FAIL", "SKIP", "ERROR")}
    lines += ["", "Shared preparations (made once by the code under test, copied into each case):",
              ""] + [f"- `[prep {name}]`: `{show(command)}`"
                     for name, (_, command, _) in PREPS.items()
                     if any(f"[prep {name}]" in r["command"] for r in results)]
    lines.append("")
    lines.append(", ".join(f"{n} {v}" for v, n in counts.items() if n)
                 + f" of {len(results)} cases")
    return "\n".join(lines) + "\n"


def extract(rev: str, into: Path) -> Path:
    """``git archive REV`` of this repository, unpacked into ``into``."""
    data = subprocess.run(["git", "-C", str(REPO), "archive", rev], capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(data.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into


def check_import(root: Path, work: Path) -> str:
    out = subprocess.run([sys.executable, "-c", "import iclmeta; print(iclmeta.__file__)"],
                         cwd=work, env={**os.environ, "PYTHONPATH": str(root)},
                         capture_output=True, text=True)
    path = out.stdout.strip()
    if not path or not Path(path).resolve().is_relative_to(root.resolve()):
        sys.exit(f"iclmeta imports from {path or out.stderr[-200:]!r}, not from {root}")
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--root", type=Path, default=REPO,
                       help="code to test (default: this checkout)")
    where.add_argument("--rev", help="a git revision of this repository to test (git archive)")
    ap.add_argument("--only", help="comma-separated case ids")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("--jobs", type=int, default=2, help="cases run at once (default: 2)")
    ap.add_argument("--json", type=Path, help="write every outcome (with stdout/stderr) here")
    ap.add_argument("--markdown", type=Path, help="write the table here (default: stdout)")
    ap.add_argument("--before", type=Path, help="a --json file of an earlier run: shown beside")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--fixture", nargs=2, metavar=("NAME", "DIR"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.fixture:
        BUILDERS[args.fixture[0]](Path(args.fixture[1]))
        return 0
    table = cases()
    if args.list:
        for c in table:
            print(f"{c.id:24} {c.section:32} {c.what}")
        return 0
    if args.only:
        wanted = args.only.split(",")
        unknown = [w for w in wanted if w not in {c.id for c in table}]
        if unknown:
            ap.error(f"unknown case(s) {', '.join(unknown)} (see --list)")
        table = [c for c in table if c.id in wanted]
    work = Path(tempfile.mkdtemp(prefix="iclmeta-bad-"))
    root = extract(args.rev, work / "code") if args.rev else args.root.resolve()
    label = f"--rev {args.rev}" if args.rev else \
        "--root ." if root == REPO.resolve() else f"--root {args.root}"
    print(f"testing {check_import(root, work)} ({label}); work folder {work}", file=sys.stderr)
    runner, started = Runner(root, work), time.time()

    def one(case: Case) -> dict:
        r = runner.case(case)
        print(f"{r['verdict']:5} {case.id:24} {r['seconds']:6.1f}s {r['problem'][:100]}",
              file=sys.stderr)
        return r

    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        results = list(pool.map(one, table))
    earlier = json.loads(args.before.read_text()) if args.before else {}
    before = {r["id"]: r for r in earlier["cases"]} if earlier else None
    text = markdown(results, before, (f"before ({earlier.get('code')})", f"now ({label})"))
    print(f"{len(results)} cases in {time.time() - started:.0f} s", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps({"code": label, "cases": results}, indent=1,
                                        ensure_ascii=False))
    if args.markdown:
        args.markdown.write_text(text)
    else:
        print(text)
    if not args.keep:
        for top, dirs, files in os.walk(work):
            for d in dirs:
                os.chmod(Path(top) / d, 0o755)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
