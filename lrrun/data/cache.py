"""Caches of decoded data, never trusted: an image folder's decoded pixels
(``$XDG_CACHE_HOME/lrrun/images/`` or ``~/.cache/lrrun/images/``, one file per folder and
decoding settings) and the IDX files' tensors (``<root>/<Class>/lrrun/<split>.pt``).

A cache file records what it was made from (``stamp``: every source file's name, size and
mtime, the decoding settings) and a SHA-256 of its tensors' bytes. One made from something
else is not used; one whose bytes no longer match its checksum, or that cannot be read, is
rebuilt with one warning - a cache can only ever cost time, never change a result. Writing
a folder's new cache removes that folder's older ones (its files changed since)."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

import torch

from lrrun.errors import root_cause
from lrrun.files import atomic_write


def load(path: Path, stamp: Any) -> dict[str, torch.Tensor] | None:
    """The tensors cached in ``path`` when they were made from ``stamp`` and are intact."""
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, weights_only=True)
        if isinstance(saved, dict) and "stamp" in saved and "sha256" not in saved:
            return None  # an older lrrun's cache, with no checksum: rebuilt
        if saved["stamp"] != stamp:
            return None  # made from other files or settings
        tensors = saved["tensors"]
        if saved["sha256"] == checksum(tensors):
            return tensors
        problem = "its content no longer matches its checksum (changed on disk)"
    except Exception as exc:  # truncated, not a torch file, another layout
        problem = f"it cannot be read ({root_cause(exc)})"
    _warn(f"the cache {path}: {problem}; it is rebuilt from the source files.")
    return None


def save(path: Path, stamp: Any, tensors: dict[str, torch.Tensor], replaces: str = "") -> None:
    """Cache ``tensors`` in ``path`` (atomically), and remove the files ``replaces`` (a glob
    in the same dir) names: the same source's older caches. A dir that cannot be written
    (read-only, full) is skipped: the next run decodes again."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "wb") as f:
            torch.save({"stamp": stamp, "sha256": checksum(tensors), "tensors": tensors}, f)
        for old in path.parent.glob(replaces) if replaces else ():
            if old != path:
                old.unlink(missing_ok=True)
    except OSError:
        pass


def checksum(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the tensors' names, dtypes, shapes and bytes."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        digest.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\n".encode())
        digest.update(t.view(-1).view(torch.uint8).numpy().data if t.numel() else b"")
    return digest.hexdigest()


def _warn(message: str) -> None:
    # the data layer has no console of its own (lrrun.logs is above it): the same line shape
    print(f"warning: {message}", file=sys.stderr)
