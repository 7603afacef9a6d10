"""Datasets, and the two ways batches reach the model.

FashionMNIST and MNIST are read with torchvision's own classes and kept as they are on
disk: one uint8 tensor of pixels per split (47 MB for FashionMNIST's train split).

- The tensor path (``trainer.data_path=tensor``, the default whenever a split fits): the
  split lives on the training device; each epoch draws a seeded permutation and each batch
  is one ``index_select`` plus ``ToTensor()+Normalize()``'s arithmetic on the device. No
  per-sample Python, no PIL, no workers.
- The loader path (``trainer.data_path=loader``): torchvision's dataset with
  ``ToTensor()+Normalize()`` per sample through a DataLoader (workers, pinned memory), for
  data that does not fit on the device.

Both visit the training samples in the same documented order (``epoch_order``) and compute
the same inputs, so they produce the same numbers (tests/test_fast_path.py).
"""

from __future__ import annotations

import gzip
import json
import math
import os
import shutil
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset

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
DATA_PATHS = ("auto", "tensor", "loader")


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
