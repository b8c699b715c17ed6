"""Which fields of a row hold the text and the label: shared by file and hub sources."""
from __future__ import annotations

from iclmeta.errors import UserError

BUILTINS = ("trec", "trec-6", "trec-50", "snips")
TEXT_FIELDS = ("text", "sentence", "utterance", "question", "query")
LABEL_FIELDS = ("label", "intent", "category", "coarse_label", "class")


def pick_field(rows: list[dict], wanted: str | None, guesses: tuple, kind: str,
                source: str, flag: str) -> str:
    available = list(rows[0].keys())
    if wanted is not None:
        if wanted not in available:
            raise UserError(f"{source}: no {kind} field {wanted!r}; available fields: "
                            f"{', '.join(available)} (pass {flag})")
        return wanted
    for guess in guesses:
        if guess in available:
            return guess
    raise UserError(f"{source}: cannot tell which field holds the {kind}; pass {flag} "
                    f"(available fields: {', '.join(available)})")
