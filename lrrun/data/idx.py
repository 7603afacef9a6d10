"""FashionMNIST and MNIST from their IDX files: found under ``dataset.root``, prepared from a
folder of .gz files (Debian's dataset-fashion-mnist), or downloaded by torchvision; checked
(magic numbers, lengths, counts) and read with torchvision's own classes, with a tensor
cache beside the raw files."""

from __future__ import annotations

import gzip
import math
import os
import shutil
import struct
import zlib
from pathlib import Path
from typing import Any

from lrrun.config.dataset import DataSpec
from lrrun.data import cache
from lrrun.data.base import IMAGE_SHAPE, Loaded, Split
from lrrun.errors import DataError, root_cause
from lrrun.files import atomic_write

IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
TORCHVISION_CLASS = {"fashion_mnist": "FashionMNIST", "mnist": "MNIST"}
# torchvision's class names (FashionMNIST.classes, MNIST.classes), spelled here: importing
# torchvision costs ~1.7 s, more than reading the cached splits
CLASSES = {
    "fashion_mnist": (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    "mnist": (
        "0 - zero",
        "1 - one",
        "2 - two",
        "3 - three",
        "4 - four",
        "5 - five",
        "6 - six",
        "7 - seven",
        "8 - eight",
        "9 - nine",
    ),
}


def load_idx(spec: DataSpec) -> Loaded:
    """FashionMNIST or MNIST: the train and test splits (t10k), 28x28 uint8 pixels."""
    name, options = spec.name, spec.options
    root = Path(options.get("root", "data"))
    source = ensure_idx_files(name, root, options.get("system_dir"), options.get("download", True))
    check_idx_set(root / TORCHVISION_CLASS[name] / "raw")
    classes = CLASSES[name]
    train = read_idx_split(name, root, train=True)
    test = read_idx_split(name, root, train=False)
    return Loaded(train, None, test, classes, source, root)


def ensure_idx_files(
    name: str, root: Path, system_dir: str | os.PathLike[str] | None, download: bool
) -> str:
    """Make sure torchvision finds ``name`` under ``root``; return where it came from.

    Sources, in order: files already under root; the four .gz IDX files in ``system_dir``
    (e.g. Debian's dataset-fashion-mnist), unpacked into root; torchvision's download.
    """
    cls_name = TORCHVISION_CLASS[name]
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
        return getattr(tvd, TORCHVISION_CLASS[name])(
            str(root), train=train, download=False, transform=transform
        )
    except Exception as exc:
        raise DataError(
            f"dataset.name={name}: the IDX files under {root} could not be read ({exc}). "
            "Delete them to prepare them again."
        ) from None


def read_idx_split(name: str, root: Path, train: bool) -> Split:
    """The split as torchvision's class reads it, cached beside the raw files.

    Importing torchvision costs ~1.7 s on a 2-core machine (it pulls in torch.distributed
    and dynamo), more than reading the data. The first run reads with torchvision and saves
    the tensors to ``<root>/<Class>/lrrun/<split>.pt`` (55 MB for FashionMNIST), stamped
    with the raw files' sizes and mtimes and checked by a checksum (lrrun.data.cache); later
    runs load that (~0.1 s) while both match. A cache that cannot be written (read-only data
    dir) is skipped.
    """
    split = "train" if train else "t10k"
    raw = root / TORCHVISION_CLASS[name] / "raw"
    stamp = [
        (f, (raw / f).stat().st_size, (raw / f).stat().st_mtime_ns)
        for f in IDX_FILES
        if f.startswith(split)
    ]
    path = root / TORCHVISION_CLASS[name] / "lrrun" / f"{split}.pt"
    stamp = [list(s) for s in stamp]
    saved = cache.load(path, stamp)  # checked: lrrun.data.cache
    if saved is not None:
        return Split(saved["images"], saved["labels"])
    ds = torchvision_dataset(name, root, train)
    out = Split(ds.data.unsqueeze(1).contiguous(), ds.targets.long())
    cache.save(path, stamp, {"images": out.images, "labels": out.labels})
    return out
