"""Labelled text data and episodes: examples, sources (builtin, files, hub), episode sampling.

>>> from iclmeta.data import load_dataset
>>> load_dataset("trec").label_names["NUM"]
'number'
"""
from iclmeta.data.episodes import Episode, EpisodePlan, meta_splits, plan_episodes, sample_episodes
from iclmeta.data.example import Example, LabelledDataset
from iclmeta.data.sources import load_dataset

__all__ = ["Episode", "EpisodePlan", "Example", "LabelledDataset", "load_dataset", "meta_splits",
           "plan_episodes", "sample_episodes"]
