"""Tests written to kill mutants that survived the suite (see eval/mutation.md).

Each test pins a behaviour that a mutation tester (mutmut) showed no other test checked: exact
numbers, exact strings, edge cases of the report statistics, episode sampling, label scoring and
the meta-learning updates. They use tiny inputs (and the tiny models of conftest.py) so each one
runs in well under a second.
"""
import math

import pytest

from iclmeta.report.intervals import betainc, few_episodes_note, format_ci, mean_ci, t_cdf, t_quantile
from iclmeta.report.stats import final_step_rows, format_table, summarize


# --------------------------------------------------------------------------- report statistics

def test_mean_ci_of_two_values_has_an_interval():
    mean, half = mean_ci([0.2, 0.4])
    assert mean == pytest.approx(0.3)
    assert half == pytest.approx(12.706204736 * math.sqrt(0.02) / math.sqrt(2), rel=1e-8)


def test_betainc_edges_and_precise_complement():
    scipy_special = pytest.importorskip("scipy.special")
    assert betainc(2.0, 3.0, 0.0) == 0.0 and betainc(2.0, 3.0, 1.0) == 1.0
    for a, b, x in [(2.0, 3.0, 0.3), (2.0, 3.0, 0.9), (0.5, 0.5, 0.01), (7.5, 0.5, 0.99)]:
        assert betainc(a, b, x) == pytest.approx(scipy_special.betainc(a, b, x), rel=1e-10)
    # y = 1 - x given exactly, where 1 - x would round to 0: I_x(1/2, 1/2) = 2 asin(sqrt(x)) / pi
    y = 1e-20
    assert 1.0 - betainc(0.5, 0.5, 1.0, y) == pytest.approx(2 / math.pi * math.asin(math.sqrt(y)),
                                                            rel=1e-6)


def test_t_cdf_keeps_precision_next_to_zero():
    t = 1e-10  # df / (df + t^2) rounds to 1.0; only the exact complement keeps the tail
    assert t_cdf(t, 1) - 0.5 == pytest.approx(math.atan(t) / math.pi, rel=1e-6)
    assert t_cdf(-t, 1) - 0.5 == pytest.approx(-math.atan(t) / math.pi, rel=1e-6)


def test_t_quantile_median_is_exactly_zero_and_bad_arguments_are_named():
    assert t_quantile(0.5, 7) == 0.0
    with pytest.raises(ValueError, match=r"got p=0\.0, df=4"):
        t_quantile(0.0, 4)
    with pytest.raises(ValueError, match=r"got p=0\.9, df=0"):
        t_quantile(0.9, 0)


def test_format_ci_and_note_text():
    assert format_ci(0.625, 0.041) == "62.5 ± 4.1"
    assert format_ci(0.5, 0.02, scale=1.0) == "0.5 ± 0.0"
    assert format_ci(0.3, math.nan) == "30.0 ± n/a"
    assert few_episodes_note([12, 3, 40]) == (
        "Warning: fewer than 10 episodes in some cells (min 3): intervals are wide and unstable; "
        "use --episodes 10 or more to compare methods.")
    assert few_episodes_note([10, 11]) is None and few_episodes_note([]) is None


def test_final_step_rows_keeps_each_cells_last_step():
    rows = [{"method": "maml", "shots": 1, "adapt_steps": 0, "accuracy": 0.1},
            {"method": "maml", "shots": 1, "adapt_steps": 5, "accuracy": 0.2},
            {"method": "maml", "shots": 4, "adapt_steps": 10, "accuracy": 0.3},
            {"method": "maml", "shots": 4, "adapt_steps": 2, "accuracy": 0.4},
            {"method": "reptile", "shots": 1, "adapt_steps": 3, "accuracy": 0.5},
            {"method": "icl", "shots": 1, "accuracy": 0.6},
            {"label": "fomaml", "method": "maml", "shots": 1, "adapt_steps": 1, "accuracy": 0.7}]
    kept = final_step_rows(rows)
    assert [r["accuracy"] for r in kept] == [0.2, 0.3, 0.5, 0.6, 0.7]


