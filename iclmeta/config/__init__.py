"""Typed run configuration, saved beside every run's results (``config.yaml``, ``train.yaml``).

One dataclass per consumer: ``EvalConfig`` (``iclmeta eval``), ``MetricTrainConfig`` and
``MetaTrainConfig`` (``iclmeta train``). Each field carries its command-line help and the
methods that use it (``fields.opt``), so the CLI's flags are generated from these classes.

>>> cfg = EvalConfig(methods=["icl"], shots=[0, 1])
>>> EvalConfig.from_dict(cfg.to_dict()) == cfg
True
"""
from iclmeta.config.evaluation import (ChatFormat, ClassSplitChoice, DemoSource, EvalConfig,
                                       Order, Scoring)
from iclmeta.config.fields import Device, Distance, DType
from iclmeta.config.source import DataSource
from iclmeta.config.training import (DEFAULT_META_LR, META_METHODS, TRAINABLE, Head, MetaMethod,
                                     MetaTrainConfig, MetricTrainConfig)

__all__ = ["DataSource", "EvalConfig", "MetricTrainConfig", "MetaTrainConfig", "Scoring", "DemoSource",
           "ChatFormat", "ClassSplitChoice", "Order", "Device", "DType", "Distance", "Head",
           "MetaMethod", "TRAINABLE", "META_METHODS", "DEFAULT_META_LR"]
