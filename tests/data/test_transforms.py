"""Augmentation: batched on the tensor path, seeded per sample on the DataLoader path, the
train split only, and refused when it would give the model another shape."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from lrrun.config.dataset import read_dataset
from lrrun.data.batches import (
    LoaderBatches,
    SampleDataset,
    TensorBatches,
    choose_path,
    make_batches,
)
from lrrun.data.load import _CACHE, load_data
from lrrun.data.transforms import Batched, sample_seed, seeded
from lrrun.errors import ConfigError
from tests.sources import write_npz

CPU = torch.device("cpu")
CROP_FLIP = [
    {"_target_": "torchvision.transforms.v2.RandomCrop", "size": 8, "padding": 2},
    {"_target_": "torchvision.transforms.v2.RandomHorizontalFlip", "p": 0.5},
]
JITTER = [{"_target_": "torchvision.transforms.v2.ColorJitter", "brightness": 0.5}]


def data_with(tmp_path: Path, train: list, eval_: list | None = None):
    _CACHE.clear()
    path = write_npz(tmp_path / "d.npz", n=48)
    return load_data(
        read_dataset(
            {
                "source": "tensors",
                "path": str(path),
                "val_split": 12,
                "transforms": {"train": train, "eval": eval_ or []},
            }
        )
    )


def test_batched_crop_and_flip_are_per_sample_crops_of_the_padded_image() -> None:
    x = torch.randint(0, 255, (64, 3, 8, 8), dtype=torch.uint8)
    batched = Batched.of([v2.RandomCrop(8, padding=2), v2.RandomHorizontalFlip(p=0.5)])
    out = batched(x, torch.Generator().manual_seed(0))
    padded = F.pad(x, (2, 2, 2, 2))
    flipped = 0
    for i in range(len(x)):
        crops = [padded[i, :, a : a + 8, b : b + 8] for a in range(5) for b in range(5)]
        plain = any(torch.equal(out[i], c) for c in crops)
        mirrored = any(torch.equal(out[i], c.flip(-1)) for c in crops)
        assert plain or mirrored
        flipped += mirrored and not plain
    assert 15 < flipped < 50  # about half, each sample its own draw
    again = batched(x, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    assert Batched.of([v2.ColorJitter(0.5)]) is None


def test_per_sample_draws_are_seeded_by_seed_epoch_and_index() -> None:
    flip = [v2.RandomHorizontalFlip(p=0.5)]
    x = torch.arange(16, dtype=torch.uint8).view(1, 4, 4)
    draws = [seeded(flip, x, sample_seed(7, 1, i)) for i in range(40)]
    assert len({d[0, 0, 0].item() for d in draws}) == 2  # some flipped, some not
    assert all(torch.equal(d, seeded(flip, x, sample_seed(7, 1, i))) for i, d in enumerate(draws))


def test_augmentation_is_the_train_splits_only(tmp_path: Path) -> None:
    data = data_with(tmp_path, CROP_FLIP)
    train, val, test, path = make_batches(data, CPU, 16, 16, 3, "auto")
    assert path == "tensor" and isinstance(train, TensorBatches) and train.augment is not None
    assert val.augment is None and test.augment is None
    again = make_batches(data, CPU, 16, 16, 3, "auto")[1]
    assert all(torch.equal(a[0], b[0]) for a, b in zip(val, again, strict=True))


def test_loader_augmentation_is_the_same_with_any_worker_count(tmp_path: Path) -> None:
    data = data_with(tmp_path, JITTER)
    assert choose_path(data, "auto") == "loader"  # ColorJitter runs per sample
    with pytest.raises(ConfigError, match=r"trainer.data_path=tensor: .*\(ColorJitter\) runs per"):
        choose_path(data, "tensor")
    runs = []
    for workers in (0, 2):
        batches = LoaderBatches(SampleDataset(data, data.train, True, 5), 16, CPU, 5, workers)
        batches.set_epoch(2)
        runs.append(torch.cat([x for x, _ in batches]))
    assert torch.equal(runs[0], runs[1])
    plain = torch.cat(
        [x for x, _ in LoaderBatches(SampleDataset(data, data.train, False), 16, CPU)]
    )
    assert not torch.equal(runs[0].sort(0).values, plain.sort(0).values)  # it did augment


def test_a_train_pipeline_that_changes_the_shape_is_refused(tmp_path: Path) -> None:
    bigger = [{"_target_": "torchvision.transforms.v2.RandomCrop", "size": 10, "padding": 2}]
    with pytest.raises(ConfigError, match="makes samples 3x10x10 but val samples are 3x8x8"):
        data_with(tmp_path, bigger)
    resize = [{"_target_": "torchvision.transforms.v2.Resize", "size": [10, 10]}]
    assert data_with(tmp_path, bigger, resize).input_shape == (3, 10, 10)  # eval resizes too
