"""Data-parallel training across processes (torch.distributed; NCCL on GPUs, gloo on the CPU).

`torchrun` (or `rvclora-train --nproc-per-node N`, which starts the same elastic
launcher) runs one process per device and sets RANK / WORLD_SIZE / LOCAL_RANK.
Each process computes the losses of its share of every global batch; the
gradients of what trains (the adapter, and the discriminator) are summed across
processes and divided by the number of micro-batches in the step, so every
process applies the same update.  The averaging is done here on one flat buffer
per model rather than by wrapping the models in DistributedDataParallel: RVC's
step switches the discriminator's `requires_grad` off for the generator's
pass and an epoch's last batch may leave some processes without work, neither of
which DDP's reducer accepts, and the trainable tensors of a LoRA run are small.
"""

from __future__ import annotations

import datetime
import os
import sys
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist

# Preprocessing a large folder happens between two collective calls: allow for it.
_TIMEOUT = datetime.timedelta(hours=4)


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (rank 0 writes every file)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def share(self, items: Sequence) -> list:
        """This process's share of `items` (round robin, so shares differ by one at most)."""
        return list(items[self.rank :: self.size])

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def sum_(self, t: torch.Tensor) -> torch.Tensor:
        """In-place sum over processes (a no-op alone)."""
        if self.distributed:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def broadcast_(self, tensors: Iterable[torch.Tensor]) -> None:
        """Make every process hold rank 0's values (as DDP does at its start)."""
        if self.distributed:
            for t in tensors:
                dist.broadcast(t.data, src=0)


def world_from_env() -> World:
    """The world torchrun describes in the environment (a single process when it is absent)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    return World(int(os.environ.get("RANK", "0")), size, int(os.environ.get("LOCAL_RANK", "0")))


def start(world: World, device: torch.device) -> torch.device:
    """Join the process group; returns the device this process trains on (its own GPU)."""
    if not world.distributed:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=_TIMEOUT)
    return device


def stop(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def average_gradients(world: World, params: Sequence[torch.nn.Parameter], n_micro: int) -> None:
    """Sum each parameter's gradient over processes and divide by the step's micro-batches.

    Gradients were accumulated from micro-batch losses that were NOT divided, so the
    result is the mean over micro-batches whichever process ran them.  A process that
    ran none contributes zeros.
    """
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    world.sum_(flat)
    flat.div_(n_micro)
    i = 0
    for p, g in zip(params, grads, strict=True):
        n = g.numel()
        p.grad = flat[i : i + n].view_as(p).clone() if p.grad is None else p.grad.copy_(flat[i : i + n].view_as(p))
        i += n


def launch(argv: Sequence[str], nproc: int, module: str) -> int:
    """Run `python -m module argv...` in `nproc` processes on this machine, as `torchrun
    --standalone --nproc-per-node nproc` does; returns the first failing exit code, or 0."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError  # noqa: PLC0415 - launcher only
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch  # noqa: PLC0415 - launcher only

    config = LaunchConfig(
        min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=str(uuid.uuid4()), rdzv_backend="c10d",
        rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.2, start_method="spawn",
    )
    try:
        elastic_launch(config, sys.executable)("-u", "-m", module, *argv)
    except ChildFailedError as e:
        codes = [f.exitcode for f in e.failures.values()]
        return next((c for c in codes if c), 1)
    return 0
