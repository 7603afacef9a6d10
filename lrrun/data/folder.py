"""``dataset=image_folder``: torchvision's ImageFolder layout, class names from folder names.

    root/train/<class>/*.png   root/val/<class>/...   root/test/<class>/...   (val, test optional)
    root/<class>/*.png                                   (one folder: dataset.val_split holds out val)

Images are listed with torchvision's own ``find_classes`` / ``make_dataset`` (its extensions)
and decoded with PIL, as ImageFolder does (uint8, C x H x W; grey or RGB as
``dataset.channels`` says, else as the first image), resized to ``dataset.image_size`` when
it is set. (torchvision 0.29 deprecates its own torchvision.io decoders.) A folder whose first
image has 16-bit (or 32-bit integer) pixels is decoded to float32 in [0, 1] (pixel / 65535;
its 8-bit images / 255): scaled, never clipped to 8 bits, so 12-bit scans keep their detail
(normalisation then measures their range).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from lrrun.config.dataset import DataSpec
from lrrun.data.base import Loaded, Split
from lrrun.errors import DataError, root_cause

SPLITS = ("train", "val", "test")


def _unreadable() -> tuple[type[Exception], ...]:
    """What PIL raises for a file it will not decode: damaged, not an image, or declaring
    more pixels than PIL's decompression-bomb limit (a PNG header of 20000 x 20000)."""
    from PIL import Image

    return (OSError, Image.DecompressionBombError, SyntaxError, ValueError)


UNREADABLE = _unreadable()
# PIL modes of more than 8 bits per pixel (16-bit PNG and TIFF load as one of these)
WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")


class FolderItems(torch.utils.data.Dataset):
    """(image, class index) per file, decoded when asked for: uint8, or float32 in [0, 1]
    for a folder of 16-bit images (``wide``)."""

    def __init__(
        self, samples: list[tuple[str, int]], channels: int, size: Any, wide: bool = False
    ) -> None:
        self.samples, self.channels, self.size, self.wide = samples, channels, size, wide

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[i]
        return decode(path, self.channels, self.size, self.wide), label


def check_headers(items: FolderItems, what: str) -> None:
    """Before epoch 1 on the DataLoader path (which decodes while training): every file opens
    as an image (its header only: no pixels are decoded), none declares a decompression
    bomb or a bit depth the folder does not have, and - unless dataset.image_size resizes
    them - all have one size, as the in-memory path checks when it decodes."""
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    def header(path: str) -> tuple[tuple[int, int], str]:
        try:
            with Image.open(path) as image:
                return image.size, image.mode
        except UNREADABLE as exc:
            raise DataError(
                f"{what}: {path} could not be opened as an image ({root_cause(exc)}). "
                "Replace or remove it."
            ) from None

    paths = [path for path, _ in items.samples]
    with ThreadPoolExecutor(4) as pool:
        headers = list(pool.map(header, paths, chunksize=256))
    (width, height), _ = headers[0]
    for path, (size, mode) in zip(paths, headers, strict=True):
        if mode in WIDE_MODES and not items.wide:
            raise DataError(f"{what}: {_deeper(path, mode)}")
        if items.size is None and size != (width, height):
            raise DataError(
                f"{what}: {path} is {size[0]}x{size[1]} pixels, {paths[0]} is {width}x{height}: "
                "samples of one batch must have one size. Set dataset.image_size=[height,width] "
                "(or one number) to resize every image."
            )


def decode(
    path: str, channels: int, size: tuple[int, int] | None, wide: bool = False
) -> torch.Tensor:
    from PIL import Image

    from lrrun.data.items import as_tensor

    try:
        with Image.open(path) as image:
            if wide:
                return as_tensor(_unit_float(image, channels), channels, size)
            if image.mode in WIDE_MODES:
                raise DataError(_deeper(path, image.mode))
            return as_tensor(image.convert("L" if channels == 1 else "RGB"), channels, size)
    except UNREADABLE as exc:
        raise DataError(
            f"{path} could not be decoded as an image ({root_cause(exc)}). Replace or remove it."
        ) from None


def _deeper(path: str, mode: str) -> str:
    return (
        f"{path} has {mode} pixels (more than 8 bits) in a folder whose first image has 8: "
        "lrrun will not clip it to 8 bits. Store the folder's images with one bit depth."
    )


