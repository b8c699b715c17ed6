"""LoRA fast weights over a frozen base LM, and the episode task loss they are trained on.

Only the LoRA tensors are fast weights. They live outside the model, as an ordered dict of
tensors, and every forward runs through ``torch.func.functional_call``, which swaps them into
the (shared, never copied) base model for the duration of one call. The LoRA layers stored in
the model keep their initial ``B = 0``, so the model seen by other methods is exactly the base
model.

The task loss is the prediction the harness measures: each example becomes the zero-shot
prompt (instruction + query) that ``PromptBuilder.render`` writes, every label of the episode
is scored as a continuation of it by ``lm.shared_prefix`` + ``lm.score_ids`` (the path of
``label_logprobs`` and ``HFLM.score``), optionally per-token normalised, and the loss is cross-entropy over those
label scores. The adapted model later scores each query with the same prompt.

>>> lora = attach_lora(model, tokenizer, LoraSpec(rank=4))            # doctest: +SKIP
>>> batch = task_batch(builder, tokenizer, episode.support_set(4), episode.classes)  # doctest: +SKIP
>>> lora.loss(lora.initial(), batch).backward()                      # doctest: +SKIP

Adaptation (the inner loop, test-time adaptation) lives in ``adaptation.py``.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch.func import functional_call

from iclmeta.errors import UserError
from iclmeta.lm.prefix import encode_candidates, encode_prompts, score_ids, shared_prefix


@dataclass(frozen=True)
class LoraSpec:
    """Where the LoRA adapters go and their shape; ``seed`` fixes the initial A matrices."""

    rank: int = 8
    alpha: float = 16.0
    targets: tuple[str, ...] = ("q_proj", "v_proj")
    seed: int = 0

    @property
    def adapter_name(self) -> str:
        alpha = f"{self.alpha:g}".replace(".", "p")
        return f"iclmeta_r{self.rank}_a{alpha}_{'_'.join(self.targets)}_s{self.seed}"

    def to_dict(self) -> dict:
        return {"rank": self.rank, "alpha": self.alpha, "targets": list(self.targets),
                "seed": self.seed}

    @classmethod
    def from_dict(cls, data: dict) -> "LoraSpec":
        return cls(int(data["rank"]), float(data["alpha"]), tuple(data["targets"]),
                   int(data.get("seed", 0)))


@dataclass
class TaskBatch:
    """Token ids of labelled examples scored over one episode's label candidates."""

    prompt_ids: list[list[int]]
    cand_ids: list[list[int]]
    targets: torch.Tensor  # [P] index of each example's label among the candidates
    cand_tokens: torch.Tensor  # [C] token counts of the candidates, for normalisation
    normalize: bool = True

    def __len__(self) -> int:
        return len(self.prompt_ids)

    def label_scores(self, total: torch.Tensor) -> torch.Tensor:
        """Summed label log-likelihoods ``[P, C]`` as scored: per token when ``normalize``."""
        return total / self.cand_tokens.to(total.device) if self.normalize else total


def task_batch(builder, tokenizer, examples, classes, normalize: bool = True) -> TaskBatch:
    """Zero-shot prompts for ``examples``, scored over the candidates of ``classes``."""
    classes = list(classes)
    prompts = [builder.render([], ex, classes) for ex in examples]
    prompt_ids = encode_prompts(tokenizer, prompts)
    cand_ids = encode_candidates(tokenizer, 1, builder.candidates(classes))[0]
    targets = torch.tensor([classes.index(ex.label) for ex in examples], dtype=torch.long)
    counts = torch.tensor([len(c) for c in cand_ids], dtype=torch.float32)
    return TaskBatch(prompt_ids, cand_ids, targets, counts, normalize)


def pick_rows(batch: TaskBatch, index: list[int]) -> TaskBatch:
    """The batch's examples at ``index`` (repeats allowed), over the same candidates."""
    return TaskBatch([batch.prompt_ids[i] for i in index], batch.cand_ids,
                     batch.targets[torch.tensor(index, dtype=torch.long)], batch.cand_tokens,
                     batch.normalize)


def join_batches(a: TaskBatch, b: TaskBatch) -> TaskBatch:
    """Both batches' examples over the same candidates (e.g. an episode's support and query)."""
    return TaskBatch(a.prompt_ids + b.prompt_ids, a.cand_ids, torch.cat([a.targets, b.targets]),
                     a.cand_tokens, a.normalize)


