"""The two ways batches reach the model.

- The tensor path (``trainer.data_path=tensor``; ``auto`` picks it when the data is in memory
  and its train transforms run batched): each split lives on the training device; each epoch
  draws a seeded permutation and each batch is one ``index_select``, the batched augmentation
  (lrrun.data.transforms) and ``ToTensor()+Normalize()``'s arithmetic on the device. No
  per-sample Python, no workers.
- The loader path (``trainer.data_path=loader``): a DataLoader over the split, per sample:
  from memory or from its file, the transforms, normalisation; ``num_workers`` workers,
  ``pin_memory``, ``persistent_workers``; for data that does not fit, or transforms that run
  per sample.

Both visit the training samples in the same documented order (lrrun.data.order.epoch_order)
and, without augmentation, compute the same inputs, so they produce the same numbers
(tests/data/test_fast_path.py). With augmentation each path draws its own random numbers.

A language model's token streams are batched as windows (lrrun.data.windows): on the device,
or read from the memory map (``trainer.data_path=loader``, or too large).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import torch

from lrrun.data.base import Data, Split, normalise
from lrrun.data.loader import LoaderBatches, SampleDataset
from lrrun.data.order import batches_per_epoch, epoch_order, layout
from lrrun.data.tokens import TokenData
from lrrun.data.transforms import Batched, sample_seed
from lrrun.data.windows import FixedWindows, window_batches
from lrrun.errors import ConfigError
from lrrun.world import SINGLE, World, shard, shard_size


class Batches(Protocol):
    """What the loop iterates: (inputs, labels) on the training device, ready for the model."""

    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...
    def set_epoch(self, epoch: int) -> None: ...


class TensorBatches:
    """The fast path: the split sits on ``device``; batches are drawn by index.

    ``shuffle_seed=None`` visits the samples in order (evaluation), as views without copies.
    In a data-parallel run each rank visits its shard (lrrun.world.shard): training, of the
    epoch's order; evaluation, of the samples in order.
    """

    def __init__(
        self,
        split: Split,
        batch_size: int,
        device: torch.device,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        shuffle_seed: int | None = None,
        memory_format: torch.memory_format = torch.contiguous_format,
        augment: Batched | None = None,
        world: World = SINGLE,
    ) -> None:
        assert split.images is not None, "the tensor path needs the split in memory"
        self.images = split.images.to(device)
        self.labels = split.labels.to(device)
        self.batch_size, self.device, self.mean, self.std = batch_size, device, mean, std
        self.seed, self.memory_format, self.epoch = shuffle_seed, memory_format, 1
        self.augment, self.world = augment, world
        self.mine = None  # evaluation: this rank's samples (all of them in one process)
        if world.active and shuffle_seed is None:
            self.mine = shard(torch.arange(len(self.labels)), world, pad=False).to(device)

    def __len__(self) -> int:
        if self.mine is not None:
            return batches_per_epoch(len(self.mine), self.batch_size)
        return batches_per_epoch(shard_size(len(self.labels), self.world), self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n, size = len(self.labels), self.batch_size
        order, draws = self.mine, None
        if self.seed is not None:
            order = shard(epoch_order(n, self.seed, self.epoch), self.world).to(self.device)
            if self.augment is not None:  # one generator per epoch: resumes draw the same
                draws = torch.Generator(self.device)
                draws.manual_seed(sample_seed(self.seed, self.epoch, -1))
        for start in range(0, n if order is None else len(order), size):
            if order is None:
                images, labels = (
                    self.images[start : start + size],
                    self.labels[start : start + size],
                )
            else:
                index = order[start : start + size]
                images = self.images.index_select(0, index)
                labels = self.labels.index_select(0, index)
            if draws is not None:
                images = self.augment(images, draws)
            yield layout(normalise(images, self.mean, self.std), self.memory_format), labels


# Evaluation batch for eval_batch_size=auto. A GPU wants large batches; on a CPU they spill
# activations out of cache: the CNN evaluates 10k images in 1.4 s at 128 and 3.2 s at 1000
# (2-core x86_64), while the MLP barely cares (0.015 vs 0.009 s).
CPU_EVAL_BATCH, GPU_EVAL_BATCH = 128, 1000


def eval_batch(setting: int | str, device: torch.device) -> int:
    if setting != "auto":
        return int(setting)
    return CPU_EVAL_BATCH if device.type == "cpu" else GPU_EVAL_BATCH


def probe_batch(
    data: Data | TokenData, device: torch.device, memory_format: torch.memory_format
) -> torch.Tensor:
    """Two val samples as the model will get them (lrrun.models.adapt.probe)."""
    if isinstance(data, TokenData):
        return next(iter(FixedWindows(data.val, data.block_size, 2, 2, device)))[0]
    samples = SampleDataset(data, data.val, train=False)
    batch = torch.stack([samples[i][0] for i in range(min(2, len(samples)))])
    return layout(batch.to(device), memory_format)


def train_batches(
    data: Data | TokenData, batch_size: int, processes: int = 1, accumulate: int = 1
) -> int:
    """Training batches per epoch of one of ``processes`` ranks, as make_batches makes them
    (lrrun-preview plans with it)."""
    if isinstance(data, TokenData):
        return data.steps_per_epoch * accumulate
    return batches_per_epoch(shard_size(len(data.train), World(0, processes)), batch_size)


def choose_path(data: Data, path: str) -> str:
    """tensor or loader for ``trainer.data_path`` (auto / tensor / loader) and this data."""
    in_memory = all(s.in_memory for s in (data.train, data.val, data.test) if s is not None)
    batched = not data.augment or Batched.of(data.augment) is not None
    if path == "tensor" and not batched:
        names = ", ".join(type(t).__name__ for t in data.augment)
        raise ConfigError(
            f"trainer.data_path=tensor: dataset.transforms.train ({names}) runs per sample; "
            "the tensor path batches RandomCrop and RandomHorizontalFlip only. Use "
            "trainer.data_path=auto (or loader)."
        )
    if path == "auto":
        return "tensor" if in_memory and batched else "loader"
    return path


def make_batches(
    data: Data | TokenData,
    device: torch.device,
    batch_size: int,
    eval_batch_size: int | str,
    seed: int,
    path: str = "auto",
    num_workers: int = 0,
    memory_format: torch.memory_format = torch.contiguous_format,
    pin_memory: bool | str = "auto",
    persistent_workers: bool = True,
    world: World = SINGLE,
    accumulate: int = 1,
) -> tuple[Batches, Batches, Batches | None, str]:
    """Training, validation and test batches (None without a test split) on ``device``, and
    the data path chosen; in a data-parallel run, this rank's shards. ``accumulate``: a
    language model's epoch is steps_per_epoch optimizer steps of that many batches."""
    if isinstance(data, TokenData):
        size = eval_batch(eval_batch_size, device)
        train, val, test = window_batches(data, device, batch_size, size, seed, accumulate, world)
        return train, val, test, "tensor" if data.train.in_memory else "memmap"
    path = choose_path(data, path)
    size = eval_batch(eval_batch_size, device)
    roles = {"train": data.train, "val": data.val, "test": data.test}
    out: dict[str, Batches | None] = {}
    for role, split in roles.items():
        shuffle, batch = (seed, batch_size) if role == "train" else (None, size)
        if split is None:
            out[role] = None
        elif path == "tensor":
            augment = Batched.of(data.augment) if role == "train" and data.augment else None
            out[role] = TensorBatches(
                split=split,
                batch_size=batch,
                device=device,
                mean=data.mean,
                std=data.std,
                shuffle_seed=shuffle,
                memory_format=memory_format,
                augment=augment,
                world=world,
            )
        else:
            dataset = SampleDataset(data, split, role == "train", seed)
            out[role] = LoaderBatches(
                dataset=dataset,
                batch_size=batch,
                device=device,
                shuffle_seed=shuffle,
                num_workers=num_workers,
                memory_format=memory_format,
                pin_memory=pin_memory,
                persistent_workers=persistent_workers,
                world=world,
            )
    assert out["train"] is not None and out["val"] is not None
    return out["train"], out["val"], out["test"], path
