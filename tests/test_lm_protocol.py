"""The LM seam: a pure-Python LM (no torch) drives every prompting method and scoring mode.

``CharLM`` implements only ``iclmeta.lm.protocol.LM``, without importing it: no model, no
tokenizer. If a method or scoring mode reached past the protocol it would fail here.
"""
import math
import subprocess
import sys
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from iclmeta.config import EvalConfig
from iclmeta.data.episodes import Episode
from iclmeta.data.example import Example, LabelledDataset
from iclmeta.errors import UserError
from iclmeta.lm.modes import SCORINGS, UNPARSEABLE, parse_label
from iclmeta.lm.protocol import LM, PairScores, Scores
from iclmeta.prompting.methods import Instruct, RandomDemos, RetrievedDemos, ZeroShot
from iclmeta.prompts import PromptBuilder

ALPHABET = 128  # add-one smoothing over ASCII
from conftest import LABELS, NAMES, TEXTS, TINY  # noqa: E402  (shared tiny task)
METHODS = {"zero-shot": ZeroShot, "icl": RandomDemos, "retrieval": RetrievedDemos,
           "instruct": Instruct}


class CharLM:
    """A character-bigram LM fitted on each prompt itself (so demonstrations matter).

    Tokens are characters; a prompt adds one BOS token. ``calls`` counts the verbs used.
    """

    def __init__(self, name: str = "char", max_length: int = 4000):
        self.name = name
        self.max_length = max_length
        self.calls: Counter = Counter()
        self.options: dict = {}

    @classmethod
    def load(cls, model=None, **options):
        lm = cls(model or "char")
        lm.options = options
        return lm

    def score(self, prompts, candidates) -> Scores:
        self.calls["score"] += 1
        shared = all(isinstance(c, str) for c in candidates)
        lists = [list(candidates)] * len(prompts) if shared else [list(c) for c in candidates]
        width = max((len(c) for c in lists), default=0)
        total, n_tokens = np.full((len(prompts), width), -np.inf), np.zeros((len(prompts), width), int)
        for p, (prompt, cands) in enumerate(zip(prompts, lists)):
            self._check(prompt, max(len(c) for c in cands))
            for c, cand in enumerate(cands):
                total[p, c], n_tokens[p, c] = self._logp(prompt, cand), len(cand)
        return Scores(total, n_tokens, sum(self.count_tokens(p) for p in prompts))

    def score_pairs(self, groups) -> PairScores:
        self.calls["score_pairs"] += 1
        for ctx, cont in (pair for group in groups for pair in group):
            self._check(ctx, len(cont))
        values = [np.array([self._logp(ctx, cont) for ctx, cont in group]) for group in groups]
        tokens = sum(self.count_tokens(c) + len(x) for group in groups for c, x in group)
        return PairScores(values, tokens)

    def generate(self, prompts, max_new_tokens: int = 16) -> list[str]:
        self.calls["generate"] += 1
        outputs = []
        for prompt in prompts:
            self._check(prompt, max_new_tokens)
            follows = Counter(zip(prompt, prompt[1:]))
            text, prev = "", prompt[-1]
            for _ in range(max_new_tokens):  # the most frequent next character, ties by order
                nxt = [(n, -ord(b)) for (a, b), n in follows.items() if a == prev]
                if not nxt:
                    break
                prev = chr(-max(nxt)[1])
                text += prev
            outputs.append(text)
        return outputs

    def count_tokens(self, text: str, continuation: bool = False) -> int:
        return len(text) + (0 if continuation else 1)

    def chat(self, messages) -> str:
        self.calls["chat"] += 1
        return "".join(f"<{m['role']}> {m['content']}\n" for m in messages) + "<assistant> "

    def _logp(self, context: str, text: str) -> float:
        pairs, firsts = Counter(zip(context, context[1:])), Counter(context[:-1])
        logp, prev = 0.0, context[-1:]
        for ch in text:
            logp += math.log((pairs[prev, ch] + 1) / (firsts[prev] + ALPHABET))
            prev = ch
        return logp

    def _check(self, prompt: str, extra: int) -> None:
        if self.count_tokens(prompt) + extra > self.max_length:
            raise UserError(f"prompt exceeds the {self.max_length}-token window of '{self.name}'")


class HashEmbedder:
    """Bag of words, each word a fixed random vector seeded by its CRC: numpy only."""

    def encode(self, texts) -> np.ndarray:
        rows = []
        for text in texts:
            v = sum((np.random.default_rng(zlib.crc32(w.encode())).standard_normal(16)
                     for w in text.lower().split()), np.zeros(16))
            rows.append(v / (np.linalg.norm(v) or 1.0))
        return np.array(rows, dtype=np.float32)


def episode(shots: int = 3) -> Episode:
    support = {label: [Example(t, label, f"{label}{i}") for i, t in enumerate(TEXTS[label][:shots])]
               for label in LABELS}
    query = [Example(TEXTS[label][3], label, f"q{label}") for label in LABELS]
    return Episode(id=0, classes=LABELS, support=support, query=query, seed=0)


def resources(lm, **options):
    from iclmeta.harness.resources import Resources

    res = Resources(EvalConfig(log_prompts=True, **options),
                    LabelledDataset("tiny", episode(4).support_set(4), dict(NAMES)))
    res.lm, res.embedder, res.builder = lm, HashEmbedder(), PromptBuilder(TINY, NAMES)
    return res


