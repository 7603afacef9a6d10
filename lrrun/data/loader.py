"""The DataLoader path (``trainer.data_path=loader``): per-sample work - reading the sample from
memory or its file, the split's transforms (seeded per sample for training), normalisation -
in ``num_workers`` workers, batches copied to the device. For data that does not fit in
memory, or transforms that run per sample. It visits the samples in the tensor path's order
(lrrun.data.order.epoch_order)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from lrrun.data.base import Data, Split, normalise
from lrrun.data.order import epoch_order, layout
from lrrun.data.transforms import apply, sample_seed, seeded
from lrrun.world import SINGLE, World, shard, shard_size


class EpochSampler(Sampler[tuple[int, int]]):
    """``epoch_order`` (this rank's shard of it) as a DataLoader sampler; it hands out
    (epoch, index), so a worker seeds each sample's augmentation by its epoch too."""

    def __init__(self, n: int, seed: int, world: World = SINGLE) -> None:
        self.n, self.seed, self.epoch, self.world = n, seed, 1, world

    def __len__(self) -> int:
        return shard_size(self.n, self.world)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = shard(epoch_order(self.n, self.seed, self.epoch), self.world)
        return ((self.epoch, i) for i in order.tolist())


class ShardSampler(Sampler[int]):
    """Evaluation in a data-parallel run: this rank's samples, in order, unpadded."""

    def __init__(self, n: int, world: World) -> None:
        self.index = shard(torch.arange(n), world, pad=False).tolist()

    def __len__(self) -> int:
        return len(self.index)

    def __iter__(self) -> Iterator[int]:
        return iter(self.index)


class SampleDataset(Dataset):
    """One split as the DataLoader path reads it: the sample (from memory or its file), the
    split's transforms (seeded per sample for the train split), then normalisation."""

    def __init__(self, data: Data, split: Split, train: bool, seed: int = 0) -> None:
        self.split, self.mean, self.std, self.train, self.seed = (
            split,
            data.mean,
            data.std,
            train,
            seed,
        )
        # eval transforms were applied when an in-memory split was loaded
        self.steps: Sequence[Any] = (
            data.augment if train else (() if split.in_memory else data.eval_steps)
        )

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, i = key if isinstance(key, tuple) else (0, key)
        split = self.split
        sample = split.images[i] if split.images is not None else split.items[i][0]
        if self.steps and self.train:
            sample = seeded(self.steps, sample, sample_seed(self.seed, epoch, i))
        elif self.steps:
            sample = apply(self.steps, sample)
        return normalise(sample, self.mean, self.std), split.labels[i]


class LoaderBatches:
    """The DataLoader path: per-sample work in workers, batches copied to ``device``."""

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        device: torch.device,
        shuffle_seed: int | None = None,
        num_workers: int = 0,
        memory_format: torch.memory_format = torch.contiguous_format,
        pin_memory: bool | str = "auto",
        persistent_workers: bool = True,
        world: World = SINGLE,
    ) -> None:
        n = len(dataset)  # type: ignore[arg-type]
        self.sampler = EpochSampler(n, shuffle_seed, world) if shuffle_seed is not None else None
        cuda = device.type == "cuda"
        self.loader = DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=self.sampler or (ShardSampler(n, world) if world.active else None),
            num_workers=num_workers,
            pin_memory=cuda if pin_memory == "auto" else bool(pin_memory),
            persistent_workers=persistent_workers and num_workers > 0,
            # Its own generator: otherwise each epoch's iterator draws a worker seed from
            # the global RNG, and dropout masks would differ from the tensor path's.
            generator=torch.Generator().manual_seed(shuffle_seed or 0),
        )
        self.device, self.non_blocking, self.memory_format = device, cuda, memory_format

    def __len__(self) -> int:
        return len(self.loader)

    def set_epoch(self, epoch: int) -> None:
        if self.sampler is not None:
            self.sampler.epoch = epoch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for images, labels in self.loader:
            images = images.to(self.device, non_blocking=self.non_blocking)
            labels = labels.to(self.device, non_blocking=self.non_blocking)
            yield layout(images, self.memory_format), labels
