"""What each method family ships in a predictor folder beside its labelled examples.

- retrieval (and ``instruct --demos retrieval``): a FAISS index over the embedded support,
  registered with the method's own selector, so selection reads it instead of re-embedding the
  support; ``add`` appends vectors to it (no rebuild);
- gradient methods (finetune, multitask, maml, fomaml, reptile): the LoRA weights adapted ONCE
  on the support at export, with the steps and learning rate the method uses; predicting runs
  the method with 0 further steps from them, which is the same computation as adapting and
  then predicting. ``add`` adapts again, from the same start, on the grown support;
- a metric checkpoint or meta-trained adapter the method loads is copied into the folder
  (``bundled``), so the folder needs nothing but the models it names.
"""
from __future__ import annotations

from pathlib import Path

from iclmeta.config.evaluation import META_LEARNED, RETRIEVING
from iclmeta.config.fields import GRADIENT, METRIC
from iclmeta.errors import UserError
from iclmeta.io import read_json_object, read_verified, write_checkpoint

INDEX = "index.faiss"


class NoPart:
    """Prompting without retrieval, metric methods: the examples are all they need."""

    def prepare(self, p) -> None:
        pass

    def save(self, p, folder: Path) -> dict:
        return {}

    def restore(self, p, folder: Path) -> None:
        pass

    def added(self, p, new: list) -> None:
        pass


class RetrievalPart(NoPart):
    """A FAISS index over the support's embedder texts, row ``i`` = ``p.pool[i]``."""

    def __init__(self):
        self.index = None

    def _vectors(self, p, examples):
        source = p.method.source
        return p.resources.embedder.encode([source.embed_text(e) for e in examples])

    def _register(self, p) -> None:
        p.method.source.selector().use_index(list(p.pool), self.index)

    def prepare(self, p) -> None:
        from iclmeta.retrieval.vectors import VectorIndex
        self.index = VectorIndex.build(self._vectors(p, p.pool), p.config.index)
        self._register(p)

    def save(self, p, folder: Path) -> dict:
        self.index.save(folder / INDEX)
        return {"index": {"kind": self.index.kind, "vectors": int(self.index.ntotal),
                          "dim": int(self.index.dim)}}

    def restore(self, p, folder: Path) -> None:
        from iclmeta.retrieval.vectors import VectorIndex
        self.index = VectorIndex.load(folder / INDEX)
        if self.index.ntotal != len(p.pool):
            raise UserError(f"predictor {folder}: its index holds {self.index.ntotal} vectors "
                            f"for {len(p.pool)} examples; re-export it")
        self._register(p)

    def added(self, p, new: list) -> None:
        self.index.add(self._vectors(p, new))
        self._register(p)


class AdaptedPart(NoPart):
    """LoRA weights adapted on the whole support; the method then takes 0 steps from them."""

    def __init__(self):
        self.base = None  # (initialisation, steps) the method was fitted with
        self.params = None

    def _adapt(self, p):
        from iclmeta.meta.adaptation import adapt
        from iclmeta.meta.lora import task_batch
        method = p.method
        init, steps = self.base
        if not steps or not p.pool:
            return init
        # exactly what adaptation.adapt_and_predict does on an episode's support
        batch = task_batch(p.resources.builder, method.lora.tokenizer, p.support(), p.classes,
                           p.config.scoring == "normalized")
        return adapt(method.lora, init, batch, steps, method.lr)

    def _install(self, p) -> None:
        p.method.init, p.method.steps = self.params, 0

    def prepare(self, p) -> None:
        self.base = (p.method.init, p.method.steps)
        self.params = self._adapt(p)
        self._install(p)

    def save(self, p, folder: Path) -> dict:
        from safetensors.torch import save_file
        method = p.method
        tensors = method.lora.portable(self.params)
        meta = {"lora": method.lora.spec.to_dict(), "adapt_steps": self.base[1],
                "adapt_lr": method.lr, "support_size": len(p.pool)}
        write_checkpoint(folder / "lora", "adapted", "safetensors",
                         lambda tmp: save_file(tensors, tmp), "lora.json", meta)
        return {"adapted": meta}

    def restore(self, p, folder: Path) -> None:
        from safetensors.torch import load
        self.base = (p.method.init, p.method.steps)
        try:
            meta = read_json_object(folder / "lora" / "lora.json")
            data = read_verified(folder / "lora", meta["weights"], meta["weights_sha256"])
            self.params = p.method.lora.from_portable(load(data))
        except (OSError, KeyError, TypeError, ValueError) as err:
            raise UserError(f"predictor {folder}: its adapted LoRA weights do not load "
                            f"({str(err).splitlines()[0]}); re-export it") from None
        self._install(p)

    def added(self, p, new: list) -> None:
        self.params = self._adapt(p)
        self._install(p)


def family(name: str, config) -> str:
    """``retrieval``, ``gradient``, ``metric`` or ``prompting``: what the folder ships."""
    if name in RETRIEVING and (name == "retrieval" or config.demos == "retrieval"):
        return "retrieval"
    return "gradient" if name in GRADIENT else "metric" if name in METRIC else "prompting"


def part_for(name: str, config) -> NoPart:
    if name == "retrieve-adapt":
        raise UserError("retrieve-adapt adapts a LoRA per query at prediction time, which a "
                        "predictor folder cannot ship yet; export finetune or retrieval instead")
    kind = family(name, config)
    return RetrievalPart() if kind == "retrieval" else AdaptedPart() if kind == "gradient" \
        else NoPart()


def bundled(name: str, config) -> tuple[str, str] | None:
    """``(config field, folder)`` of the metric checkpoint or LoRA adapter the method loads."""
    if name in METRIC and config.checkpoints:
        from iclmeta.metric.methods import find_checkpoint
        path = find_checkpoint(name, list(config.checkpoints))
        return ("checkpoints", path) if path else None
    if name in META_LEARNED:
        from iclmeta.meta.methods import adapter_path
        return "adapters", adapter_path(list(config.adapters), name)
    return None