def test_summarize_groups_by_method_orders_by_label_and_averages_cost():
    rows = [{"accuracy": 0.1, "method": "b", "shots": 1, "seconds": 1.0, "prompt_tokens": 10},
            {"accuracy": 0.3, "method": "b", "shots": 1, "prompt_tokens": 30},
            {"accuracy": 0.9, "method": "a", "shots": 1, "seconds": 4.0},
            {"accuracy": 0.5, "method": "a", "shots": 10},
            {"accuracy": 0.7, "method": "a", "shots": 2}]
    out = summarize(rows)
    assert [(s["label"], s["shots"], s["n_episodes"]) for s in out] == [
        ("a", 1, 1), ("a", 2, 1), ("a", 10, 1), ("b", 1, 2)]
    assert out[3]["mean"] == pytest.approx(0.2)
    assert (out[3]["seconds"], out[3]["prompt_tokens"]) == (0.5, 20.0)
    assert (out[0]["seconds"], out[0]["prompt_tokens"]) == (4.0, 0.0)


def test_format_table_layout_is_exact():
    summary = [{"label": "icl", "shots": 1, "mean": 0.625, "ci95": 0.041, "n_episodes": 12},
               {"label": "icl", "shots": 4, "mean": 0.8, "ci95": math.nan, "n_episodes": 12},
               {"label": "zero-shot-long", "shots": 0, "mean": 0.3, "ci95": 0.1, "n_episodes": 12}]
    assert format_table(summary).split("\n") == [
        "method          0-shot       1-shot      4-shot    ",
        "--------------  -----------  ----------  ----------",
        "icl             —            62.5 ± 4.1  80.0 ± n/a",
        "zero-shot-long  30.0 ± 10.0  —           —         "]


def _rows(label, accs, shots=1, steps=math.nan, qh="q", first_episode=0):
    return [{"label": label, "shots": shots, "accuracy": acc, "adapt_steps": steps,
             "dataset": "toy", "class_split": "all", "split": "all", "split_seed": 0, "ways": 5,
             "seed": 0, "episode": first_episode + i,
             "query_hash": f"{qh}{first_episode + i}" if isinstance(qh, str) and qh else qh}
            for i, acc in enumerate(accs)]


PAIR_COLUMNS = ["a", "b", "shots", "diff", "ci_low", "ci_high", "n_pairs", "frac_a_better",
                "frac_tie"]


def _ranked_frame():
    """z and a tie; hi beats z; x has the best overall mean only thanks to its 0-shot rows."""
    import pandas as pd

    return pd.DataFrame(_rows("z", [0.5] * 4) + _rows("a", [0.5] * 4)
                        + _rows("hi", [0.6, 0.7, 0.5, 0.8])
                        + _rows("x", [0.55, 0.5, 0.5, 0.6]) + _rows("x", [1.0] * 4, shots=0))


def test_paired_differences_without_baseline_ranks_and_orients_every_pair():
    from iclmeta.report.stats import paired_differences

    out = paired_differences(_ranked_frame())
    assert list(out.columns) == PAIR_COLUMNS and out.attrs["unpaired"] == []
    # ranked by overall mean (x, hi, z, a: ties keep run order), then each pair oriented by its
    # paired difference on shared cells: hi beats x there although x's overall mean is higher
    assert list(zip(out["a"], out["b"])) == [("hi", "x"), ("x", "z"), ("x", "a"), ("hi", "z"),
                                             ("hi", "a"), ("z", "a")]
    assert list(out["shots"]) == [1] * 6 and list(out["n_pairs"]) == [4] * 6
    hz = out.iloc[3]
    d = [0.1, 0.2, 0.0, 0.3]
    sd = math.sqrt(sum((v - 0.15) ** 2 for v in d) / 3)
    assert hz["diff"] == pytest.approx(0.15)
    assert (hz["ci_low"], hz["ci_high"]) == pytest.approx((0.15 - 3.182446305 * sd / 2,
                                                           0.15 + 3.182446305 * sd / 2), abs=1e-8)
    assert (hz["frac_a_better"], hz["frac_tie"]) == pytest.approx((0.75, 0.25))
    za = out.iloc[5]
    assert (za["diff"], za["frac_a_better"], za["frac_tie"]) == (0.0, 0.0, 1.0)
    hx = out.iloc[0]
    assert hx["diff"] == pytest.approx(0.1125) and hx["frac_a_better"] == 0.75


def test_paired_differences_with_baseline_and_unknown_baseline():
    from iclmeta.errors import UserError
    from iclmeta.report.stats import paired_differences

    out = paired_differences(_ranked_frame(), baseline="z")
    assert list(zip(out["a"], out["b"])) == [("a", "z"), ("hi", "z"), ("x", "z")]
    assert list(out["diff"]) == pytest.approx([0.0, 0.15, 0.0375])
    with pytest.raises(UserError, match=r"^unknown baseline 'zz'; choose one of: z, a, hi, x$"):
        paired_differences(_ranked_frame(), baseline="zz")


