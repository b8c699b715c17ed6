"""Prompt templates and builders: plain-text and chat rendering, label verbalizers.

Light on purpose: apps import this module without pulling in torch, transformers or faiss.
``demo`` and ``query`` name the example's fields (``{{text}}``, or ``{{premise}}`` and
``{{hypothesis}}`` for a multi-field example) and ``{{label}}``; they are rendered by a
sandboxed engine (``iclmeta.templating``), so nothing in a template or a dataset runs as code.

>>> from iclmeta.data.example import Example
>>> t = Template(name="demo", instruction="Classify the intent.",
...              demo="Text: {{text}}\\nIntent: {{label}}", query="Text: {{text}}\\nIntent:")
>>> b = PromptBuilder(t, {"book_flight": "book flight", "weather": "weather"})
>>> print(b.render([Example("fly me to rome", "book_flight", "d1")], "is it sunny"))
Classify the intent.
<BLANKLINE>
Text: fly me to rome
Intent: book flight
<BLANKLINE>
Text: is it sunny
Intent:
>>> b.candidates(["book_flight", "weather"])
[' book flight', ' weather']
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Mapping, Sequence, get_type_hints

from iclmeta.data.example import Example
from iclmeta.errors import UserError
from iclmeta.templating import (check_fields, check_type, compile_template, field_names,
                                read_yaml, render, upgrade, word_map)

TEMPLATE_DIRS = (Path(__file__).resolve().parent.parent / "prompts",
                 Path(__file__).resolve().parent / "_templates")


@dataclass(frozen=True)
class Template:
    """A task's prompt format: ``demo`` and ``query`` name fields and ``{{label}}``.

    Single-brace templates (``{text}``) are converted to ``{{text}}`` on construction.
    """

    name: str
    instruction: str = ""
    demo: str = "Input: {{text}}\nLabel: {{label}}"
    query: str = "Input: {{text}}\nLabel:"
    separator: str = "\n\n"
    label_prefix: str = " "
    chat_instruction: str = ""  # system/user instruction for chat models; defaults to instruction
    label_list: bool = False  # list the episode's label names in the instruction
    verbalizers: dict = field(default_factory=dict)
    description: str = ""  # one line for 'iclmeta ls templates'

    def __post_init__(self):
        where = f"template {self.name!r}"
        hints = get_type_hints(Template)
        for f in fields(self):
            if f.name != "verbalizers":
                check_type(f.name, getattr(self, f.name), hints[f.name], where)
        object.__setattr__(self, "verbalizers", word_map("verbalizers", self.verbalizers, where))
        for key in ("demo", "query"):
            object.__setattr__(self, key, upgrade(getattr(self, key)))
            compile_template(getattr(self, key), f"{where} {key!r}")
        if not field_names(self.query) - {"label"}:
            raise UserError(f"{where}: 'query' must name an input field, e.g. {{{{text}}}}")

    def fields(self) -> set[str]:
        """The input fields ``demo`` and ``query`` name (``label`` aside)."""
        return (field_names(self.demo) | field_names(self.query)) - {"label"}

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def list_templates() -> list[str]:
    names = {p.stem for d in TEMPLATE_DIRS if d.is_dir() for p in d.glob("*.yaml")}
    return sorted(names)


def template_path(name: str) -> Path | None:
    """The shipped file of template ``name``, if there is one."""
    return next((d / f"{name}.yaml" for d in TEMPLATE_DIRS if (d / f"{name}.yaml").is_file()),
                None)


def template_from(data: Mapping, where: str, name: str) -> Template:
    """A ``Template`` from a mapping of its keys; an unknown key is one line."""
    allowed = {f.name for f in fields(Template)}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise UserError(f"{where}: unknown template key(s) {unknown}; allowed: "
                        f"{', '.join(sorted(allowed))}")
    return Template(**{"name": name, **data})


def load_template(spec: str | Mapping) -> Template:
    """Load ``prompts/<name>.yaml``, a YAML file path, or a mapping of template keys (a task
    file's inline template, as a run's ``config.yaml`` records it).

    >>> load_template("intent").name
    'intent'
    >>> nli = load_template({"name": "nli", "demo": "{{premise}} / {{hypothesis}} -> {{label}}",
    ...                      "query": "{{premise}} / {{hypothesis}} ->"})
    >>> sorted(nli.fields())
    ['hypothesis', 'premise']
    """
    if isinstance(spec, Mapping):
        return template_from(spec, "inline template", str(spec.get("name", "inline")))
    path = Path(spec)
    if not path.suffix:
        path = template_path(spec) or path
    if not path.is_file():
        raise UserError(f"unknown template {spec!r}; choose one of: "
                        f"{', '.join(list_templates())} or pass a YAML file path")
    data = read_yaml(path, "template")
    return template_from(data, str(path), str(data.get("name", path.stem)))


def data_fields(dataset) -> list[str]:
    """The fields a template may name for ``dataset``'s examples (``label`` aside)."""
    return list(dataset.examples[0].inputs) if dataset.examples else ["text"]


