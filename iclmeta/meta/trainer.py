"""The meta-training loop behind ``meta_train``: tasks, updates, validation, checkpoints.

Meta-train tasks are episodes over the meta-train classes (each draws its shot count from
``config.shots``); validation adapts on meta-val episodes exactly as evaluation does and
measures query accuracy (both call ``adaptation.adapt_and_predict``). Task ``i`` depends only
on ``(seed, i)``, so a resumed run sees the same tasks as an uninterrupted one. The loop never
names an algorithm: ``algorithms.ALGORITHMS`` supplies the outer gradient and its optimizer.

>>> MetaTrainer(MetaTrainConfig(method="fomaml", steps=2), echo=print).run()  # doctest: +SKIP
"""
from __future__ import annotations

import math
import random
import resource
import time
from pathlib import Path

import torch

from iclmeta.errors import UserError
from iclmeta.models import DEFAULT_LM
from iclmeta.config import MetaTrainConfig
from iclmeta.meta.adaptation import adapt_and_predict
from iclmeta.meta.algorithms import build_algorithm
from iclmeta.meta.neighbours import NeighbourTask, adapt_on_neighbours, nearest
from iclmeta.meta.split_check import check_meta_split
from iclmeta.meta.checkpoints import (FORMAT, TrainLog, adapter_weights, export_peft,
                                      flatten_optimizer, load_adapter,
                                      load_optimizer, save_adapter)


