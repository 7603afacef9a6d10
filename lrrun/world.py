"""Which process this is in a data-parallel run (torchrun's RANK, WORLD_SIZE, LOCAL_RANK),
this rank's share of the samples, and the two collectives the logs need. A single process is
a world of one, where all of it is the identity. Set-up, DDP and failures:
lrrun.train.distributed."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported where it is used: lrrun.cli reads the config first
    import torch


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Whether this rank writes the run dir (rank 0)."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1


SINGLE = World()


def env_world() -> World:
    """The world torchrun describes in the environment (a single process without it)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return SINGLE
    return World(int(os.environ.get("RANK", "0")), size, int(os.environ.get("LOCAL_RANK", "0")))


def shard_size(n: int, world: World) -> int:
    """The length of a rank's (padded) shard of ``n`` samples: ceil(n / world size)."""
    return -(-n // world.size)


def shard(order: torch.Tensor, world: World, pad: bool = True) -> torch.Tensor:
    """This rank's part of ``order``: every world-th element from its rank, the order padded
    to a multiple of the world size (repeating its start) when ``pad``."""
    if not world.active:
        return order
    if pad and len(order) % world.size:
        extra = world.size - len(order) % world.size
        import torch

        order = torch.cat([order, order.repeat(extra // len(order) + 1)[:extra]])
    return order[world.rank :: world.size]


def sum_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """``values`` summed over the ranks (as they are, in a single process)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return values
    out = values.clone()
    dist.all_reduce(out)
    return out


def gather(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (``[obj]`` in a single process)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out
