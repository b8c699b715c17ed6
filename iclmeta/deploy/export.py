"""``export``: write one method over a dataset's labelled examples as a predictor folder.

The support is ``--shots K`` per class (each class's examples in one seeded permutation, its
first K: the episodes' rule) or ``all`` (every labelled example; classes may be unequal). A
dataset with its own train and test splits gives its train split, as episodes take their
support from it; otherwise every example. With ``--from RECOMMEND_DIR`` the method, settings
and shot count are the ones ``iclmeta recommend`` raced. The folder holds:

- ``predictor.json``: format, iclmeta version, method, shots, classes and label names, input
  fields, the episode id and seed, every file's sha256, and the provenance (library versions,
  the models with the sha256 of their weights);
- ``config.yaml`` (the resolved ``EvalConfig``), ``examples.jsonl`` (the support, in order),
  ``template.yaml`` (the template with its verbalizers, resolved);
- what the family needs (``iclmeta.deploy.parts``): a FAISS index, adapted LoRA weights, a
  copy of the metric checkpoint or meta-trained adapter.

At ``--shots all`` a prompting method's ``--k`` defaults to ``DEMOS_PER_CLASS_AT_ALL`` x ways
(every labelled example would not fit a prompt); at ``--shots K`` to K x ways, as in ``eval``.

>>> config = EvalConfig(methods=["retrieval"], dataset="my.csv")
>>> export(config, "predictor/", shots=4)  # doctest: +SKIP
"""
from __future__ import annotations

import random
import sys
from dataclasses import replace
from pathlib import Path

from iclmeta.config import EvalConfig
from iclmeta.data.budget import QUERY_SPLITS, TRAIN_SPLITS
from iclmeta.data.example import Example, LabelledDataset
from iclmeta.deploy.bundle import check_target
from iclmeta.errors import UserError
from iclmeta.io import read_json_object

ALL = "all"
DEMOS_PER_CLASS_AT_ALL = 4
SHOWS_DEMOS = ("icl", "retrieval", "instruct")


def parse_shots(text: str | int) -> int | str:
    """``--shots``: a positive number per class, or ``all``.

    >>> parse_shots("4"), parse_shots("all")
    (4, 'all')
    """
    if str(text).strip().lower() == ALL:
        return ALL
    try:
        shots = int(text)
    except ValueError:
        shots = 0
    if shots < 1:
        raise UserError(f"--shots {text!r} must be a positive number of examples per class, "
                        "or 'all'")
    return shots


def labelled_groups(ds: LabelledDataset) -> dict[str, list[Example]]:
    """Each class's labelled examples: the train split when the data has train and test
    splits (the rest is for measuring), else every example."""
    splits = ds.splits()
    train = next((s for s in TRAIN_SPLITS if s in splits), None)
    if train and any(s in splits for s in QUERY_SPLITS):
        return ds.by_label(train)
    return ds.by_label()


def choose_support(ds: LabelledDataset, shots: int | str, seed: int) -> tuple[list, list]:
    """``(classes, support)``: the support interleaved class by class (sorted classes)."""
    groups = labelled_groups(ds)
    classes = sorted(groups)
    if len(classes) < 2:
        raise UserError(f"{ds.name}: a predictor needs labelled examples of at least 2 classes")
    chosen = {}
    for c in classes:
        examples = list(groups[c])
        if shots != ALL:
            if len(examples) < shots:
                raise UserError(f"{ds.name}: class {c!r} has {len(examples)} labelled "
                                f"examples, fewer than --shots {shots}; lower --shots or add "
                                f"examples (each class needs {shots})")
            random.Random(f"{seed}:export:support:{c}").shuffle(examples)
            examples = examples[:shots]
        chosen[c] = examples
    longest = max(len(v) for v in chosen.values())
    support = [chosen[c][i] for i in range(longest) for c in classes if i < len(chosen[c])]
    return classes, support


def resolve(config: EvalConfig, shots: int | str, ways: int, largest: int) -> EvalConfig:
    """The predictor's config: one method, scores logged, ``k`` fixed, ``shots`` the largest
    class's support (``largest``)."""
    if len(config.methods) != 1:
        raise UserError(f"export writes one method; pass one --method, not "
                        f"{', '.join(config.methods)}")
    per_class = DEMOS_PER_CLASS_AT_ALL if shots == ALL else shots
    k = config.k
    if k is None and config.methods[0] in SHOWS_DEMOS:
        k = per_class * ways
    config = replace(config, out=None, log_scores=True, k=k,
                     shots=[largest])
    config.validate()
    return config


def recommended(folder: str) -> tuple[EvalConfig, int]:
    """The winner's config (its method alone) and shot count from a ``recommend`` folder."""
    file = Path(folder) / "recommend.json"
    if not file.is_file():
        raise UserError(f"{folder} holds no recommend.json; pass a folder written by "
                        "'iclmeta recommend'")
    try:
        data = read_json_object(file)
        winner, shots, recorded = data["winner"], int(data["shots"]), dict(data["config"])
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(f"{file} is damaged ({err}); rerun 'iclmeta recommend'") from None
    if not winner:
        raise UserError(f"{file} names no winner (the race found none); export a --method "
                        "of your choice instead")
    return EvalConfig.from_recorded({"config": recorded}, methods=[winner]), shots


def export(config: EvalConfig, out: str, shots: int | str = ALL, progress: bool = True,
           echo=lambda msg: print(msg, file=sys.stderr)) -> Path:
    """Fit ``config.methods[0]`` over the dataset's labelled examples and write the predictor
    folder ``out`` (new, empty, or an earlier predictor, which is replaced whole)."""
    from tqdm.auto import tqdm

    from iclmeta.data.sources import load_source
    from iclmeta.deploy.predictor import Predictor
    from iclmeta.harness.registry import check_methods

    shots = parse_shots(shots)
    check_target(out)  # refused before anything loads
    config.validate()
    check_methods(config.methods)
    with tqdm(total=3, desc="export", unit="step", disable=not progress, file=sys.stderr) as bar:
        bar.set_postfix_str("data")
        ds = load_source(config)
        classes, support = choose_support(ds, shots, config.seed)
        config = resolve(config, shots, len(classes),
                         max(sum(e.label == c for e in support) for c in classes))
        bar.update()
        bar.set_postfix_str(f"fit {config.methods[0]}")
        predictor = Predictor.create(config, ds, support, classes, shots)
        bar.update()
        bar.set_postfix_str("write")
        path = predictor.save(out)
        bar.update()
    echo(f"{config.methods[0]} over {len(support)} labelled examples of {len(classes)} classes")
    return path
