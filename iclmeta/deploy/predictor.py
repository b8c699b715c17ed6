"""``Predictor``: one method and its labelled examples, answering new texts through the very
call the benchmark measured.

A predictor holds the method object the harness builds (``registry.build_method`` over the
same ``Resources``), fitted once. Predicting texts makes a ``DeployEpisode`` whose support is
the predictor's labelled examples and whose queries are the texts, and calls
``method.predict(episode, shots)``: the labels (and the scores the run logs with
``--log-scores``) are what an evaluation episode with that support and those queries gives.
The episode's id and seed are fixed at export and recorded (``icl`` draws its demonstrations
from them).

>>> p = Predictor.load("predictor/")                                  # doctest: +SKIP
>>> labels, scores = p.predict(["book a table for two", "play some jazz"])  # doctest: +SKIP
>>> p.add([("wake me at 7", "set_alarm")]); p.save()                  # doctest: +SKIP
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

from iclmeta.config import EvalConfig
from iclmeta.config.fields import METRIC
from iclmeta.data.episodes import Episode
from iclmeta.data.example import Example, LabelledDataset
from iclmeta.data.prediction import Prediction
from iclmeta.deploy import bundle
from iclmeta.deploy.inputs import input_fields, read_examples, to_example, to_query, write_examples
from iclmeta.deploy.parts import bundled, family, part_for
from iclmeta.errors import UserError
from iclmeta.io import load_yaml, save_yaml

TEMPLATE = "template.yaml"
EXAMPLES = "examples.jsonl"


@dataclass(frozen=True)
class DeployEpisode(Episode):
    """An episode over a predictor's support, whose classes may hold unequal numbers of
    examples. ``pool`` is the whole support in order (first interleaved class by class, then
    examples added later, in the order added); ``max_shots`` is the largest class's count and
    ``support_set(shots)`` the first ``shots`` of each class in pool order, so
    ``support_set(max_shots)`` is the pool. With equal classes both agree with ``Episode``."""

    pool: tuple = ()

    @property
    def max_shots(self) -> int:
        return max((len(v) for v in self.support.values()), default=0)

    def support_set(self, shots: int) -> list[Example]:
        if shots > self.max_shots:
            raise ValueError(f"support holds at most {self.max_shots} per class, asked for {shots}")
        if shots == self.max_shots:
            return list(self.pool)
        taken: dict[str, int] = {}
        out = []
        for ex in self.pool:
            if taken.get(ex.label, 0) < shots:
                taken[ex.label] = taken.get(ex.label, 0) + 1
                out.append(ex)
        return out


class Predictor:
    """A fitted method over labelled examples (see the module docstring). ``create`` builds
    one in memory, ``save`` writes its folder, ``load`` reads one back."""

    def __init__(self, config: EvalConfig, resources, method, classes, pool, shots, part,
                 episode_id: int = 0, record: dict | None = None, folder: Path | None = None):
        self.config, self.resources, self.method = config, resources, method
        self.classes = list(classes)
        self.pool = list(pool)
        self.shots = shots  # as exported: K per class, or "all"
        self.part = part
        self.episode_id = episode_id
        self.record = record or {}  # the provenance recorded at export
        self.folder = folder
        self._asked = 0  # queries answered so far (for their ids)
        self.fields = input_fields(self.pool[0], config.text_field) if self.pool else ["text"]

    @property
    def name(self) -> str:
        return self.config.methods[0]

    @classmethod
    def create(cls, config: EvalConfig, dataset: LabelledDataset, support: list[Example],
               classes: list[str] | tuple | None = None, shots: int | str = "all",
               episode_id: int = 0) -> "Predictor":
        """Fit ``config.methods[0]`` over ``support`` (in this order) and ship what its family
        needs (an index, adapted weights). ``classes`` default to the support's, sorted."""
        from iclmeta.harness.provenance import provenance
        classes = list(classes or sorted({e.label for e in support}))
        p = cls._build(config, dataset.name, dataset.label_names, classes, support, shots,
                       episode_id)
        p.part.prepare(p)
        p.record = provenance(p.resources)
        return p

    @classmethod
    def _build(cls, config, dataset_name, label_names, classes, pool, shots, episode_id,
               folder=None) -> "Predictor":
        from iclmeta.harness.registry import build_method
        from iclmeta.harness.resources import Resources
        if len(config.methods) != 1:
            raise UserError(f"a predictor runs one method, not {', '.join(config.methods)}")
        config = replace(config, log_scores=True)
        names = {c: label_names.get(c, c) for c in classes}
        resources = Resources(config, LabelledDataset(dataset_name, list(pool), names))
        method = build_method(config.methods[0], resources)
        method.fit()
        return cls(config, resources, method, classes, pool, shots,
                   part_for(config.methods[0], config), episode_id, folder=folder)

    def support(self) -> list[Example]:
        return list(self.pool)

    def episode(self, queries: list[Example]) -> DeployEpisode:
        support = {c: [e for e in self.pool if e.label == c] for c in self.classes}
        return DeployEpisode(self.episode_id, tuple(self.classes), support, queries,
                             self.config.seed, tuple(self.pool))

    def prediction(self, texts, batch_size: int | None = None) -> Prediction:
        """The method's whole answer for ``texts`` (labels, demonstration ids, prompt tokens,
        scores), ``batch_size`` texts per call (default: all in one)."""
        if isinstance(texts, (str, dict)):
            texts = [texts]
        # Query ids never repeat across calls: a method may remember the last episode's
        # choices by query id (retrieval does), and the support may have grown since.
        queries = [to_query(t, self.fields, self._asked + i, self.classes[0], f"input {i + 1}")
                   for i, t in enumerate(texts)]
        self._asked += len(queries)
        size = batch_size or max(len(queries), 1)
        if size < 1:
            raise UserError(f"batch size {size} must be at least 1")
        out = Prediction([], [], 0, {}, [])
        for start in range(0, len(queries), size):
            episode = self.episode(queries[start:start + size])
            pred = self.method.predict(episode, episode.max_shots)
            out.labels += pred.labels
            out.demo_ids += pred.demo_ids or [[] for _ in pred.labels]
            out.prompt_tokens += int(pred.prompt_tokens)
            out.scores += pred.scores or [{} for _ in pred.labels]
        return out

    def predict(self, texts, batch_size: int | None = None) -> tuple[list[str], list[dict]]:
        """``(labels, scores)`` for ``texts`` (strings, or dicts of the input fields): one
        label each and its ``{label: score}`` (higher is more likely)."""
        pred = self.prediction(texts, batch_size)
        return pred.labels, pred.scores

    def add(self, examples) -> None:
        """Append labelled examples (``Example``, ``(text, label)`` or a dict with ``label``)
        to the support; a retrieval index grows without a rebuild. ``save()`` keeps them."""
        start = len(self.pool)
        new = [to_example(item, self.fields, self.classes, f"added:{start + i}")
               for i, item in enumerate(examples)]
        if not new:
            return
        self.pool += new
        self.resources.dataset.examples.extend(new)
        self.part.added(self, new)

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write the predictor folder (``path``, default where it was loaded from)."""
        target = Path(path) if path is not None else self.folder
        if target is None:
            raise UserError("this predictor was never saved; pass a folder to save() to")
        bundle.publish(target, self._write)
        self.folder = target
        return target

    def _write(self, tmp: Path) -> dict:
        import shutil

        import yaml
        saved = replace(self.config, out=None, checkpoints=[], adapters=[], log_scores=True)
        found = bundled(self.name, self.config)
        if found:
            field, source = found
            rel = f"{field}/{self.name}"
            shutil.copytree(source, tmp / rel, ignore=shutil.ignore_patterns(".*"))
            saved = replace(saved, **{field: [rel]})
        template = self.resources.builder.template
        (tmp / TEMPLATE).write_text(yaml.safe_dump(template.to_dict(), sort_keys=False,
                                                   allow_unicode=True), encoding="utf-8")
        if self.config.template or self.name not in METRIC:
            saved = replace(saved, template=TEMPLATE)  # what the method reads, resolved
        save_yaml({"config": saved.to_dict()}, tmp / "config.yaml")
        write_examples(tmp / EXAMPLES, self.pool)
        counts = {c: sum(e.label == c for e in self.pool) for c in self.classes}
        return {"method": self.name, "family": family(self.name, self.config),
                "shots": self.shots, "support_per_class": counts, "classes": self.classes,
                "label_names": {c: self.resources.dataset.label_names[c] for c in self.classes},
                "inputs": self.fields, "dataset": self.resources.dataset.name,
                "episode": {"id": self.episode_id, "seed": self.config.seed},
                "template": template.name, **self.part.save(self, tmp),
                "provenance": self.record}

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Predictor":
        """Read a predictor folder, check every file against its checksum, load the models."""
        folder = Path(path)
        manifest = bundle.read_manifest(folder)
        try:
            data = dict(load_yaml(folder / "config.yaml")["config"])
            data["checkpoints"] = [str(bundle.inside(folder, p)) for p in data["checkpoints"]]
            data["adapters"] = [str(bundle.inside(folder, p)) for p in data["adapters"]]
            if data.get("template") == TEMPLATE:
                data["template"] = str(folder / TEMPLATE)
            config = EvalConfig.from_dict(data)
            classes, names = list(manifest["classes"]), dict(manifest["label_names"])
            episode = manifest["episode"]
        except (KeyError, TypeError) as err:
            raise UserError(f"predictor {folder}: config.yaml or predictor.json lacks {err}; "
                            "re-export it") from None
        pool = read_examples(folder / EXAMPLES)
        p = cls._build(config, manifest.get("dataset", "predictor"), names, classes, pool,
                       manifest.get("shots"), int(episode["id"]), folder)
        if config.seed != episode["seed"]:
            raise UserError(f"predictor {folder}: its seed disagrees with config.yaml; "
                            "re-export it")
        p.record = manifest.get("provenance") or {}
        p.part.restore(p, folder)
        _warn_if_models_changed(p, folder)
        return p


def _warn_if_models_changed(p: Predictor, folder: Path) -> None:
    """The models are referenced, not copied: say so when their weights are not the ones the
    predictor was exported with (its predictions may then differ from the measured ones)."""
    from iclmeta.harness.provenance import provenance
    then = p.record.get("models") or {}
    for role, now in provenance(p.resources).get("models", {}).items():
        before = (then.get(role) or {}).get("weights_sha256")
        if before and now.get("weights_sha256") and before != now["weights_sha256"]:
            warnings.warn(f"predictor {folder} was exported with other {role} weights than "
                          f"{now['name']} has now; re-export it to predict as measured")
