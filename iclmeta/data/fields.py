"""Which fields of a row hold the inputs and the label: shared by file and hub sources.

>>> field_list("premise, hypothesis"), field_list(["body"]), field_list(None)
(['premise', 'hypothesis'], ['body'], None)
>>> pick_inputs([{"premise": "", "hypothesis": "", "label": ""}], None, "nli.csv")
['premise', 'hypothesis']
"""
from __future__ import annotations

import difflib

from iclmeta.errors import UserError

# Builtin datasets, each with the line ``iclmeta ls datasets`` shows.
BUILTINS = {
    "trec": "TREC question classification, 6 coarse classes (same as trec-6)",
    "trec-6": "TREC question classification, 6 coarse classes",
    "trec-50": "TREC question classification, 50 fine classes",
    "snips": "SNIPS intent detection, 7 intents",
    "presup-nli": "BIG-bench presuppositions as NLI: premise + hypothesis, 3 classes",
}
TEXT_FIELDS = ("text", "sentence", "utterance", "question", "query")
# Guessed only when no single text field is present.
FIELD_PAIRS = (("premise", "hypothesis"), ("sentence1", "sentence2"), ("question1", "question2"))
LABEL_FIELDS = ("label", "intent", "category", "coarse_label", "class")


def field_list(value) -> list[str] | None:
    """Input field names from a list or a comma-separated string (``a,b``); None stays None."""
    if value is None:
        return None
    names = value.split(",") if isinstance(value, str) else list(value)
    names = [str(n).strip() for n in names if str(n).strip()]
    if not names:
        raise UserError("--text-field is empty; name one field, or several comma-separated")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise UserError(f"--text-field names {', '.join(repeated)} twice; give each field once")
    return names


def pick_inputs(rows: list[dict], wanted, source: str) -> list[str]:
    """The input fields: those asked for (all must exist), else one guessed text field, else a
    guessed pair (premise + hypothesis, ...)."""
    names = field_list(wanted)
    if names is not None:
        return [pick_field(rows, n, (), "text", source, "--text-field") for n in names]
    available = set(rows[0])
    if not available & set(TEXT_FIELDS):
        pair = next((list(p) for p in FIELD_PAIRS if available >= set(p)), None)
        if pair:
            return pair
    return [pick_field(rows, None, TEXT_FIELDS, "text", source, "--text-field")]


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


def suggest(name: str, known, what: str = "dataset",
            hint: str = "a Hugging Face dataset needs its full id, owner/name") -> None:
    """Refuse a name close to a known one (a typo), naming the closest; else return.

    >>> suggest("snps", BUILTINS)
    Traceback (most recent call last):
    ...
    iclmeta.errors.UserError: unknown dataset 'snps'; did you mean snips? (a Hugging Face dataset needs its full id, owner/name)
    >>> suggest("clinc_oos", BUILTINS)  # not close to any: may be a hub id
    """
    close = difflib.get_close_matches(name.lower(), list(known), n=3, cutoff=0.75)
    if close:
        raise UserError(f"unknown {what} {name!r}; did you mean {' or '.join(close)}?"
                        + (f" ({hint})" if hint else ""))
