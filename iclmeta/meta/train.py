"""Meta-training of LoRA initialisations: MAML, first-order MAML, Reptile, multi-task.

``meta_train(config)`` writes to ``config.out``:

- ``adapter.json`` + ``best-SHA16.safetensors``: the initialisation with the best meta-val
  accuracy, with everything needed to reload it (LoRA layout, model, template, scoring,
  training settings). ``adapter.json`` is replaced atomically after its weights file is on
  disk, so it always names a complete checkpoint.
- ``checkpoint.json`` + ``last-SHA16.safetensors``: the latest state (weights, optimiser state,
  step), written the same way; a rerun with the same settings resumes from it.
- ``log.jsonl``: one line per meta-step (loss, seconds; meta-val accuracy where it was
  checked; step 0 is the initialisation's accuracy).

A non-finite loss or meta-gradient stops training with a ``UserError`` before any update or
save, so the last good checkpoint and best adapter stay as they were. Its advice works: a rerun
into the same ``out`` may change ``inner_lr`` / ``meta_lr`` (nothing else may change but
``steps``); it resumes from the checkpoint, and the change and its step are recorded in
``log.jsonl`` (``lr_changed``) and in the adapter (``lr_changes``). After an ``inner_lr``
change the best step is chosen among the steps validated with the new rate (meta-validation
adapts with it, so earlier accuracies do not compare).

>>> cfg = MetaTrainConfig(method="reptile", dataset="clinc150.jsonl", steps=50,
...                       out="adapters/reptile")                      # doctest: +SKIP
>>> meta_train(cfg)                                                   # doctest: +SKIP
"""
from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

from iclmeta.io import load_yaml, save_yaml
from iclmeta.config import MetaTrainConfig
from iclmeta.errors import UserError
from iclmeta.meta.trainer import MetaTrainer



def meta_train(config: MetaTrainConfig, progress: bool = True,
               echo=lambda msg: print(msg, file=sys.stderr)) -> dict:
    """Run (or resume) meta-training; returns the best adapter's metadata."""
    config.validate()
    out = Path(config.out)
    _check_resume(config, out)
    trainer = MetaTrainer(config, echo)
    # train.yaml only once data, model and template passed set-up: a refused run leaves no
    # folder behind that would then refuse the corrected command as "different settings".
    return trainer.run(progress, ready=lambda: save_yaml(asdict(config), out / "train.yaml"))


# Settings a resumed run may change: more steps, and the learning rates (the remedy the
# non-finite guard advises); the trainer records a rate change with its step. ``out`` is the
# folder itself, however it is spelled.
RESUMABLE = ("steps", "inner_lr", "meta_lr", "out")


def _check_resume(config: MetaTrainConfig, out: Path) -> None:
    saved = out / "train.yaml"
    if saved.exists():
        previous = load_yaml(saved)
        changed = sorted(k for k, v in asdict(config).items()
                         if k not in RESUMABLE and previous.get(k) != v)
        if changed:
            raise UserError(f"{out} holds a run with different settings ({', '.join(changed)});"
                            " use the same settings to resume, or a new --out")


