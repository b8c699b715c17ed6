"""``DataSource``: where the labelled examples come from, shared by every config.

``EvalConfig``, ``MetricTrainConfig`` and ``MetaTrainConfig`` extend it, so the data fields,
their flags and their help exist once.

>>> DataSource(dataset="my.csv", text_field=["body"]).label_field is None
True
>>> DataSource(data_files={"train": "a.csv", "test": "b.csv"}).encoding
'utf-8'
"""
from __future__ import annotations

from dataclasses import dataclass

from iclmeta.config.fields import shared


@dataclass
class DataSource:
    """A builtin name, a data file, one file per split, or a Hugging Face dataset, and its
    field names. ``text_field`` lists the input field(s): several make multi-field examples."""

    dataset: str = shared("dataset", "snips", group="data")
    text_field: list[str] | None = shared("text_field", group="data")
    label_field: str | None = shared("label_field", group="data")
    split_field: str | None = shared("split_field", group="data")
    hf_config: str | None = shared("hf_config", group="data")
    data_files: dict[str, str] | None = shared("data_files", group="data", metavar="SPLIT=FILE,..")
    encoding: str = shared("encoding", "utf-8", group="data")
    # --task fills the fields above (and template, scoring, class_split) from a task file; the
    # run's config.yaml records the task's name beside the values it resolved to.
    task: str | None = shared("task", group="data")
    embed_template: str | None = shared("embed_template", group="data", used_by=(
        "retrieval", "instruct", "knn", "protonet", "matching", "relation", "retrieve-adapt"))
