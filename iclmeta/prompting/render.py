"""What a prompting method shows the model: plain text or chat-template prompts, per scoring mode.

A ``Renderer`` turns (demonstrations, query) into the strings the LM scores: the direct prompt
and its label candidates, the channel prompts (label first, query text as the continuation) and
the content-free prompts of contextual calibration. Chat prompts go through the model's own chat
template (``LM.chat``) and the label is scored as the assistant's reply.

Chat candidates carry no leading space: templates such as SmolLM2's end the generation prompt
with ``"<|im_start|>assistant\\n"`` and the reply starts right after the newline, so the text
template's ``label_prefix`` (a space) would score a token the model never writes there.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from iclmeta.data.example import Example
from iclmeta.lm.modes import CONTENT_FREE, channel_format
from iclmeta.lm.protocol import LM


@dataclass
class QueryPrompt:
    """Everything scored for one query; ``demos`` are the ones kept after fitting the window."""

    query: Example
    demos: list[Example]
    dropped: int
    prompt: str = ""
    candidates: list[str] = field(default_factory=list)
    messages: list[dict] | None = None
    # channel scoring: one (context, continuation) pair per label
    channel: list[tuple[str, str]] = field(default_factory=list)
    content_free: list[str] = field(default_factory=list)

    @property
    def demo_ids(self) -> list[str]:
        return [d.id for d in self.demos]

    def shown(self):
        """The prompt text(s) the model reads: one string, or one per label for channel."""
        return [ctx for ctx, _ in self.channel] if self.channel else self.prompt


class Renderer:
    """Renders prompts as plain text (``chat=False``) or through the LM's chat template.

    Plain text needs no LM (``lm=None``); chat uses only ``LM.chat``.

    >>> from iclmeta.prompts import PromptBuilder, load_template
    >>> r = Renderer(PromptBuilder(load_template("question")), lm=None)
    >>> r.channel([], "Who wrote Hamlet ?", "HUM", ["HUM"])[1]
    ' Who wrote Hamlet ?'
    """

    def __init__(self, builder, lm: LM | None, chat: bool = False, packed: bool = False):
        self.builder = builder
        self.lm = lm
        self.chat = chat
        self.packed = packed

    def messages(self, demos: Sequence[Example], query, labels) -> list[dict] | None:
        if not self.chat:
            return None
        return self.builder.render_chat(demos, query, labels, packed=self.packed)

    def prompt(self, demos: Sequence[Example], query, labels) -> str:
        if self.chat:
            return self.lm.chat(self.messages(demos, query, labels))
        return self.builder.render(demos, query, labels)

    def candidates(self, labels: Sequence[str]) -> list[str]:
        if self.chat:
            return [self.builder.verbalize(label) for label in labels]
        return self.builder.candidates(labels)

    def content_free(self, demos: Sequence[Example], labels) -> list[str]:
        return [self.prompt(demos, text, labels) for text in CONTENT_FREE]

    def channel_all(self, demos: Sequence[Example], text: str, labels) -> list[tuple[str, str]]:
        """One (context, continuation) pair per label, in ``labels`` order."""
        return [self.channel(demos, text, label, labels) for label in labels]

    def channel(self, demos: Sequence[Example], text: str, label: str, labels) -> tuple[str, str]:
        """(context ending after ``label``, the query text as its continuation)."""
        b = self.builder
        label_line, text_prefix, tail = channel_format(b.template.demo)
        demo_texts = [f"{label_line}{b.verbalize(d.label)}\n{text_prefix}{d.text}{tail}"
                      for d in demos]
        head = f"{label_line}{b.verbalize(label)}"
        if self.chat:
            return self.lm.chat(self._channel_messages(demos, head, demo_texts, labels)), text
        prefix = text_prefix.rstrip(" ")
        instruction = b.instruction(labels)
        parts = ([instruction] if instruction else []) + demo_texts + [f"{head}\n{prefix}"]
        return b.template.separator.join(parts), text_prefix[len(prefix):] + text

    def _channel_messages(self, demos, head: str, demo_texts: list[str], labels) -> list[dict]:
        # The user names a label; the assistant writes an input of that class.
        instruction = self.builder.instruction(labels, chat=True)
        messages = [{"role": "system", "content": instruction}] if instruction else []
        if self.packed:
            body = self.builder.template.separator.join(demo_texts + [head])
            return messages + [{"role": "user", "content": body}]
        label_line = channel_format(self.builder.template.demo)[0]
        for d in demos:
            messages.append({"role": "user",
                             "content": f"{label_line}{self.builder.verbalize(d.label)}"})
            messages.append({"role": "assistant", "content": d.text})
        return messages + [{"role": "user", "content": head}]
