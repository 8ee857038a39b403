"""Batches on several GPUs or nodes under ``torchrun``: which inputs and device a rank takes, and the
end-of-batch exchange of counts.

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` (and ``MASTER_ADDR``/``MASTER_PORT``). With
``WORLD_SIZE`` > 1, rank r takes inputs r, r+W, r+2W, ... of the sorted list, runs on ``cuda:LOCAL_RANK``
when the device is ``auto`` or ``cuda`` and CUDA exists, and at the end the ranks gather their counts so
that rank 0 prints the whole batch's summary and every rank returns the same exit code.

The exchange uses the ``gloo`` backend on every device: it moves three integers per rank, for which NCCL
would only add a CUDA communicator (GPU memory and start-up time) and no speed. Its timeout is long
(:data:`EXCHANGE_TIMEOUT`) because a rank that finishes early waits there for the others.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from UniversalSegLib.cli.exit_codes import CliError, ExitCode

logger = logging.getLogger("UniversalSegLib.cli")

EXCHANGE_TIMEOUT = datetime.timedelta(days=7)
Item = TypeVar("Item")


@dataclass(frozen=True)
class RankInfo:
    """This process's place in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> RankInfo:
        """``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` as torchrun sets them (one process when absent).

        Raises:
            CliError: the values are not integers or out of range (exit code 2).
        """
        environ = os.environ if environ is None else environ
        try:
            world_size = int(environ.get("WORLD_SIZE", "1"))
            rank = int(environ.get("RANK", "0"))
            local_rank = int(environ.get("LOCAL_RANK", str(rank)))
        except ValueError as exc:
            raise CliError(
                f"RANK, WORLD_SIZE and LOCAL_RANK must be integers: {exc}", ExitCode.USAGE
            ) from exc
        if world_size < 1 or not 0 <= rank < world_size or local_rank < 0:
            raise CliError(
                f"RANK={rank}, WORLD_SIZE={world_size}, LOCAL_RANK={local_rank} do not fit together; "
                "start the ranks with torchrun",
                ExitCode.USAGE,
            )
        return cls(rank, world_size, local_rank)

    def shard(self, items: Sequence[Item]) -> list[Item]:
        """Items ``rank``, ``rank + W``, ``rank + 2W``, ... of ``items``."""
        return list(items[self.rank :: self.world_size])

    def device(self, requested: str) -> str:
        """``cuda:LOCAL_RANK`` for ``auto``/``cuda`` in a distributed run with CUDA; else ``requested``."""
        if not self.distributed or requested not in ("auto", "cuda"):
            return requested
        import torch

        if not torch.cuda.is_available():
            return "cpu" if requested == "auto" else requested  # an explicit cuda fails with its own message
        count = torch.cuda.device_count()
        if self.local_rank >= count:
            raise CliError(
                f"LOCAL_RANK {self.local_rank} has no GPU: this node has {count}; start at most {count} "
                "processes per node (torchrun --nproc-per-node)",
                ExitCode.USAGE,
            )
        return f"cuda:{self.local_rank}"


@contextlib.contextmanager
def process_group(info: RankInfo) -> Iterator[None]:
    """Join the ranks' process group (env:// rendezvous) for the block; nothing when not distributed."""
    if not info.distributed:
        yield
        return
    import torch.distributed as dist

    if not dist.is_available():
        raise CliError("this PyTorch has no torch.distributed; run one process per batch", ExitCode.USAGE)
    dist.init_process_group("gloo", init_method="env://", timeout=EXCHANGE_TIMEOUT)
    try:
        yield
    finally:
        dist.destroy_process_group()


def barrier(info: RankInfo) -> None:
    """Wait until every rank gets here (nothing when not distributed)."""
    if info.distributed:
        import torch.distributed as dist

        dist.barrier()


def gather_counts(info: RankInfo, counts: Sequence[int]) -> list[list[int]]:
    """Every rank's ``counts`` in rank order (each rank gets all); ``[counts]`` when not distributed."""
    if not info.distributed:
        return [list(counts)]
    import torch
    import torch.distributed as dist

    mine = torch.tensor(list(counts), dtype=torch.int64)
    gathered = [torch.zeros_like(mine) for _ in range(info.world_size)]
    dist.all_gather(gathered, mine)
    return [tensor.tolist() for tensor in gathered]
