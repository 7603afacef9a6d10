"""``load_data``: the dataset a config names, from its source, once per process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from lrrun.data.base import Data
from lrrun.data.idx import TORCHVISION_CLASS, check_idx_set, ensure_idx_files, read_idx_split
from lrrun.data.synthetic import synthetic

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
    check_idx_set(root / TORCHVISION_CLASS[name] / "raw")
    train = read_idx_split(name, root, train=True)
    test = read_idx_split(name, root, train=False)
    if not cfg.get("normalize", True):  # ToTensor() alone: pixels in [0, 1]
        return Data(name, root, train, test, source, 0.0, 1.0)
    # Normalisation constants are measured from the training split, not copied from a blog.
    pixels = train.images.to(torch.float32).div_(255)
    mean, std = pixels.mean().item(), pixels.std().item()
    return Data(name, root, train, test, source, mean, std)
