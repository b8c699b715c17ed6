"""Shared, lazily loaded resources: one LM, one embedder, one prompt builder per run.

Nothing is loaded until a method first asks for it, so methods that need no LM (the metric
baselines) never pay for one.
"""
from __future__ import annotations

from functools import cached_property

from iclmeta.config import EvalConfig
from iclmeta.data.example import LabelledDataset
from iclmeta.prompts import PromptBuilder, load_template, template_for

class Resources:
    """What methods share within one run (constructing it does no I/O)."""

    def __init__(self, config: EvalConfig, dataset: LabelledDataset):
        self.config = config
        self.dataset = dataset

    @cached_property
    def lm(self):
        from iclmeta.lm.registry import load_lm
        c = self.config
        return load_lm("hf", c.model, device=c.device, dtype=c.dtype, cache_dir=c.cache_dir,
                       batch_size=c.batch_size, trust_remote_code=c.trust_remote_code)

    @cached_property
    def embedder(self):
        from iclmeta.retrieval.embedder import Embedder
        return Embedder(self.config.embedder, cache_dir=self._embed_cache()).load()

    @cached_property
    def builder(self) -> PromptBuilder:
        template = load_template(template_for(self.config.template, self.dataset.name))
        return PromptBuilder(template, self.dataset.label_names)

    def _embed_cache(self):
        from pathlib import Path
        return None if self.config.cache_dir is None else Path(self.config.cache_dir) / "embeddings"
