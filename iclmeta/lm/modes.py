"""Label scoring modes for prompting methods: direct, normalized, calibrated, channel, generate.

- ``direct``: summed log-likelihood of each verbalized label after the prompt.
- ``normalized``: the same, per label token.
- ``calibrated``: contextual calibration (Zhao et al., 2021). The label distribution the model
  gives content-free inputs ("N/A", "", "[MASK]") shown with the *same* demonstrations estimates
  its prior; predictions divide it out. The queries and content-free inputs that share a
  demonstration set go to ``LM.score_pairs`` as one group, so a backend runs the demonstrations
  once per distinct set (once per episode for ``icl``, once per query for ``retrieval``) and
  calibration costs little more than ``direct``.
- ``channel`` (Min et al., 2022): demonstrations are shown label-first, and each label is scored
  by how likely the query *text* is after it. The per-label prompts share the demonstrations:
  one ``score_pairs`` group per demonstration set.
- ``generate``: greedy generation, parsed onto the label set (exact, then prefix, then fuzzy,
  case-insensitive); an output matching no label counts as wrong and the rate is reported.

>>> calibrate(np.log([[0.7, 0.3]]), np.log([[0.8, 0.2]])).argmax(1)  # prior favours label 0
array([1])
>>> parse_label(" Location.\\n\\nQuestion: who", {"LOC": "location", "NUM": "number"})
'LOC'
"""
from __future__ import annotations

import difflib

import numpy as np

from iclmeta.errors import UserError
from iclmeta.lm.protocol import LM

SCORINGS = ("direct", "normalized", "calibrated", "channel", "generate")
CONTENT_FREE = ("N/A", "", "[MASK]")
UNPARSEABLE = "<unparseable>"
MAX_NEW_TOKENS = 12  # the longest verbalized label in the builtin datasets is 4 words


