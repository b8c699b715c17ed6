"""Command-line flags generated from the config dataclasses: one flag per field.

The flag is ``--field-name`` (or ``metadata["flag"]``); the field's type picks the parser:

- ``bool`` -> ``store_true``; ``int``, ``float``, ``str`` -> that type;
- ``Literal[...]`` -> choices; ``int | Literal["auto"]`` -> an integer or one of the words;
- ``Annotated[str, Pattern(...)]`` -> a string of that form (``--device cuda:1``);
- ``list[int]`` / ``list[str]`` -> a comma list (``0,1,4``); ``list[int | Literal["all"]]`` the
  same with the words (``0,1,all``); with ``repeat``: once per value,
  and with ``comma`` as well: each a comma list (``--method icl,knn --method retrieval``);
- ``X | None`` -> X's parser; ``metadata["none"]`` is the word that means None (``all``);
- ``dict[str, str] | None`` -> comma-separated ``key=value`` pairs (``train=a.csv,test=b.csv``).

The help is ``metadata["help"]`` plus the default (``metadata["default_text"]`` or the field's
default). Every flag defaults to ``argparse.SUPPRESS``: the parsed namespace holds only what
the user typed, so "was it given" needs no guessing and the dataclass keeps the defaults.

>>> from iclmeta.config import EvalConfig
>>> by_name = {f.name: f for f in dataclasses.fields(EvalConfig)}
>>> flag_name(by_name["checkpoints"]), field_help(by_name["shots"])
('--checkpoint', "comma-separated shot counts (labelled examples per class); 'all': every support example of the classes in play, e.g. 1,4,16,all (default: 0,1,4)")
>>> parser_kwargs(int | None, by_name["queries"])["type"]("all") is None
True
"""
from __future__ import annotations

import argparse
import dataclasses
import types
from typing import Literal, Union, get_args, get_origin, get_type_hints

from iclmeta.config.fields import pattern_of
from iclmeta.errors import UserError

_NAMES = {int: "an integer", float: "a number", str: "a string"}


def flag_name(field: dataclasses.Field) -> str:
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


def shown_default(field: dataclasses.Field) -> str | None:
    """The default as help shows it, or None when there is nothing to show."""
    if "default_text" in field.metadata:
        return field.metadata["default_text"]
    value = field.default_factory() if field.default is dataclasses.MISSING else field.default
    if value is None or value is False or value == []:
        return None
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def field_help(field: dataclasses.Field, context: dict | None = None) -> str:
    text = field.metadata.get("help", "").format_map(context or {})
    default = shown_default(field)
    return f"{text} (default: {default})" if default else text


