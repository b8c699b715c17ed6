"""``DataSource``: where the labelled examples come from, shared by every config.

``EvalConfig``, ``MetricTrainConfig`` and ``MetaTrainConfig`` extend it, so the five data
fields, their flags and their help exist once.

>>> DataSource(dataset="my.csv", text_field="body").label_field is None
True
"""
from __future__ import annotations

from dataclasses import dataclass

from iclmeta.config.fields import shared


@dataclass
class DataSource:
    """A builtin name, a CSV/JSON/JSONL file or a Hugging Face dataset, and its field names."""

    dataset: str = shared("dataset", "snips", group="data")
    text_field: str | None = shared("text_field", group="data")
    label_field: str | None = shared("label_field", group="data")
    split_field: str | None = shared("split_field", group="data")
    hf_config: str | None = shared("hf_config", group="data")
