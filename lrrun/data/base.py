"""What every dataset source produces: splits of image tensors and labels, kept as they are on
disk (one uint8 tensor of pixels per split: 47 MB for FashionMNIST's train split), and the one
normalisation arithmetic both batch paths use."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

NUM_CLASSES = 10
IMAGE_SHAPE = (1, 28, 28)


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # (N, 1, 28, 28): uint8 pixels, or float already normalised
    labels: torch.Tensor  # (N,) int64

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def nbytes(self) -> int:
        return self.images.nbytes + self.labels.nbytes


@dataclass(frozen=True)
class Data:
    name: str
    root: Path | None  # where torchvision finds the files (None: generated data)
    train: Split
    test: Split
    source: str  # where the data came from, for the console header
    mean: float  # of the training pixels in [0, 1]: Normalize((mean,), (std,))
    std: float


def normalise(images: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """``ToTensor()`` then ``Normalize((mean,), (std,))`` on a batch, with the same float32
    operations in the same order, so both data paths give identical inputs. Float images
    (the synthetic set) are stored normalised and pass through."""
    if images.dtype != torch.uint8:
        return images
    return images.to(torch.float32).div_(255).sub_(mean).div_(std)
