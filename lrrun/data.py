"""Datasets: FashionMNIST, MNIST (torchvision's own classes, read from the IDX files) and a
generated synthetic set, kept as they are on disk: one uint8 tensor of pixels per split
(47 MB for FashionMNIST's train split). How batches reach the model: lrrun.batches.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import shutil
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from lrrun.errors import DataError, root_cause
from lrrun.files import atomic_write

NUM_CLASSES = 10
IMAGE_SHAPE = (1, 28, 28)
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_TORCHVISION_CLASS = {"fashion_mnist": "FashionMNIST", "mnist": "MNIST"}


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


_CACHE: dict[str, Data] = {}


def load_data(cfg: dict[str, Any]) -> Data:
    """Load the dataset ``cfg`` names, once per process.

    Hydra's basic launcher runs every job of a sweep in one process; keeping the last
    dataset means a 16-job sweep reads and measures FashionMNIST once, not 16 times.
    The tensors are never modified in place, so sharing them between jobs is safe.
    """
    key = json.dumps(cfg, sort_keys=True, default=str)
    if key not in _CACHE:
        _CACHE.clear()  # keep one dataset: sweeps rarely alternate between datasets
        _CACHE[key] = _load(cfg)
    return _CACHE[key]


def _load(cfg: dict[str, Any]) -> Data:
    if cfg["name"] == "synthetic":
        return synthetic(cfg["train_size"], cfg["test_size"], cfg.get("noise", 3.0), cfg["seed"])
    name = cfg["name"]
    root = Path(cfg.get("root", "data"))
    source = ensure_idx_files(name, root, cfg.get("system_dir"), cfg.get("download", True))
    check_idx_set(root / _TORCHVISION_CLASS[name] / "raw")
    train = _read_torchvision(name, root, train=True)
    test = _read_torchvision(name, root, train=False)
    if not cfg.get("normalize", True):  # ToTensor() alone: pixels in [0, 1]
        return Data(name, root, train, test, source, 0.0, 1.0)
    # Normalisation constants are measured from the training split, not copied from a blog.
    pixels = train.images.to(torch.float32).div_(255)
    mean, std = pixels.mean().item(), pixels.std().item()
    return Data(name, root, train, test, source, mean, std)


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


def check_idx_set(raw: Path) -> None:
    """Refuse truncated or corrupt IDX files with a message naming the file; torchvision
    would fail with an obscure error or, for some damage, read a silently short dataset."""
    counts = {}
    for f in IDX_FILES:
        path = raw / f
        ndim = 3 if "images" in f else 1
        with path.open("rb") as fh:
            header = fh.read(4 + 4 * ndim)
        fix = f"Delete {path} so lrrun prepares it again from a good copy."
        if len(header) < 4 or header[:4] != bytes([0, 0, 0x08, ndim]):
            raise DataError(
                f"{path} is not an IDX file of uint8 {'images' if ndim == 3 else 'labels'}: "
                f"magic number {header[:4].hex() or 'missing'}, expected 000008{ndim:02x}. {fix}"
            )
        if len(header) < 4 + 4 * ndim:
            raise DataError(f"{path} is truncated inside its header. {fix}")
        dims = struct.unpack(f">{ndim}I", header[4:])
        expected = 4 + 4 * ndim + math.prod(dims)
        size = path.stat().st_size
        if size != expected:
            raise DataError(
                f"{path} has {size} bytes; its header ({' x '.join(map(str, dims))}) needs "
                f"{expected}: the file is {'truncated' if size < expected else 'too long'}. {fix}"
            )
        if ndim == 3 and dims[1:] != IMAGE_SHAPE[1:]:
            raise DataError(f"{path} holds {dims[1]}x{dims[2]} images, not 28x28. {fix}")
        counts[f] = dims[0]
    for split in ("train", "t10k"):
        images, labels = counts[f"{split}-images-idx3-ubyte"], counts[f"{split}-labels-idx1-ubyte"]
        if images != labels:
            raise DataError(
                f"{raw}: {split}-images has {images} images but {split}-labels has {labels} "
                "labels. Delete both so lrrun prepares them again."
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
        try:
            with gzip.open(src_dir / f"{f}.gz", "rb") as src, atomic_write(raw / f, "wb") as dst:
                shutil.copyfileobj(src, dst, length=1 << 20)
        except (EOFError, OSError, zlib.error) as exc:
            raise DataError(
                f"{src_dir / f'{f}.gz'} could not be unpacked ({root_cause(exc)}): it is "
                "truncated or corrupt. Replace it (e.g. apt-get install --reinstall "
                "dataset-fashion-mnist) or delete it."
            ) from None


def torchvision_dataset(name: str, root: Path, train: bool, transform: Any = None) -> Any:
    import torchvision.datasets as tvd

    try:
        return getattr(tvd, _TORCHVISION_CLASS[name])(
            str(root), train=train, download=False, transform=transform
        )
    except Exception as exc:
        raise DataError(
            f"dataset.name={name}: the IDX files under {root} could not be read ({exc}). "
            "Delete them to prepare them again."
        ) from None


def _read_torchvision(name: str, root: Path, train: bool) -> Split:
    """The split as torchvision's class reads it, cached beside the raw files.

    Importing torchvision costs ~1.7 s on a 2-core machine (it pulls in torch.distributed
    and dynamo), more than reading the data. The first run reads with torchvision and saves
    the tensors to ``<root>/<Class>/lrrun/<split>.pt`` (55 MB for FashionMNIST), stamped
    with the raw files' sizes and mtimes; later runs load that (~50 ms) while the stamp
    matches. A cache that cannot be written (read-only data dir) is skipped.
    """
    split = "train" if train else "t10k"
    raw = root / _TORCHVISION_CLASS[name] / "raw"
    stamp = [
        (f, (raw / f).stat().st_size, (raw / f).stat().st_mtime_ns)
        for f in IDX_FILES
        if f.startswith(split)
    ]
    cache = root / _TORCHVISION_CLASS[name] / "lrrun" / f"{split}.pt"
    try:
        saved = torch.load(cache, weights_only=True)
        if saved["stamp"] == [list(s) for s in stamp]:
            return Split(saved["images"], saved["labels"])
    except Exception:  # no cache yet, or an unreadable one: read the raw files
        pass
    ds = torchvision_dataset(name, root, train)
    out = Split(ds.data.unsqueeze(1).contiguous(), ds.targets.long())
    try:
        cache.parent.mkdir(exist_ok=True)
        with atomic_write(cache, "wb") as f:
            torch.save({"stamp": [list(s) for s in stamp], "images": out.images,
                        "labels": out.labels}, f)  # fmt: skip
    except OSError:
        pass
    return out


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


# --- batches ----------------------------------------------------------------------------