def test_paired_differences_lists_rows_without_queries_as_unpaired():
    import pandas as pd
    from iclmeta.report.stats import paired_differences

    df = pd.DataFrame(_rows("b", [0.5, 0.6]) + _rows("old", [0.9, 0.9], qh=None)
                      + _rows("blank", [0.1, 0.1], qh="") + _rows("a", [0.7, 0.6]))
    out = paired_differences(df)
    assert out.attrs["unpaired"] == ["blank", "old"]
    assert list(zip(out["a"], out["b"])) == [("a", "b")]
    assert out.iloc[0]["diff"] == pytest.approx(0.1) and out.iloc[0]["frac_tie"] == 0.5


def test_paired_differences_use_a_gradient_methods_last_step():
    import pandas as pd
    from iclmeta.report.stats import paired_differences

    df = pd.DataFrame(_rows("icl", [0.5, 0.5]) + _rows("maml", [0.1, 0.2], steps=0.0)
                      + _rows("maml", [0.9, 0.7], steps=5.0))
    out = paired_differences(df, baseline="icl")
    assert list(zip(out["a"], out["b"], out["n_pairs"])) == [("maml", "icl", 2)]
    assert out.iloc[0]["diff"] == pytest.approx(0.3)


def _curve_frame():
    import pandas as pd

    return pd.DataFrame(_rows("zz", [0.5, 0.7, 0.9], shots=10) + _rows("zz", [0.4], shots=2)
                        + _rows("aa", [0.2, 0.4]) + _rows("maml", [0.1, 0.3], steps=0.0)
                        + _rows("maml", [0.6, 0.8], steps=5.0))


def test_shot_curve_is_exact_and_keeps_run_order():
    from iclmeta.report.stats import shot_curve

    curve = shot_curve(_curve_frame())
    assert list(curve.columns) == ["label", "shots", "mean", "ci95", "ci_low", "ci_high",
                                   "n_episodes", "adapt_steps"]
    assert list(zip(curve["label"], curve["shots"], curve["n_episodes"])) == [
        ("zz", 2, 1), ("zz", 10, 3), ("aa", 1, 2), ("maml", 1, 2)]
    assert list(curve.index) == [0, 1, 2, 3]
    half = 4.302652730 * 0.2 / math.sqrt(3)
    row = curve.iloc[1]
    assert (row["mean"], row["ci95"]) == pytest.approx((0.7, half))
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((0.7 - half, 0.7 + half))
    assert math.isnan(curve.iloc[0]["ci95"]) and math.isnan(curve.iloc[0]["adapt_steps"])
    assert curve.iloc[3]["mean"] == pytest.approx(0.7) and curve.iloc[3]["adapt_steps"] == 5.0
    only = shot_curve(_curve_frame(), labels=["aa"])
    assert list(only["label"]) == ["aa"] and only.iloc[0]["mean"] == pytest.approx(0.3)


def test_adapt_curve_has_one_row_per_step():
    from iclmeta.report.stats import adapt_curve

    curve = adapt_curve(_curve_frame())
    assert list(curve.columns) == ["label", "shots", "adapt_steps", "mean", "ci95", "ci_low",
                                   "ci_high", "n_episodes"]
    assert list(zip(curve["label"], curve["adapt_steps"], curve["n_episodes"])) == [
        ("maml", 0.0, 2), ("maml", 5.0, 2)]
    assert list(curve["mean"]) == pytest.approx([0.2, 0.7])


def test_report_frames_load_run_folders(monkeypatch):
    import iclmeta.report.runs as runs
    from iclmeta.report.stats import load_runs, shot_curve

    seen = []

    def fake_load(arg):
        seen.append(arg)
        return _curve_frame()

    monkeypatch.setattr(runs, "load_runs", fake_load)
    assert len(load_runs(["runs/a"])) == 10
    assert list(shot_curve("runs/b")["label"]) == ["zz", "zz", "aa", "maml"]
    assert seen == [["runs/a"], "runs/b"]


# --------------------------------------------------------------------------- episode sampling

def _toy(n_classes=30, per_class=12, splits=False):
    from iclmeta.data.example import Example, LabelledDataset

    ex = [Example(f"c{c} text {i}", f"c{c}", f"toy:{c}:{i}",
                  ("test" if i % 3 == 0 else "train") if splits else None)
          for c in range(n_classes) for i in range(per_class)]
    return LabelledDataset("toy", ex)


