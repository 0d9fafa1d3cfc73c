"""Process-group set-up from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK).

Single-process runs need nothing; under torchrun the backend is NCCL on CUDA and gloo on CPU.
Multi-node runs use torchrun's rendezvous (``--nnodes``, ``--rdzv-endpoint``) or SLURM + torchrun.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from zeroseg.errors import ZeroSegError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def rank_and_world() -> tuple[int, int]:
    """(rank, world size): from the process group when joined, else from torchrun's environment."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def select_device(name: str | torch.device | None, local_rank: int = 0) -> torch.device:
    """``auto`` (or None) = this process's CUDA device when available, else CPU; anything else is
    checked to exist here (a one-line error for ``bogus``, or ``cuda`` without a GPU)."""
    if isinstance(name, torch.device):
        name = str(name)
    if name is None or name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if not isinstance(name, str):
        raise ZeroSegError(f"device {name!r} is not a device name (cpu, cuda, cuda:N, mps)")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ZeroSegError(f"device {name!r} is not a device (cpu, cuda, cuda:N, mps)") from None
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if device.index >= count:
            raise ZeroSegError(f"device {name!r} does not exist here ({count} CUDA devices)")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ZeroSegError(f"device {name!r} is not available on this machine")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ZeroSegError(f"device {name!r} is not supported (cpu, cuda, cuda:N, mps)")
    return device


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group when launched by torchrun; a no-op otherwise."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        restart = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
        if restart == 0:
            dist.init_process_group(backend=backend)
        else:
            # a job torchrun restarted (--max-restarts) after a rank died: the store can still
            # hold the dead attempt's addresses, so this attempt's keys get their own prefix
            from torch.distributed.rendezvous import rendezvous

            store, _, _ = next(rendezvous("env://"))
            store = dist.PrefixStore(f"zeroseg/attempt_{restart}", store)
            dist.init_process_group(backend, store=store, rank=rank, world_size=world_size)
    return DistInfo(rank, world_size, local_rank)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_reduce_mean(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Average a tensor over ranks (returns the input on a single process)."""
    if info.enabled:
        values = values.clone()
        dist.all_reduce(values)
        values /= info.world_size
    return values


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
