"""Metrics beside accuracy, from the per-query lists each result row records.

A row of ``iclmeta eval`` holds its queries' ``gold`` labels and ``predictions``, and with
``--log-scores`` their ``label_scores`` (one ``{label: score}`` per query, higher = more
likely). From them:

- **Macro-F1** is computed *per episode* (the F1 of each of the episode's classes, i.e. the
  classes among its gold labels, averaged with equal weight) and then averaged over episodes,
  with the same 95% t-interval over episodes as accuracy (``intervals.mean_ci``). Episodes are
  the independent units, so the interval is honest; a prediction outside the episode's classes
  only costs its query's class recall.
- **Per-class accuracy** pools every query of a class across episodes (classes of an N-way
  episode vary from episode to episode, so there is no per-episode value to average). It has
  no interval: queries of one episode are not independent.
- **Confusion counts** pool gold x predicted over the episodes of one (label, shots) cell.
- **Expected calibration error** (ECE): each query's scores become probabilities by a softmax
  over the labels it was scored against (the episode's labels). For language-model
  log-likelihoods that is exactly the model's distribution renormalised over the candidates.
  Metric methods score negative distances or similarities, whose softmax is a confidence that
  depends on the scale of the scores (a temperature): compare their ECE with care. The query's
  prediction is its top-scoring label and its confidence that label's probability; ECE pools
  every query of the cell over 10 equal-width confidence bins: ECE = sum over bins of
  (queries in bin / all queries) x |accuracy in bin - mean confidence in bin|.
  Few queries bias ECE upward.

Rows without these lists (hand-made or older runs) are skipped; the functions return empty
frames with their columns when nothing is left.

>>> macro_f1(["a", "a", "b", "b"], ["a", "b", "b", "b"])  # F1(a) = 2/3, F1(b) = 4/5
0.7333333333333334
>>> round(expected_calibration_error([0.9, 0.9], [True, False]), 2)
0.4
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict

from iclmeta.report.intervals import mean_ci

ECE_BINS = 10


def macro_f1(gold: list, predictions: list) -> float:
    """Unweighted mean over the classes in ``gold`` of F1 = 2TP / (2TP + FP + FN)."""
    pairs = list(zip(gold, predictions))
    scores = []
    for c in dict.fromkeys(gold):
        tp = sum(g == c and p == c for g, p in pairs)
        fp = sum(g != c and p == c for g, p in pairs)
        fn = sum(g == c and p != c for g, p in pairs)
        scores.append(2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores)


def softmax(scores: dict) -> dict:
    """Probabilities over the keys of ``{label: score}`` (stable: the top score is subtracted).

    >>> {k: round(v, 3) for k, v in softmax({"a": 0.0, "b": math.log(3)}).items()}
    {'a': 0.25, 'b': 0.75}
    """
    top = max(scores.values())
    weights = {k: math.exp(v - top) for k, v in scores.items()}
    total = sum(weights.values())
    return {k: w / total for k, w in weights.items()}


def expected_calibration_error(confidences, correct, bins: int = ECE_BINS) -> float:
    """ECE over ``bins`` equal-width confidence bins of [0, 1] (confidence 1 is in the last)."""
    groups: dict[int, list] = defaultdict(list)
    for conf, ok in zip(confidences, correct):
        groups[min(int(conf * bins), bins - 1)].append((conf, float(ok)))
    n = sum(len(g) for g in groups.values())
    return sum(abs(sum(ok for _, ok in g) - sum(c for c, _ in g)) for g in groups.values()) / n


def _has_lists(row, *columns) -> bool:
    """Whether ``row`` records every column as a list, one entry per query."""
    values = [row.get(c) for c in columns]
    return all(isinstance(v, list) for v in values) and len({len(v) for v in values}) == 1 \
        and len(values[0]) > 0


def _cells(df, *columns):
    """Final-step rows that record ``columns``, grouped by (label, shots) in run order."""
    from iclmeta.report.stats import _final_steps

    df = _final_steps(df) if "adapt_steps" in df else df
    if not all(c in df for c in ("label", "shots", *columns)):
        return []
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in df.to_dict("records"):
        if _has_lists(row, *columns):
            groups[(row["label"], row["shots"])].append(row)
    return list(groups.items())


def _frame(records: list[dict], columns: list[str]):
    import pandas as pd

    return pd.DataFrame(records, columns=columns)


F1_COLUMNS = ["label", "shots", "mean", "ci95", "ci_low", "ci_high", "n_episodes"]


def macro_f1_curve(df):
    """Macro-F1 per (label, shots): mean over episodes of each episode's macro-F1, and its 95%
    t-interval over episodes (NaN for one). Same columns as ``shot_curve`` (less adapt_steps).
    """
    out = []
    for (label, shots), rows in _cells(df, "gold", "predictions"):
        mean, half = mean_ci([macro_f1(r["gold"], r["predictions"]) for r in rows])
        out.append({"label": label, "shots": shots, "mean": mean, "ci95": half,
                    "ci_low": mean - half, "ci_high": mean + half, "n_episodes": len(rows)})
    return _frame(out, F1_COLUMNS)


def per_class_accuracy(df):
    """Accuracy of each gold class per (label, shots), pooled over the queries of every episode.

    Columns: label, shots, class, n_queries, n_correct, accuracy, n_episodes.
    """
    out = []
    for (label, shots), rows in _cells(df, "gold", "predictions"):
        seen, right, episodes = Counter(), Counter(), defaultdict(set)
        for r in rows:
            for g, p in zip(r["gold"], r["predictions"]):
                seen[g] += 1
                right[g] += g == p
                episodes[g].add(r["episode"])
        out += [{"label": label, "shots": shots, "class": c, "n_queries": seen[c],
                 "n_correct": right[c], "accuracy": right[c] / seen[c],
                 "n_episodes": len(episodes[c])} for c in sorted(seen, key=str)]
    return _frame(out, ["label", "shots", "class", "n_queries", "n_correct", "accuracy",
                        "n_episodes"])


def confusion_counts(df, label: str, shots) -> tuple[list[str], list[str], list[list[int]]]:
    """Gold classes (rows), predicted labels (columns: the classes, then any other prediction)
    and the pooled counts of one (label, shots) cell.
    """
    rows = dict(_cells(df, "gold", "predictions")).get((label, shots), [])
    pairs = Counter((str(g), str(p)) for r in rows for g, p in zip(r["gold"], r["predictions"]))
    classes = sorted({g for g, _ in pairs})
    predicted = classes + sorted({p for _, p in pairs} - set(classes))
    counts = [[pairs[(g, p)] for p in predicted] for g in classes]
    return classes, predicted, counts


def _confidence(scores: dict, gold) -> tuple[float, bool] | None:
    """The top label's probability and whether it is the gold label (None: unusable scores)."""
    if not isinstance(scores, dict) or not scores:
        return None
    values = list(scores.values())
    if not all(isinstance(v, (int, float)) and not math.isnan(v) for v in values) \
            or not math.isfinite(max(values)):
        return None
    probs = softmax(scores)
    top = max(probs, key=probs.get)
    return probs[top], top == gold


