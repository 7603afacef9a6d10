"""The members' training batches of a step in one gather.

On the tensor path (lrrun.data.batches.TensorBatches) every member draws its batch from the
same split by its own epoch order. Where the members' batches differ in nothing but that
order (no augmentation, one process), the step's batches come from one ``index_select`` of
all the members' indices and one ``normalise`` - the same float32 operations on the same
samples as each member's own gather (so the same numbers, tests/fused/test_batches.py) - and
arrive already stacked for the pass: (members, batch, ...) inputs, (members, batch) labels.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch

from lrrun.data.base import normalise
from lrrun.data.batches import TensorBatches
from lrrun.data.order import epoch_order, layout


def together(batches: Sequence[Any]) -> Iterator[tuple[torch.Tensor, torch.Tensor]] | None:
    """This epoch's stacked batches of the members whose training ``batches`` these are
    (each ``set_epoch`` already); None where one gather cannot give each member its own
    batch (another data path, augmentation, a data-parallel shard, another split)."""
    first = batches[0]
    if not all(_one_gather_serves(b, first) for b in batches):
        return None
    return _stacked(batches)


def _one_gather_serves(b: Any, first: Any) -> bool:
    return (
        isinstance(b, TensorBatches)
        and b.seed is not None
        and b.augment is None
        and not b.world.active
        and b.images is first.images
        and (b.batch_size, b.mean, b.std, b.memory_format)
        == (first.batch_size, first.mean, first.std, first.memory_format)
    )


def _stacked(batches: Sequence[TensorBatches]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    first = batches[0]
    n, size = len(first.labels), first.batch_size
    orders = torch.stack([epoch_order(n, b.seed, b.epoch) for b in batches]).to(first.device)
    for start in range(0, n, size):
        index = orders[:, start : start + size]  # (members, this batch's size)
        members, count = index.shape
        flat = index.reshape(-1)
        images = first.images.index_select(0, flat)
        labels = first.labels.index_select(0, flat)  # class ids, or (N, outputs) targets
        labels = labels.view(members, count, *labels.shape[1:])
        x = layout(normalise(images, first.mean, first.std), first.memory_format)
        yield x.view(members, count, *x.shape[1:]), labels
