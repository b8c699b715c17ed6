"""Guards against meta-test leakage: what a trained checkpoint saw, checked before evaluation.

A checkpoint or adapter records :func:`training_record` of the data it was trained on (the
dataset's fingerprint, class rule, split seed, its meta-train classes and a hash of every text
it could have seen). :func:`overlap` then names what an evaluation shares with it: evaluated
texts it saw (any dataset) and, on the dataset it was trained on, evaluated classes it trained
on. Across datasets class names mean nothing (CLINC150 and SNIPS both have ``play_music``), so
a dataset counts as the training one by its fingerprint, or by its name when it also holds
texts the checkpoint saw (the same data, edited); two unrelated files that happen to share a
name compare by texts only.

>>> from iclmeta.data.example import Example, LabelledDataset
>>> ds = LabelledDataset("toy", [Example("hi", "a", "0"), Example("yo", "b", "1")])
>>> rec = training_record(ds, ["a"], split_seed=0, class_split="disjoint")
>>> print(overlap(rec, ds, ["a", "b"]))
1 evaluated class(es) were meta-train classes of the checkpoint (a); 1 evaluated text(s) were in its training data
>>> overlap(rec, ds, ["b"]) is None
True
"""
from __future__ import annotations

import hashlib
from typing import Iterable

from iclmeta.data.example import LabelledDataset

HASH_CHARS = 12  # 48 bits per text: collisions among a few 100k texts are vanishingly rare


def text_key(text: str) -> str:
    """A short stable hash of a text, compared after trimming and case-folding."""
    return hashlib.sha256(" ".join(text.split()).casefold().encode()).hexdigest()[:HASH_CHARS]


def fingerprint(ds: LabelledDataset) -> str:
    """A hash of every (text, label, split) of the dataset: same data, same fingerprint."""
    h = hashlib.sha256()
    for ex in sorted(ds.examples, key=lambda e: e.id):
        h.update(f"{ex.id}\t{ex.label}\t{ex.split}\t{ex.text}\n".encode())
    return h.hexdigest()[:16]


def training_record(ds: LabelledDataset, classes: Iterable[str], split_seed: int,
                    class_split: str) -> dict:
    """What to store in a checkpoint: the data it was trained on, for :func:`overlap`."""
    classes = sorted(set(classes))
    wanted = set(classes)
    texts = sorted({text_key(ex.text) for ex in ds.examples if ex.label in wanted})
    return {"dataset": ds.name, "fingerprint": fingerprint(ds), "class_split": class_split,
            "split_seed": split_seed, "train_classes": classes, "train_texts": texts}


def overlap(record: dict | None, ds: LabelledDataset, classes: Iterable[str]) -> str | None:
    """A one-line description of what evaluating ``classes`` of ``ds`` shares with ``record``.

    ``None`` when nothing is shared (or the checkpoint predates these records and says
    nothing). Texts count on any dataset; classes only on the training dataset (see the module
    doc): another dataset's class of the same name is another class.
    """
    if not record:
        return None
    classes = set(classes)
    seen = set(record.get("train_texts", []))
    texts = {text_key(ex.text) for ex in ds.examples if ex.label in classes} & seen
    same = record.get("fingerprint") == fingerprint(ds) or (
        record.get("dataset") == ds.name and bool(seen & {text_key(ex.text) for ex in ds.examples}))
    shared = sorted(classes & set(record.get("train_classes", []))) if same else []
    parts = []
    if shared:
        shown = ", ".join(shared[:5]) + (", ..." if len(shared) > 5 else "")
        parts.append(f"{len(shared)} evaluated class(es) were meta-train classes of the "
                     f"checkpoint ({shown})")
    if texts:
        parts.append(f"{len(texts)} evaluated text(s) were in its training data")
    return "; ".join(parts) or None
