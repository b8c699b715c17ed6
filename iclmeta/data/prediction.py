"""What every method returns for an episode, and the small protocol every method follows.

Both sit below the method families so that prompting, metric and meta methods can share them
without importing each other or the harness.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from iclmeta.data.episodes import Episode


@dataclass
class Prediction:
    """One label per query of the episode, and what it cost.

    ``scores``: one ``{label: score}`` per query (query order) over the episode's classes,
    higher meaning more likely, the values the method took the best of; filled when the run
    logs scores (``--log-scores``), else empty. Each family's docstring says what its score is.
    """

    labels: list[str]
    demo_ids: list[list[str]] = field(default_factory=list)
    prompt_tokens: int = 0
    extra: dict = field(default_factory=dict)
    scores: list[dict[str, float]] = field(default_factory=list)


def label_scores(values, classes) -> list[dict[str, float]]:
    """Rows of a ``[queries, classes]`` score table as ``{label: score}`` dicts.

    >>> label_scores([[0.5, -1.0]], ["a", "b"])
    [{'a': 0.5, 'b': -1.0}]
    """
    return [{label: float(v) for label, v in zip(classes, row)} for row in values]


class Method(Protocol):
    name: str
    options: dict
    trained_on: dict | None  # ``data.leakage.training_record`` of a loaded checkpoint, else None

    def fit(self) -> None:
        """Load what the method needs (models, checkpoints) before the clock starts."""

    def predict(self, episode: "Episode", shots: int) -> Prediction: ...
