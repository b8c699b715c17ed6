"""Per-task fast weights in one pass (meta/rows.py) equal each task run alone."""
import pytest

from test_lora import CLASSES, EXAMPLES, batch_of, randomized, setup  # noqa: F401 (fixture)

# three tasks over the six examples; example 0 sits in two tasks
TASK_ROWS = [[0, 1, 2], [3, 4], [5, 0]]


def _flat():
    index = [i for rows in TASK_ROWS for i in rows]
    tasks = [t for t, rows in enumerate(TASK_ROWS) for _ in rows]
    return index, tasks


def test_each_row_is_scored_with_its_own_tasks_weights(setup):  # noqa: F811
    import torch
    from iclmeta.meta.lora import pick_rows
    from iclmeta.meta.rows import row_logits, stack_params
    _, _, _, lora = setup
    per_task = [randomized(lora.initial(), seed=s) for s in (1, 2, 3)]
    stack = stack_params(per_task[0], 3)
    with torch.no_grad():
        for k in stack:
            stack[k].copy_(torch.stack([p[k] for p in per_task]))
    index, tasks = _flat()
    batch = pick_rows(batch_of(setup), index)
    got = row_logits(lora, stack, torch.tensor(tasks), batch)
    for row, (i, t) in enumerate(zip(index, tasks)):
        alone = lora.logits(per_task[t], pick_rows(batch_of(setup), [i]))
        torch.testing.assert_close(got[row], alone[0], rtol=1e-5, atol=1e-5)
    # the tasks really differ: the same example under two tasks' weights scores differently
    assert not torch.allclose(got[0], got[-1])


@pytest.mark.parametrize("normalize", [True, False])
def test_batched_adaptation_equals_adapting_each_task_alone(setup, normalize):  # noqa: F811
    import torch
    from iclmeta.meta.adaptation import adapt
    from iclmeta.meta.lora import pick_rows
    from iclmeta.meta.rows import adapt_rows, stack_params
    _, _, _, lora = setup
    init = randomized(lora.initial(), seed=4, scale=0.2)
    index, tasks = _flat()
    full = batch_of(setup, normalize=normalize)
    losses = []
    adapted = adapt_rows(lora, stack_params(init, 3), torch.tensor(tasks),
                         pick_rows(full, index), steps=2, lr=0.5, losses=losses)
    alone_first = []
    for t, rows in enumerate(TASK_ROWS):
        per_loss = []
        expected = adapt(lora, init, pick_rows(full, rows), steps=2, lr=0.5, losses=per_loss)
        alone_first.append(per_loss[0])
        for k, v in expected.items():
            torch.testing.assert_close(adapted[k][t], v, rtol=1e-4, atol=1e-6)
        moved = sum(float((adapted[k][t] - init[k]).detach().abs().sum()) for k in init)
        assert moved > 0  # the steps did something
    assert losses[0] == pytest.approx(sum(alone_first) / 3, rel=1e-5)


def test_a_pass_shared_by_every_prompt_is_refused(setup):  # noqa: F811
    import torch
    from iclmeta.lm.prefix import shared_prefix
    from iclmeta.meta.rows import rows_use, stack_params
    model, _, _, lora = setup
    batch = batch_of(setup)
    with rows_use(lora, stack_params(lora.initial(), 2), torch.tensor([0, 1] * 3)):
        with pytest.raises(RuntimeError, match="pass shared by every prompt"):
            shared_prefix(model, batch.prompt_ids, min_tokens=1)
    # outside the block the model is the base model again (no hook left behind)
    assert shared_prefix(model, batch.prompt_ids, min_tokens=1) is not None


def test_neighbour_meta_gradient_is_the_mean_of_per_query_fomaml(setup):  # noqa: F811
    """NeighbourMAML: each query a task adapting on its neighbours; first-order, averaged."""
    import torch
    from iclmeta.meta.maml import task_meta_gradient
    from iclmeta.meta.neighbours import NeighbourMAML, NeighbourTask
    from iclmeta.meta.lora import pick_rows
    _, _, _, lora = setup
    params = randomized(lora.initial(), seed=5, scale=0.2)
    full = batch_of(setup)
    support, query = pick_rows(full, [0, 1, 2, 3]), pick_rows(full, [4, 5])
    near = [[1, 3], [2, 0]]
    task = NeighbourTask(support, query, near)
    loss, grads = NeighbourMAML(inner_steps=2, inner_lr=0.5).outer_grads(lora, params, [task])
    expected, losses = None, []
    for q, rows in enumerate(near):
        q_loss, q_grads = task_meta_gradient(lora, params, pick_rows(support, rows),
                                             pick_rows(query, [q]), 2, 0.5, first_order=True)
        losses.append(float(q_loss))
        expected = list(q_grads) if expected is None else [e + g for e, g in zip(expected, q_grads)]
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want / 2, rtol=1e-4, atol=1e-6)
    assert loss == pytest.approx(sum(losses) / 2, rel=1e-5)
    assert any(float(g.abs().sum()) > 0 for g in grads)


def test_a_large_support_adapts_in_chunks_to_the_same_gradient(setup):  # noqa: F811
    import torch
    from iclmeta.meta.adaptation import loss_and_grads
    _, _, _, lora = setup
    params = randomized(lora.initial(), seed=6, scale=0.2)
    batch = batch_of(setup)
    whole_loss, whole = loss_and_grads(lora, params, batch, rows=len(batch))
    part_loss, parts = loss_and_grads(lora, params, batch, rows=4)  # chunks of 4 and 2 prompts
    assert float(part_loss) == pytest.approx(float(whole_loss), rel=1e-5)
    for a, b in zip(parts, whole):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert any(float(g.abs().sum()) > 0 for g in whole)
