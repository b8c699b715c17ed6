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

