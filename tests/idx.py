"""Write small IDX files (the MNIST/FashionMNIST format) so data tests need no network."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import torch

from lrrun.data.idx import IDX_FILES


def idx_bytes(tensor: torch.Tensor) -> bytes:
    """uint8 tensor -> IDX bytes: magic (0, 0, type 0x08, ndim), big-endian dims, data."""
    header = struct.pack(">HBB", 0, 0x08, tensor.dim()) + struct.pack(
        f">{tensor.dim()}I", *tensor.shape
    )
    return header + tensor.to(torch.uint8).contiguous().numpy().tobytes()


def make_split(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randint(0, 256, (n, 28, 28), generator=g, dtype=torch.uint8),
        torch.randint(0, 10, (n,), generator=g, dtype=torch.uint8),
    )


def write_idx_set(
    folder: Path, gz: bool, n_train: int = 40, n_test: int = 20
) -> dict[str, torch.Tensor]:
    """Write the four files into ``folder`` (gzipped or raw); return what was written."""
    folder.mkdir(parents=True, exist_ok=True)
    train_x, train_y = make_split(n_train, 1)
    test_x, test_y = make_split(n_test, 2)
    content = dict(zip(IDX_FILES, (train_x, train_y, test_x, test_y), strict=True))
    for name, tensor in content.items():
        data = idx_bytes(tensor)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return content