def test_query_hash_is_the_first_12_hex_of_the_sorted_ids():
    import hashlib

    from iclmeta.data.episodes import query_hash

    assert query_hash(["b", "a", 3]) == hashlib.sha256(b"3\na\nb").hexdigest()[:12]


def test_plan_describe_and_to_dict_are_exact():
    from iclmeta.data.episodes import plan_episodes

    plan = plan_episodes(_toy(), 5, [1, 4], 3)
    assert plan.describe() == (
        "episodes: 5-way over meta-test classes (6 of a class-disjoint meta-split); 3 queries per "
        "class drawn first; K-shot support = first K of one permutation per class (nested, up to "
        "4); support and queries from the same examples (disjoint)")
    d = plan.to_dict()
    assert d == {"class_split": "disjoint", "split": "meta-test", "ways": 5, "max_shots": 4,
                 "queries": 3, "support_from": None, "query_from": None,
                 "classes": list(plan.classes), "split_seed": 0, "all_shots": False,
                 "left_out": {}}
    assert isinstance(d["classes"], list) and len(d["classes"]) == 6
    own = plan_episodes(_toy(n_classes=4, per_class=24, splits=True), 3, [2], None)
    assert own.describe() == (
        "episodes: 3-way over all 4 classes; all queries per class drawn first; K-shot support = "
        "first K of one permutation per class (nested, up to 2); support from the 'train' split, "
        "queries from 'test'")


def test_sample_episodes_numbers_episodes_and_keeps_the_seed():
    from iclmeta.data.episodes import plan_episodes, sample_episodes

    ds = _toy()
    eps = sample_episodes(ds, plan_episodes(ds, 5, [1], 2), 3, seed=7)
    assert [e.id for e in eps] == [0, 1, 2] and [e.seed for e in eps] == [7, 7, 7]


def test_sample_episodes_rechecks_the_budget_on_the_data_it_samples():
    from dataclasses import replace

    from iclmeta.data.episodes import plan_episodes, sample_episodes
    from iclmeta.errors import UserError

    plan = plan_episodes(_toy(), 5, [4], 3)
    with pytest.raises(UserError, match=r"^class 'c\d+' has 6 examples, fewer than 4 shots \+ 3"):
        sample_episodes(_toy(per_class=6), plan, 1, seed=0)
    # with the dataset's own splits only the train examples count as support (8 per class here)
    split_plan = plan_episodes(_toy(n_classes=4, per_class=24, splits=True), 3, [9], 2)
    with pytest.raises(UserError, match=r"^class 'c\d+' has 8 'train' examples, fewer than 9 shots"):
        sample_episodes(_toy(n_classes=4, per_class=12, splits=True), split_plan, 1, seed=0)
    with pytest.raises(UserError, match="--queries all"):
        sample_episodes(_toy(), replace(plan, queries=None), 1, seed=0)


# --------------------------------------------------------------------------- meta-learning updates

@pytest.fixture()
def meta_setup():
    """Tiny LoRA model (as in test_meta.py) with weights moved off the zero init, and an episode
    whose class names tokenize to different lengths (so length normalisation matters)."""
    import torch

    from conftest import build_tiny_model, build_tiny_tokenizer
    from iclmeta.data.episodes import Episode
    from iclmeta.data.example import Example
    from iclmeta.meta.lora import LoraSpec, attach_lora, task_batch
    from iclmeta.prompts import PromptBuilder, Template

    torch.set_num_threads(1)
    tok = build_tiny_tokenizer()
    lora = attach_lora(build_tiny_model(len(tok)), tok, LoraSpec(rank=2, alpha=4.0))
    builder = PromptBuilder(Template(name="t", instruction="what is the label ?"), {})
    classes = ("flight", "play_song", "set_the_alarm")
    support = {c: [Example(f"{c.replace('_', ' ')} {w}", c, f"s-{c}-{w}") for w in ("today", "now")]
               for c in classes}
    query = [Example(f"{c.replace('_', ' ')} tomorrow", c, f"q-{c}") for c in classes]
    episode = Episode(0, classes, support, query, seed=0)
    gen = torch.Generator().manual_seed(0)
    params = {k: (v + 0.3 * torch.randn(v.shape, generator=gen)).requires_grad_(True)
              for k, v in lora.initial().items()}
    batch = task_batch(builder, tok, episode.support_set(2), classes)
    return lora, builder, params, episode, batch