def calibration(df, bins: int = ECE_BINS):
    """ECE per (label, shots) from ``label_scores``, pooled over every query of the cell.

    Columns: label, shots, ece, confidence (mean top probability), accuracy (of the top
    labels), n_queries. Empty when no row logged scores (``iclmeta eval --log-scores``).
    """
    out = []
    for (label, shots), rows in _cells(df, "gold", "label_scores"):
        pairs = [c for r in rows for s, g in zip(r["label_scores"], r["gold"])
                 if (c := _confidence(s, g)) is not None]
        if pairs:
            confs, oks = zip(*pairs)
            out.append({"label": label, "shots": shots,
                        "ece": expected_calibration_error(confs, oks, bins),
                        "confidence": sum(confs) / len(confs),
                        "accuracy": sum(oks) / len(oks), "n_queries": len(pairs)})
    return _frame(out, ["label", "shots", "ece", "confidence", "accuracy", "n_queries"])


def metrics_table(f1, cal):
    """``macro_f1_curve`` and ``calibration`` side by side, one row per (label, shots), as in
    ``metrics.csv``; the calibration columns appear only when scores were logged."""
    out = f1.rename(columns={"mean": "macro_f1", "ci95": "macro_f1_ci95",
                             "ci_low": "macro_f1_low", "ci_high": "macro_f1_high"})
    if len(cal):
        out = out.merge(cal.rename(columns={"confidence": "mean_confidence",
                                            "accuracy": "top_label_accuracy",
                                            "n_queries": "ece_queries"}),
                        on=["label", "shots"], how="left")
    return out
