"""Candidate passes on top of a batch of prompts' KV caches (the second half of label scoring).

``packed_logprobs`` lays each prompt's candidates out as a token trie after the prompt and runs
them in one row with a custom attention mask; ``per_candidate_logprobs`` runs one row per
(prompt, candidate) on a copy of the prompt's cache, for models whose sliding-window layers a
custom mask would bypass. Both return the log-probs of candidate tokens 2..n (the first comes
from the prefill's last position).
"""

from __future__ import annotations

import copy

import torch

from iclmeta.lm.rows import passing_rows

# Caps on one candidate pass on CPU: cached key/value rows x prompt length, and logits kept x vocabulary.
CACHE_TOKEN_BUDGET = 8192
LOGIT_BUDGET = 1 << 25


def cache_keyword() -> str:
    """Name of the KV-cache argument/output: ``cache`` in recent transformers, ``past_key_values`` before."""
    from transformers.modeling_outputs import CausalLMOutputWithPast

    return "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"


def model_device(model) -> torch.device:
    return next(model.parameters()).device


def select_cache(cache, index: torch.Tensor):
    """A new cache whose batch rows are ``cache``'s rows at ``index`` (repeats allowed).

    Layers are shallow-copied so per-layer state (e.g. a sliding window's running length) carries
    over, and the source cache itself stays untouched for the next chunk or batch. A layer of
    ``iclmeta.lm.kv.prefixed_cache`` keeps its shared prefix as it is: only the rows' own keys
    are indexed.
    """
    selected = copy.copy(cache)
    selected.layers = []
    for layer in cache.layers:
        new = copy.copy(layer)
        if getattr(layer, "keys", None) is not None and layer.keys.numel():
            new.keys, new.values = layer.keys[index], layer.values[index]
        selected.layers.append(new)
    return selected


