"""In-context prompting: zero-shot, random demonstrations (``icl``), retrieved demonstrations,
and ``instruct`` (the model's chat template, demonstrations as turns or packed in one turn).

At ``shots = K`` every method has the episode's K-shot support and nothing more; a prompt shows
``k`` of it (``--k``, default all ``ways x K``): ``icl`` a seeded random k, one demonstration set
shared by every query; ``retrieval`` the k nearest to each query, nearest last;
``instruct`` takes either (``--demos random|retrieval``). Labels are scored by the run's
``--scoring`` mode (see ``iclmeta.lm.modes``).
"""
from __future__ import annotations

import random

from iclmeta.data.example import Example
from iclmeta.data.episodes import Episode
from iclmeta.models import DEFAULT_EMBEDDER
from iclmeta.lm.modes import MAX_NEW_TOKENS, predict_with
from iclmeta.lm.protocol import LM
from iclmeta.data.prediction import Prediction, label_scores
from iclmeta.prompting.fit import fit_context
from iclmeta.prompting.render import QueryPrompt, Renderer
from iclmeta.prompts import EmbedText


class NoDemos:
    options: dict = {}
    drop_last = False

    def fit(self, resources) -> None:
        pass

    def prepare(self, episode, shots) -> None:
        pass

    def demos(self, episode: Episode, shots: int, query: Example, n: int) -> list[Example]:
        return []


class RandomSource(NoDemos):
    """A seeded random ``n`` of the episode's K-shot support, the same for every query.

    Random demonstrations have no relevance order, so those that do not fit the window are
    dropped from the end: every query's prompt then starts with the same block, whose KV is
    computed once per episode (``lm.kv``), even when a long query has to drop more.
    """

    drop_last = True

    def demos(self, episode, shots, query, n):
        demos = episode.support_set(shots)
        random.Random(f"icl:{episode.seed}:{episode.id}:{shots}").shuffle(demos)
        return demos[:n]


class RetrievalSource(NoDemos):
    """The query's ``n`` nearest neighbours in the episode's K-shot support (sentence embeddings)."""

    def __init__(self, resources):
        cfg = resources.config
        self.res = resources
        self.options = {"embedder": cfg.embedder or DEFAULT_EMBEDDER, "balance": cfg.balance,
                        "mmr": cfg.mmr, "order": cfg.order}
        if cfg.embed_template is not None:  # recorded only when set: default rows stay as before
            self.options["embed_template"] = cfg.embed_template
        if cfg.index != "flat":  # likewise: flat selects what the numpy ranking selects
            self.options["index"] = cfg.index
        self.embed_text = EmbedText(cfg.embed_template)
        # The least relevant demonstration sits first (nearest-last) or last (nearest-first).
        self.drop_last = cfg.order == "nearest-first"
        self._selector = None
        self._chosen = None  # ((episode, shots, n), {query id: demos}) of the last episode

    def fit(self, resources) -> None:
        self.embed_text.check(resources.dataset)
        resources.embedder

    def selector(self):
        """The ``KNNSelector`` this source selects with, built on first use."""
        if self._selector is None:
            from iclmeta.retrieval.select import KNNSelector
            cfg = self.res.config
            self._selector = KNNSelector(self.res.embedder, balance=cfg.balance,
                                         mmr_lambda=cfg.mmr, order=cfg.order,
                                         text_of=self.embed_text)
        return self._selector

    def prepare(self, episode, shots) -> None:
        if shots > 0:  # embed the support and the queries in one batch; selection hits the cache
            support = episode.support_set(shots)  # (a support read through an index is not)
            pool = [] if self._index(support) else support
            self.res.embedder.encode([self.embed_text(e) for e in pool + episode.query])

    def _index(self, support) -> bool:
        """Whether ``support`` is read through a vector index: one registered already, or, for
        a support large enough (``search.use_faiss``), its ``--index`` index, built from the
        embedding cache once and kept beside it (``indexes/``) for later episodes and runs."""
        selector, cfg = self.selector(), self.res.config
        if selector.index_of(support) is not None:
            return True
        from iclmeta.retrieval.search import use_faiss
        if not use_faiss(len(support), cfg.index, cfg.mmr, selector.min_pool):
            return False
        from iclmeta.retrieval.index import cached_index
        embedder, key = self.res.embedder, selector.pool_key(support)
        selector.use_index(support, cached_index(
            lambda: embedder.encode([text for _, text in key]), key, embedder, cfg.index,
            directory=_index_dir(embedder)))
        return True

    def demos(self, episode, shots, query, n):
        # One batched selection for all the episode's queries, on the first query's call.
        # The key names the queries and the support too: a predictor asks again with the same
        # episode id after its support grew (Predictor.add).
        support = episode.support_set(shots)
        key = (episode.seed, episode.id, shots, n, tuple(q.id for q in episode.query),
               tuple(e.id for e in support))
        if self._chosen is None or self._chosen[0] != key:
            picked = self.selector().select_many(episode.query, support, n)
            self._chosen = (key, {q.id: (q, demos) for q, demos in zip(episode.query, picked)})
        hit = self._chosen[1].get(query.id)
        if hit is not None and hit[0] == query:
            return list(hit[1])
        return self.selector().select(query, support, n)


