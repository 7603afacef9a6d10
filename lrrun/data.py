"""Datasets as in-memory tensors, and the loaders over them.

FashionMNIST and MNIST are read with torchvision's own classes, then held as one normalised
float tensor: 28x28 images fit in memory, and batching by tensor indexing avoids a per-sample
PIL round trip: benchmarks/throughput.py measured one epoch of batches at 0.13 s vs 12 s
for ToTensor()+Normalize per item (2-core CPU).
"""

from __future__ import annotations

import gzip
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    RandomSampler,
    SequentialSampler,
    TensorDataset,
)

from lrrun.errors import DataError, root_cause

NUM_CLASSES = 10
IMAGE_SHAPE = (1, 28, 28)
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_TORCHVISION_CLASS = {"fashion_mnist": "FashionMNIST", "mnist": "MNIST"}


@dataclass
class Data:
    train: TensorDataset
    test: TensorDataset
    source: str  # where the data came from, for the console header
    mean: float
    std: float


def load_data(cfg: dict[str, Any]) -> Data:
    """Load the dataset named by ``cfg['name']`` as normalised (N, 1, 28, 28) float tensors."""
    if cfg["name"] == "synthetic":
        return synthetic(cfg["train_size"], cfg["test_size"], cfg.get("noise", 3.0), cfg["seed"])
    name = cfg["name"]
    root = Path(cfg.get("root", "data"))
    source = ensure_idx_files(name, root, cfg.get("system_dir"), cfg.get("download", True))
    train_x, train_y = _read_torchvision(name, root, train=True)
    test_x, test_y = _read_torchvision(name, root, train=False)
    # Normalisation constants are measured from the training split, not copied from a blog.
    train_images = train_x.float().div_(255)
    mean, std = train_images.mean().item(), train_images.std().item()
    return Data(
        train=TensorDataset(train_images.sub_(mean).div_(std).contiguous(), train_y),
        test=TensorDataset(_normalise(test_x, mean, std), test_y),
        source=source,
        mean=mean,
        std=std,
    )


def ensure_idx_files(
    name: str, root: Path, system_dir: str | os.PathLike[str] | None, download: bool
) -> str:
    """Make sure torchvision finds ``name`` under ``root``; return where it came from.

    Sources, in order: files already under root; the four .gz IDX files in ``system_dir``
    (e.g. Debian's dataset-fashion-mnist), unpacked into root; torchvision's download.
    """
    cls_name = _TORCHVISION_CLASS[name]
    raw = root / cls_name / "raw"
    if _have_raw(raw):
        return f"{raw}"
    if _unpack_gz(raw):  # .gz files copied into root by hand
        return f"{raw} (unpacked from .gz)"
    if system_dir and all((Path(system_dir) / f"{f}.gz").is_file() for f in IDX_FILES):
        _prepare_from(Path(system_dir), raw)
        return f"{system_dir} (prepared into {raw})"
    errors = []
    if download:
        import torchvision.datasets as tvd

        try:
            for train in (True, False):
                getattr(tvd, cls_name)(str(root), train=train, download=True)
            return f"downloaded by torchvision into {raw}"
        except Exception as exc:  # network errors come in many types
            errors.append(f"download failed: {root_cause(exc)}")
    else:
        errors.append("download is off (dataset.download=false)")
    remedies = [
        f"put the four IDX files ({', '.join(IDX_FILES)}, optionally .gz) in {raw}/",
        (
            "install Debian's package: apt-get install -y dataset-fashion-mnist "
            "(or point dataset.system_dir at a folder with the four .gz files)"
            if name == "fashion_mnist"
            else "point dataset.system_dir at a folder with the four .gz files"
        ),
        "allow torchvision's download with network access (dataset.download=true)",
    ]
    raise DataError(
        f"dataset.name={name}: no data under dataset.root={str(root)!r}"
        + (f", none in dataset.system_dir={str(system_dir)!r}" if system_dir else "")
        + f", and {errors[0]}. Remedies: "
        + "; or ".join(f"({i}) {r}" for i, r in enumerate(remedies, 1))
        + ". Or use dataset=synthetic to run offline."
    )


def _have_raw(raw: Path) -> bool:
    return all((raw / f).is_file() for f in IDX_FILES)


def _unpack_gz(raw: Path) -> bool:
    if not all((raw / f"{f}.gz").is_file() for f in IDX_FILES):
        return False
    _prepare_from(raw, raw)
    return True


def _prepare_from(src_dir: Path, raw: Path) -> None:
    """Unpack the .gz IDX files atomically, so an interrupted copy never looks complete."""
    raw.mkdir(parents=True, exist_ok=True)
    for f in IDX_FILES:
        if (raw / f).is_file():
            continue
        fd, tmp = tempfile.mkstemp(dir=raw, prefix=f".{f}.")
        try:
            with gzip.open(src_dir / f"{f}.gz", "rb") as src, os.fdopen(fd, "wb") as dst:
                shutil.copyfileobj(src, dst, length=1 << 20)
            os.replace(tmp, raw / f)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _read_torchvision(name: str, root: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    import torchvision.datasets as tvd

    try:
        ds = getattr(tvd, _TORCHVISION_CLASS[name])(str(root), train=train, download=False)
    except Exception as exc:
        raise DataError(
            f"dataset.name={name}: the IDX files under {root} could not be read ({exc}). "
            "Delete them to prepare them again."
        ) from None
    return ds.data.unsqueeze(1), ds.targets.long()


def _normalise(images_u8: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    return images_u8.float().div_(255).sub_(mean).div_(std).contiguous()


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
        train=TensorDataset(images[:train_size].contiguous(), labels[:train_size].contiguous()),
        test=TensorDataset(images[train_size:].contiguous(), labels[train_size:].contiguous()),
        source=f"generated (seed {seed}, noise {noise})",
        mean=mean,
        std=std,
    )


def make_loader(
    ds: TensorDataset,
    batch_size: int,
    shuffle: bool,
    seed: int,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader that fetches whole batches by tensor indexing (one gather per batch)."""
    base = (
        RandomSampler(ds, generator=torch.Generator().manual_seed(seed))
        if shuffle
        else SequentialSampler(ds)
    )
    return DataLoader(
        ds,
        sampler=BatchSampler(base, batch_size=batch_size, drop_last=False),
        batch_size=None,  # the sampler yields index lists; TensorDataset gathers them at once
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
    )


def batches_per_epoch(n: int, batch_size: int) -> int:
    return math.ceil(n / batch_size)
