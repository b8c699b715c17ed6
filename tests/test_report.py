import math

from iclmeta.report.stats import format_table, mean_ci, summarize, write_summary


def test_mean_ci_matches_t_interval():
    mean, ci = mean_ci([0.5, 0.7, 0.9])
    assert abs(mean - 0.7) < 1e-12
    assert abs(ci - 4.302653 * 0.2 / 3 ** 0.5) < 1e-6  # exact t(0.975, 2), not a rounded table
    mean, ci = mean_ci([0.4])
    assert mean == 0.4 and math.isnan(ci)  # one episode: no interval, not a zero-width one


def test_summary_table_and_csv(tmp_path):
    rows = [{"method": "icl", "label": "icl", "shots": s, "accuracy": a, "seconds": 1.0,
             "prompt_tokens": 10} for s, a in [(1, 0.5), (1, 0.7), (4, 0.8), (4, 0.9)]]
    rows.append({"method": "zero-shot", "label": "zero-shot", "shots": 0, "accuracy": 0.3})
    summary = summarize(rows)
    assert [(s["label"], s["shots"], s["n_episodes"]) for s in summary] == [
        ("icl", 1, 2), ("icl", 4, 2), ("zero-shot", 0, 1)]
    table = format_table(summary)
    assert "60.0 ±" in table and "85.0 ±" in table and "30.0 ± n/a" in table
    assert table.splitlines()[0].split() == ["method", "0-shot", "1-shot", "4-shot"]
    assert table.splitlines()[-1].startswith("Warning: fewer than 10 episodes")
    write_summary(summary, tmp_path / "s.csv")
    assert (tmp_path / "s.csv").read_text().startswith("label,shots,mean,ci95")


def test_paired_differences_of_a_frame_without_query_fingerprints_lists_every_label():
    """A hand-built frame (no query_hash column) cannot be paired: empty result, not a KeyError."""
    import pandas as pd

    from iclmeta.report.stats import paired_differences

    df = pd.DataFrame([{"dataset": "d", "class_split": "all", "split": "all", "split_seed": 0,
                        "ways": 2, "seed": 0, "episode": 0, "shots": 1, "label": label,
                        "method": label, "adapt_steps": None, "accuracy": acc}
                       for label, acc in [("a", 0.5), ("b", 1.0)]])
    out = paired_differences(df)
    assert out.empty and out.attrs["unpaired"] == ["a", "b"]
