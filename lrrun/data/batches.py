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

Both visit the training samples in the same documented order (``epoch_order``) and, without
augmentation, compute the same inputs, so they produce the same numbers
(tests/data/test_fast_path.py). With augmentation each path draws its own random numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from lrrun.data.base import Data, Split, normalise
from lrrun.data.transforms import Batched, apply, sample_seed, seeded
from lrrun.errors import ConfigError
from lrrun.world import SINGLE, World, shard, shard_size


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


class Batches(Protocol):
    """What the loop iterates: (inputs, labels) on the training device, ready for the model."""

    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...
    def set_epoch(self, epoch: int) -> None: ...


def _layout(x: torch.Tensor, memory_format: torch.memory_format) -> torch.Tensor:
    return x.contiguous(memory_format=memory_format) if x.dim() == 4 else x.contiguous()


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
            yield _layout(normalise(images, self.mean, self.std), self.memory_format), labels


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
        self.steps: Sequence[Any] = data.augment if train else (
            () if split.in_memory else data.eval_steps)  # fmt: skip

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
            yield _layout(images, self.memory_format), labels


# Evaluation batch for eval_batch_size=auto. A GPU wants large batches; on a CPU they spill
# activations out of cache: the CNN evaluates 10k images in 1.4 s at 128 and 3.2 s at 1000
# (2-core x86_64), while the MLP barely cares (0.015 vs 0.009 s).
CPU_EVAL_BATCH, GPU_EVAL_BATCH = 128, 1000


def eval_batch(setting: int | str, device: torch.device) -> int:
    if setting != "auto":
        return int(setting)
    return CPU_EVAL_BATCH if device.type == "cpu" else GPU_EVAL_BATCH


def probe_batch(
    data: Data, device: torch.device, memory_format: torch.memory_format
) -> torch.Tensor:
    """Two val samples as the model will get them (lrrun.models.adapt.probe)."""
    samples = SampleDataset(data, data.val, train=False)
    batch = torch.stack([samples[i][0] for i in range(min(2, len(samples)))])
    return _layout(batch.to(device), memory_format)


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
    data: Data,
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
) -> tuple[Batches, Batches, Batches | None, str]:
    """Training, validation and test batches (None without a test split) on ``device``, and
    the data path chosen; in a data-parallel run, this rank's shards."""
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
            out[role] = TensorBatches(split, batch, device, data.mean, data.std, shuffle,
                                      memory_format, augment, world)  # fmt: skip
        else:
            dataset = SampleDataset(data, split, role == "train", seed)
            out[role] = LoaderBatches(dataset, batch, device, shuffle, num_workers,
                                      memory_format, pin_memory, persistent_workers, world)  # fmt: skip
    assert out["train"] is not None and out["val"] is not None
    return out["train"], out["val"], out["test"], path
