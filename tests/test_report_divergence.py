"""`iclmeta report` and `iclmeta eval` warn when test-time adaptation raised the support loss."""
import json

from iclmeta.data.episodes import query_hash
from iclmeta.report.writer import write_report


def _rows(label, losses_by_episode):
    return [{"dataset": "clinc150", "split": "meta-test", "class_split": "disjoint",
             "split_seed": 0, "ways": 5, "shots": 4, "k": 5, "support_size": 20,
             "episode": ep, "seed": 0, "query_hash": query_hash([f"q{ep}"]), "method": label,
             "label": label, "accuracy": 0.9, "n_queries": 40, "n_correct": 36,
             "model": "smollm2", "embedder": "minilm", "options": {}, "seconds": 1.0,
             "prompt_tokens": 100, "adapt_steps": len(losses) if losses else None,
             "adapt_lr": 0.3, "support_losses": losses}
            for ep, losses in enumerate(losses_by_episode)]


def _report(tmp_path, rows):
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return write_report(run, out=tmp_path / "rep").text


def test_a_rising_support_loss_is_named_with_its_cells(tmp_path):
    rows = _rows("retrieve-adapt", [[0.05, 0.003], [1.45, 3.21], [0.3, 0.03]])
    rows += _rows("finetune", [[1.0, 0.4], [1.3, 0.5], [1.2, 0.46]])
    text = _report(tmp_path, rows)
    warning = [line for line in text.splitlines() if "raised the support loss" in line]
    assert len(warning) == 1
    assert "retrieve-adapt in 1 of 3 episode cells (worst: 1.45 -> 3.21)" in warning[0]
    assert "finetune" not in warning[0] and "--adapt-lr" in warning[0]


def test_falling_or_flat_losses_and_bf16_jitter_give_no_warning(tmp_path):
    rows = _rows("finetune", [[1.0, 0.4, 0.1], [0.0003, 0.0004], [0.2, 0.2]])
    rows += _rows("icl", [None, None, None])
    assert "raised the support loss" not in _report(tmp_path, rows)


def test_eval_prints_the_warning_under_its_table(tmp_path, monkeypatch, capsys):
    import iclmeta.harness.evaluate as harness
    from iclmeta.cli.main import main

    rows = _rows("finetune", [[1.0, 0.4], [1.45, 3.21]])
    monkeypatch.setattr(harness, "evaluate",
                        lambda config, **_: harness.Report(rows=rows, out=tmp_path / "run"))
    assert main(["eval", "--method", "finetune", "--dataset", "trec",
                 "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "finetune in 1 of 2 episode cells (worst: 1.45 -> 3.21)" in out
    assert out.index("raised the support loss") > out.index("finetune")