class PromptBuilder:
    """Renders demonstrations and a query with a template and a label verbalizer."""

    def __init__(self, template: Template, label_names: dict[str, str] | None = None):
        self.template = template
        self.label_names = {**(label_names or {}), **template.verbalizers}
        self._demo = compile_template(template.demo, self._where("demo"))
        self._query = compile_template(template.query, self._where("query"))

    def _where(self, key: str) -> str:
        return f"template {self.template.name!r} {key!r}"

    def check(self, dataset) -> None:
        """Refuse, before anything runs, a template naming a field ``dataset`` lacks, or a
        verbalizer map that leaves out some of its labels."""
        have = data_fields(dataset)
        for key in ("demo", "query"):
            check_fields(getattr(self.template, key), have + ["label"], self._where(key),
                         "; fix the template or choose the fields with --text-field")
        words = self.template.verbalizers
        missing = [label for label in dataset.labels() if words and label not in words]
        if missing:
            raise UserError(f"template {self.template.name!r}: verbalizers give no word for "
                            f"label(s) {', '.join(map(repr, missing[:5]))}; add them "
                            f"(label: word) or drop the map")

    def verbalize(self, label: str) -> str:
        return self.label_names.get(label, label.replace("_", " "))

    def candidates(self, labels: Sequence[str]) -> list[str]:
        """The continuation scored for each label: prefix + verbalized label."""
        return [self.template.label_prefix + self.verbalize(label) for label in labels]

    def instruction(self, labels: Sequence[str] | None = None, chat: bool = False) -> str:
        text = (self.template.chat_instruction or self.template.instruction) if chat \
            else self.template.instruction
        if self.template.label_list and labels:
            names = ", ".join(self.verbalize(label) for label in labels)
            text = f"{text} Answer with one of: {names}.".strip()
        return text

    def demo_text(self, ex: Example) -> str:
        return render(self._demo, {**ex.inputs, "label": self.verbalize(ex.label)},
                      self._where("demo"))

    def query_text(self, query: Example | str) -> str:
        return render(self._query, {**inputs_of(query), "label": ""}, self._where("query"))

    def render(self, demos: Sequence[Example], query: Example | str,
               labels: Sequence[str] | None = None) -> str:
        """Plain-text prompt ending right before the label continuation."""
        parts = [self.instruction(labels)] if self.instruction(labels) else []
        parts += [self.demo_text(d) for d in demos]
        parts.append(self.query_text(query))
        return self.template.separator.join(parts)

    def render_chat(self, demos: Sequence[Example], query: Example | str,
                    labels: Sequence[str] | None = None, packed: bool = False) -> list[dict]:
        """Chat messages: demos as user/assistant turns, or packed into one user turn.

        The assistant's reply (the label) is what a scorer scores after the chat template's
        generation prompt.
        """
        instruction = self.instruction(labels, chat=True)
        messages = [{"role": "system", "content": instruction}] if instruction else []
        if packed:
            body = [self.demo_text(d) for d in demos] + [self.query_text(query)]
            return messages + [{"role": "user", "content": self.template.separator.join(body)}]
        for d in demos:
            messages.append({"role": "user", "content": self.query_text(d).rstrip()})
            messages.append({"role": "assistant", "content": self.verbalize(d.label)})
        messages.append({"role": "user", "content": self.query_text(query).rstrip()})
        return messages


def inputs_of(query: Example | str) -> dict[str, str]:
    """What a template may name for ``query``; a bare string is the ``text`` field."""
    return query.inputs if isinstance(query, Example) else {"text": str(query)}


class EmbedText:
    """What the embedder reads for an example: ``template`` over its fields, or by default its
    ``text`` (one field as it is; several as ``name: value`` lines).

    >>> EmbedText("{{hypothesis}}")(Example.from_fields({"premise": "p", "hypothesis": "h"}, "y", "0"))
    'h'
    >>> EmbedText(None)(Example("plain", "y", "0"))
    'plain'
    """

    def __init__(self, template: str | None = None):
        self.source = None if template is None else upgrade(template)
        self._compiled = None if self.source is None else \
            compile_template(self.source, "--embed-template")

    def check(self, dataset) -> None:
        """A field the data lacks (or ``label``, unknown for a query) is an error up front."""
        if self.source is not None:
            check_fields(self.source, data_fields(dataset), "--embed-template",
                         "; the embedder sees queries too, so it cannot read the label")

    def __call__(self, ex: Example | str) -> str:
        if self._compiled is None:
            return ex.text if isinstance(ex, Example) else str(ex)
        return render(self._compiled, inputs_of(ex), "--embed-template")


# The template used when the config names none, by dataset name prefix.
DATASET_TEMPLATES = {"trec": "question", "snips": "intent", "clinc": "intent",
                     "banking": "intent", "presup": "nli"}


def template_for(template: str | Mapping | None, dataset_name: str) -> str | Mapping:
    """The template to use: the one asked for, else the one for the dataset's name.

    >>> template_for(None, "trec-6"), template_for("generic", "trec-6")
    ('question', 'generic')
    """
    if template:
        return template
    name = dataset_name.lower()
    return next((t for prefix, t in DATASET_TEMPLATES.items() if name.startswith(prefix)),
                "generic")
