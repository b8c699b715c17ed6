"""Gradient methods at evaluation time: adapt LoRA weights on the support set, then score.

Every method here answers an episode the same way: start from some LoRA initialisation, take
``adapt_steps`` SGD steps (learning rate ``adapt_lr``) on the support set's task loss, and label
each query with the adapted model's zero-shot prompt (see ``lora.py``). They differ only in the
initialisation:

- ``finetune``: a fresh LoRA (seeded A, zero B), i.e. plain fine-tuning on the support set;
- ``multitask``: one LoRA trained on meta-train episodes with the plain task loss;
- ``maml`` / ``fomaml`` / ``reptile``: a meta-learned initialisation.

The last four load the adapter that ``iclmeta train`` wrote (``--adapter``). With
``adapt_steps = 0`` the initialisation itself is evaluated. At 0 shots there is no support, so
no step is taken. Meta-validation during training adapts through the same function
(``adaptation.adapt_and_predict``).

Labels are scored ``direct`` or ``normalized`` (the scores the task loss is trained on); any
other ``--scoring`` is refused at ``fit()``, before anything is scored.

>>> method = FineTune("finetune", resources)                          # doctest: +SKIP
>>> method.predict(episode, shots=4).extra["adapt_steps"]             # doctest: +SKIP
3
"""
from __future__ import annotations

from iclmeta.errors import UserError
from iclmeta.models import DEFAULT_LM
from iclmeta.data.prediction import Prediction, label_scores

DEFAULT_ADAPT_STEPS = 3
DEFAULT_ADAPT_LR = 0.1
SCORINGS = ("direct", "normalized")  # the label scores the LoRA task loss is defined on
# These support every mode of ``lm.modes.SCORINGS``. Named here because meta sits beside
# prompting and may not import it; tests/test_gradient_methods.py checks them against the
# harness registry.
PROMPTING_METHODS = ("zero-shot", "icl", "retrieval", "instruct")


def check_scoring(method: str, scoring: str) -> None:
    """Refuse, in one line, a ``--scoring`` mode a gradient method does not implement.

    >>> check_scoring("maml", "normalized")
    >>> check_scoring("maml", "calibrated")
    Traceback (most recent call last):
    ...
    iclmeta.errors.UserError: --method maml supports --scoring direct or normalized, not calibrated; calibrated is supported by zero-shot, icl, retrieval, instruct: evaluate maml in a separate run with --scoring normalized
    """
    if scoring not in SCORINGS:
        raise UserError(f"--method {method} supports --scoring {' or '.join(SCORINGS)}, not "
                        f"{scoring}; {scoring} is supported by {', '.join(PROMPTING_METHODS)}: "
                        f"evaluate {method} in a separate run with --scoring normalized")


