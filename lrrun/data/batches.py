"""The two ways batches reach the model.

- The tensor path (``trainer.data_path=tensor``, the default whenever a split fits): the
  split lives on the training device; each epoch draws a seeded permutation and each batch
  is one ``index_select`` plus ``ToTensor()+Normalize()``'s arithmetic on the device. No
  per-sample Python, no PIL, no workers.
- The loader path (``trainer.data_path=loader``): torchvision's dataset with
  ``ToTensor()+Normalize()`` per sample through a DataLoader (workers, pinned memory), for
  data that does not fit on the device.

Both visit the training samples in the same documented order (``epoch_order``) and compute
the same inputs, so they produce the same numbers (tests/data/test_fast_path.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Protocol

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset

from lrrun.data.base import Data, Split, normalise
from lrrun.data.idx import torchvision_dataset


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
    """What the loop iterates: (images, labels) on the training device, ready for the model."""

    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...
    def set_epoch(self, epoch: int) -> None: ...


class TensorBatches:
    """The fast path: the split sits on ``device``; batches are drawn by index.

    ``shuffle_seed=None`` visits the samples in order (evaluation), as views without copies.
    """

    def __init__(
        self,
        split: Split,
        batch_size: int,
        device: torch.device,
        mean: float,
        std: float,
        shuffle_seed: int | None = None,
        memory_format: torch.memory_format = torch.contiguous_format,
    ) -> None:
        self.images = split.images.to(device)
        self.labels = split.labels.to(device)
        self.batch_size, self.device, self.mean, self.std = batch_size, device, mean, std
        self.seed, self.memory_format, self.epoch = shuffle_seed, memory_format, 1

    def __len__(self) -> int:
        return batches_per_epoch(len(self.labels), self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n, size = len(self.labels), self.batch_size
        order = None
        if self.seed is not None:
            order = epoch_order(n, self.seed, self.epoch).to(self.device)
        for start in range(0, n, size):
            if order is None:
                images, labels = (
                    self.images[start : start + size],
                    self.labels[start : start + size],
                )
            else:
                index = order[start : start + size]
                images = self.images.index_select(0, index)
                labels = self.labels.index_select(0, index)
            images = normalise(images, self.mean, self.std)
            yield images.contiguous(memory_format=self.memory_format), labels


class EpochSampler(Sampler[int]):
    """``epoch_order`` as a DataLoader sampler."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 1

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        return iter(epoch_order(self.n, self.seed, self.epoch).tolist())


class LoaderBatches:
    """The DataLoader path: per-sample transforms in workers, batches copied to ``device``."""

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        device: torch.device,
        shuffle_seed: int | None = None,
        num_workers: int = 0,
        memory_format: torch.memory_format = torch.contiguous_format,
    ) -> None:
        n = len(dataset)  # type: ignore[arg-type]
        self.sampler = EpochSampler(n, shuffle_seed) if shuffle_seed is not None else None
        cuda = device.type == "cuda"
        self.loader = DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=self.sampler,
            num_workers=num_workers,
            pin_memory=cuda,  # pinned pages make the host-to-device copy asynchronous
            persistent_workers=num_workers > 0,
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
            yield images.contiguous(memory_format=self.memory_format), labels


def loader_dataset(data: Data, train: bool) -> Dataset:
    """The split as the loader path reads it: torchvision's class with ToTensor+Normalize."""
    split = data.train if train else data.test
    if data.root is None:  # generated data: already normalised tensors
        return TensorDataset(split.images, split.labels)
    from torchvision import transforms

    transform = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((data.mean,), (data.std,))]
    )
    return torchvision_dataset(data.name, data.root, train, transform)


def fits_on(device: torch.device, nbytes: int) -> bool:
    """Whether ``nbytes`` may live on ``device``: at most half of its free memory."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return nbytes <= free // 2
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        free = int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return True  # not Linux: assume a split of 28x28 images fits
    return nbytes <= free // 2


# Evaluation batch for eval_batch_size=auto. A GPU wants large batches; on a CPU they spill
# activations out of cache: the CNN evaluates 10k images in 1.4 s at 128 and 3.2 s at 1000
# (2-core x86_64), while the MLP barely cares (0.015 vs 0.009 s).
CPU_EVAL_BATCH, GPU_EVAL_BATCH = 128, 1000


def eval_batch(setting: int | str, device: torch.device) -> int:
    if setting != "auto":
        return int(setting)
    return CPU_EVAL_BATCH if device.type == "cpu" else GPU_EVAL_BATCH


def make_batches(
    data: Data,
    device: torch.device,
    batch_size: int,
    eval_batch_size: int | str,
    seed: int,
    path: str = "auto",
    num_workers: int = 0,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> tuple[Batches, Batches, str]:
    """Training and evaluation batches on ``device``, and the data path chosen."""
    eval_batch_size = eval_batch(eval_batch_size, device)
    if path == "auto":
        path = "tensor" if fits_on(device, data.train.nbytes + data.test.nbytes) else "loader"
    if path == "tensor":
        train: Batches = TensorBatches(
            data.train, batch_size, device, data.mean, data.std, seed, memory_format
        )
        test: Batches = TensorBatches(
            data.test, eval_batch_size, device, data.mean, data.std, None, memory_format
        )
    else:
        train = LoaderBatches(
            loader_dataset(data, True), batch_size, device, seed, num_workers, memory_format
        )
        test = LoaderBatches(
            loader_dataset(data, False), eval_batch_size, device, None, num_workers, memory_format
        )
    return train, test, path
