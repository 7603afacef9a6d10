"""Small datasets the tests write themselves (nothing can be downloaded here): folders of
PNG images, .npz files, a user's dataset function and model. The classes are learnable:
class c is a bright square at its own place, in its own colour, on noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn


def images(
    n: int, classes: int, size: int, channels: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, channels, size, size) uint8 images and their labels, every class equally often."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    x = torch.randint(0, 60, (n, channels, size, size), generator=g, dtype=torch.uint8)
    side = max(2, size // 3)
    for c in range(classes):
        top, left = divmod(c % 4, 2)
        rows = slice(top * (size - side), top * (size - side) + side)
        cols = slice(left * (size - side), left * (size - side) + side)
        x[labels == c, c % channels, rows, cols] = 200 + 10 * (c // 4)
    return x, labels


def write_folder(
    root: Path,
    classes: int = 3,
    per_class: int = 20,
    size: int = 8,
    channels: int = 3,
    splits: dict[str, int] | None = None,
    seed: int = 0,
) -> Path:
    """PNG files in ImageFolder layout: root/<class>/<i>.png, or with ``splits``
    ({"train": per_class, "val": ..., "test": ...}) root/<split>/<class>/<i>.png."""
    from PIL import Image

    for k, (split, count) in enumerate((splits or {"": per_class}).items()):
        x, y = images(count * classes, classes, size, channels, seed + k)
        for i, (image, label) in enumerate(zip(x, y.tolist(), strict=True)):
            folder = root / split / f"class_{label}"
            folder.mkdir(parents=True, exist_ok=True)
            pixels = image.permute(1, 2, 0).squeeze(-1).numpy()  # H x W (x C)
            Image.fromarray(pixels).save(folder / f"{i:05d}.png")
    return root


def write_npz(path: Path, n: int = 60, n_classes: int = 3, layout: str = "nchw", **extra) -> Path:
    """x_train/y_train (n samples) and x_test/y_test (n // 2) as ``layout``: nchw, nhwc
    (uint8 images), or flat (float vectors)."""
    arrays = {}
    for role, count, seed in (("train", n, 0), ("test", n // 2, 1)):
        x, y = images(count, n_classes, 8, 3, seed)
        if layout == "nhwc":
            x = x.permute(0, 2, 3, 1)
        elif layout == "flat":
            x = x.flatten(1).float() / 255
        arrays |= {f"x_{role}": x.numpy(), f"y_{role}": y.numpy()}
    np.savez(path, **(arrays | extra))
    return path


class Samples(torch.utils.data.Dataset):
    """A user's dataset as people write them: (tensor, int) per item, no targets list."""

    def __init__(self, n: int, classes: int, size: int, seed: int) -> None:
        self.x, self.y = images(n, classes, size, 3, seed)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.x[i], int(self.y[i])


def build_datasets(n: int = 60, classes: int = 3, size: int = 8, with_val: bool = True):
    """dataset=custom dataset._target_=tests.sources.build_datasets: (train, val, test)."""
    val = Samples(n // 2, classes, size, 1) if with_val else None
    return Samples(n, classes, size, 0), val, Samples(n // 2, classes, size, 2)


class TinyNet(nn.Module):
    """A user's model: it takes num_classes and in_channels from the data, like most do."""

    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 8) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2)
        )
        self.head = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


class NormNet(nn.Module):
    """A user's model with a BatchNorm layer (for optimizer.no_decay=[norm])."""

    def __init__(self, num_classes: int, in_channels: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 8, 3, padding=1)
        self.norm = nn.BatchNorm2d(8)
        self.head = nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.norm(self.conv(x))).mean((2, 3)))


def facts_of(num_classes: int, shape: tuple[int, ...]) -> dict:
    """What a model is given from data of ``num_classes`` classes and samples of ``shape``
    (lrrun.data.base.Data.facts)."""
    from lrrun.data.base import Data, Split

    split = Split(torch.zeros(1, *shape), torch.zeros(1, dtype=torch.long))
    classes = tuple(map(str, range(num_classes)))
    return Data("d", split, split, None, "", classes, tuple(shape)).facts


TEXT = (
    "the quick brown fox jumps over the lazy dog. she sells sea shells by the sea shore. "
    "a stitch in time saves nine. all that glitters is not gold. "
)


def write_text(path: Path, chars: int = 6000) -> Path:
    """English-like text of ``chars`` characters (a few sentences repeated, learnable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text((TEXT * (chars // len(TEXT) + 1))[:chars], encoding="utf-8")
    return path


def write_tokens(root: Path, chars: int = 6000, meta: str = "pkl") -> Path:
    """nanoGPT's prepared layout, as its shakespeare_char/prepare.py writes it: train.bin and
    val.bin (90% / 10%) of uint16 ids, meta.pkl {vocab_size, itos, stoi} (or meta.json)."""
    import json
    import pickle

    text = (TEXT * (chars // len(TEXT) + 1))[:chars]
    chars_ = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars_)}
    ids = np.array([stoi[c] for c in text], dtype=np.uint16)
    root.mkdir(parents=True, exist_ok=True)
    n = int(0.9 * len(ids))
    ids[:n].tofile(root / "train.bin")
    ids[n:].tofile(root / "val.bin")
    itos = dict(enumerate(chars_))
    if meta == "pkl":
        with (root / "meta.pkl").open("wb") as f:
            pickle.dump({"vocab_size": len(chars_), "itos": itos, "stoi": stoi}, f)
    elif meta == "json":
        (root / "meta.json").write_text(json.dumps({"vocab_size": len(chars_), "itos": chars_}))
    return root


def write_regression(
    path: Path,
    n: int = 200,
    features: int = 4,
    outputs: int = 1,
    seed: int = 0,
    slope: float = 3.0,
    offset: float = 100.0,
) -> Path:
    """An .npz of a linear problem with float targets far from 0 mean / 1 std:
    y = offset + slope * (x @ w) + noise, w fixed by the seed."""
    g = np.random.default_rng(seed)
    w = g.normal(size=(features, outputs))
    arrays = {}
    for role, m in (("train", n), ("test", n // 4)):
        x = g.normal(size=(m, features)).astype(np.float32)
        y = offset + slope * (x @ w) + 0.1 * g.normal(size=(m, outputs))
        arrays[f"x_{role}"], arrays[f"y_{role}"] = x, (y[:, 0] if outputs == 1 else y)
    np.savez(path, **arrays)
    return path
