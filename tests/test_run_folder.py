"""The run folder: one writer at a time, only folders iclmeta made, nothing written before every
check has passed, resume however the folder is spelled, and a new default folder per run."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from iclmeta.cli.main import main
from iclmeta.harness import evaluate as harness
from iclmeta.harness.run_folder import LATEST_FILE, MARKER, default_out, latest_run, point_latest
from iclmeta.io import FolderLock

from test_harness import run_args, tiny_data, with_methods  # noqa: F401  (fixtures)


def _error(capsys) -> str:
    """The one error line (progress output of model loading may come before it)."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    return lines[0]


def _rows(folder):
    return [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]


# ---- one writer per folder -------------------------------------------------------------------

def test_a_folder_locked_by_another_process_is_refused(run_args, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys
        from iclmeta.io import FolderLock
        lock = FolderLock.acquire({str(out)!r}, "test")
        print("locked", flush=True)
        sys.stdin.readline()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(run_args + ["--out", str(out)]) == 2
        assert f"is in use by another iclmeta run (process {holder.pid})" in _error(capsys)
        assert sorted(p.name for p in out.iterdir()) == [FolderLock.NAME]  # nothing written
    finally:
        holder.communicate("done\n", timeout=30)
    assert main(run_args + ["--out", str(out)]) == 0  # the lock died with its holder


def test_the_lock_is_held_for_the_whole_run(run_args, tmp_path, capsys, monkeypatch):  # noqa: F811
    out, seen = tmp_path / "run", []
    run_items = harness._run_items

    def second_run_meanwhile(*args, **kwargs):
        seen.append(main(run_args + ["--out", str(out), "--resume"]))
        return run_items(*args, **kwargs)

    monkeypatch.setattr(harness, "_run_items", second_run_meanwhile)
    assert main(run_args + ["--out", str(out)]) == 0
    assert seen == [2] and "is in use by another iclmeta run" in capsys.readouterr().err
    assert len(_rows(out)) == 3 * 7


# ---- only folders iclmeta made ---------------------------------------------------------------

def test_a_folder_of_the_users_own_files_is_never_written(run_args, tmp_path, capsys):  # noqa: F811
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.yaml").write_text("learning_rate: 0.1\n")
    (mine / "summary.csv").write_text("a,b\n1,2\n")
    before = {p.name: p.read_bytes() for p in mine.iterdir()}
    assert main(run_args + ["--out", str(mine)]) == 2
    assert "holds files iclmeta did not write" in _error(capsys)
    assert {p.name: p.read_bytes() for p in mine.iterdir()} == before


def test_a_run_folder_of_an_earlier_version_is_resumed_and_marked(run_args, tmp_path):  # noqa: F811
    out = tmp_path / "old"
    assert main(run_args + ["--out", str(out)]) == 0
    full = _rows(out)
    (out / MARKER).unlink()  # as an earlier version left it: config.yaml + results.jsonl
    lines = (out / "results.jsonl").read_text().splitlines(keepends=True)
    (out / "results.jsonl").write_text("".join(lines[:5]))
    assert main(run_args + ["--out", str(out), "--resume"]) == 0
    assert (out / MARKER).is_file() and len(_rows(out)) == len(full)


def test_out_that_is_or_sits_in_a_file_is_one_line(run_args, tmp_path, capsys):  # noqa: F811
    blocker = tmp_path / "notes.txt"
    blocker.write_text("keep me")
    assert main(run_args + ["--out", str(blocker)]) == 2
    assert "is a file; pass a folder" in _error(capsys)
    assert main(run_args + ["--out", str(blocker / "run")]) == 2  # also how root meets a
    assert f"cannot be created: {blocker} is a file" in _error(capsys)  # read-only place
    assert blocker.read_text() == "keep me"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root (or a non-POSIX system) ignores a folder's write permission")
def test_out_inside_a_read_only_folder_is_one_line(run_args, tmp_path, capsys):  # noqa: F811
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert main(run_args + ["--out", str(locked / "run")]) == 2
        assert "is not writable" in _error(capsys)
    finally:
        locked.chmod(0o755)


# ---- nothing written before every check, nothing left by a refused run -----------------------

@pytest.mark.parametrize("methods, extra, message", [
    ((), ["--template", "no-such-template"], "unknown template 'no-such-template'"),
    (("reptile",), ["--adapter", "missing"], "--adapter missing holds no adapter.json"),
    (("icl",), ["--k", "-1"], "--k -1 is negative"),
])
def test_a_refused_run_leaves_no_folder(run_args, tmp_path, capsys, methods,  # noqa: F811
                                        extra, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = with_methods(run_args, *methods) if methods else run_args
    assert main(args + extra + ["--out", "never"]) == 2
    assert message in _error(capsys)
    assert not (tmp_path / "never").exists() and not (tmp_path / "runs").exists()


def test_a_run_that_fails_before_its_first_row_removes_its_folder(run_args, tmp_path,  # noqa: F811
                                                                  capsys):
    """A query too long for the model's window is found while predicting."""
    long = [{"text": " ".join(["flight"] * 300 + [w]), "label": f"c{i % 3}"}
            for i, w in enumerate(["book", "cancel", "weather", "today", "tomorrow", "music",
                                   "play", "song", "alarm", "set", "timer", "city"] * 2)]
    data = tmp_path / "long.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in long))
    args = list(run_args)
    args[args.index("--dataset") + 1] = str(data)
    args[args.index("--shots") + 1], args[args.index("--queries") + 1] = "0", "1"
    assert main(args + ["--out", str(tmp_path / "run")]) == 2
    assert "does not fit the model's context window" in _error(capsys)
    assert not (tmp_path / "run").exists()
    (tmp_path / "empty").mkdir()  # a folder that was empty is left empty
    assert main(args + ["--out", str(tmp_path / "empty")]) == 2
    assert "does not fit" in _error(capsys) and not any((tmp_path / "empty").iterdir())


# ---- resume ----------------------------------------------------------------------------------

def test_resume_accepts_the_folder_however_spelled_or_moved(run_args, tmp_path,  # noqa: F811
                                                            monkeypatch):
    first = tmp_path / "run"
    assert main(run_args + ["--out", str(first)]) == 0
    full = _rows(first)
    lines = (first / "results.jsonl").read_text().splitlines(keepends=True)
    (first / "results.jsonl").write_text("".join(lines[:4]))
    monkeypatch.chdir(tmp_path)
    assert main(run_args + ["--out", "run/", "--resume"]) == 0  # relative, trailing slash
    assert len(_rows(first)) == len(full)
    (first / "results.jsonl").write_text("".join(lines[:6]))
    first.rename(tmp_path / "moved")
    assert main(run_args + ["--out", str(tmp_path / "moved"), "--resume"]) == 0
    key = lambda r: (r["method"], r["shots"], r["episode"], tuple(r["predictions"]))  # noqa: E731
    assert sorted(map(key, _rows(tmp_path / "moved"))) == sorted(map(key, full))


def test_a_corrupt_row_in_the_middle_is_reported_not_dropped(run_args, tmp_path,  # noqa: F811
                                                             capsys):
    out = tmp_path / "run"
    assert main(run_args + ["--out", str(out)]) == 0
    lines = (out / "results.jsonl").read_text().splitlines(keepends=True)
    damaged = "".join(lines[:2]) + '{"method": "icl", "sho\n' + "".join(lines[3:6])
    (out / "results.jsonl").write_text(damaged)
    assert main(run_args + ["--out", str(out), "--resume"]) == 2
    assert "results.jsonl:3: corrupt row" in _error(capsys)
    assert (out / "results.jsonl").read_text() == damaged
    # the refused resume left config.yaml as it was (no 'resumed' provenance entry)
    assert "resumed" not in (out / "config.yaml").read_text()


# ---- the default folder ----------------------------------------------------------------------

def test_without_out_every_run_gets_a_new_folder_and_latest_follows(run_args, tmp_path,  # noqa: F811
                                                                     monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(run_args) == 0
    assert main(run_args) == 0  # the first command of the README, twice in a row
    runs = sorted(p for p in (tmp_path / "runs").iterdir() if not p.is_symlink())
    assert len(runs) == 2 and all((r / "results.jsonl").is_file() for r in runs)
    assert (tmp_path / "runs" / "latest").is_symlink()
    assert (tmp_path / "runs" / "latest").resolve() == runs[1].resolve()
    assert (tmp_path / "runs" / "latest" / MARKER).is_file()
    capsys.readouterr()
    lines = (runs[1] / "results.jsonl").read_text().splitlines(keepends=True)
    (runs[1] / "results.jsonl").write_text("".join(lines[:3]))
    assert main(run_args + ["--resume"]) == 0  # continues runs/latest
    assert "resuming: 3 rows" in capsys.readouterr().err and len(_rows(runs[1])) == 21


def test_latest_falls_back_to_a_text_file_and_keeps_an_old_real_folder(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    (runs / "latest").mkdir(parents=True)  # an earlier version's default run folder
    (runs / "a").mkdir()
    point_latest(runs / "a")
    assert (runs / "latest").is_dir() and not (runs / "latest").is_symlink()
    assert latest_run(runs) == runs / "a"
    (runs / "latest").rmdir()

    def no_links(*args, **kwargs):
        raise OSError("symbolic links are not allowed here")

    monkeypatch.setattr(type(runs), "symlink_to", no_links)
    (runs / "b").mkdir()
    point_latest(runs / "b")
    assert (runs / LATEST_FILE).read_text() == "b" and latest_run(runs) == runs / "b"


def test_default_names_take_a_suffix_when_taken(tmp_path):
    from datetime import datetime
    now = datetime(2026, 12, 1, 14, 3, 22)
    (tmp_path / "2026-12-01_14-03-22").mkdir()
    assert default_out(tmp_path, now).name == "2026-12-01_14-03-22-2"


def test_resume_without_out_and_no_runs_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["eval", "--resume"]) == 2
    assert "--resume without --out continues the newest run" in _error(capsys)


def test_eval_help_names_the_default_folder_and_what_resume_continues(capsys):
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "a new runs/DATE_TIME folder per run, runs/latest links to the newest" in text
    assert "--resume without --out continues the newest run, runs/latest" in text
