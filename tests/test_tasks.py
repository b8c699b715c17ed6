"""Task files: shipped ones for every builtin, --task for eval/train/prompt with flags on top,
the resolved task in config.yaml (a rerun needs no task file), one-line errors, and every
method family end to end on a two-field task (tiny LM and embedder)."""
import json

import numpy as np
import pytest

from iclmeta.cli.main import eval_config, main, parse, train_config
from iclmeta.config import EvalConfig, MetricTrainConfig
from iclmeta.data.sources import load_dataset
from iclmeta.data.fields import BUILTINS
from iclmeta.errors import UserError
from iclmeta.io import load_yaml
from iclmeta.tasks import list_tasks, load_task, task_config, task_values

from conftest import TINY_WORDS


def test_every_builtin_dataset_has_a_shipped_task():
    covered = {load_dataset(load_task(t).values["dataset"]).name for t in list_tasks()}
    assert {load_dataset(name).name for name in BUILTINS} <= covered
    for name in list_tasks():
        task = load_task(name)
        assert task.description and "\n" not in task.description
        config = task_config(EvalConfig, name, methods=["icl"])
        assert config.task == name and config.dataset == task.values["dataset"]


def test_multi_field_builtin_task_names_both_fields():
    values = task_values("presup-nli")
    assert values["text_field"] == ["premise", "hypothesis"] and values["template"] == "nli"
    ds = load_dataset(values["dataset"])
    assert set(ds.examples[0].fields) == {"premise", "hypothesis"}


# ---- a user's task file -------------------------------------------------------------------

def _rows(split: str, n: int, seed: int) -> list[dict]:
    """Two-field rows over the tiny vocabulary; class c's premises start with word 2c."""
    rng = np.random.default_rng(seed)
    return [{"premise": " ".join([TINY_WORDS[2 * c]] + list(rng.choice(TINY_WORDS[:40], 3))),
             "hypothesis": " ".join([TINY_WORDS[2 * c + 1]] + list(rng.choice(TINY_WORDS[:40], 3))),
             "gold": c} for c in range(3) for _ in range(n)]


def _write_task(folder, **extra) -> str:
    data = folder / "data"
    data.mkdir(exist_ok=True)
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows("train", 4, 0)))
    test = _rows("test", 3, 1)
    (data / "test.csv").write_text("premise,hypothesis,gold\n" + "".join(
        f"{r['premise']},{r['hypothesis']},{r['gold']}\n" for r in test))
    lines = {
        "description": '"tiny two-field task"',
        "dataset": "tinynli",
        "data_files": "{train: data/train.jsonl, test: data/test.csv}",
        "input_fields": "[premise, hypothesis]",
        "label_field": "gold",
        "verbalizers": "{0: 'yes', 1: 'no', 2: neutral}",
        "instruction": '"the question"',
        "demo": '"{{premise}} ? {{hypothesis}} answer : {{label}}"',
        "query": '"{{premise}} ? {{hypothesis}} answer :"',
        "scoring": "direct",
        **extra,
    }
    path = folder / "tiny.yaml"
    path.write_text("".join(f"{k}: {v}\n" for k, v in lines.items() if v is not None))
    return str(path)


def test_task_values_resolve_paths_template_and_verbalizers(tmp_path):
    values = task_values(_write_task(tmp_path))
    assert values["data_files"] == {"train": str(tmp_path / "data" / "train.jsonl"),
                                    "test": str(tmp_path / "data" / "test.csv")}
    assert values["text_field"] == ["premise", "hypothesis"] and values["label_field"] == "gold"
    template = values["template"]  # the whole template, so config.yaml needs no task file
    assert template["name"] == "tiny" and template["verbalizers"] == {"0": "yes", "1": "no",
                                                                      "2": "neutral"}
    assert template["query"] == "{{premise}} ? {{hypothesis}} answer :"
    assert template["separator"] == "\n\n"  # the rest from the dataset's default template


def test_flags_override_the_task_and_train_takes_it_too(tmp_path):
    task = _write_task(tmp_path)
    config = eval_config(parse(["eval", "--task", task, "--scoring", "normalized",
                                "--label-field", "gold", "--method", "icl"]))
    assert config.scoring == "normalized" and config.task == "tiny"
    assert config.text_field == ["premise", "hypothesis"]
    shown = eval_config(parse(["prompt", "--task", task, "--method", "icl"]), "prompt", ["icl"])
    assert shown.template["name"] == "tiny"
    metric = train_config(parse(["train", "--method", "protonet", "--task", task,
                                 "--embed-template", "{{hypothesis}}"]))
    assert isinstance(metric, MetricTrainConfig) and metric.label_field == "gold"
    assert metric.embed_template == "{{hypothesis}}" and metric.task == "tiny"
    lora = train_config(parse(["train", "--method", "reptile", "--task", task]))
    assert lora.template["name"] == "tiny" and lora.scoring == "direct"
    with pytest.raises(UserError, match="--embed-template does not apply to 'train --method "
                                        "reptile'; it is used by 'train --method protonet"):
        train_config(parse(["train", "--method", "reptile", "--embed-template", "{{premise}}"]))