def _unit_float(image: Any, channels: int) -> Any:
    """A 16-bit (or 8-bit) image as a float32 C x H x W array in [0, 1]."""
    import numpy as np

    if image.mode in WIDE_MODES:
        pixels = np.asarray(image, dtype=np.float32) / 65535.0
        pixels = pixels[None] if channels == 1 else np.repeat(pixels[None], 3, axis=0)
    else:
        rgb = np.asarray(image.convert("L" if channels == 1 else "RGB"), dtype=np.float32)
        pixels = (rgb[None] if channels == 1 else rgb.transpose(2, 0, 1)) / 255.0
    return np.ascontiguousarray(pixels)


def load_folder(spec: DataSpec) -> Loaded:
    """The folder's splits, per sample (lrrun.data.memory decodes them once when they fit)."""
    root = Path(spec.options["root"]).expanduser()
    if not root.is_dir():
        raise DataError(
            f"dataset.root={spec.options['root']}: {'not a folder' if root.exists() else 'no such folder'}. "
            "Give a folder of class folders (or of train/, val/, test/ holding class folders)."
        )
    split_dirs = {s: root / s for s in SPLITS if (root / s).is_dir()}
    if "train" not in split_dirs:
        if split_dirs:
            raise DataError(
                f"dataset.root={root} has {', '.join(f'{s}/' for s in split_dirs)} but no "
                "train/: add train/ (with class folders), or put the class folders in root."
            )
        split_dirs = {"train": root}
    classes = _classes(split_dirs["train"], root)
    index = {name: i for i, name in enumerate(classes)}
    listed = {s: _samples(d, index, root) for s, d in split_dirs.items()}
    first = listed["train"][0][0]
    channels = spec.channels or _channels_of(first)
    wide = _mode_of(first) in WIDE_MODES
    splits = {
        s: Split(
            None,
            torch.tensor([c for _, c in found], dtype=torch.long),
            FolderItems(found, channels, spec.image_size, wide),
        )
        for s, found in listed.items()
    }
    one_folder = split_dirs["train"] == root
    counts = (
        str(len(splits["train"]))
        if one_folder
        else ", ".join(f"{s}/ {len(v)}" for s, v in splits.items())
    )
    return Loaded(
        splits["train"],
        splits.get("val"),
        splits.get("test"),
        tuple(classes),
        f"{root} ({counts} images)",
        root,
    )


def _classes(folder: Path, root: Path) -> list[str]:
    from torchvision.datasets.folder import find_classes

    try:
        return find_classes(str(folder))[0]
    except FileNotFoundError:
        raise DataError(
            f"dataset.root={root}: {folder} has no class folders. Put each class's images in "
            "a folder named after the class (root/<class>/*.png or root/train/<class>/...)."
        ) from None


def _samples(folder: Path, index: dict[str, int], root: Path) -> list[tuple[str, int]]:
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    where = folder.relative_to(root) if folder != root else Path(".")
    if folder.name in ("val", "test"):
        extra = sorted(set(find_classes(str(folder))[0]) - set(index)) if _has_dirs(folder) else []
        if extra:
            raise DataError(
                f"dataset.root={root}: {where}/ has class folders train/ lacks ({', '.join(extra)}). "
                "Every class must have training images: add them to train/ or remove these."
            )
    present = {c: i for c, i in index.items() if (folder / c).is_dir()}
    try:
        found = make_dataset(str(folder), present, extensions=IMG_EXTENSIONS)
    except FileNotFoundError as exc:  # a class folder without a single image
        empty = sorted(
            c
            for c in present
            if not any(p.suffix.lower() in IMG_EXTENSIONS for p in (folder / c).rglob("*"))
        )
        raise DataError(
            f"dataset.root={root}: class folder {where / empty[0] if empty else where} has no "
            f"images ({', '.join(IMG_EXTENSIONS)}). Add images or remove the folder."
        ) from exc
    if not found:
        raise DataError(f"dataset.root={root}: {where}/ holds no images.")
    return found


def _has_dirs(folder: Path) -> bool:
    return any(p.is_dir() for p in folder.iterdir())


def _mode_of(path: str) -> str:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return str(image.mode)
    except UNREADABLE as exc:
        raise DataError(f"{path} could not be decoded as an image ({root_cause(exc)}).") from None


def _channels_of(path: str) -> int:
    return 1 if _mode_of(path) in ("1", "L", "LA", "F", *WIDE_MODES) else 3
