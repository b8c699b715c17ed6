"""Shared, lazily loaded resources: one LM, one embedder, one prompt builder per run.

Nothing is loaded until a method first asks for it, so methods that need no LM (the metric
baselines) never pay for one.
"""
from __future__ import annotations

from functools import cached_property

from .config import EvalConfig
from .data import LabelledDataset
from .prompts import PromptBuilder, load_template

# The template used when the config names none, by dataset name prefix.
DATASET_TEMPLATES = {"trec": "question", "snips": "intent", "clinc": "intent",
                     "banking": "intent"}


def template_for(config: EvalConfig, dataset: LabelledDataset) -> str:
    if config.template:
        return config.template
    name = dataset.name.lower()
    return next((t for prefix, t in DATASET_TEMPLATES.items() if name.startswith(prefix)),
                "generic")


class Resources:
    """What methods share within one run (constructing it does no I/O)."""

    def __init__(self, config: EvalConfig, dataset: LabelledDataset):
        self.config = config
        self.dataset = dataset

    @cached_property
    def lm(self):
        from .lm import HFLM
        c = self.config
        return HFLM.load(c.model, device=c.device, dtype=c.dtype, cache_dir=c.cache_dir,
                         batch_size=c.batch_size, trust_remote_code=c.trust_remote_code)

    @cached_property
    def embedder(self):
        from .embed import Embedder
        return Embedder(self.config.embedder, cache_dir=self._embed_cache()).load()

    @cached_property
    def builder(self) -> PromptBuilder:
        template = load_template(template_for(self.config, self.dataset))
        return PromptBuilder(template, self.dataset.label_names)

    def _embed_cache(self):
        from pathlib import Path
        return None if self.config.cache_dir is None else Path(self.config.cache_dir) / "embeddings"
