"""In-context prompting: zero-shot, random demonstrations (``icl``), retrieved demonstrations.

At ``shots = K`` a prompt shows up to ``ways x K`` demonstrations (or ``--k``): ``icl`` uses the
episode's K-shot support in a seeded order, one demonstration set shared by every query;
``retrieval`` takes the nearest ones to each query from the whole support pool, nearest last.
Each label is scored as a continuation of the prompt and the best-scoring label is predicted.
"""
from __future__ import annotations

import random

import numpy as np

from ..data import Example
from ..episodes import Episode
from ..errors import UserError
from . import Prediction


class _Prompting:
    """Shared scoring: build prompts, fit them into the context window, score every label.

    Subclasses say which demonstrations a query gets: ``demos_for(episode, shots, query)``.
    """

    def __init__(self, name: str, resources):
        self.name = name
        self.res = resources
        cfg = resources.config
        self.options = {"scoring": cfg.scoring, "k": cfg.k, "template": None}

    def fit(self, train_episodes: list[Episode]) -> None:
        """Prompting learns nothing from meta-train episodes; load the model up front."""
        self.res.lm

    def n_demos(self, episode: Episode, shots: int) -> int:
        k = self.res.config.k
        return len(episode.classes) * shots if k is None else min(k, len(episode.classes) * shots)

    def predict(self, episode: Episode, shots: int) -> Prediction:
        builder, lm = self.res.builder, self.res.lm
        self.options["template"] = builder.template.name
        candidates = builder.candidates(episode.classes)
        prompts, demo_ids, dropped = [], [], []
        for query in episode.query:
            demos = self.demos_for(episode, shots, query) if shots > 0 else []
            prompt, kept = fit_context(builder, lm, demos, query, episode.classes, candidates)
            prompts.append(prompt)
            demo_ids.append([d.id for d in kept])
            dropped.append(len(demos) - len(kept))
        scores = lm.score(prompts, candidates)
        values = scores.normalized() if self.res.config.scoring == "normalized" else scores.total
        labels = [episode.classes[i] for i in np.argmax(values, axis=1)]
        return Prediction(labels, demo_ids, scores.prompt_tokens,
                          {"demos_dropped": int(sum(dropped))})


def fit_context(builder, lm, demos: list[Example], query: Example, labels, candidates):
    """Render the prompt, dropping the least relevant (first-placed) demos until it fits.

    The query itself is never truncated: a query that cannot fit alone is an error.
    """
    room = lm.max_length - max(lm.count_tokens(c) for c in candidates)
    kept = list(demos)
    while True:
        prompt = builder.render(kept, query, labels)
        if lm.count_tokens(prompt) <= room:
            return prompt, kept
        if not kept:
            raise UserError(f"query {query.id} does not fit the model's context window "
                             f"({lm.max_length} tokens) even without demonstrations; "
                            "use a model with a longer context")
        kept = kept[1:]


class ZeroShot(_Prompting):
    """No demonstrations at any shot count: the instruction and the query alone."""

    def demos_for(self, episode, shots, query):
        return []


class RandomDemos(_Prompting):
    """The episode's K-shot support in a seeded random order, the same for every query."""

    def demos_for(self, episode, shots, query):
        demos = episode.support_set(shots)
        random.Random(f"icl:{episode.seed}:{episode.id}:{shots}").shuffle(demos)
        return demos[:self.n_demos(episode, shots)]


class RetrievedDemos(_Prompting):
    """The query's nearest neighbours among the whole support pool (FAISS over embeddings)."""

    def __init__(self, name, resources):
        super().__init__(name, resources)
        cfg = resources.config
        self.options.update(embedder=cfg.embedder or "minilm", balance=cfg.balance,
                            mmr=cfg.mmr, order=cfg.order)
        self._selector = None

    def fit(self, train_episodes):
        super().fit(train_episodes)
        self.res.embedder

    def selector(self):
        if self._selector is None:
            from ..selectors import KNNSelector
            cfg = self.res.config
            self._selector = KNNSelector(self.res.embedder, balance=cfg.balance,
                                         mmr_lambda=cfg.mmr, order=cfg.order)
        return self._selector

    def predict(self, episode, shots):
        if shots > 0:  # embed the pool and the queries in one batch; selection hits the cache
            self.res.embedder.encode([e.text for e in episode.pool() + episode.query])
        return super().predict(episode, shots)

    def demos_for(self, episode, shots, query):
        return self.selector().select(query, episode.pool(), self.n_demos(episode, shots))