class _Scorer(torch.nn.Module):
    """One module whose forward runs every pass of ``label_logprobs`` (shared prefix, prefill,
    candidate tokens), so a single ``functional_call`` covers them with the same fast weights."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, prompt_ids, cand_ids):
        prefix = shared_prefix(self.model, prompt_ids)
        return score_ids(self.model, prompt_ids, [cand_ids] * len(prompt_ids), prefix)


class LoraLM:
    """The base model with LoRA layers injected, scored functionally with given fast weights."""

    def __init__(self, model, tokenizer, spec: LoraSpec, names: list[str], initial: dict):
        self.model = model
        self.tokenizer = tokenizer
        self.spec = spec
        self.names = names  # fast-weight keys, as parameter paths inside the scorer
        self._initial = initial
        self._scorer = _Scorer(model)

    def initial(self) -> "OrderedDict[str, torch.Tensor]":
        """Fresh LoRA weights (seeded A, zero B) as leaf tensors that require grad."""
        return OrderedDict((k, v.clone().requires_grad_(True)) for k, v in self._initial.items())

    def logits(self, params, batch: TaskBatch) -> torch.Tensor:
        """Label scores ``[P, C]`` of the batch's examples under the fast weights ``params``."""
        total = functional_call(self._scorer, dict(params), (batch.prompt_ids, batch.cand_ids),
                                strict=False)
        return batch.label_scores(total)

    def loss(self, params, batch: TaskBatch) -> torch.Tensor:
        """Cross-entropy of the true labels over the episode's candidates."""
        logits = self.logits(params, batch)
        return torch.nn.functional.cross_entropy(logits, batch.targets.to(logits.device))

    def predict(self, params, batch: TaskBatch, batch_size: int = 8,
                scores_out: list | None = None) -> list[int]:
        """Index of the best-scoring candidate for each example (no gradients); ``scores_out``,
        when a list, receives each example's label scores (``logits``) it is the argmax of."""
        out = []
        with torch.no_grad():
            for start in range(0, len(batch), batch_size):
                part = pick_rows(batch, list(range(start, min(start + batch_size, len(batch)))))
                logits = self.logits(params, part)
                out += logits.argmax(-1).tolist()
                if scores_out is not None:
                    scores_out.extend(logits.float().cpu().tolist())
        return out

    def portable(self, params) -> dict[str, torch.Tensor]:
        """Fast weights keyed without the adapter name, contiguous, on CPU (for safetensors)."""
        tag = f".{self.spec.adapter_name}."
        return {k.replace(tag, ".").removeprefix("model."): v.detach().float().cpu().contiguous()
                for k, v in params.items()}

    def from_portable(self, tensors: dict) -> "OrderedDict[str, torch.Tensor]":
        """Inverse of ``portable``: leaf fast weights on the model's device and dtype."""
        ref = self.initial()
        names = {key: self.portable({key: ref[key]}).popitem()[0] for key in ref}
        found = {key: tensors.get(names[key]) for key in ref}
        missing = [names[k] for k, v in found.items() if v is None]
        if missing or len(tensors) != len(ref):
            raise ValueError(f"{len(tensors)} LoRA tensors where the model has {len(ref)}"
                             + (f", no {missing[0]}" if missing else ""))
        for key, value in found.items():
            if value.shape != ref[key].shape:
                raise ValueError(f"{names[key]} has shape {list(value.shape)} where the model "
                                 f"needs {list(ref[key].shape)}")
        return OrderedDict((k, found[k].to(ref[k].device, ref[k].dtype).requires_grad_(True))
                           for k in ref)


def attach_lora(model, tokenizer, spec: LoraSpec) -> LoraLM:
    """Inject ``spec``'s LoRA layers into ``model`` in place (once per spec) and freeze it all.

    Every injected adapter stays active with its stored ``B = 0``, so the stored model computes
    exactly the base model; fast weights only take effect inside ``LoraLM`` calls.
    """
    from peft import LoraConfig, inject_adapter_in_model
    from peft.tuners.lora import LoraLayer

    name = spec.adapter_name
    _check_targets(model, spec.targets)
    if not any(name in n for n, _ in model.named_parameters()):
        config = LoraConfig(r=spec.rank, lora_alpha=spec.alpha, target_modules=list(spec.targets),
                            lora_dropout=0.0, bias="none")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(spec.seed)
            inject_adapter_in_model(config, model, adapter_name=name)
    model.requires_grad_(False)
    _keep_head_input_contiguous(model)
    layers = [m for m in model.modules() if isinstance(m, LoraLayer)]
    if not layers:
        raise ValueError(f"no module of the model matches LoRA targets {list(spec.targets)}")
    for layer in layers:
        layer.set_adapter(sorted(layer.lora_A.keys()), inference_mode=True)
    initial = OrderedDict((f"model.{n}", p.detach().clone().float())
                          for n, p in model.named_parameters() if f".{name}." in n)
    return LoraLM(model, tokenizer, spec, list(initial), initial)


def _check_targets(model, targets) -> None:
    """Refuse, in one line, a LoRA target that names no module of ``model`` (peft's own error
    is a traceback)."""
    names = [n for n, _ in model.named_modules()]
    for target in targets:
        if not any(n == target or n.endswith(f".{target}") for n in names):
            linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules()
                             if isinstance(m, torch.nn.Linear)})
            raise UserError(f"LoRA target {target!r} names no module of this model; its linear "
                            f"layers are {', '.join(linear)}: pass --lora-targets from those, or "
                            "an adapter trained on this model")


def _contiguous_input(module, args):
    return (args[0].contiguous(),) + tuple(args[1:])


def _keep_head_input_contiguous(model) -> None:
    """Feed the LM head a contiguous input once the model is frozen.

    The head sees a strided slice (the last position of each prompt). While its weight requires
    grad, ``torch.matmul`` folds that into one matrix product; once frozen it falls back to a
    batched product that first copies the whole ``[batch, hidden, vocab]`` weight (seconds on
    CPU for a 49k vocabulary). A contiguous input restores the fast path.
    """
    head = model.get_output_embeddings()
    if head is not None and not getattr(head, "_iclmeta_contiguous", False):
        head.register_forward_pre_hook(_contiguous_input)
        head._iclmeta_contiguous = True
