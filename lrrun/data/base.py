"""What every dataset source produces: three splits with their roles, and the data's facts.

- ``train`` trains; ``val`` selects (each epoch's val_* metrics, ReduceLROnPlateau's monitor,
  best.pt, a sweep's verdict); ``test`` is reported, never used to choose (None when the
  source has none, or when dataset.val_split=0 makes the test split the selection split).
- A split holds its labels in memory - class indices (N,) int64, or regression targets (N, k)
  float32 - and its samples either in memory (one tensor: uint8 pixels N x C x H x W, or
  float N x C x H x W / N x D) or as a per-sample dataset read from files (``items``:
  index -> (tensor, label)).
- Normalisation is ``ToTensor()`` then ``Normalize(mean, std)`` per channel (per feature
  for flat vectors), measured on the train split; both batch paths use ``normalise``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

NUM_CLASSES = 10
IMAGE_SHAPE = (1, 28, 28)


@dataclass(frozen=True)
class Split:
    images: torch.Tensor | None  # in memory, or None: per sample from ``items``
    labels: torch.Tensor  # (N,) int64 class indices, or (N, k) float32 regression targets
    items: Any = None  # a Dataset of (tensor, label), when not in memory

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def in_memory(self) -> bool:
        return self.images is not None

    @property
    def nbytes(self) -> int:
        return (self.images.nbytes if self.images is not None else 0) + self.labels.nbytes

    def subset(self, index: torch.Tensor) -> Split:
        """The samples at ``index`` (a val split held out of train, or the rest)."""
        if self.images is not None:
            return Split(self.images[index].contiguous(), self.labels[index].contiguous())
        from torch.utils.data import Subset

        return Split(None, self.labels[index].contiguous(), Subset(self.items, index.tolist()))


@dataclass(frozen=True)
class Loaded:
    """What a source read: its splits before roles and normalisation, and its classes."""

    train: Split
    val: Split | None
    test: Split | None
    classes: tuple[str, ...]
    source: str  # for the header
    root: Path | None = None
    normalised: bool = False  # samples are already in the model's units (synthetic)


@dataclass(frozen=True)
class Data:
    name: str
    train: Split
    val: Split
    test: Split | None
    source: str  # where the data came from, for the console header
    classes: tuple[str, ...]
    input_shape: tuple[int, ...]  # one sample as the model gets it: (C, H, W) or (D,)
    mean: tuple[float, ...] = ()  # per channel / feature; () = no normalisation
    std: tuple[float, ...] = ()
    selection: str = "val"  # "val", or "test" when the test split selects (val_split=0)
    val_from: str = ""  # how the val split came about, for the header
    root: Path | None = None  # where the files are (None: generated or in-memory arrays)
    augment: tuple[Any, ...] = ()  # the train transforms, built (lrrun.data.transforms)
    eval_steps: tuple[Any, ...] = ()  # the eval transforms, for splits read per sample
    target_mean: tuple[float, ...] = ()  # regression: each target's mean and std on train
    target_std: tuple[float, ...] = ()

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def outputs(self) -> int:
        """The model's output width: the classes, or the regression targets per sample."""
        return len(self.target_mean) or self.num_classes

    @property
    def facts(self) -> dict[str, Any]:
        """What a model's constructor may take from the data, by parameter name
        (lrrun.models.adapt): ``num_classes`` is the output width (for regression too, as
        timm's num_classes and Hugging Face's num_labels), ``num_outputs`` likewise."""
        shape = tuple(self.input_shape)
        facts: dict[str, Any] = {
            "num_classes": self.outputs,
            "num_outputs": self.outputs,
            "input_shape": shape,
            "input_dim": math.prod(shape),
        }
        if len(shape) == 3:
            c, h, w = shape
            facts |= {"in_channels": c, "in_chans": c, "image_size": h if h == w else (h, w)}
        return facts

    def record(self) -> dict[str, Any]:
        """The data as the run saw it, for status.json and the checkpoint's plan."""
        targets = {"targets": {"mean": list(self.target_mean), "std": list(self.target_std)}}
        return {
            "classes": list(self.classes),
            "input_shape": list(self.input_shape),
            **(targets if self.target_mean else {}),
            "train": len(self.train),
            "val": len(self.val),
            "test": len(self.test) if self.test is not None else None,
        }


def dims(shape: Sequence[int]) -> str:
    """A shape as messages and the header write it: ``3x32x32``."""
    return "x".join(map(str, shape))


def stats_view(images: torch.Tensor) -> torch.Tensor:
    """Samples as (channels, values): per channel for images, per feature for vectors."""
    if images.dim() == 2:
        return images.T
    return images.transpose(0, 1).reshape(images.shape[1], -1)


def measure(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of training samples in ToTensor()'s units ([0, 1] for
    uint8 pixels). A constant channel gets std 1, so it is centred but not divided by 0."""
    values = stats_view(images).to(torch.float32)
    if images.dtype == torch.uint8:
        values = values.div_(255)
    mean, std = values.mean(dim=1), values.std(dim=1)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return tuple(mean.tolist()), tuple(std.tolist())


def normalise(
    images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]
) -> torch.Tensor:
    """``ToTensor()`` then ``Normalize(mean, std)`` on a batch (or one sample: the channel
    axis is the one after the batch axis, or the first for a single image), with the same
    float32 operations in the same order on both data paths. Without mean and std, uint8
    pixels are only scaled to [0, 1] and float samples pass through."""
    out = images.to(torch.float32).div_(255) if images.dtype == torch.uint8 else images
    if not mean:
        return out
    shape = _channel_shape(out, len(mean))
    m = torch.tensor(mean, dtype=torch.float32, device=out.device).view(shape)
    s = torch.tensor(std, dtype=torch.float32, device=out.device).view(shape)
    if out is images:  # float samples: never modify the stored tensor in place
        return (out - m) / s
    return out.sub_(m).div_(s)


def _channel_shape(x: torch.Tensor, channels: int) -> tuple[int, ...]:
    """Where the channels are in a batch (N, C, ...) or one sample (C, ...)."""
    if x.dim() >= 3 and x.shape[-3] == channels and x.dim() in (3, 4):  # images
        return (channels, 1, 1)
    return (channels,)  # flat features (..., D)