def parser_kwargs(hint, field: dataclasses.Field) -> dict:
    """``add_argument`` keywords (type, choices, action, metavar) for a field's type hint."""
    meta, origin, args = field.metadata, get_origin(hint), get_args(hint)
    if hint is bool:
        return {"action": argparse.BooleanOptionalAction if field.default else "store_true"}
    if hint in _NAMES:
        return {"type": hint}
    if pattern := pattern_of(hint):
        return {"type": _matching(pattern), "metavar": meta.get("metavar", field.name.upper())}
    if origin is Literal:
        return {"choices": list(args)}
    if origin is list and get_origin(args[0]) in (Union, types.UnionType):  # list[int | "all"]
        inner = get_args(args[0])
        words = {w: w for a in inner if get_origin(a) is Literal for w in get_args(a)}
        kind = next(a for a in inner if a in _NAMES)
        alts = " or ".join(f"'{w}'" for w in words)
        return {"type": _comma_list(_word_or(kind, words), shown_default(field) or "a,b",
                                    f"{_NAMES[kind].split()[-1]}s or {alts}")}
    if origin is list and args[0] in _NAMES:
        if meta.get("repeat"):
            kind = _comma_list(args[0], "a,b") if meta.get("comma") else args[0]
            return {"action": "extend" if meta.get("comma") else "append", "type": kind,
                    "metavar": meta.get("metavar")}
        return {"type": _comma_list(args[0], shown_default(field) or "a,b")}
    if origin in (Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        words = {w: w for a in inner if get_origin(a) is Literal for w in get_args(a)}
        base = [a for a in inner if get_origin(a) is not Literal]
        if len(inner) < len(args) and meta.get("none"):
            words[meta["none"]] = None
        if not base:  # Literal[...] | None: the choices
            return {"choices": list(words)}
        if len(base) == 1 and base[0] in _NAMES:
            return {"type": _word_or(base[0], words) if words else base[0],
                    "metavar": meta.get("metavar")}
        if len(base) == 1 and not words and get_origin(base[0]) is list:  # list[str] | None
            return {"type": _comma_list(get_args(base[0])[0], "a,b"),
                    "metavar": meta.get("metavar")}
        if len(base) == 1 and not words and get_origin(base[0]) is dict:  # dict[str, str] | None
            return {"type": _pairs, "metavar": meta.get("metavar")}
    raise TypeError(f"no command-line parser for {field.name}: {hint}")


def _matching(pattern):
    def parse(text: str) -> str:
        if not pattern.matches(text):
            raise argparse.ArgumentTypeError(f"{text!r} is not one of: {pattern.choices}")
        return text
    parse.__name__ = "string"
    return parse


def _pairs(text: str) -> dict[str, str]:
    """``train=a.csv,test=b.csv`` -> ``{"train": "a.csv", "test": "b.csv"}``."""
    pairs: dict[str, str] = {}
    for item in (i.strip() for i in text.split(",") if i.strip()):
        key, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not key or not value:
            raise argparse.ArgumentTypeError(f"{item!r} is not KEY=VALUE; give comma-separated "
                                             "pairs, e.g. train=a.csv,test=b.csv")
        if key in pairs:
            raise argparse.ArgumentTypeError(f"{key!r} is given twice; give each key once")
        pairs[key] = value
    if not pairs:
        raise argparse.ArgumentTypeError("give at least one KEY=VALUE pair, e.g. train=a.csv")
    return pairs


_pairs.__name__ = "KEY=VALUE pairs"


def _word_or(kind, words: dict):
    def parse(text: str):
        if text in words:
            return words[text]
        try:
            return kind(text)
        except ValueError:
            alts = " or ".join(f"'{w}'" for w in words)
            raise argparse.ArgumentTypeError(f"{text!r} is not {_NAMES[kind]} or {alts}") from None
    parse.__name__ = kind.__name__
    return parse


def _comma_list(kind, example: str, plural: str | None = None):
    plural = plural or {int: "integers", float: "numbers", str: "names"}[kind]

    def parse(text: str) -> list:
        try:
            values = [kind(v.strip()) for v in text.split(",") if v.strip()]
        except (ValueError, argparse.ArgumentTypeError):
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of "
                                             f"{plural}, e.g. {example}") from None
        if not values:
            raise argparse.ArgumentTypeError(f"give at least one value, e.g. {example}")
        return values
    parse.__name__ = f"list of {plural}"
    return parse


def add_flag(group, field: dataclasses.Field, hint, help: str) -> None:
    group.add_argument(flag_name(field), dest=field.name, default=argparse.SUPPRESS, help=help,
                       **{k: v for k, v in parser_kwargs(hint, field).items() if v is not None})


def sections(parser: argparse.ArgumentParser, titles: dict) -> dict:
    """Help sections in ``titles`` order (argparse leaves empty ones out); None: top level."""
    return {None: parser, **{key: parser.add_argument_group(t) for key, t in titles.items()}}


def add_fields(parser: argparse.ArgumentParser, cls, names, titles: dict,
               context: dict | None = None) -> None:
    """One flag per field of ``cls`` in ``names``, in sections by ``metadata["group"]``."""
    hints, groups = get_type_hints(cls, include_extras=True), sections(parser, titles)
    for field in dataclasses.fields(cls):
        if field.name in names:
            add_flag(groups[field.metadata.get("group")], field, hints[field.name],
                     field_help(field, context))


def shared_help(owners: list[tuple[str, dataclasses.Field]]) -> str:
    """Help of a field that several configs define, as ``(label, field)`` pairs."""
    texts = {field.metadata.get("help", "") for _, field in owners}
    defaults = [(label, shown_default(field)) for label, field in owners]
    if len(texts) > 1:
        return "; ".join(f"{label}: {field_help(field)}" for label, field in owners)
    if len({d for _, d in defaults}) == 1:
        return field_help(owners[0][1])
    shown = "; ".join(f"{label} {d}" for label, d in defaults if d)
    return f"{texts.pop()} (default: {shown})"


def given(args: argparse.Namespace, cls) -> dict:
    """The fields of ``cls`` the user gave on the command line (flags default to SUPPRESS)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in vars(args).items() if k in names}


def check_used(values: dict, cls, methods: list[str], who: str) -> None:
    """A given flag that none of ``methods`` reads is an error naming the methods that do."""
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    for name in values:
        users = by_name[name].metadata.get("used_by")
        if users and not set(users) & set(methods):
            raise UserError(f"{flag_name(by_name[name])} does not apply to '{who}'; "
                            f"it is used by --method {', '.join(users)}")
