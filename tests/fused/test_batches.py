"""One gather for the members' batches (lrrun.fused.batches): each member's slice of a step
is, bit for bit, the batch its own TensorBatches yields - its own order, the same arithmetic."""

from __future__ import annotations

import torch

from lrrun.data.base import Split
from lrrun.data.batches import TensorBatches
from lrrun.data.transforms import Batched
from lrrun.fused.batches import together

CPU = torch.device("cpu")


def split(n: int = 150) -> Split:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 1, 6, 6), dtype=torch.uint8, generator=g)
    return Split(images, torch.randint(0, 10, (n,), generator=g))


def test_each_members_slice_is_its_own_batch() -> None:
    """Three seeds, epoch 2, a last batch shorter than the rest (150 = 2 x 64 + 22)."""
    data = split()
    members = [TensorBatches(data, 64, CPU, (0.3,), (0.2,), shuffle_seed=s) for s in (1, 2, 3)]
    for b in members:
        b.set_epoch(2)
    joint = together(members)
    assert joint is not None
    steps = list(joint)
    assert [tuple(x.shape) for x, _ in steps] == [(3, 64, 1, 6, 6)] * 2 + [(3, 22, 1, 6, 6)]
    for i, own in enumerate(members):
        for (x, y), (xi, yi) in zip(steps, own, strict=True):
            assert torch.equal(x[i], xi) and torch.equal(y[i], yi)
    assert not torch.equal(steps[0][1][0], steps[0][1][1])  # orders of their own


def test_members_whose_batches_draw_or_differ_gather_alone() -> None:
    data = split()
    plain = TensorBatches(data, 64, CPU, (0.3,), (0.2,), shuffle_seed=1)
    drawn = TensorBatches(data, 64, CPU, (0.3,), (0.2,), shuffle_seed=2, augment=Batched([]))
    other = TensorBatches(split(), 64, CPU, (0.3,), (0.2,), shuffle_seed=2)  # another split
    evaluation = TensorBatches(data, 64, CPU, (0.3,), (0.2,))  # no shuffle: in order
    for second in (drawn, other, evaluation):
        assert together([plain, second]) is None