def log_softmax(values: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax that tolerates ``-inf`` cells."""
    top = np.max(values, axis=-1, keepdims=True)
    shifted = values - top
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


def calibrate(query_logp: np.ndarray, content_free_logp: np.ndarray) -> np.ndarray:
    """Contextual calibration: log p(label | query) minus the log mean content-free prior.

    ``query_logp`` is ``[Q, C]`` label log-likelihoods for queries sharing one demonstration
    set; ``content_free_logp`` is ``[M, C]`` for the M content-free inputs with the same demos.
    Each row is normalized over the label set, the M content-free distributions are averaged
    (``p_cf``), and the result is ``log softmax(log p - log p_cf)``: Zhao et al.'s diagonal
    ``W = diag(p_cf)^-1`` with ``b = 0``, renormalized.

    >>> out = calibrate(np.log([[0.5, 0.5]]), np.log([[0.9, 0.1], [0.7, 0.3]]))
    >>> np.round(np.exp(out), 3)
    array([[0.2, 0.8]])
    """
    prior = np.exp(log_softmax(content_free_logp)).mean(axis=0)
    return log_softmax(log_softmax(query_logp) - np.log(prior))


def parse_label(output: str, names: dict[str, str]) -> str:
    """Map generated text onto a label id, or ``UNPARSEABLE``.

    ``names`` maps label id -> verbalized name; both count as answers. Only the first line is
    read, case-insensitively: an exact match, then the longest name the output starts with,
    then the closest name by edit similarity (ratio >= 0.8).

    >>> parse_label("play musik", {"play_music": "play music", "rate_book": "rate book"})
    'play_music'
    >>> parse_label("I cannot tell", {"play_music": "play music"})
    '<unparseable>'
    """
    lines = [line for line in output.strip().splitlines() if line.strip()]
    text = lines[0].strip().strip(".,;:!\"'`*").strip().lower() if lines else ""
    if not text:
        return UNPARSEABLE
    forms = {}
    for label, name in names.items():
        for form in (name, label, label.replace("_", " ")):
            forms.setdefault(form.lower(), label)
    if text in forms:
        return forms[text]
    for form in sorted(forms, key=len, reverse=True):
        if text.startswith(form) and (len(text) == len(form) or not text[len(form)].isalnum()):
            return forms[form]
    close = difflib.get_close_matches(text, list(forms), n=1, cutoff=0.8)
    return forms[close[0]] if close else UNPARSEABLE


def predict_with(scoring: str, lm: LM, plans, labels: list[str], builder,
                 scores_out: list | None = None):
    """Predicted labels, extra row fields and tokens run, for the plans of one episode.

    ``plans`` are ``QueryPrompt``s rendered for ``scoring`` (see ``iclmeta.prompting``); ``lm``
    is used only through the ``LM`` protocol. ``scores_out``, when a list, receives one row per
    plan of the label scores each prediction is the argmax of (``direct``: summed
    log-likelihood; ``normalized``: per token; ``calibrated``: calibrated log-probability;
    ``channel``: log p(query text | label)); ``generate`` scores no labels and adds nothing.
    """
    if scoring not in SCORINGS:
        raise UserError(f"unknown scoring {scoring!r}; choose one of: {', '.join(SCORINGS)}")
    if scoring == "generate":
        outputs = lm.generate([p.prompt for p in plans], max_new_tokens=MAX_NEW_TOKENS)
        names = {label: builder.verbalize(label) for label in labels}
        predicted = [parse_label(text, names) for text in outputs]
        rate = sum(p == UNPARSEABLE for p in predicted) / max(len(predicted), 1)
        tokens = sum(lm.count_tokens(p.prompt) for p in plans)
        return predicted, {"unparseable_rate": rate, "generations": outputs}, tokens
    if scoring == "channel":
        values, tokens = _channel_scores(lm, plans, len(labels))
        _keep(scores_out, values)
        return [labels[i] for i in values.argmax(1)], {}, tokens
    if scoring == "calibrated":
        values, tokens, n_sets = _calibrated(lm, plans, len(labels))
        _keep(scores_out, values)
        return [labels[i] for i in values.argmax(1)], {"content_free_sets": n_sets}, tokens
    scores = lm.score([p.prompt for p in plans], plans[0].candidates)
    values = scores.normalized() if scoring == "normalized" else scores.total
    _keep(scores_out, values)
    return [labels[i] for i in np.argmax(values, axis=1)], {}, scores.prompt_tokens


def _keep(out: list | None, values) -> None:
    if out is not None:
        out.extend(np.asarray(values, dtype=float).tolist())


def _by_demo_set(plans) -> dict[tuple, list[int]]:
    groups: dict[tuple, list[int]] = {}
    for i, plan in enumerate(plans):
        groups.setdefault(tuple(plan.demo_ids), []).append(i)
    return groups


def _calibrated(lm: LM, plans, n_labels: int):
    """Calibrate each query with the content-free prior of its own demonstration set.

    The queries and content-free inputs of one demonstration set are scored in one group, so
    the demonstrations run once for all of them.
    """
    groups = _by_demo_set(plans)
    pairs = []
    for idx in groups.values():
        texts = [plans[i].prompt for i in idx] + plans[idx[0]].content_free
        pairs.append([(text, cand) for text in texts for cand in plans[idx[0]].candidates])
    scores = lm.score_pairs(pairs)
    out = np.empty((len(plans), n_labels))
    for idx, group_scores in zip(groups.values(), scores.values):
        table = group_scores.reshape(-1, n_labels)
        out[idx] = calibrate(table[:len(idx)], table[len(idx):])
    return out, scores.tokens, len(groups)


def _channel_scores(lm: LM, plans, n_labels: int):
    """``log p(query text | label, demos)`` ``[Q, C]``; one group per demonstration set."""
    groups = _by_demo_set(plans)
    pairs = [[pair for i in idx for pair in plans[i].channel] for idx in groups.values()]
    scores = lm.score_pairs(pairs)
    out = np.empty((len(plans), n_labels))
    for idx, group_scores in zip(groups.values(), scores.values):
        out[idx] = group_scores.reshape(len(idx), n_labels)
    return out, scores.tokens
