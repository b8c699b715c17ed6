"""Scoring numerics on the real embedded SmolLM2, with prompts long enough to reuse a prefix.

The unit tests use tiny float32 models; these run the shipped model in both CPU dtypes on
icl-style prompts whose shared demonstrations are far past the prefix-reuse threshold.
"""
from __future__ import annotations

import random

import numpy as np
import pytest

pytestmark = pytest.mark.integration


def _icl_prompts(n_queries: int = 12):
    from iclmeta.data.episodes import plan_episodes, sample_episodes
    from iclmeta.data.sources import load_dataset
    from iclmeta.prompts import PromptBuilder, load_template

    ds = load_dataset("trec")
    episode = sample_episodes(ds, plan_episodes(ds, None, [2], 2), 1, seed=0)[0]
    demos = list(episode.support_set(2))
    random.Random(0).shuffle(demos)
    builder = PromptBuilder(load_template("question"), ds.label_names)
    prompts = [builder.render(demos, q) for q in episode.query[:n_queries]]
    return prompts, builder.candidates(list(episode.classes))


def _scores(lm, prompts, candidates, batch_size: int, reuse: bool) -> np.ndarray:
    lm.batch_size, lm.reuse_prefix = batch_size, reuse
    return lm.score(prompts, candidates).normalized()


@pytest.mark.parametrize("dtype, tolerance", [("float32", 1e-4), ("bfloat16", 0.5)])
def test_prefix_reuse_and_batch_size_agree_on_the_real_model(dtype, tolerance):
    from iclmeta.lm.hf import HFLM
    from iclmeta.lm.prefix import MIN_SHARED_PREFIX, encode_prompts, shared_prefix

    lm = HFLM.load(device="cpu", dtype=dtype)
    prompts, candidates = _icl_prompts()
    ids = encode_prompts(lm.tokenizer, prompts)
    prefix = shared_prefix(lm.model, ids)
    assert prefix is not None and prefix.length > 4 * MIN_SHARED_PREFIX  # the reuse path runs
    whole = _scores(lm, prompts, candidates, 1, reuse=False)
    for batch_size, reuse in [(8, False), (1, True), (5, True)]:
        got = _scores(lm, prompts, candidates, batch_size, reuse)
        assert np.abs(got - whole).max() < tolerance, (dtype, batch_size, reuse)
        if dtype == "float32":  # the CPU default: predictions never depend on batching or reuse
            assert (got.argmax(1) == whole.argmax(1)).all()