class MetaTrainer:
    """Owns one run's model, tasks, fast weights and meta-optimiser (no I/O until ``run``)."""

    def __init__(self, config: MetaTrainConfig, echo):
        self.cfg = config
        self.echo = echo
        self.out = Path(config.out)
        self.log = TrainLog(self.out / "log.jsonl")
        self.algorithm = build_algorithm(config.method, config.inner_steps, config.inner_lr)
        self.saved = 0  # step of the latest checkpoint on disk
        self.lr_changes: list[dict] = []  # learning rates changed on resume, with the step

    # -- set-up -------------------------------------------------------------------------
    def setup(self) -> None:
        from iclmeta.data.sources import load_source
        from iclmeta.data.episodes import plan_episodes, sample_episodes
        from iclmeta.data.leakage import training_record
        from iclmeta.meta.lora import LoraSpec, attach_lora
        from iclmeta.models import load_causal_lm
        from iclmeta.prompts import PromptBuilder, load_template, template_for

        c = self.cfg
        ds = load_source(c)
        check_meta_split(ds.name, len(ds.labels()), c.ways)
        self.selector = None  # retrieve-adapt: each query's neighbours, as evaluation picks them
        if getattr(self.algorithm, "neighbours", False):
            from iclmeta.prompts import EmbedText
            from iclmeta.retrieval.embedder import Embedder
            from iclmeta.retrieval.select import KNNSelector
            self.selector = KNNSelector(Embedder(c.embedder, cache_dir=c.cache_dir).load(),
                                        text_of=EmbedText(c.embed_template))
        train = plan_episodes(ds, c.ways, c.shots, c.queries, "meta-train", "disjoint",
                              split_seed=c.split_seed)
        val = plan_episodes(ds, c.ways, c.shots, c.val_queries, "meta-val", "disjoint",
                            split_seed=c.split_seed)
        self.tasks = sample_episodes(ds, train, c.steps * c.meta_batch, c.seed)
        self.val = sample_episodes(ds, val, c.val_episodes, c.seed + 1)
        # What the adapter saw (meta-val picks the best step, so it counts): the leakage guard.
        self.trained_on = training_record(ds, train.classes + val.classes, c.split_seed, "disjoint")
        self.template = template_for(c.template, ds.name)
        self.builder = PromptBuilder(load_template(self.template), ds.label_names)
        self.builder.check(ds)  # a template field the data lacks: refused before any training
        model, self.tokenizer = load_causal_lm(c.model, c.device, c.dtype, c.cache_dir)
        if self.algorithm.second_order:  # a double backward needs eager attention (SDPA has none)
            model.set_attn_implementation("eager")
        self.lora = attach_lora(model, self.tokenizer,
                                LoraSpec(c.lora_rank, c.lora_alpha, tuple(c.lora_targets), c.seed))
        self.echo(f"meta-training {c.method}: {len(train.classes)} meta-train classes, "
                  f"{len(val.classes)} meta-val classes, {c.ways}-way, shots {c.shots}")

    def _batch(self, examples, classes):
        from iclmeta.meta.lora import task_batch
        return task_batch(self.builder, self.tokenizer, examples, classes,
                          self.cfg.scoring == "normalized")

    def step_tasks(self, step: int) -> list[tuple]:
        """(support, query) batches of this step's meta-batch."""
        out = []
        for i in range(step * self.cfg.meta_batch, (step + 1) * self.cfg.meta_batch):
            ep = self.tasks[i]
            shots = task_rng(self.cfg.seed, i).choice(self.cfg.shots)
            task = (self._batch(ep.support_set(shots), ep.classes),
                    self._batch(ep.query, ep.classes))
            if self.selector is not None:
                task = NeighbourTask(*task, nearest(self.selector, ep, shots, self.cfg.k))
            out.append(task)
        return out

    # -- one meta-step ------------------------------------------------------------------
    def update(self, params, opt, tasks, step: int = 0):
        """Loss of the step and the params after it (unchanged if the finite-check trips)."""
        loss, grads = self.algorithm.outer_grads(self.lora, params, tasks)
        self._guard(loss, grads, step)
        for p, g in zip(params.values(), grads):
            p.grad = g.detach()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss, params

    def _guard(self, loss: float, tensors, step: int) -> None:
        """Stop before a non-finite loss or update reaches the weights; the advice works: a
        rerun with lower learning rates resumes (``train._check_resume`` lets them change)."""
        if finite(loss) and all(bool(torch.isfinite(t).all()) for t in tensors):
            return
        c = self.cfg
        what = (f"a non-finite loss ({loss})" if not finite(loss) else f"a finite loss "
                f"({loss:.4g}) but a non-finite update (the inner loop or meta-gradient diverged)")
        rates = f"--meta-lr (now {c.resolved_meta_lr():g})"
        if c.method != "multitask":  # multitask has no inner loop
            rates = f"--inner-lr (now {c.inner_lr:g}) or {rates}"
        raise UserError(f"meta-training {c.method} hit {what} at step {step}; the checkpoint "
                        f"of step {self.saved} in {self.out} is kept: rerun with a lower {rates} "
                        "and the same --out to resume from it (the change is recorded)")

    # -- validation ---------------------------------------------------------------------
    def validate(self, params) -> float:
        """Mean query accuracy on meta-val episodes, adapted exactly as evaluation adapts."""
        c, correct, total = self.cfg, 0, 0
        for ep in self.val:
            if self.selector is not None:  # as retrieve-adapt evaluates: per query, neighbours
                near = nearest(self.selector, ep, max(c.shots), c.k)
                answer = adapt_on_neighbours(self.lora, self.builder, params, ep, max(c.shots),
                                             near, c.inner_steps, c.inner_lr,
                                             c.scoring == "normalized")
            else:
                answer = adapt_and_predict(self.lora, self.builder, params, ep, max(c.shots),
                                           c.inner_steps, c.inner_lr, c.scoring == "normalized")
            correct += sum(p == q.label for p, q in zip(answer.labels, ep.query))
            total += len(answer.labels)
        return correct / total

    # -- checkpoints --------------------------------------------------------------------
    def _meta(self, step: int, val_acc: float | None) -> dict:
        from dataclasses import asdict
        c = self.cfg
        return {"format": FORMAT, "method": c.method, "model": c.model or DEFAULT_LM,
                "lora": self.lora.spec.to_dict(), "template": self.template,
                "scoring": c.scoring, "prompt": "zero-shot", "dataset": c.dataset,
                "step": step, "meta_val_accuracy": val_acc, "trained_on": self.trained_on,
                "train": {**asdict(c), "meta_lr": c.resolved_meta_lr()},
                "lr_changes": self.lr_changes}

    def _save(self, kind, step, params, opt, val_acc, best_acc) -> None:
        meta = {**self._meta(step, val_acc), "best_meta_val_accuracy": best_acc}
        extra = {}
        if kind == "last":
            extra, meta["optimizer"] = flatten_optimizer(opt)
        save_adapter(self.out, kind, self.lora.portable(params), meta, extra)

    def _resume(self):
        """(start step, params, best accuracy, checkpoint optimiser state or None if fresh,
        the learning rates changed since the checkpoint as ``{name: [old, new]}``)."""
        if not (self.out / "checkpoint.json").is_file():
            return 0, self.lora.initial(), None, None, {}
        tensors, meta = load_adapter(self.out, "checkpoint.json")
        weights = {k: v for k, v in tensors.items() if not k.startswith("optimizer.")}
        optim = {k: v for k, v in tensors.items() if k.startswith("optimizer.")}
        self.saved = meta["step"]
        rates = {"inner_lr": self.cfg.inner_lr, "meta_lr": self.cfg.resolved_meta_lr()}
        changed = {k: [meta["train"].get(k), v] for k, v in rates.items()
                   if meta["train"].get(k) != v}
        self.lr_changes = list(meta.get("lr_changes") or [])
        if changed:
            self.lr_changes.append({"step": meta["step"], **changed})
        self.echo(f"resuming from step {meta['step']} in {self.out}" + "".join(
            f"; {k} {old} -> {new}" for k, (old, new) in changed.items()))
        self.log.truncate_after(meta["step"])
        params = adapter_weights(self.lora, weights, self.out / "checkpoint.json",
                                 self.cfg.model or DEFAULT_LM)
        # Meta-val adapts with --inner-lr: accuracies measured with another one do not compare,
        # so the best step is chosen afresh among those validated with the new rate.
        best = None if "inner_lr" in changed else meta.get("best_meta_val_accuracy")
        return meta["step"], params, best, (optim, meta.get("optimizer")), changed

    # -- the loop -----------------------------------------------------------------------
    def run(self, progress: bool = True, ready=None) -> dict:
        """Set up, call ``ready()`` (nothing is written before it), resume, train, save."""
        from tqdm.auto import tqdm
        self.setup()
        self.out.mkdir(parents=True, exist_ok=True)
        if ready is not None:
            ready()
        c = self.cfg
        start, params, best, opt_state, changed = self._resume()
        opt = self.algorithm.optimizer(list(params.values()), c.resolved_meta_lr())
        if opt_state and opt_state[1]:
            load_optimizer(opt, *opt_state)
            for group in opt.param_groups:  # the state keeps the old rate; --meta-lr may change
                group["lr"] = c.resolved_meta_lr()
        if opt_state is None:  # a fresh run: its step-0 line is the initialisation's accuracy
            best = self._validate_and_save(0, params, opt, None, {"step": 0})
        bar = tqdm(range(start, c.steps), desc=f"train {c.method}", initial=start,
                   total=c.steps, disable=not progress)
        for step in bar:
            t0 = time.perf_counter()
            loss, params = self.update(params, opt, self.step_tasks(step), step + 1)
            row = {"step": step + 1, "loss": round(loss, 5),
                   "seconds": round(time.perf_counter() - t0, 3), "max_rss_mb": _max_rss_mb()}
            if changed and step == start:
                row["lr_changed"] = changed
            bar.set_postfix(loss=f"{loss:.3f}", best=best)
            if (step + 1) % c.eval_every == 0 or step + 1 == c.steps:
                best = self._validate_and_save(step + 1, params, opt, best, row)
            else:
                self.log.append(row)
        export_peft(self.out)  # again: a run stopped between the two writes leaves them matched
        return load_adapter(self.out)[1]

    def _validate_and_save(self, step, params, opt, best, row: dict):
        """Validate, log the step's one line (before its checkpoint, so a resume after a crash
        in between drops it), then save the best and the last state."""
        t0 = time.perf_counter()
        acc = self.validate(params)
        self.log.append({**row, "meta_val_accuracy": round(acc, 4),
                         "val_seconds": round(time.perf_counter() - t0, 2)})
        if best is None or acc > best:
            best = acc
            self._save("best", step, params, None, acc, best)
            export_peft(self.out)  # the same weights as a PEFT adapter folder
        self._save("last", step, params, opt, acc, best)
        self.saved = step
        return best


def _max_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def finite(value: float) -> bool:
    return not (math.isnan(value) or math.isinf(value))


def task_rng(seed: int, step: int) -> random.Random:
    return random.Random(f"meta-train:{seed}:{step}")
