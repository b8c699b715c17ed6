"""The template engine behind prompts and embedder texts, and the type checks of the YAML files
users edit (templates, task files).

Templates name fields: ``{{premise}}``, ``{{text}}``, ``{{label}}``, optionally with a filter
(``{{premise | lower}}``). They are rendered by Jinja2's ``SandboxedEnvironment`` with
``StrictUndefined`` and no autoescaping: a field the data lacks is an error, attribute access
into Python internals is refused, and block tags (``{% ... %}``: loops, conditions, macros) are
not accepted at all. A field's *value* is never parsed as a template, so a dataset text holding
``{{ 7*7 }}`` is shown as it is.

Templates written for the old single-brace syntax (``{text}``, ``{label}``) are converted when
they hold no double-brace syntax at all.

>>> render(compile_template("Q: {{question}}\\nA:", "demo"), {"question": "{{ 7*7 }}?"}, "demo")
'Q: {{ 7*7 }}?\\nA:'
>>> upgrade("Text: {text}\\nLabel: {label}")
'Text: {{text}}\\nLabel: {{label}}'
>>> sorted(field_names("{{premise}} / {{ hypothesis | upper }}"))
['hypothesis', 'premise']
"""
from __future__ import annotations

import re
import types
from functools import lru_cache
from pathlib import Path
from typing import Literal, Union, get_args, get_origin

import yaml
from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, UndefinedError, meta, nodes
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from iclmeta.errors import UserError

_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False,
                            keep_trailing_newline=True)
_OLD_FIELD = re.compile(r"\{(\w+)\}")
_NEW_SYNTAX = ("{{", "{%", "{#")


def upgrade(source: str) -> str:
    """A single-brace template (``{text}``) in the double-brace syntax; others unchanged.

    Only a source with no ``{{``, ``{%`` or ``{#`` is converted, so its literal text holds no
    Jinja delimiter and stays literal.
    """
    if any(token in source for token in _NEW_SYNTAX) or not _OLD_FIELD.search(source):
        return source
    return _OLD_FIELD.sub(lambda m: "{{" + m.group(1) + "}}", source)


@lru_cache(maxsize=256)
def _parse(source: str):
    return _ENV.parse(source)


def _checked(source: str, where: str):
    try:
        tree = _parse(source)
    except TemplateSyntaxError as exc:
        raise UserError(f"{where}: template syntax error ({exc.message}, line {exc.lineno}); "
                        "name fields as {{field}}") from None
    blocks = [n for n in tree.body if not isinstance(n, nodes.Output)]
    if blocks:
        raise UserError(f"{where}: block tags ({{% {type(blocks[0]).__name__.lower()} %}}) are "
                        "not allowed; a template only names fields, e.g. {{premise}}")
    return tree


def field_names(source: str, where: str = "template") -> set[str]:
    """The fields a template names."""
    return set(meta.find_undeclared_variables(_checked(source, where)))


@lru_cache(maxsize=256)
def _compiled(source: str):
    return _ENV.from_string(_parse(source))


def compile_template(source: str, where: str):
    """Check ``source`` (syntax, no block tags) and compile it once."""
    _checked(source, where)
    return _compiled(source)


def render(template, context: dict, where: str) -> str:
    """Render a compiled template; a missing field or a refused access is one line."""
    try:
        return template.render(context)
    except SecurityError as exc:
        raise UserError(f"{where}: refused by the template sandbox ({exc}); a template may only "
                        "name fields and format them") from None
    except UndefinedError as exc:
        raise UserError(f"{where}: {exc.message}; the data has: "
                        f"{', '.join(sorted(context))}") from None
    except (TemplateError, TypeError, ValueError) as exc:
        raise UserError(f"{where}: cannot render ({exc.__class__.__name__}: {exc})") from None


