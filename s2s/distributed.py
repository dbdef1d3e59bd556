"""Data-parallel training under torchrun: one process per device, DistributedDataParallel in between.

    torchrun --nproc_per_node 2 -m s2s.cli train --config configs/en-de.toml

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK and the rendezvous; `setup` joins the group (gloo on CPU, nccl on
CUDA, one GPU per process). Every rank builds the same global batches (same data, same seed: `batch_tokens`
is the global batch) and trains on its own slice of each, `shard`: examples r, r + N, r + 2N ... of a batch
sorted by length. DDP averages the gradients; each rank's loss is weighted by its share of the batch's
target tokens, so the average is exactly the gradient of the global batch's mean loss, the one a single
process computes. Only rank 0 evaluates, writes and prints; what it decides (the scores that drive early
stopping and the learning-rate schedule) is broadcast, and after every update all ranks agree on whether
to stop (a cancel on any rank, the time limit), so no rank waits for one that has left.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Sequence

import torch
import torch.distributed as dist

TIMEOUT = timedelta(minutes=30)  # a collective that waits longer (a rank stuck, not dead) fails the job


@dataclass(frozen=True)
class Group:
    """This process's place in the job; Group() is a single process and every collective is a no-op."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def broadcast(self, obj: Any) -> Any:
        """rank 0's `obj` on every rank (pickled over the process group, which only our own ranks join)."""
        if not self.active:
            return obj
        box = [obj if self.main else None]
        dist.broadcast_object_list(box, src=0, device=self.device if self.device.type == "cuda" else None)
        return box[0]

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sum over ranks."""
        if not self.active:
            return list(values)
        tensor = torch.tensor(list(values), dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor.tolist()


def launched() -> bool:
    """True inside a torchrun job of more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: torch.device) -> Group:
    """Join the torchrun job (if this is one): gloo on CPU, nccl with one GPU per process on CUDA."""
    if not launched():
        return Group(device=device)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", timeout=TIMEOUT, device_id=device)
    else:
        dist.init_process_group("gloo", timeout=TIMEOUT)
    return Group(rank, world, local_rank, local_world, device)


def teardown(group: Group) -> None:
    if group.active and dist.is_initialized():
        dist.destroy_process_group()


def shard(examples: Sequence, group: Group) -> tuple[list, float]:
    """This rank's slice of a global batch and the weight of its mean loss.

    weight = (its target tokens / the batch's) × world size: DDP divides the summed gradients by the world
    size, so the result is the gradient of the whole batch's per-token mean. A rank left with no example (a
    batch of fewer sentences than ranks) trains on one with weight 0, so that it still joins the all-reduce.
    """
    if not group.active:
        return list(examples), 1.0
    mine = list(examples[group.rank::group.world])
    if not mine:
        return [examples[0]], 0.0
    total = sum(len(t) + 1 for _, t in examples)
    return mine, sum(len(t) + 1 for _, t in mine) * group.world / total


@contextlib.contextmanager
def stop_signals_set(cancel: threading.Event):
    """While inside: SIGINT and SIGTERM (Ctrl-C; what a scheduler, or torchrun to its workers, sends) set
    `cancel`, so training finishes the current update, saves the resume state and returns (in a job the
    ranks agree on it first). A second SIGINT stops at once. The old handlers come back on leaving; off the
    main thread, where Python cannot install handlers, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum, frame) -> None:
        if cancel.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        cancel.set()

    saved = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


class LossModule(torch.nn.Module):
    """model.loss as a forward(): DDP synchronises gradients of what runs through its forward()."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, src, src_lengths, tgt_in, tgt_out, label_smoothing: float = 0.0):
        return self.model.loss(src, src_lengths, tgt_in, tgt_out, label_smoothing=label_smoothing)


def wrap(model: torch.nn.Module, group: Group) -> torch.nn.Module:
    """A module whose forward() is the training loss: DDP-wrapped in a job (which also copies rank 0's
    weights to every rank), the plain loss otherwise."""
    module = LossModule(model)
    if not group.active:
        return module
    from torch.nn.parallel import DistributedDataParallel
    return DistributedDataParallel(module, device_ids=[group.device.index] if group.device.type == "cuda" else None)
