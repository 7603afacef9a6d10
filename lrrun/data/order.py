"""The order and layout both batch paths share (lrrun.data.batches: the tensor path,
lrrun.data.loader: the DataLoader path), so they visit and present samples alike."""

from __future__ import annotations

import math

import torch


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order in which epoch ``epoch`` (1-based) visits the ``n`` training samples.

    ``torch.randperm(n, generator=torch.Generator().manual_seed(s))`` with
    ``s = (seed * 1_000_003 + epoch) mod 2**63``: a pure function of (seed, epoch), the same
    on every device and data path, so a resumed run sees the same batches.
    """
    generator = torch.Generator().manual_seed((seed * 1_000_003 + epoch) % 2**63)
    return torch.randperm(n, generator=generator)


def batches_per_epoch(n: int, batch_size: int) -> int:
    return math.ceil(n / batch_size)


def layout(x: torch.Tensor, memory_format: torch.memory_format) -> torch.Tensor:
    return x.contiguous(memory_format=memory_format) if x.dim() == 4 else x.contiguous()
