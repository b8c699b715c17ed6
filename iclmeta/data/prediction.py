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
    """One label per query of the episode, and what it cost."""

    labels: list[str]
    demo_ids: list[list[str]] = field(default_factory=list)
    prompt_tokens: int = 0
    extra: dict = field(default_factory=dict)


class Method(Protocol):
    name: str
    options: dict
    trained_on: dict | None  # ``data.leakage.training_record`` of a loaded checkpoint, else None

    def fit(self) -> None:
        """Load what the method needs (models, checkpoints) before the clock starts."""

    def predict(self, episode: "Episode", shots: int) -> Prediction: ...
