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
from iclmeta.errors import UserError
from iclmeta.lm.modes import CONTENT_FREE
from iclmeta.lm.protocol import LM
from iclmeta.prompts import inputs_of
from iclmeta.templating import compile_template, expressions, render


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

    def channel_all(self, demos: Sequence[Example], query, labels) -> list[tuple[str, str]]:
        """One (context, continuation) pair per label, in ``labels`` order."""
        return [self.channel(demos, query, label, labels) for label in labels]

    def channel(self, demos: Sequence[Example], query, label: str, labels) -> tuple[str, str]:
        """(context ending after ``label``, the query's inputs as its continuation).

        ``query`` is an ``Example`` or a bare text (the ``text`` field).
        """
        b, form = self.builder, ChannelForm(self.builder.template.demo)
        demo_texts = [form.demo(b.verbalize(d.label), d) for d in demos]
        head = f"{form.label_line}{b.verbalize(label)}"
        if self.chat:
            text = query.text if isinstance(query, Example) else str(query)
            return self.lm.chat(self._channel_messages(demos, head, demo_texts, labels)), text
        prefix, continuation = form.query(query)
        instruction = b.instruction(labels)
        parts = ([instruction] if instruction else []) + demo_texts + [f"{head}\n{prefix}"]
        return b.template.separator.join(parts), continuation

    def _channel_messages(self, demos, head: str, demo_texts: list[str], labels) -> list[dict]:
        # The user names a label; the assistant writes an input of that class.
        instruction = self.builder.instruction(labels, chat=True)
        messages = [{"role": "system", "content": instruction}] if instruction else []
        if self.packed:
            body = self.builder.template.separator.join(demo_texts + [head])
            return messages + [{"role": "user", "content": body}]
        label_line = ChannelForm(self.builder.template.demo).label_line
        for d in demos:
            messages.append({"role": "user",
                             "content": f"{label_line}{self.builder.verbalize(d.label)}"})
            messages.append({"role": "assistant", "content": d.text})
        return messages + [{"role": "user", "content": head}]


class ChannelForm:
    """A demo template ``INPUTS LABEL_LINE {{label}} TAIL`` turned label-first for channel
    scoring: a demonstration is ``LABEL_LINE label`` then a newline then ``INPUTS TAIL``.

    ``INPUTS`` runs up to the end of the last field before ``{{label}}``; the label line is the
    literal text between them.

    >>> form = ChannelForm("Question: {{text}}\\nAnswer type: {{label}}")
    >>> form.label_line, form.query("Who wrote Hamlet ?")
    ('Answer type: ', ('Question:', ' Who wrote Hamlet ?'))
    """

    def __init__(self, demo: str):
        spans = expressions(demo)
        at = next((i for i, (_, _, inner) in enumerate(spans) if inner == "label"), 0)
        if at == 0:
            raise UserError("channel scoring needs a template whose 'demo' names the input "
                            "field(s) before {{label}}, e.g. 'Input: {{text}}\\nLabel: {{label}}'")
        cut, found = spans[at - 1][1], spans[at]
        inputs, tail = demo[:cut], demo[found[1]:]
        self.label_line = demo[cut:found[0]].lstrip()
        # The literal text before the first field; the context ends with it, spaces aside.
        self.prefix = demo[:spans[0][0]].rstrip(" ")
        self._demo = compile_template(inputs + tail, "channel demo")
        self._inputs = compile_template(inputs, "channel query")

    def demo(self, word: str, ex: Example) -> str:
        return f"{self.label_line}{word}\n" + render(self._demo, inputs_of(ex), "channel demo")

    def query(self, query) -> tuple[str, str]:
        """(the context's last line, the continuation scored: the query's inputs)."""
        shown = render(self._inputs, inputs_of(query), "channel query")
        return self.prefix, shown[len(self.prefix):]
