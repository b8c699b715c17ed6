"""``retrieve-adapt``: for each query, a few SGD steps on the support examples nearest to it.

Retrieval picks, per query, the ``k`` support examples nearest to it in sentence-embedding space
(the retrieval method's ``KNNSelector``); here they are not shown as demonstrations but trained
on: from a LoRA initialisation, ``adapt_steps`` SGD steps on those ``k`` examples' task loss,
then the query is labelled with its own adapted weights. Every query gets its own fast weights,
and all of an episode's queries adapt together: their neighbours form one batch in which each
prompt row uses its query's weights (``meta.rows``), so one forward and one backward per step
serve up to ``ROWS_PER_PASS`` (query, neighbour) rows, not one tiny step per query.

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
from iclmeta.meta.methods import (DEFAULT_ADAPT_LR, DEFAULT_ADAPT_STEPS, MetaLearned,
                                  _AdaptedLoRA, _pick, adapter_path, check_scoring)

NAME = "retrieve-adapt"
ROWS_PER_PASS = 64  # (query, neighbour) prompts per forward pass


class RetrieveAdapt(_AdaptedLoRA):
    """Per-query test-time adaptation on the query's nearest support examples."""

    def fit(self) -> None:
        cfg = self.res.config
        check_scoring(self.name, cfg.scoring)
        if cfg.adapters:  # one adapter of any method, or the one trained for retrieve-adapt
            MetaLearned.load_init(self, cfg.adapters[0] if len(cfg.adapters) == 1
                                  else adapter_path(cfg.adapters, self.name))
        else:
            from iclmeta.meta.lora import LoraSpec
            spec = LoraSpec(cfg.lora_rank, cfg.lora_alpha, tuple(cfg.lora_targets), cfg.seed)
            self._settle(spec, _pick(cfg.adapt_steps, DEFAULT_ADAPT_STEPS),
                         _pick(cfg.adapt_lr, DEFAULT_ADAPT_LR))
            self.init = self.lora.initial()
        from iclmeta.prompts import EmbedText
        from iclmeta.retrieval.select import KNNSelector
        if cfg.k is not None and cfg.k < 1:
            raise UserError(f"--k {cfg.k}: retrieve-adapt adapts each query on its k nearest "
                            "support examples; give k of 1 or more")
        embed_text = EmbedText(cfg.embed_template)
        embed_text.check(self.res.dataset)
        self.selector = KNNSelector(self.res.embedder, text_of=embed_text)
        self.options.update(k=cfg.k, init="adapter" if cfg.adapters else "fresh")

    def neighbours(self, episode, shots: int) -> tuple[list, list[list[int]]]:
        """The K-shot support and, per query, the indices of its ``k`` nearest examples."""
        support = episode.support_set(shots)
        k = min(self.res.config.k or len(episode.classes), len(support))
        position = {e.id: i for i, e in enumerate(support)}
        picked = self.selector.select_many(episode.query, support, k)
        return support, [[position[e.id] for e in chosen] for chosen in picked]

    def predict(self, episode, shots: int) -> Prediction:
        if shots == 0 or self.steps == 0:  # nothing to adapt on: the initialisation answers
            pred = super().predict(episode, shots)
            pred.extra["k"] = 0
            return pred
        import torch

        from iclmeta.meta.lora import task_batch
        from iclmeta.meta.rows import adapt_rows, pick_rows, row_logits, stack_params
        support, near = self.neighbours(episode, shots)
        cfg, classes = self.res.config, list(episode.classes)
        normalize = cfg.scoring == "normalized"
        sup = task_batch(self.res.builder, self.lora.tokenizer, support, classes, normalize)
        qry = task_batch(self.res.builder, self.lora.tokenizer, episode.query, classes, normalize)
        per_pass = max(1, ROWS_PER_PASS // len(near[0]))
        labels, scores, losses = [], [], []
        for start in range(0, len(near), per_pass):
            chunk = list(range(start, min(start + per_pass, len(near))))
            index = [i for q in chunk for i in near[q]]
            tasks = torch.tensor([t for t, q in enumerate(chunk) for _ in near[q]])
            step_losses: list[float] = []
            stack = adapt_rows(self.lora, stack_params(self.init, len(chunk)), tasks,
                               pick_rows(sup, index), self.steps, self.lr, step_losses)
            losses.append((len(chunk), step_losses))
            with torch.no_grad():
                logits = row_logits(self.lora, stack, torch.arange(len(chunk)),
                                    pick_rows(qry, chunk))
            labels += [classes[i] for i in logits.argmax(-1).tolist()]
            scores += logits.float().cpu().tolist()
        extra = {"adapt_steps": self.steps, "adapt_lr": self.lr, "k": len(near[0]),
                 "support_losses": _mean_losses(losses)}
        demo_ids = [[support[i].id for i in row] for row in near]
        tokens = sum(len(p) for p in qry.prompt_ids)
        return Prediction(labels, demo_ids, tokens, extra,
                          label_scores(scores if cfg.log_scores else [], episode.classes))


def _mean_losses(chunks: list[tuple[int, list[float]]]) -> list[float]:
    """The loss before each step, averaged over every query (chunks weighted by their size)."""
    total = sum(n for n, _ in chunks)
    steps = len(chunks[0][1]) if chunks else 0
    return [round(sum(n * lost[s] for n, lost in chunks) / total, 4) for s in range(steps)]
