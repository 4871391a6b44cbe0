"""Multi-process training with torchrun + DistributedDataParallel.

``torchrun --nproc-per-node N -m cnnlab train ...`` sets RANK/WORLD_SIZE/LOCAL_RANK; everything else is
the same command. Each rank holds the (small, in-memory) dataset and takes every world_size-th sample of
each global micro-batch (see ``accumulate.plan_epoch``). Only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from cnnlab.errors import UserError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_kind: str) -> DistInfo:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    gpus = torch.cuda.device_count() if device_kind == "cuda" else 0
    if device_kind == "cuda" and local_rank >= gpus:
        # each local rank drives GPU number local_rank; past the last one CUDA says only "invalid device ordinal"
        raise UserError(f"torchrun started local rank {local_rank}, but this node has {gpus} CUDA GPU(s): use "
                        f"--nproc-per-node {gpus} (one process per GPU), or --device cpu")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_kind == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank)


def gather_to_main(info: DistInfo, obj: object) -> list | None:
    """Every rank's ``obj`` on rank 0, in rank order (None on the others); ``[obj]`` in one process."""
    if not info.enabled:
        return [obj]
    out: list | None = [None] * info.world_size if info.is_main else None
    dist.gather_object(obj, out, dst=0)
    return out


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def broadcast_flag(info: DistInfo, flag: bool, device: torch.device) -> bool:
    """Rank 0's decision (e.g. early stop) for every rank."""
    if not info.enabled:
        return flag
    t = torch.tensor([1 if flag else 0], device=device)
    dist.broadcast(t, 0)
    return bool(t.item())


def broadcast_value(info: DistInfo, value: float, device: torch.device) -> float:
    """Rank 0's number (e.g. seconds of a time budget spent) for every rank."""
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(t, 0)
    return float(t.item())
