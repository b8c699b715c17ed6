"""eval/gpu_meta.py runs end to end at tiny size on CPU (on a GPU machine it runs at
SmolLM2-135M's shape on CUDA; its docstring has the command)."""
import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "eval" / "gpu_meta.py"


def test_gpu_meta_script_runs_tiny_on_cpu(tmp_path):
    out = tmp_path / "gpu_meta.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--tiny", "--steps",
                           "1", "--episodes", "1", "--out", str(out)], capture_output=True,
                          text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    rows = {r["method"]: r for r in result["rows"]}
    assert result["shape"] == "tiny" and set(rows) == {"fomaml", "maml"}
    for row in rows.values():
        assert (row["device"], row["dtype"], row["meta_steps"]) == ("cpu", "float32", 1)
        assert row["seconds_per_step"] > 0 and row["train_peak_mb"] > 0
    fomaml = rows["fomaml"]
    assert fomaml["eval_episodes"] == 1 and fomaml["eval_seconds_per_episode"] > 0
    assert 0 <= fomaml["eval_accuracy"] <= 1
    assert "s/meta-step" in done.stdout and "max_memory_allocated" in done.stdout



def test_meta_limit_script_times_a_step_beside_its_passes(tmp_path):
    """eval/meta_limit.py at tiny size: a step and the forward + backward passes it needs."""
    script = SCRIPT.parent / "meta_limit.py"
    out = tmp_path / "limit.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, str(script), "--tiny", "--steps", "1", "--methods",
                           "fomaml,multitask", "--out", str(out)], capture_output=True,
                          text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {r["method"]: r for r in json.loads(out.read_text())}
    assert set(rows) == {"fomaml", "multitask"}
    for row in rows.values():
        assert row["seconds_per_step"] > 0 and row["limit_seconds"] > 0
        assert abs(row["ratio"] - row["seconds_per_step"] / row["limit_seconds"]) < 0.05
    # fomaml needs 2 inner passes + 1 query pass per task, multitask 1 joined pass
    assert rows["fomaml"]["limit_seconds"] > rows["multitask"]["limit_seconds"]
    assert "| fomaml |" in done.stdout


def test_the_passes_a_step_needs_are_counted_per_algorithm():
    sys.path.insert(0, str(SCRIPT.parent))
    from meta_limit import needed_passes, trie_tokens
    assert trie_tokens([[5, 6, 7], [5, 6, 8], [9]]) == [5, 6]  # shared prefix once; last tokens
    tasks = [("s1", "q1"), ("s2", "q2")]                         # are read at their parent node
    assert needed_passes("fomaml", tasks, 2) == ["s1", "s1", "q1", "s2", "s2", "q2"]
    assert needed_passes("maml", tasks, 1) == ["s1", "s1", "q1", "s2", "s2", "q2"]
