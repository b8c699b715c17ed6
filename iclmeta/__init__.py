"""iclmeta: few-shot learning with language models on one episodic benchmark harness.

Importing this package is light: no torch, transformers or faiss is loaded until a model is.

>>> from iclmeta import load_dataset, plan_episodes, sample_episodes
>>> ds = load_dataset("trec")
>>> episodes = sample_episodes(ds, plan_episodes(ds, None, [1], 5), n=3, seed=0)
>>> len(episodes)
3
"""
from iclmeta.config import EvalConfig
from iclmeta.data.example import Example, LabelledDataset
from iclmeta.data.sources import load_dataset
from iclmeta.data.episodes import Episode, meta_splits, plan_episodes, sample_episodes
from iclmeta.errors import UserError
from iclmeta.prompts import PromptBuilder, Template, load_template
from iclmeta.deploy.predictor import Predictor  # light: loads its method on Predictor.load

__version__ = "0.1.0"

__all__ = ["EvalConfig", "Example", "LabelledDataset", "load_dataset", "Episode", "meta_splits",
           "plan_episodes", "sample_episodes", "UserError", "PromptBuilder", "Template",
           "load_template", "evaluate", "Predictor"]


def evaluate(config: EvalConfig, **kwargs):
    """Run the harness (see ``iclmeta.harness.evaluate.evaluate``); imported lazily to stay light."""
    from iclmeta.harness.evaluate import evaluate as _evaluate
    return _evaluate(config, **kwargs)

