"""Multi-process evaluation: episodes sharded over processes started by ``accelerate launch``.

Run ``accelerate launch --num_processes 4 -m iclmeta eval ...`` on GPUs, or ``torchrun
--nproc_per_node 2 -m iclmeta eval ...`` for CPU processes (accelerate's launcher runs CPU
processes only through ``mpirun``; ``torchrun`` and gloo need nothing extra). Process ``r`` of ``w`` evaluates the episodes ``i`` with ``i % w == r`` and appends its
rows to ``results.rank{r}.jsonl``; after a barrier the main process merges every row into
``results.jsonl`` in the order a single process writes them, so the run folder is the same as a
single-process run with the same seed (up to the ``seconds`` column). accelerate is imported only
when the launcher started several processes (``WORLD_SIZE`` > 1).

>>> proc = Processes.current()
>>> proc.world, proc.is_main
(1, True)
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

RANK_PATTERN = "results.rank*.jsonl"


@dataclass
class Processes:
    """This process's place among the launched ones; ``Processes()`` is a single process."""

    rank: int = 0
    world: int = 1
    state: object = None  # accelerate's PartialState when launched with several processes

    @classmethod
    def current(cls) -> "Processes":
        """Join the launcher's process group when there is one (and pin this process's GPU)."""
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return cls()
        import torch
        from accelerate import PartialState

        # accelerate picks gloo for CPU processes only when told they are CPU processes
        cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true") or not torch.cuda.is_available()
        state = PartialState(cpu=cpu)
        if state.device.type == "cuda":
            # models loaded with device "auto" go to "cuda", i.e. this process's own GPU
            torch.cuda.set_device(state.device)
        return cls(state.process_index, state.num_processes, state)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def owns(self, episode_index: int) -> bool:
        """Whether this process evaluates the episode at this position of the run's episodes."""
        return episode_index % self.world == self.rank

    def barrier(self) -> None:
        if self.state is not None:
            self.state.wait_for_everyone()

    def share(self, value):
        """The main process's ``value``, on every process (each must call this at the same
        point; the others' ``value`` is ignored)."""
        if self.state is None:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def rank_file(self) -> str:
        return f"results.rank{self.rank}.jsonl"


def canonical_order(rows: list[dict], order: list[tuple]) -> list[dict]:
    """Rows sorted by their ``(method, shots, episode)`` position in ``order``; unknown keys last.

    >>> canonical_order([{"method": "a", "shots": 1, "episode": 1}, {"method": "a", "shots": 1,
    ...                  "episode": 0}], [("a", 1, 0), ("a", 1, 1)])[0]["episode"]
    0
    """
    position = {key: i for i, key in enumerate(order)}
    key = lambda r: position.get((r["method"], r["shots"], r["episode"]), len(position))  # noqa: E731
    return sorted(rows, key=key)


def merge_rank_files(out: Path, rows: list[dict], order: list[tuple], load) -> list[dict]:
    """Fold every ``results.rank*.jsonl`` into ``results.jsonl`` (canonical order) and delete them.

    ``rows`` are those already in ``results.jsonl``; ``load(path)`` reads a results file,
    dropping a torn last line. Runs on the main process only, while the others wait.
    """
    from iclmeta.io import write_atomic

    parts = sorted(out.glob(RANK_PATTERN))
    if not parts:
        return rows
    seen = {(r["method"], r["shots"], r["episode"]) for r in rows}
    merged = list(rows)
    for part in parts:
        for row in load(part):
            if (row["method"], row["shots"], row["episode"]) not in seen:
                seen.add((row["method"], row["shots"], row["episode"]))
                merged.append(row)
    merged = canonical_order(merged, order)
    write_atomic(out / "results.jsonl", "".join(json.dumps(r) + "\n" for r in merged))
    for part in parts:
        part.unlink()
    return merged
