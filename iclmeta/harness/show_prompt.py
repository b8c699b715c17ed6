"""See what the model sees: the exact prompt a prompting method builds for one query.

``render_prompt`` samples the same episodes as ``evaluate`` with the same config, so the prompt
it returns is the one an eval run scores (``iclmeta eval --log-prompts`` stores them all).

>>> from iclmeta.config import EvalConfig
>>> cfg = EvalConfig(methods=["retrieval"], dataset="trec", shots=[4])
>>> shown = render_prompt(cfg, episode=0, query=3)  # doctest: +SKIP
>>> print(format_prompt(shown))  # doctest: +SKIP
"""
from __future__ import annotations

import json

from iclmeta.config import EvalConfig
from iclmeta.data.episodes import shot_key
from iclmeta.errors import UserError

PROMPTING = ("zero-shot", "icl", "retrieval", "instruct")


def render_prompt(config: EvalConfig, episode: int = 0, query: int = 0,
                  shots: int | None = None) -> dict:
    """The prompt(s), demonstration ids and candidates for query ``query`` of episode ``episode``.

    ``shots`` must be one of ``config.shots`` (default: the largest). Returns a dict with
    ``prompt`` (text; for channel scoring one text per label), ``messages`` (chat methods),
    ``candidates`` (the scored continuations), ``demo_ids`` and ``demos_dropped``.
    """
    from iclmeta.harness.evaluate import ZERO_SHOT_ONLY, prepare
    from iclmeta.harness.evaluate import resolve_shots
    from iclmeta.harness.registry import build_method
    from iclmeta.harness.resources import Resources

    name = config.methods[0] if config.methods else "retrieval"
    if name not in PROMPTING:
        raise UserError(f"'iclmeta prompt' shows prompting methods; choose one of: "
                        f"{', '.join(PROMPTING)}")
    shots = max(config.shots, key=shot_key) if shots is None else shots
    if shots not in config.shots:
        raise UserError(f"--at {shots} is not one of --shots {config.shots}; pick one of them")
    shots = 0 if name in ZERO_SHOT_ONLY else shots
    ds, _, episodes = prepare(config)
    ep = _pick(episodes, episode, "--episode")
    q = _pick(ep.query, query, "--query")
    method = build_method(name, Resources(config, ds))
    method.fit()
    given, shots = shots, resolve_shots(ep, shots)
    method.source.prepare(ep, shots)
    plan = method.plan(ep, shots, q)
    shown = {"method": name, "dataset": ds.name, "episode": ep.id, "query": query,
             "query_id": q.id, "gold": q.label, "shots": given, "scoring": config.scoring,
             "labels": list(ep.classes), "demo_ids": plan.demo_ids,
             "demos_dropped": plan.dropped, "messages": plan.messages, "prompt": plan.shown(),
             "template": method.res.builder.template.name}
    shown["candidates"] = [c for _, c in plan.channel] if plan.channel else plan.candidates
    if plan.content_free:
        shown["content_free_prompts"] = plan.content_free
    return shown


def _pick(items, index: int, flag: str):
    if not 0 <= index < len(items):
        raise UserError(f"{flag} {index} is out of range; choose 0..{len(items) - 1}")
    return items[index]


def format_prompt(shown: dict) -> str:
    """Human-readable form of ``render_prompt``'s dict: header lines, then the exact text."""
    lines = [f"# method {shown['method']}, {shown['dataset']} episode {shown['episode']}, "
             f"query {shown['query']} (id {shown['query_id']}, gold {shown['gold']}), "
             f"{shown['shots']}-shot, scoring {shown['scoring']}",
             f"# template: {shown.get('template', '-')}",
             f"# demonstrations ({len(shown['demo_ids'])}, dropped to fit the window: "
             f"{shown['demos_dropped']}): {' '.join(shown['demo_ids']) or '-'}",
             f"# candidates: {json.dumps(shown['candidates'])}"]
    if shown["messages"] is not None:
        lines += ["# chat messages:", json.dumps(shown["messages"], indent=1, ensure_ascii=False),
                  "# rendered through the chat template:"]
    prompts = shown["prompt"] if isinstance(shown["prompt"], list) else [shown["prompt"]]
    for label, text in zip(shown["labels"] if len(prompts) > 1 else [None], prompts):
        lines.append(f"# ---- prompt{'' if label is None else f' for label {label}'} "
                     "(ends where the scored continuation starts) ----")
        lines.append(text)
    lines.append("# ---- end ----")
    return "\n".join(lines)
