"""Decode a per-sample split once into one tensor, so training needs no per-sample work.

Files are decoded on threads (PIL's decoders run outside Python's lock) into one uint8
tensor. An image folder's decoded splits are kept in a cache file (``cache_dir()``), stamped
with every file's name, size and mtime and the decoding settings, checked by a checksum
(lrrun.data.cache), so the next run (or a sweep's other processes) loads them in a blink.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from lrrun.data import cache
from lrrun.data.base import Split, dims
from lrrun.data.folder import FolderItems
from lrrun.errors import DataError


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
        return True  # not Linux: assume it fits
    return nbytes <= free // 2


def estimate_nbytes(split: Split) -> int:
    """A split's size in memory: exact when it is there, else from its first sample."""
    if split.in_memory:
        return split.nbytes
    sample = split.items[0][0]
    return len(split) * torch.as_tensor(sample).nbytes + split.labels.nbytes


def decode_all(split: Split, what: str) -> Split:
    """``split`` with its samples in memory (``what``: its name in messages, e.g. train/)."""
    if split.in_memory:
        return split
    items = split.items
    place = _cache_place(items) if isinstance(items, FolderItems) else None
    if place is not None:
        saved = cache.load(place[0], place[1])
        if saved is not None:
            return Split(saved["images"], split.labels)
    first = torch.as_tensor(items[0][0])
    images = torch.empty((len(split), *first.shape), dtype=first.dtype)

    def fill(i: int) -> None:
        sample = torch.as_tensor(items[i][0])
        if sample.shape != first.shape:
            raise DataError(
                f"{what}: {_name(items, i)} is {dims(sample.shape)}, {_name(items, 0)} is "
                f"{dims(first.shape)}: samples of one batch must have one size. Set "
                "dataset.image_size=[height,width] (or one number) to resize every image."
            )
        images[i] = sample

    with ThreadPoolExecutor(max(1, min(8, os.cpu_count() or 1))) as pool:
        list(pool.map(fill, range(len(split))))
    if place is not None:
        path, stamp, family = place
        cache.save(path, stamp, {"images": images}, replaces=f"{family}-*.pt")
    return Split(images, split.labels)


def cache_dir() -> Path:
    """Where image folders' decoded pixels are cached (docs/guide/runs.md, "Caches")."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lrrun" / "images"


def _cache_place(items: FolderItems) -> tuple[Path, str, str] | None:
    """A folder's cache file, its stamp (a digest of every file's name, label, size and
    mtime, and the decoding settings) and its family (the folder and settings: the name
    its newer caches share, so that one replaces the others)."""
    settings = repr((items.channels, items.size))
    try:
        folder = os.path.commonpath([os.path.abspath(p) for p, _ in items.samples])
        state = hashlib.sha256(settings.encode())
        for path, label in items.samples:
            st = os.stat(path)
            state.update(
                f"{os.path.abspath(path)}\0{label}\0{st.st_size}\0{st.st_mtime_ns}\n".encode()
            )
    except (OSError, ValueError):
        return None
    family = hashlib.sha256(f"{folder}\0{settings}".encode()).hexdigest()[:16]
    stamp = state.hexdigest()
    return cache_dir() / f"{family}-{stamp[:16]}.pt", stamp, family


def _name(items: Any, i: int) -> str:
    """A sample's file when there is one (through Subsets), else its index."""
    while isinstance(items, torch.utils.data.Subset):
        items, i = items.dataset, items.indices[i]
    if isinstance(items, FolderItems):
        return items.samples[i][0]
    return f"sample {i}"