def _index_dir(embedder):
    """Where the vector indexes of an embedder's supports live: beside its embedding cache."""
    if not getattr(embedder, "use_cache", False):
        return None
    from pathlib import Path
    from iclmeta.retrieval.embedder import default_cache_dir
    return Path(embedder.cache_dir or default_cache_dir()) / "indexes"


class Prompting:
    """A demonstration source + a renderer (text or chat) + the run's scoring mode."""

    def __init__(self, name: str, resources, source, chat: bool = False):
        self.name = name
        self.res = resources
        self.source = source
        self.chat = chat
        self.trained_on = None  # nothing trained: no leakage to guard against
        cfg = resources.config
        self.options = {"scoring": cfg.scoring, "k": cfg.k, "template": None, **source.options}
        if chat:
            self.options.update(chat_format=cfg.chat_format, demos=cfg.demos)

    def fit(self) -> None:
        """Prompting learns nothing from meta-train episodes; load what it needs up front
        (and refuse a template naming a field the data lacks before anything runs)."""
        self.res.builder.check(self.res.dataset)
        self.res.lm
        self.source.fit(self.res)

    def renderer(self) -> Renderer:
        return Renderer(self.res.builder, self.res.lm, chat=self.chat,
                        packed=self.res.config.chat_format == "packed")

    def n_demos(self, episode: Episode, shots: int) -> int:
        k = self.res.config.k
        return len(episode.classes) * shots if k is None else min(k, len(episode.classes) * shots)

    def plan(self, episode: Episode, shots: int, query: Example) -> QueryPrompt:
        """The prompt(s) for one query: demonstrations chosen, fitted into the window, rendered."""
        self.options["template"] = self.res.builder.template.name
        demos = self.source.demos(episode, shots, query, self.n_demos(episode, shots)) \
            if shots > 0 else []
        return build_prompt(self.renderer(), self.res.lm, self.res.config.scoring, demos, query,
                            list(episode.classes), drop_last=self.source.drop_last)

    def predict(self, episode: Episode, shots: int) -> Prediction:
        self.source.prepare(episode, shots)
        plans = [self.plan(episode, shots, q) for q in episode.query]
        scores = [] if self.res.config.log_scores else None  # --log-scores: as predict_with says
        labels, extra, tokens = predict_with(self.res.config.scoring, self.res.lm, plans,
                                             list(episode.classes), self.res.builder, scores)
        extra["demos_dropped"] = int(sum(p.dropped for p in plans))
        if self.res.config.log_prompts:
            extra["prompts"] = [p.shown() for p in plans]
        return Prediction(labels, [p.demo_ids for p in plans], tokens, extra,
                          label_scores(scores or [], episode.classes))


def build_prompt(renderer: Renderer, lm: LM, scoring: str, demos: list[Example], query: Example,
                 labels: list[str], drop_last: bool = False) -> QueryPrompt:
    """Render what ``scoring`` needs, dropping the least relevant demos until it all fits.

    >>> plan = build_prompt(Renderer(builder, lm), lm, "direct", demos, query, labels)  # doctest: +SKIP
    >>> plan.candidates, plan.dropped                                   # doctest: +SKIP
    ([' location', ' number'], 0)
    """
    candidates = renderer.candidates(labels)
    if scoring == "channel":
        tail = renderer.channel([], query, labels[0], labels)[1]  # same for every label
        reserve = lm.count_tokens(tail, continuation=True)

        def render(kept):
            return [ctx for ctx, _ in renderer.channel_all(kept, query, labels)]
    else:
        reserve = MAX_NEW_TOKENS if scoring == "generate" else \
            max(lm.count_tokens(c, continuation=True) for c in candidates)

        def render(kept):
            extra = renderer.content_free(kept, labels) if scoring == "calibrated" else []
            return [renderer.prompt(kept, query, labels)] + extra
    kept = fit_context(lm, demos, render, reserve, query, drop_last)
    plan = QueryPrompt(query, kept, len(demos) - len(kept), candidates=candidates)
    if scoring == "channel":  # the per-label prompts are the whole story; no direct messages
        plan.channel = renderer.channel_all(kept, query, labels)
    else:
        plan.messages = renderer.messages(kept, query, labels)
        plan.prompt = renderer.prompt(kept, query, labels)
        if scoring == "calibrated":
            plan.content_free = renderer.content_free(kept, labels)
    return plan


def ZeroShot(name, resources):
    """No demonstrations at any shot count: the instruction and the query alone."""
    return Prompting(name, resources, NoDemos())


def RandomDemos(name, resources):
    return Prompting(name, resources, RandomSource())


def RetrievedDemos(name, resources):
    return Prompting(name, resources, RetrievalSource(resources))


def Instruct(name, resources):
    """Chat-template prompting; ``--demos random|retrieval``, ``--chat-format turns|packed``."""
    cfg = resources.config
    source = RetrievalSource(resources) if cfg.demos == "retrieval" else RandomSource()
    return Prompting(name, resources, source, chat=True)