@pytest.mark.parametrize("extra, problem", [
    ({"bogus_key": "1"}, "unknown task key 'bogus_key'"),
    ({"input_field": "[a]"}, "unknown task key 'input_field' (did you mean 'input_fields'?)"),
    ({"input_fields": "3"}, "'input_fields' must be a list of strings, not int 3"),
    ({"label_list": '"yes"'}, "'label_list' must be true or false"),
    ({"verbalizers": "[a, b]"}, "'verbalizers' must be a mapping of label to word"),
    ({"scoring": "best"}, "'scoring' must be one of direct, normalized, calibrated"),
    ({"data_files": "{train: data/train.jsonl, test: data/nope.csv}"},
     "data_files test = data/nope.csv: file not found"),
    ({"template": "nope"}, "unknown template 'nope'"),
    ({"demo": '"{{premise}} {% if x %}y{% endif %}"'}, "block tags"),
])
def test_bad_task_files_are_one_line_exit_2_and_write_nothing(tmp_path, capsys, extra, problem):
    out = tmp_path / "run"
    assert main(["eval", "--task", _write_task(tmp_path, **extra), "--method", "icl",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and problem in err[0], err
    assert not out.exists()


@pytest.mark.parametrize("extra, problem", [
    ({"verbalizers": "{0: 'yes', 1: 'no'}"}, "verbalizers give no word for label(s) '2'"),
    ({"query": '"{{premise}} {{claim}} answer :"'},
     "names field 'claim', which the data lacks; the data has: hypothesis, label, premise, text"),
])
def test_data_problems_are_caught_before_a_run_writes_anything(tmp_path, capsys, extra, problem):
    out = tmp_path / "run"
    for method in ("icl", "finetune"):
        assert main(["eval", "--task", _write_task(tmp_path, **extra), "--method", method,
                     "--model", str(tmp_path / "no-model-needed"), "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()  # the episode rule, then the error
        assert err[-1].startswith("error: ") and problem in err[-1], err
        assert sum(line.startswith("error") for line in err) == 1
        assert not out.exists()


def test_a_mistyped_task_name_suggests_the_shipped_ones(capsys):
    assert main(["eval", "--task", "presup_nli", "--method", "icl"]) == 2
    err = capsys.readouterr().err
    assert "unknown task 'presup_nli'; did you mean presup-nli?" in err
    with pytest.raises(UserError, match="task file missing.yaml not found"):
        load_task("missing.yaml")


# ---- every family on a two-field task, end to end ------------------------------------------

def _results(folder):
    rows = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    return {(r["method"], r["shots"], r["episode"]): (r["predictions"], r["demo_ids"],
                                                      r.get("prompts")) for r in rows}


def test_every_family_runs_a_two_field_task_and_reruns_without_the_task_file(
        tmp_path, tiny_model_dir, tiny_embedder_dir):
    task = _write_task(tmp_path, scoring="normalized")
    first, rerun = tmp_path / "first", tmp_path / "rerun"
    common = ["--model", tiny_model_dir, "--embedder", tiny_embedder_dir, "--cache-dir",
              str(tmp_path / "cache"), "--dtype", "float32", "--no-progress"]
    assert main(["eval", "--task", task, "--method", "zero-shot", "--method", "icl",
                 "--method", "retrieval", "--method", "instruct", "--method", "knn",
                 "--method", "protonet", "--method", "finetune", "--adapt-steps", "1",
                 "--lora-rank", "2", "--shots", "0,1", "--queries", "2", "--episodes", "2",
                 "--embed-template", "{{hypothesis}}", "--log-prompts", "--out", str(first),
                 *common]) == 0
    rows = _results(first)
    assert {m for m, _, _ in rows} == {"zero-shot", "icl", "retrieval", "instruct", "knn",
                                       "protonet", "finetune"}
    prompts = rows[("icl", 1, 0)][2]
    assert len(prompts) == 6 and all(p.startswith("the question\n\n") for p in prompts)
    assert all(" ? " in p and p.endswith(" answer :") for p in prompts)
    assert any(" answer : yes\n" in p or " answer : no\n" in p or " answer : neutral\n" in p
               for p in prompts)  # numeric labels shown as their words
    saved = load_yaml(first / "config.yaml")["config"]
    assert saved["task"] == "tiny" and saved["text_field"] == ["premise", "hypothesis"]
    assert saved["template"]["verbalizers"]["2"] == "neutral"
    assert saved["embed_template"] == "{{hypothesis}}"
    recorded = [json.loads(line) for line in (first / "results.jsonl").read_text().splitlines()]
    assert {r["options"].get("embed_template") for r in recorded
            if r["method"] in ("retrieval", "protonet")} == {"{{hypothesis}}"}
    (tmp_path / "tiny.yaml").unlink()  # the config holds the task's content
    assert main(["eval", "--config", str(first / "config.yaml"), "--out", str(rerun),
                 *common]) == 0
    assert _results(rerun) == rows


def test_the_readme_task_example_loads(tmp_path):
    from pathlib import Path
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    block = readme.split("### Tasks and templates", 1)[1].split("```yaml\n", 1)[1].split("```")[0]
    for split in ("train", "test"):
        (tmp_path / f"{split}.csv").write_text("clause,action,answer\nno pets,keep a cat,0\n")
    (tmp_path / "clauses.yaml").write_text(block)
    values = task_values(str(tmp_path / "clauses.yaml"))
    assert values["text_field"] == ["clause", "action"] and values["scoring"] == "calibrated"
    assert values["template"]["verbalizers"] == {"0": "no", "1": "yes"}
    assert values["data_files"]["test"] == str(tmp_path / "test.csv")
