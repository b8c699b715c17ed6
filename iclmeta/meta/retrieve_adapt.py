"""``retrieve-adapt``: for each query, a few SGD steps on the support examples nearest to it.

Retrieval picks, per query, the ``k`` support examples nearest to it in sentence-embedding space
(the retrieval method's ``KNNSelector``); here they are not shown as demonstrations but trained
on: from a LoRA initialisation, ``adapt_steps`` SGD steps on those ``k`` examples' task loss,
then the query is labelled with its own adapted weights. Every query gets its own fast weights,
and all of an episode's queries adapt together: their neighbours form one batch in which each
prompt row uses its query's weights (``meta.rows``), so one forward and one backward per step
serve up to ``neighbours.ROWS_PER_PASS`` (query, neighbour) rows, not one tiny step per query.

The initialisation is a fresh LoRA (as ``finetune``), or the adapter given with ``--adapter``:
one trained by ``iclmeta train --method retrieve-adapt`` (meta-trained to adapt on neighbours),
or any other meta-learned adapter (fomaml, reptile, ...). ``--k`` defaults to the number of
classes in play. With ``k`` equal to the support size every query trains on the whole support,
which is ``finetune`` (tested: the same labels and scores).

>>> method = RetrieveAdapt("retrieve-adapt", resources)               # doctest: +SKIP
>>> method.predict(episode, shots=4).demo_ids[0]  # the neighbours query 0 adapted on # doctest: +SKIP
"""
from __future__ import annotations

from iclmeta.data.prediction import Prediction, label_scores
from iclmeta.errors import UserError
from iclmeta.meta.methods import _AdaptedLoRA, adapter_path, check_scoring

NAME = "retrieve-adapt"


class RetrieveAdapt(_AdaptedLoRA):
    """Per-query test-time adaptation on the query's nearest support examples."""

    def fit(self) -> None:
        cfg = self.res.config
        check_scoring(self.name, cfg.scoring)
        if cfg.k is not None and cfg.k < 1:
            raise UserError(f"--k {cfg.k}: retrieve-adapt adapts each query on its k nearest "
                            "support examples; give k of 1 or more")
        if cfg.adapters:  # one adapter of any method, or the one trained for retrieve-adapt
            self.load_init(cfg.adapters[0] if len(cfg.adapters) == 1
                           else adapter_path(cfg.adapters, self.name))
        else:
            self.start_fresh()
        from iclmeta.prompts import EmbedText
        from iclmeta.retrieval.select import KNNSelector
        embed_text = EmbedText(cfg.embed_template)
        embed_text.check(self.res.dataset)
        self.selector = KNNSelector(self.res.embedder, text_of=embed_text)
        self.options.update(k=cfg.k, init="adapter" if cfg.adapters else "fresh")

    def predict(self, episode, shots: int) -> Prediction:
        if shots == 0 or self.steps == 0:  # nothing to adapt on: the initialisation answers
            pred = super().predict(episode, shots)
            pred.extra["k"] = 0
            return pred
        from iclmeta.meta.neighbours import adapt_on_neighbours, nearest
        cfg = self.res.config
        support = episode.support_set(shots)
        near = nearest(self.selector, episode, shots, cfg.k)
        answer = adapt_on_neighbours(self.lora, self.res.builder, self.init, episode, shots, near,
                                     self.steps, self.lr, cfg.scoring == "normalized")
        extra = {"adapt_steps": self.steps, "adapt_lr": self.lr, "k": len(near[0]),
                 "support_losses": answer.support_losses}
        demo_ids = [[support[i].id for i in row] for row in near]
        return Prediction(answer.labels, demo_ids, answer.prompt_tokens, extra,
                          label_scores(answer.scores if cfg.log_scores else [], episode.classes))
