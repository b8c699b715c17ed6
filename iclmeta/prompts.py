"""Prompt templates and builders: plain-text and chat rendering, label verbalizers.

Light on purpose: apps import this module without pulling in torch, transformers or faiss.
Placeholders are plain field substitution (``{text}``, ``{label}``); nothing in a template is
evaluated as code.

>>> from iclmeta.data.sources import Example
>>> t = Template(name="demo", instruction="Classify the intent.",
...              demo="Text: {text}\\nIntent: {label}", query="Text: {text}\\nIntent:")
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

import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Sequence

import yaml

from iclmeta.data.example import Example
from iclmeta.errors import UserError

TEMPLATE_DIRS = (Path(__file__).resolve().parent.parent / "prompts",
                 Path(__file__).resolve().parent / "_templates")
_FIELD = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Template:
    """A task's prompt format. ``demo`` and ``query`` use ``{text}`` and ``{label}`` fields."""

    name: str
    instruction: str = ""
    demo: str = "Input: {text}\nLabel: {label}"
    query: str = "Input: {text}\nLabel:"
    separator: str = "\n\n"
    label_prefix: str = " "
    chat_instruction: str = ""  # system/user instruction for chat models; defaults to instruction
    label_list: bool = False  # list the episode's label names in the instruction
    verbalizers: dict = field(default_factory=dict)

    def __post_init__(self):
        for name in ("demo", "query"):
            unknown = set(_FIELD.findall(getattr(self, name))) - {"text", "label"}
            if unknown:
                raise UserError(f"template {self.name!r}: unknown placeholder(s) "
                                f"{sorted(unknown)} in {name!r}; use {{text}} and {{label}}")
        if "{text}" not in self.query:
            raise UserError(f"template {self.name!r}: 'query' must contain {{text}}")


def list_templates() -> list[str]:
    names = {p.stem for d in TEMPLATE_DIRS if d.is_dir() for p in d.glob("*.yaml")}
    return sorted(names)


def load_template(name_or_path: str) -> Template:
    """Load ``prompts/<name>.yaml`` or a YAML file path (safe YAML; plain substitution only).

    >>> load_template("intent").name
    'intent'
    """
    path = Path(name_or_path)
    if not path.suffix:
        path = next((d / f"{name_or_path}.yaml" for d in TEMPLATE_DIRS
                     if (d / f"{name_or_path}.yaml").is_file()), path)
    if not path.is_file():
        raise UserError(f"unknown template {name_or_path!r}; choose one of: "
                        f"{', '.join(list_templates())} or pass a YAML file path")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: malformed YAML ({exc.__class__.__name__}); fix the file") from None
    allowed = {f.name for f in fields(Template)}
    unknown = set(data) - allowed
    if unknown:
        raise UserError(f"{path}: unknown template key(s) {sorted(unknown)}; "
                        f"allowed: {', '.join(sorted(allowed))}")
    data.setdefault("name", path.stem)
    return Template(**data)


class PromptBuilder:
    """Renders demonstrations and a query with a template and a label verbalizer."""

    def __init__(self, template: Template, label_names: dict[str, str] | None = None):
        self.template = template
        self.label_names = {**(label_names or {}), **template.verbalizers}

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
        return _fill(self.template.demo, ex.text, self.verbalize(ex.label))

    def query_text(self, query: Example | str) -> str:
        return _fill(self.template.query, _text(query), "")

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


def _text(query: Example | str) -> str:
    return query.text if isinstance(query, Example) else str(query)


def _fill(pattern: str, text: str, label: str) -> str:
    # One pass over the pattern so braces inside the user's text are never re-expanded.
    return _FIELD.sub(lambda m: {"text": text, "label": label}[m.group(1)], pattern)


# The template used when the config names none, by dataset name prefix.
DATASET_TEMPLATES = {"trec": "question", "snips": "intent", "clinc": "intent",
                     "banking": "intent"}


def template_for(template: str | None, dataset_name: str) -> str:
    """The template to use: the one asked for, else the one for the dataset's name.

    >>> template_for(None, "trec-6"), template_for("generic", "trec-6")
    ('question', 'generic')
    """
    if template:
        return template
    name = dataset_name.lower()
    return next((t for prefix, t in DATASET_TEMPLATES.items() if name.startswith(prefix)),
                "generic")
