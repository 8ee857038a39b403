"""Distributed setup for ``torchrun``: NCCL on GPU, gloo on CPU; rank 0 logs and saves."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def world_size_from_env() -> int:
    """The number of processes ``torchrun`` starts (``WORLD_SIZE``; 1 without torchrun), before joining."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_distributed(device: str | None = None) -> DistInfo:
    """Join the process group that ``torchrun`` describes in the environment (or run alone).

    Args:
        device: ``cuda``/``cpu``; default CUDA when available.
    """
    world_size = world_size_from_env()
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        target = torch.device("cuda", local_rank)
    else:
        target = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(
            backend="nccl" if use_cuda else "gloo",
            rank=rank,
            world_size=world_size,
            timeout=timedelta(minutes=30),
        )
    return DistInfo(rank, world_size, local_rank, target)


def barrier(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.barrier()


def mean_across(value: float, info: DistInfo) -> float:
    """The mean of a scalar over all processes."""
    return means_across([value], info)[0]


def means_across(values: Sequence[float], info: DistInfo) -> list[float]:
    """The mean over all processes of each of ``values`` (one collective call for all of them)."""
    if not info.enabled:
        return [float(value) for value in values]
    tensor = torch.tensor(list(values), dtype=torch.float64, device=info.device)
    dist.all_reduce(tensor)
    return [float(total) / info.world_size for total in tensor.tolist()]


def shard_indices(count: int, rank: int, world_size: int) -> range:
    """The items ``0..count-1`` that process ``rank`` handles: every ``world_size``-th from ``rank``.

    Deterministic; every item goes to exactly one process; shares differ by at most one item (a
    process may get none when there are fewer items than processes).
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not one of {world_size} processes")
    return range(rank, count, world_size)


def gather_objects(value: Any, info: DistInfo) -> list[Any]:
    """``value`` of every process, in rank order, on every process (picklable values)."""
    if not info.enabled:
        return [value]
    gathered: list[Any] = [None] * info.world_size
    dist.all_gather_object(gathered, value)
    return gathered


def any_across(flag: bool, info: DistInfo) -> bool:
    """True if ``flag`` is set on any process (e.g. a stop request)."""
    if not info.enabled:
        return flag
    tensor = torch.tensor([1.0 if flag else 0.0], device=info.device)
    dist.all_reduce(tensor)
    return bool(tensor.item() > 0)


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