def test_mean_delta_without_inner_steps_reports_the_loss_at_the_start(meta_setup):
    from iclmeta.meta.reptile import mean_delta

    lora, _, params, _, batch = meta_setup
    loss, delta = mean_delta(lora, params, [batch, batch], 0, 0.5)
    assert loss == pytest.approx(float(lora.loss(params, batch)), rel=1e-6)
    assert all(float(d.abs().max()) == 0.0 for d in delta.values())


def test_reptile_update_returns_trainable_leaves(meta_setup):
    from iclmeta.meta.reptile import reptile_update

    lora, _, params, _, batch = meta_setup
    new, _ = reptile_update(lora, params, [batch], 1, 0.1, step_size=0.5)
    assert list(new) == list(params)
    assert all(v.is_leaf and v.requires_grad for v in new.values())


def test_maml_optimizer_uses_the_given_lr_and_meta_loss_is_the_mean_query_loss(meta_setup):
    import torch

    from iclmeta.meta.adaptation import adapt
    from iclmeta.meta.maml import MAML, meta_gradient

    lora, _, params, _, batch = meta_setup
    opt = MAML(inner_steps=1, inner_lr=0.1).optimizer([torch.zeros(2, requires_grad=True)], lr=0.25)
    assert opt.param_groups[0]["lr"] == 0.25
    loss, _ = meta_gradient(lora, params, [(batch, batch), (batch, batch)], 1, 0.1, True)
    fast = adapt(lora, params, batch, 1, 0.1)
    assert loss > 0 and loss == pytest.approx(float(lora.loss(fast, batch)), rel=1e-5)


def test_adapt_and_predict_steps_losses_and_normalisation(meta_setup):
    from iclmeta.meta.adaptation import adapt_and_predict

    lora, builder, params, episode, _ = meta_setup
    one = adapt_and_predict(lora, builder, params, episode, shots=1, steps=2, lr=0.1)
    assert one.steps == 2 and len(one.support_losses) == 2
    assert one.support_losses[1] < one.support_losses[0]
    zero = adapt_and_predict(lora, builder, params, episode, shots=0, steps=2, lr=0.1)
    assert zero.steps == 0 and zero.support_losses == []
    assert len(zero.labels) == 3 and set(zero.labels) <= set(episode.classes)
    # normalisation is on by default, for the support loss and for the query labels
    normed = adapt_and_predict(lora, builder, params, episode, 1, 2, 0.1, normalize=True)
    raw = adapt_and_predict(lora, builder, params, episode, 1, 2, 0.1, normalize=False)
    assert one.support_losses == pytest.approx(normed.support_losses)
    assert raw.support_losses[0] != pytest.approx(normed.support_losses[0], rel=1e-3)


def test_adapt_and_predict_sizes_query_batches_by_the_longest_prompt(meta_setup):
    from iclmeta.meta.adaptation import adapt_and_predict
    from iclmeta.meta.lora import task_batch

    lora, builder, params, episode, _ = meta_setup
    queries = task_batch(builder, lora.tokenizer, episode.query, episode.classes)
    asked = []

    def batch_for(tokens):
        asked.append(tokens)
        return 2

    answer = adapt_and_predict(lora, builder, params, episode, 1, 1, 0.1, batch_size=batch_for)
    assert asked == [max(map(len, queries.prompt_ids)) + max(map(len, queries.cand_ids))]
    assert asked[0] > max(map(len, queries.prompt_ids))
    assert answer.prompt_tokens == sum(len(p) for p in queries.prompt_ids) > 0
    fixed = adapt_and_predict(lora, builder, params, episode, 1, 1, 0.1, batch_size=8)
    assert answer.labels == fixed.labels and answer.prompt_tokens == fixed.prompt_tokens


def test_empty_report_frames_keep_their_columns():
    import pandas as pd
    from iclmeta.report.stats import adapt_curve, paired_differences

    alone = paired_differences(pd.DataFrame(_rows("icl", [0.5, 0.6])))
    assert list(alone.columns) == PAIR_COLUMNS and len(alone) == 0
    none = adapt_curve(pd.DataFrame(_rows("icl", [0.5, 0.6])))
    assert list(none.columns) == ["label", "shots", "adapt_steps", "mean", "ci95", "ci_low",
                                  "ci_high", "n_episodes"] and len(none) == 0
