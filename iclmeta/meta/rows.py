"""Many tasks' LoRA fast weights in one forward pass: each prompt row uses its own task's weights.

``LoraLM.logits`` swaps one set of fast weights into the model (``functional_call``). Here the
fast weights are stacked, one slice per task (``[T, *shape]``), and every prompt of the batch
names its task (``row_task``). A forward hook on each LoRA layer adds that row's low-rank update

    out[b] += scale * B[task(b)] @ A[task(b)] @ x[b]

to the frozen layer's output, for the rows of whatever pass is running (``iclmeta.lm.rows`` says
which prompts they are). The LoRA tensors stored in the model keep ``B = 0``, so they add
nothing. Rows never mix in a transformer, so the gradient of the summed per-task losses with
respect to the stack is, slice by slice, each task's own gradient: one forward and one backward
adapt every task at once (per-query adaptation in ``retrieve_adapt``, batched meta-training).

A pass shared by every prompt (a common prefix run once) cannot carry per-row weights, so this
scores every prompt whole.

>>> stack = stack_params(lora.initial(), n_tasks=3)                   # doctest: +SKIP
>>> row_logits(lora, stack, torch.tensor([0, 0, 1, 2]), batch).shape  # doctest: +SKIP
torch.Size([4, 5])
"""
from __future__ import annotations

from collections import OrderedDict
from contextlib import contextmanager

import torch

from iclmeta.lm.prefix import score_ids
from iclmeta.lm.rows import current_rows
from iclmeta.meta.adaptation import _leaves, sgd_step
from iclmeta.meta.lora import LoraLM, TaskBatch


def stack_params(params, n_tasks: int) -> "OrderedDict[str, torch.Tensor]":
    """``n_tasks`` copies of ``params`` as one ``[n_tasks, *shape]`` leaf tensor per weight."""
    return OrderedDict((k, v.detach()[None].expand(n_tasks, *v.shape).clone().requires_grad_(True))
                       for k, v in params.items())


def _layers(lora: LoraLM) -> list[tuple[torch.nn.Module, str, str, float]]:
    """``(LoRA layer, A key, B key, scale)`` for every LoRA layer of the spec."""
    out = []
    for key in lora.names:  # "model.<layer path>.lora_A.<adapter>.weight"
        path, found, rest = key.partition(".lora_A.")
        if not found:
            continue
        b_key = f"{path}.lora_B.{rest}"
        layer = lora._scorer.get_submodule(path)
        out.append((layer, key, b_key, float(layer.scaling[lora.spec.adapter_name])))
    return out


@contextmanager
def rows_use(lora: LoraLM, stack, row_task: torch.Tensor):
    """Within the block, prompt ``p`` of a scored batch runs with task ``row_task[p]``'s slice."""
    def hook_for(a_key, b_key, scale):
        def hook(module, args, output):
            rows = current_rows()
            if rows is None:
                raise RuntimeError("per-task LoRA weights need passes that name their rows; a "
                                   "pass shared by every prompt cannot use them")
            task = row_task.to(rows.device)[rows]
            a, b = stack[a_key][task], stack[b_key][task]  # [R, r, in], [R, out, r]
            x = args[0].to(a.dtype)
            low = torch.einsum("rti,rki->rtk", x, a)
            return output + (scale * torch.einsum("rtk,rok->rto", low, b)).to(output.dtype)
        return hook

    handles = [layer.register_forward_hook(hook_for(a, b, scale))
               for layer, a, b, scale in _layers(lora)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def row_logits(lora: LoraLM, stack, row_task: torch.Tensor, batch: TaskBatch) -> torch.Tensor:
    """Label scores ``[P, C]`` of the batch, prompt ``p`` under task ``row_task[p]``'s weights."""
    with rows_use(lora, stack, row_task):
        total = score_ids(lora.model, batch.prompt_ids, [batch.cand_ids] * len(batch), None)
    return batch.label_scores(total)


def task_losses(lora: LoraLM, stack, row_task: torch.Tensor, batch: TaskBatch) -> torch.Tensor:
    """The sum over tasks of each task's mean cross-entropy on its own rows (a scalar): its
    gradient with respect to the stack is every task's own gradient, slice by slice."""
    logits = row_logits(lora, stack, row_task, batch)
    ce = torch.nn.functional.cross_entropy(logits, batch.targets.to(logits.device),
                                           reduction="none")
    rows = row_task.to(ce.device)
    counts = torch.bincount(rows, minlength=int(rows.max()) + 1).to(ce.dtype)
    return (ce / counts[rows]).sum()


def adapt_rows(lora: LoraLM, stack, row_task: torch.Tensor, batch: TaskBatch, steps: int,
               lr: float, losses: list | None = None):
    """``steps`` plain SGD steps for every task at once, each on its own rows of ``batch``.

    Equal, slice by slice, to ``adaptation.adapt`` run on each task alone (tested). ``losses``
    receives the mean over tasks of the loss before each step.
    """
    n_tasks = next(iter(stack.values())).shape[0]
    for _ in range(steps):
        stack = _leaves(stack)
        loss = task_losses(lora, stack, row_task, batch)
        if losses is not None:
            losses.append(float(loss.detach()) / n_tasks)
        stack = sgd_step(stack, torch.autograd.grad(loss, list(stack.values())), lr)
    return _leaves(stack)