class _AdaptedLoRA:
    """Shared evaluation: test-time adaptation from ``self.init`` on each episode's support."""

    def __init__(self, name: str, resources):
        self.name = name
        self.res = resources
        self.options: dict = {}
        self.lora = None
        self.init = None
        self.trained_on: dict | None = None  # the adapter's training data (leakage guard)
        self.steps = 0
        self.lr = 0.0

    def _settle(self, spec, steps, lr) -> None:
        from iclmeta.lm.hf import HFLM
        from iclmeta.meta.lora import attach_lora
        self.res.builder.check(self.res.dataset)  # a template field the data lacks: refused now
        lm = self.res.lm
        if not isinstance(lm, HFLM):  # the one family that needs the torch model, not the seam
            raise UserError(f"--method {self.name} trains LoRA weights inside the model, so it "
                            "needs the Hugging Face backend; evaluate it with a Hugging Face "
                            "model (--model)")
        self.lora = attach_lora(lm.model, lm.tokenizer, spec)
        self.steps, self.lr = int(steps), float(lr)
        if self.steps < 0 or self.lr < 0:
            raise UserError("--adapt-steps and --adapt-lr must be non-negative")
        self.options.update(lora=spec.to_dict(), adapt_steps=self.steps, adapt_lr=self.lr,
                            scoring=self.res.config.scoring,
                            template=self.res.builder.template.name, prompt="zero-shot")

    def load_init(self, path: str) -> None:
        """Start from the adapter in ``path``: its LoRA layout, weights and inner-loop settings
        (``--adapt-steps`` / ``--adapt-lr`` override them) and its training record."""
        from pathlib import Path

        from iclmeta.meta.checkpoints import adapter_weights, load_adapter
        cfg = self.res.config
        tensors, meta = load_adapter(path)
        if (meta.get("model") or DEFAULT_LM) != (cfg.model or DEFAULT_LM):
            raise UserError(f"adapter {path} was trained on model {meta.get('model')!r}, this "
                            f"run uses {cfg.model or DEFAULT_LM!r}; pass --model "
                            f"{meta.get('model')}")
        from iclmeta.meta.lora import LoraSpec
        train = meta["train"]
        self._settle(LoraSpec.from_dict(meta["lora"]), _pick(cfg.adapt_steps, train["inner_steps"]),
                     _pick(cfg.adapt_lr, train["inner_lr"]))
        self.init = adapter_weights(self.lora, tensors, Path(path) / "adapter.json",
                                    cfg.model or DEFAULT_LM)
        self.options.update(adapter=str(path), adapter_step=meta.get("step"))
        self.trained_on = meta.get("trained_on")

    def start_fresh(self) -> None:
        """Start from a new LoRA (``--lora-rank/alpha/targets``, seeded A, zero B) with
        ``--adapt-steps`` / ``--adapt-lr`` or their defaults."""
        from iclmeta.meta.lora import LoraSpec
        cfg = self.res.config
        spec = LoraSpec(cfg.lora_rank, cfg.lora_alpha, tuple(cfg.lora_targets), cfg.seed)
        self._settle(spec, _pick(cfg.adapt_steps, DEFAULT_ADAPT_STEPS),
                     _pick(cfg.adapt_lr, DEFAULT_ADAPT_LR))
        self.init = self.lora.initial()

    def predict(self, episode, shots: int) -> Prediction:
        from iclmeta.meta.adaptation import adapt_and_predict
        # lm.batch_for resolves --batch-size auto from the query prompts' length; with
        # --log-scores the adapted model's label log-likelihoods (summed or per token) are kept.
        scores = [] if self.res.config.log_scores else None
        answer = adapt_and_predict(self.lora, self.res.builder, self.init, episode, shots,
                                   self.steps, self.lr, self.res.config.scoring == "normalized",
                                   self.res.lm.batch_for, scores_out=scores)
        extra = {"adapt_steps": answer.steps, "adapt_lr": self.lr,
                 "support_losses": [round(x, 4) for x in answer.support_losses]}
        return Prediction(answer.labels, [[] for _ in answer.labels], answer.prompt_tokens, extra,
                          label_scores(scores or [], episode.classes))


class FineTune(_AdaptedLoRA):
    """Plain LoRA fine-tuning on each episode's support set, from a fresh LoRA."""

    def fit(self) -> None:
        check_scoring(self.name, self.res.config.scoring)
        self.start_fresh()


class MetaLearned(_AdaptedLoRA):
    """Test-time adaptation from an initialisation trained by ``iclmeta train``."""

    def fit(self) -> None:
        check_scoring(self.name, self.res.config.scoring)
        self.load_init(adapter_path(self.res.config.adapters, self.name))


def adapter_path(adapters: list[str], method: str) -> str:
    """The one folder among ``adapters`` trained for ``method``, or a one-line error."""
    from iclmeta.meta.checkpoints import adapter_method
    unreadable = [a for a in adapters if adapter_method(a) is None]
    if unreadable:
        raise UserError(f"--adapter {unreadable[0]} holds no adapter.json; pass a folder written "
                        "by 'iclmeta train'")
    mine = [a for a in adapters if adapter_method(a) == method]
    if len(mine) == 1:
        return mine[0]
    if len(mine) > 1:
        raise UserError(f"{len(mine)} adapters given for --method {method} ({', '.join(mine)}); "
                        "pass one")
    raise UserError(f"--method {method} needs a meta-trained adapter: run 'iclmeta train "
                    f"--method {method} --dataset D --out adapters/NAME' first, then pass "
                    "--adapter adapters/NAME")


def _pick(value, default):
    return default if value is None else value