def check_fields(source: str, available, where: str, fix: str = "") -> None:
    """Every field ``source`` names is in ``available``, else one line naming the missing one."""
    missing = sorted(field_names(source, where) - set(available))
    if missing:
        raise UserError(f"{where} names field {missing[0]!r}, which the data lacks; the data "
                        f"has: {', '.join(sorted(available))}{fix}")


def expressions(source: str) -> list[tuple[int, int, str]]:
    """``(start, end, inner text)`` of each ``{{ ... }}`` in ``source``, in order.

    >>> expressions("Q: {{ text }}\\nA: {{label}}")
    [(3, 13, 'text'), (17, 26, 'label')]
    """
    found, offset, start, inner = [], 0, None, []
    for _, kind, value in _ENV.lex(source):
        if kind == "variable_begin":
            start, inner = offset, []
        elif kind == "variable_end":
            found.append((start, offset + len(value), "".join(inner).strip()))
            start = None
        elif start is not None:
            inner.append(value)
        offset += len(value)
    return found


# ---- template and task files: YAML mappings with typed keys ----------------------------------

def read_yaml(path: Path, what: str) -> dict:
    """A YAML file that must hold a mapping (safe loader: data only)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: malformed YAML ({exc.__class__.__name__}); fix the file") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: a {what} file holds a mapping of keys (key: value), "
                        f"not a {type(data).__name__}")
    return data



def describe(hint) -> str:
    """A type hint in words, for errors about a YAML key."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is bool:
        return "true or false"
    if hint in (int, float, str):
        return {int: "an integer", float: "a number", str: "a string"}[hint]
    if origin is Literal:
        return "one of " + ", ".join(map(str, args))
    if origin is list:
        return f"a list of {describe(args[0]).split(' ', 1)[-1]}s" if args else "a list"
    if origin is dict or hint is dict:
        return "a mapping (key: value)"
    if origin in (Union, types.UnionType):
        return " or ".join(describe(a) for a in args if a is not type(None))
    if hasattr(hint, "__metadata__"):
        return describe(args[0])
    return getattr(hint, "__name__", str(hint))


def matches(value, hint) -> bool:
    """Whether a YAML value fits a type hint (``None`` fits an optional one)."""
    origin, args = get_origin(hint), get_args(hint)
    if value is None:
        return hint is type(None) or type(None) in args
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is Literal:
        return value in args
    if origin is list:
        return isinstance(value, list) and all(matches(v, args[0]) for v in value)
    if origin is dict or hint is dict:
        return isinstance(value, dict) and (not args or all(
            matches(k, args[0]) and matches(v, args[1]) for k, v in value.items()))
    if origin in (Union, types.UnionType):
        return any(matches(value, a) for a in args)
    if hasattr(hint, "__metadata__"):  # Annotated[str, ...]: the base type
        return matches(value, args[0])
    return isinstance(value, hint)


def check_type(key: str, value, hint, where: str) -> None:
    """One line naming the key and the type it needs, when ``value`` does not fit."""
    if not matches(value, hint):
        raise UserError(f"{where}: {key!r} must be {describe(hint)}, not "
                        f"{type(value).__name__} {value!r}")


def word_map(key: str, value, where: str) -> dict[str, str]:
    """A label -> word mapping from YAML: numeric keys become strings (``0: entailment``).

    >>> word_map("verbalizers", {0: "no", 1: "yes"}, "t.yaml")
    {'0': 'no', '1': 'yes'}
    """
    if not isinstance(value, dict):
        raise UserError(f"{where}: {key!r} must be a mapping of label to word "
                        f"(label: word), not {type(value).__name__} {value!r}")
    out = {}
    for label, word in value.items():
        if isinstance(label, bool) or not isinstance(label, (str, int)):
            raise UserError(f"{where}: {key!r} key {label!r} is not a label; quote it "
                            "(YAML reads yes/no/true/false as booleans): 'yes': ...")
        if not isinstance(word, (str, int, float)) or isinstance(word, bool):
            raise UserError(f"{where}: {key!r} maps {label!r} to {word!r}; give a word (string)")
        out[str(label)] = str(word)
    return out