def drive(method: str, scoring: str, shots: int, lm=None, **options):
    """One episode of ``method`` under ``scoring``, through the real method code."""
    lm = lm or CharLM()
    m = METHODS[method](method, resources(lm, scoring=scoring, **options))
    m.fit()
    return m.predict(episode(), shots), lm


@pytest.mark.parametrize("scoring", SCORINGS)
@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("shots", [0, 2])
def test_every_method_and_scoring_runs_on_a_protocol_only_lm(method, scoring, shots):
    pred, lm = drive(method, scoring, shots)
    assert len(pred.labels) == 3 and pred.prompt_tokens > 0
    allowed = set(LABELS) | ({UNPARSEABLE} if scoring == "generate" else set())
    assert set(pred.labels) <= allowed
    support = {ex.id for ex in episode().support_set(shots)}
    expected_demos = 0 if method == "zero-shot" else 3 * shots
    assert all(len(ids) == expected_demos and set(ids) <= support for ids in pred.demo_ids)
    assert pred.extra["demos_dropped"] == 0
    verb = {"generate": "generate", "calibrated": "score_pairs", "channel": "score_pairs"}
    assert lm.calls[verb.get(scoring, "score")] == 1
    assert (lm.calls["chat"] > 0) == (method == "instruct")


@pytest.mark.parametrize("scoring", ["direct", "normalized"])
def test_direct_scoring_is_the_argmax_of_lm_score(scoring):
    pred, lm = drive("icl", scoring, 2)
    candidates = [" location", " number", " person"]
    scores = lm.score(pred.extra["prompts"], candidates)
    values = scores.total if scoring == "direct" else scores.normalized()
    assert pred.labels == [LABELS[i] for i in values.argmax(1)]
    assert pred.prompt_tokens == scores.prompt_tokens


def test_calibration_prior_comes_from_each_demonstration_set():
    icl, _ = drive("icl", "calibrated", 2)
    retrieved, _ = drive("retrieval", "calibrated", 2)
    assert icl.extra["content_free_sets"] == 1  # one demonstration set for the episode
    assert retrieved.extra["content_free_sets"] == len({tuple(ids) for ids in retrieved.demo_ids})


def test_channel_scores_the_query_text_after_each_label():
    pred, lm = drive("retrieval", "channel", 2)
    for q, contexts, label in zip(episode().query, pred.extra["prompts"], pred.labels):
        assert len(contexts) == 3 and all(c.endswith("question :") for c in contexts)
        values = [lm._logp(ctx, " " + q.text) for ctx in contexts]
        assert label == LABELS[int(np.argmax(values))]


def test_generate_parses_what_the_lm_wrote():
    pred, _ = drive("icl", "generate", 2)
    assert pred.labels == [parse_label(g, NAMES) for g in pred.extra["generations"]]
    assert pred.extra["unparseable_rate"] == np.mean([p == UNPARSEABLE for p in pred.labels])


@pytest.mark.parametrize("scoring", ["direct", "channel", "calibrated"])
def test_a_short_window_drops_demonstrations_by_the_protocols_token_count(scoring):
    lm = CharLM(max_length=220)
    pred, _ = drive("icl", scoring, 3, lm=lm)
    assert 0 < pred.extra["demos_dropped"] < 3 * 9
    shown = [t for p in pred.extra["prompts"] for t in (p if isinstance(p, list) else [p])]
    assert max(lm.count_tokens(t) for t in shown) <= lm.max_length


def test_the_fake_and_the_hf_backend_both_satisfy_the_protocol(tiny_lm):
    assert isinstance(CharLM(), LM) and isinstance(tiny_lm, LM)
    assert not isinstance(HashEmbedder(), LM)


def test_methods_run_without_torch():
    """The whole method x scoring matrix on CharLM imports no torch or transformers."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import test_lm_protocol as t\n"
            "for m in t.METHODS:\n"
            "    for s in t.SCORINGS:\n"
            "        t.drive(m, s, 2)\n"
            "print(sorted({'torch', 'transformers', 'faiss', 'sentence_transformers'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_backend_registry_lists_valid_names_and_targets_stay_in_lm():
    from iclmeta.lm.registry import BACKENDS, backend_class, load_lm

    with pytest.raises(UserError, match="unknown LM backend 'vllm'; choose one of: hf"):
        load_lm("vllm")
    for name, target in BACKENDS.items():
        assert target.startswith("iclmeta.lm."), name
        assert callable(getattr(backend_class(name), "load")), name


def test_resources_load_the_lm_through_the_registry(monkeypatch):
    from iclmeta.harness.resources import Resources
    from iclmeta.lm import registry

    monkeypatch.setitem(registry.BACKENDS, "hf", f"{__name__}:CharLM")
    res = Resources(EvalConfig(model="my-model", device="cpu", batch_size=4),
                    LabelledDataset("tiny", episode(1).support_set(1), dict(NAMES)))
    lm = res.lm
    assert isinstance(lm, CharLM) and lm.name == "my-model"
    assert lm.options["device"] == "cpu" and lm.options["batch_size"] == 4