def packed_logprobs(model, prefill, cand_ids: list[list[list[int]]]) -> torch.Tensor:
    """Summed log-probs ``[P, C]`` of tokens 2..n of every candidate, all candidates of a prompt in
    one row on top of that prompt's cache (0 for one-token candidates and missing cells).

    A prompt's candidates are merged into a token trie (candidates that start alike share those
    tokens) laid out after the prompt; a mask lets each token see the prompt and its own trie
    ancestors only, and its position is the prompt length plus its depth, so every token is
    computed as in its own sequence, without copying the cache once per candidate. Prompts that
    share one candidate list (the usual case) share one trie and its mask block, built once. A
    trie whose logits exceed the budget (thousands of continuation rows in ``score_pairs``) is
    cut into several rows on the same prompt cache.
    """
    cache, mask, lengths = prefill
    vocab = model.config.get_text_config().vocab_size
    budget = device_token_budget(model) or CACHE_TOKEN_BUDGET
    logit_cap = max(LOGIT_BUDGET, budget)
    units = _units(cand_ids, max(1, logit_cap // vocab), mask.device)
    width = max(len(layout[0]) for _, layout in units)
    out = torch.zeros(len(cand_ids), max(len(c) for c in cand_ids), device=mask.device)
    if width == 0:
        return out
    chunk = max(1, min(budget // (mask.shape[1] + width), logit_cap // (width * vocab)))
    for start in range(0, len(units), chunk):
        part = units[start:start + chunk]
        if not any(len(layout[0]) for _, layout in part):
            continue  # one-token candidates only: scored in the prefill, their cells stay 0
        rows = torch.tensor([p for p, _ in part], device=mask.device)
        with passing_rows(rows):
            logits, lse = _run_trie(model, select_cache(cache, rows), mask[rows], lengths[rows],
                                    [layout for _, layout in part])
        for r, (p, (_, _, _, (node, token, c))) in enumerate(part):
            if len(node):  # log-prob of each picked token: its logit minus the node's log-normalizer
                picked = logits[r, node, token].float() - lse[r, node]
                out = out.index_put((torch.full_like(c, p), c), picked, accumulate=True)
    return out


def _units(cand_ids: list[list[list[int]]], cap: int, device) -> list[tuple[int, tuple]]:
    """``(prompt, trie layout)`` of every candidate-pass row. A prompt whose trie has more than
    ``cap`` nodes (its logits would not fit) gets one row per group of candidates that fits;
    prompts that share one candidate list share its layouts."""
    built: dict[int, list] = {}
    units = []
    for p, cands in enumerate(cand_ids):
        if id(cands) not in built:
            built[id(cands)] = [_layout(_trie([cands[i] for i in group]), group, device)
                                for group in _groups(cands, cap)]
        units += [(p, layout) for layout in built[id(cands)]]
    return units


def _groups(cands: list[list[int]], cap: int) -> list[list[int]]:
    """Candidate indices in order, cut into groups whose tries have at most ``cap`` nodes (a
    candidate longer than that is a group of its own)."""
    groups, seen = [[]], set()
    for c, seq in enumerate(cands):
        nodes = {tuple(seq[:k + 1]) for k in range(len(seq) - 1)}
        if groups[-1] and len(seen | nodes) > cap:
            groups.append([])
            seen = set()
        groups[-1].append(c)
        seen |= nodes
    return groups


def _trie(cands: list[list[int]]):
    """Trie nodes ``(token, depth, parent)`` over each candidate's tokens 1..n-1, and the
    ``(node, next token, candidate)`` picks whose log-probs sum to each candidate's tokens 2..n."""
    index: dict[tuple, int] = {}
    nodes, picks = [], []
    for c, seq in enumerate(cands):
        for k in range(len(seq) - 1):
            key = tuple(seq[:k + 1])
            if key not in index:
                index[key] = len(nodes)
                nodes.append((seq[k], k, index[key[:-1]] if k else -1))
            picks.append((index[key], seq[k + 1], c))
    return nodes, picks


def _layout(trie, group: list[int], device):
    """A trie over the candidates ``group`` as tensors: node tokens, depths, which nodes each node
    sees (itself and its ancestors), and the picks as ``(node, token, candidate)`` index tensors."""
    nodes, picks = trie
    picks = [(node, token, group[c]) for node, token, c in picks]
    sees = torch.eye(len(nodes), dtype=torch.bool)
    for i, (_, _, parent) in enumerate(nodes):
        if parent >= 0:  # a parent precedes its children, so its row is complete
            sees[i] |= sees[parent]
    columns = list(zip(*nodes)) or [(), ()]
    index = [torch.tensor(x, dtype=torch.long, device=device) for x in (list(zip(*picks)) or [(), (), ()])]
    return (torch.tensor(columns[0], dtype=torch.long), torch.tensor(columns[1], dtype=torch.long),
            sees, tuple(index))


def _run_trie(model, cache, prompt_mask, prompt_len, tries):
    """Logits ``[rows, width, V]`` at every trie node, each row on its prompt's cache, and their
    log-normalizers ``[rows, width]`` (float32); padding nodes see only themselves."""
    width, device = max(len(t[0]) for t in tries), prompt_mask.device
    inputs = torch.zeros(len(tries), width, dtype=torch.long)
    depth = torch.zeros(len(tries), width, dtype=torch.long)
    sees = torch.eye(width, dtype=torch.bool).repeat(len(tries), 1, 1)
    for r, (tokens, levels, block, _) in enumerate(tries):
        n = len(tokens)
        inputs[r, :n], depth[r, :n], sees[r, :n, :n] = tokens, levels, block
    allowed = torch.cat([prompt_mask.bool()[:, None, :].expand(-1, width, -1), sees.to(device)], dim=2)
    dtype = next(model.parameters()).dtype
    bias = torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill(~allowed, torch.finfo(dtype).min)
    out = model(input_ids=inputs.to(device), attention_mask=bias[:, None],
                position_ids=prompt_len[:, None] + depth.to(device), use_cache=True,
                **{cache_keyword(): cache})
    return out.logits, torch.logsumexp(out.logits.float(), dim=-1)


def device_token_budget(model, share: float = 0.5) -> int | None:
    """Tokens (rows x length) whose KV cache and activations fill ``share`` of a CUDA device's free
    memory; ``None`` off CUDA, where the fixed budgets keep memory traffic small.

    Counts per token the keys and values of every layer plus one layer's transient activations.
    """
    device = model_device(model)
    if device.type != "cuda":
        return None
    config = model.config.get_text_config()
    elem = next(model.parameters()).element_size()
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    per_token = (2 * config.num_hidden_layers * kv_heads * head_dim
                 + 4 * config.hidden_size + 3 * config.intermediate_size) * elem
    free, _ = torch.cuda.mem_get_info(device)
    return int(share * free // per_token)


def per_candidate_logprobs(model, prefill, row_prompt, seqs: list[list[int]], vocab: int) -> torch.Tensor:
    """Summed log-probs of tokens 2..n of each candidate row, run on top of its prompt's cache."""
    cache, mask, lengths = prefill
    width = max(len(s) for s in seqs) - 1
    budget = device_token_budget(model) or CACHE_TOKEN_BUDGET
    chunk = max(1, min(budget // mask.shape[1], max(LOGIT_BUDGET, budget) // (width * vocab)))
    parts = []
    for start in range(0, len(seqs), chunk):
        index = row_prompt[start:start + chunk]
        with passing_rows(index):
            parts.append(_run_rows(model, select_cache(cache, index), mask[index], lengths[index],
                                   seqs[start:start + chunk], width))
    return torch.cat(parts)


def _run_rows(model, cache, prompt_mask, prompt_len, seqs: list[list[int]], width: int) -> torch.Tensor:
    device = prompt_mask.device
    inputs = torch.zeros(len(seqs), width, dtype=torch.long)
    targets = torch.zeros(len(seqs), width, dtype=torch.long)
    valid = torch.zeros(len(seqs), width, dtype=torch.bool)
    for i, seq in enumerate(seqs):
        n = len(seq) - 1
        inputs[i, :n], targets[i, :n], valid[i, :n] = torch.tensor(seq[:-1]), torch.tensor(seq[1:]), True
    inputs, targets, valid = inputs.to(device), targets.to(device), valid.to(device)
    attention = torch.cat([prompt_mask, valid.long()], dim=1)
    positions = prompt_len[:, None] + torch.arange(width, device=device)[None, :]
    out = model(input_ids=inputs, attention_mask=attention, position_ids=positions,
                use_cache=True, **{cache_keyword(): cache})
    logprobs = torch.log_softmax(out.logits.float(), dim=-1)
    picked = logprobs.gather(-1, targets[..., None]).squeeze(-1)
    return picked.masked_fill(~valid, 0.0).sum(-1)
