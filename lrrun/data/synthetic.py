"""The offline synthetic set: seeded, learnable, 10 classes of 1x28x28 images, no files."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lrrun.data.base import IMAGE_SHAPE, NUM_CLASSES, Data, Split


def synthetic(train_size: int, test_size: int, noise: float, seed: int) -> Data:
    """A seeded, learnable 10-class set of 1x28x28 images that needs no files.

    Each class has a smooth random prototype; a sample is its prototype, shifted by up to
    two pixels, plus Gaussian noise. Linear models reach well above chance in a few epochs,
    but not 100% at once, so schedules make a visible difference.
    """
    g = torch.Generator().manual_seed(seed)
    n = train_size + test_size
    coarse = torch.randn(NUM_CLASSES, 1, 7, 7, generator=g)
    prototypes = F.interpolate(coarse, size=IMAGE_SHAPE[1:], mode="bilinear", align_corners=False)
    labels = torch.randint(0, NUM_CLASSES, (n,), generator=g)
    shifts = torch.randint(-2, 3, (n, 2), generator=g)
    images = prototypes[labels]
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            rows = (shifts[:, 0] == dy) & (shifts[:, 1] == dx)
            images[rows] = torch.roll(images[rows], shifts=(dy, dx), dims=(2, 3))
    images = images + noise * torch.randn(n, *IMAGE_SHAPE, generator=g)
    mean, std = images[:train_size].mean().item(), images[:train_size].std().item()
    images = (images - mean) / std
    return Data(
        name="synthetic",
        root=None,
        train=Split(images[:train_size].contiguous(), labels[:train_size].contiguous()),
        test=Split(images[train_size:].contiguous(), labels[train_size:].contiguous()),
        source=f"generated (seed {seed}, noise {noise})",
        mean=mean,
        std=std,
    )
