"""Task files: a dataset, its fields, its prompt and its defaults, saved once and run by name.

A task is a YAML file (``prompts/tasks/NAME.yaml`` for the shipped ones, or any path)::

    description: "my NLI data"            # one line for 'iclmeta ls tasks'
    dataset: nli                           # a builtin, a file, a hub id (+ hf_config), or a name
    data_files: {train: train.csv, test: test.csv}   # per-split files, relative to this file
    input_fields: [premise, hypothesis]    # (or text_field); several make multi-field examples
    label_field: gold
    verbalizers: {0: entailment, 1: neutral, 2: contradiction}
    instruction: "Does the premise entail the hypothesis?"
    demo: "{{premise}}\\nQuestion: {{hypothesis}}?\\nAnswer: {{label}}"
    query: "{{premise}}\\nQuestion: {{hypothesis}}?\\nAnswer:"
    scoring: calibrated                    # default scoring; class_split, embed_template too

``template`` names a template (or holds one inline); the template keys beside it
(``instruction``, ``demo``, ``verbalizers``, ...) override parts of it. ``task_values`` turns a
task into config values: the CLI puts the user's flags on top, and the run's ``config.yaml``
records the values (the template itself, not just a name), so a rerun needs no task file.

>>> values = task_values("presup-nli", EvalConfig)
>>> values["dataset"], values["text_field"], values["template"], values["task"]
('presup-nli', ['premise', 'hypothesis'], 'nli', 'presup-nli')
>>> EvalConfig.from_dict({**values, "methods": ["icl"]}).template
'nli'
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import get_type_hints

from iclmeta.config import EvalConfig
from iclmeta.config.fields import literal_choices
from iclmeta.config.source import DataSource
from iclmeta.errors import UserError
from iclmeta.prompts import TEMPLATE_DIRS, Template, load_template, template_for, template_from
from iclmeta.templating import check_type, read_yaml, word_map

TASK_DIRS = tuple(d / "tasks" for d in TEMPLATE_DIRS)
# Config fields a task may set: the data source, plus these defaults.
CONFIG_KEYS = tuple(f.name for f in fields(DataSource) if f.name != "task") + (
    "template", "scoring", "class_split")
TEMPLATE_KEYS = tuple(f.name for f in fields(Template) if f.name not in ("name", "description"))
ALIASES = {"input_fields": "text_field"}
KEYS = ("name", "description") + CONFIG_KEYS + TEMPLATE_KEYS + tuple(ALIASES)


@dataclass
class Task:
    """A loaded task: its name, one-line description and the config values it resolves to."""

    name: str
    description: str
    values: dict


def list_tasks() -> list[str]:
    return sorted({p.stem for d in TASK_DIRS if d.is_dir() for p in d.glob("*.yaml")})


def task_path(spec: str) -> Path:
    """The file of task ``spec``: a path, or a shipped task's name (a typo gets suggestions)."""
    path = Path(spec).expanduser()
    if path.suffix.lower() in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise UserError(f"task file {spec} not found; check the path")
        return path
    shipped = next((d / f"{spec}.yaml" for d in TASK_DIRS if (d / f"{spec}.yaml").is_file()), None)
    if shipped is None:
        close = difflib.get_close_matches(spec, list_tasks(), n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        raise UserError(f"unknown task {spec!r}; {hint}shipped tasks: {', '.join(list_tasks())} "
                        "('iclmeta ls tasks'), or pass a task YAML file")
    return shipped


def load_task(spec: str) -> Task:
    """Read and check a task file (see the module docstring): one line per problem."""
    path = task_path(spec)
    data, where = read_yaml(path, "task"), str(path)
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        close = difflib.get_close_matches(unknown[0], KEYS, n=1)
        raise UserError(f"{where}: unknown task key {unknown[0]!r}"
                        f"{f' (did you mean {close[0]!r}?)' if close else ''}; allowed: "
                        f"{', '.join(KEYS)}")
    named = {}  # config field -> the key the file used for it, for errors
    for alias, key in ALIASES.items():
        if alias in data and key in data:
            raise UserError(f"{where}: give {alias!r} or {key!r}, not both")
        if alias in data:
            data[key], named[key] = data.pop(alias), alias
    name = data.pop("name", path.stem)
    description = data.pop("description", "")
    for key, value in (("name", name), ("description", description)):
        check_type(key, value, str, where)
    values = _config_values(data, path.parent, where, named)
    template = _template(data, values.get("dataset", DataSource.dataset), name, where)
    if template is not None:
        values["template"] = template
    return Task(name, description, values)


def _config_values(data: dict, folder: Path, where: str, named: dict) -> dict:
    hints = get_type_hints(EvalConfig)
    values = {k: v for k, v in data.items() if k in CONFIG_KEYS and k != "template"}
    if isinstance(values.get("text_field"), str):  # "premise,hypothesis" as the flag takes it
        values["text_field"] = [n.strip() for n in values["text_field"].split(",") if n.strip()]
    for key, value in values.items():
        check_type(named.get(key, key), value, hints[key], where)
    if isinstance(values.get("data_files"), dict):
        values["data_files"] = {str(split): _beside(folder, str(file), f"{where}: data_files "
                                                    f"{split}") for split, file in
                                values["data_files"].items()}
    dataset = values.get("dataset")
    if isinstance(dataset, str) and (folder / dataset).is_file() and not Path(dataset).is_absolute():
        values["dataset"] = str(folder / dataset)
    return values


def _beside(folder: Path, file: str, where: str) -> str:
    """A data file named in a task: relative to the task file, else to the working folder."""
    candidates = [Path(file).expanduser()] if Path(file).is_absolute() else [folder / file,
                                                                              Path(file)]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        raise UserError(f"{where} = {file}: file not found (looked beside the task file and in "
                        "the working folder); fix the path")
    return str(found)


def _template(data: dict, dataset: str, task_name: str, where: str):
    """The task's template: a shipped name as it is, or the whole template as a mapping when
    the task writes one inline or overrides part of one."""
    base = data.get("template")
    check_type("template", base, str | dict | None, where)
    overrides = {k: data[k] for k in TEMPLATE_KEYS if k in data}
    if "verbalizers" in overrides:
        overrides["verbalizers"] = word_map("verbalizers", overrides["verbalizers"], where)
    if not overrides and not isinstance(base, dict):
        if base is not None:
            load_template(base)  # an unknown name fails here, before any run
        return base
    if isinstance(base, dict):
        content = base
    else:
        name = base or template_for(None, Path(str(dataset)).name)
        content = load_template(name).to_dict()
    merged = {**content, **overrides, "name": task_name}
    merged.pop("description", None)
    resolved = template_from(merged, where, task_name).to_dict()  # checked now, not at a run
    resolved.pop("description")
    return resolved


def task_values(spec: str, config_cls=EvalConfig) -> dict:
    """The config values task ``spec`` sets for ``config_cls`` (fields it lacks are left out;
    a default scoring it cannot use, too), plus ``task``: the task's name."""
    task = load_task(spec)
    hints = get_type_hints(config_cls)
    out = {}
    for key, value in task.values.items():
        if key not in hints:
            continue
        choices = literal_choices(hints[key])
        if key == "scoring" and choices and value not in choices:
            continue  # e.g. a calibrated default for LoRA meta-training (direct or normalized)
        out[key] = value
    out["task"] = task.name
    return out


def task_config(config_cls, spec: str, **overrides):
    """A config from task ``spec`` with ``overrides`` on top: the library form of ``--task``.

    >>> task_config(EvalConfig, "trec", methods=["icl"], shots=[0, 1]).template
    'question'
    """
    values = {**task_values(spec, config_cls), **overrides}
    # EvalConfig checks its values in from_dict; the training configs in their validate().
    return config_cls.from_dict(values) if config_cls is EvalConfig else config_cls(**values)


def describe_file(path: Path) -> str:
    """A template or task file's one line: its ``description``, else its first comment line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return ""
    for line in lines:
        if line.startswith("description:"):
            return line.split(":", 1)[1].strip().strip("\"'")
    return next((line.lstrip("# ").strip() for line in lines if line.startswith("#")), "")
