"""Episodes sharded over processes: merged rows equal a single-process run, row for row."""
import csv
import json
import os
import socket
import subprocess
import sys

import pytest

from iclmeta.cli.main import main
from iclmeta.io import load_yaml
from iclmeta.harness.distributed import Processes, canonical_order

from test_harness import WORDS


@pytest.fixture
def dist_args(tmp_path, tiny_model_dir, tiny_embedder_dir):
    rows = [{"text": f"{WORDS[c % 12]} {WORDS[(c + i) % 12]} the {WORDS[i % 12]}",
             "label": f"intent_{c:02d}"} for c in range(24) for i in range(8)]
    data = tmp_path / "tiny.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return ["eval", "--method", "icl", "--method", "retrieval", "--dataset", str(data),
            "--model", tiny_model_dir, "--embedder", tiny_embedder_dir, "--cache-dir",
            str(tmp_path / "cache"), "--ways", "3", "--shots", "0,2", "--queries", "2",
            "--episodes", "5", "--dtype", "float32", "--device", "cpu", "--no-progress"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rows(folder):
    rows = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def _summary(folder):
    """summary.csv without its timing columns."""
    with open(folder / "summary.csv", newline="") as handle:
        return [{k: v for k, v in row.items() if "second" not in k} for row in csv.DictReader(handle)]


def test_single_process_defaults():
    proc = Processes.current()
    assert (proc.rank, proc.world, proc.is_main) == (0, 1, True)
    assert [i for i in range(7) if Processes(1, 3).owns(i)] == [1, 4]
    rows = [{"method": "b", "shots": 0, "episode": 1}, {"method": "a", "shots": 0, "episode": 1},
            {"method": "a", "shots": 0, "episode": 0}]
    order = [("a", 0, 0), ("b", 0, 0), ("a", 0, 1), ("b", 0, 1)]
    assert [(r["method"], r["episode"]) for r in canonical_order(rows, order)] == [
        ("a", 0), ("a", 1), ("b", 1)]


def test_two_cpu_processes_equal_one(dist_args, tmp_path):
    single, multi = tmp_path / "single", tmp_path / "multi"
    assert main(dist_args + ["--out", str(single)]) == 0
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    # torchrun starts the CPU processes; iclmeta joins them through accelerate's PartialState (gloo)
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
              "--master_port", str(_free_port()), "-m", "iclmeta"]
    done = subprocess.run(launch + dist_args + ["--out", str(multi)], env=env,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _rows(multi) == _rows(single)
    assert not list(multi.glob("results.rank*.jsonl"))
    assert done.stderr.count("episodes: 3-way") == 1  # the plan is echoed by the main process only
    assert _summary(multi) == _summary(single)
    configs = [load_yaml(f / "config.yaml") for f in (multi, single)]
    assert configs[0]["config"].pop("out") != configs[1]["config"].pop("out")
    for config in configs:
        config["provenance"].pop("date")  # when each run started
    assert configs[0] == configs[1]


def test_resume_folds_in_rank_files_of_an_interrupted_run(dist_args, tmp_path):
    out = tmp_path / "run"
    assert main(dist_args + ["--out", str(out)]) == 0
    full = _rows(out)
    lines = (out / "results.jsonl").read_text().splitlines(keepends=True)
    # an interrupted 2-process run: nothing merged yet, rank 1's last line torn
    (out / "results.jsonl").unlink()
    (out / "results.rank0.jsonl").write_text("".join(lines[:6:2]))
    (out / "results.rank1.jsonl").write_text("".join(lines[1:6:2]) + lines[7][:15])
    assert main(dist_args + ["--out", str(out)]) == 2  # rank files count as results
    assert main(dist_args + ["--out", str(out), "--resume"]) == 0
    assert _rows(out) == full
    assert not list(out.glob("results.rank*.jsonl"))


def test_launched_processes_split_the_episodes(tmp_path):
    script = tmp_path / "ranks.py"
    script.write_text("from iclmeta.harness.distributed import Processes\n"
                      "p = Processes.current()\n"
                      # one file per process: two processes' stdout can interleave mid-line
                      f"open(r'{tmp_path}/rank' + str(p.rank), 'w').write("
                      "f'rank {p.rank} of {p.world} owns {[i for i in range(5) if p.owns(i)]}')\n"
                      "p.barrier()\n")
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_port", str(_free_port()), str(script)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "rank0").read_text() == "rank 0 of 2 owns [0, 2, 4]"
    assert (tmp_path / "rank1").read_text() == "rank 1 of 2 owns [1, 3]"
