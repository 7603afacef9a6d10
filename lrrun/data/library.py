"""Datasets from other code: torchvision's dataset classes (``dataset=torchvision
dataset.name=CIFAR10 dataset.root=DIR``, files already on disk: lrrun never downloads them)
and a user's callable (``dataset=custom dataset._target_=mypkg.data.build``) returning
(train, val) or (train, val, test) datasets, or a dict of them.

A dataset that keeps its images in one array (torchvision's CIFAR, MNIST, SVHN, ...; a
TensorDataset) is read into memory directly; others are read per sample (lrrun.data.items).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from lrrun.config.checks import locate
from lrrun.config.dataset import DataSpec
from lrrun.data.base import Loaded, Split
from lrrun.data.items import TensorItems, class_names, labels_of
from lrrun.data.targets import targets_of
from lrrun.errors import DataError, root_cause


def load_torchvision(spec: DataSpec) -> Loaded:
    import torchvision.datasets as tvd

    name, options = spec.name, dict(spec.options)
    cls = getattr(tvd, name, None)
    if not (isinstance(cls, type) and issubclass(cls, torch.utils.data.Dataset)):
        known = [n for n in dir(tvd) if isinstance(getattr(tvd, n), type) and n[0].isupper()]
        close = difflib.get_close_matches(name, known, n=1)
        raise DataError(
            f"dataset.name={name} is not a dataset class of torchvision.datasets"
            + (f": did you mean {close[0]}?" if close else ".")
            + " (e.g. CIFAR10, CIFAR100, SVHN, FashionMNIST)"
        )
    root = str(options.pop("root"))
    takes = inspect.signature(cls).parameters
    splits = (
        {"train": {"train": True}, "test": {"train": False}}
        if "train" in takes
        else (
            {"train": {"split": "train"}, "test": {"split": "test"}}
            if "split" in takes
            else {"train": {}}
        )
    )
    made = {}
    for role, how in splits.items():
        try:
            made[role] = cls(root, download=False, **how, **options)
        except Exception as exc:
            raise DataError(
                f"dataset.name={name}: its {role} split is not under dataset.root={root} "
                f"(torchvision: {root_cause(exc)}). lrrun never downloads: put the files "
                "there as torchvision's download would (e.g. for CIFAR10, unpack "
                "cifar-10-python.tar.gz into the root)."
            ) from None
    return _loaded(
        made,
        getattr(made["train"], "classes", None),
        spec,
        f"torchvision.datasets.{name} in {root}",
    )


def load_callable(spec: DataSpec) -> Loaded:
    options = dict(spec.options)
    target = options.pop("_target_")
    where = f"dataset._target_={target}"
    try:
        build = locate(target)
    except Exception as exc:
        raise DataError(
            f"{where} cannot be imported ({root_cause(exc)}). The current directory is on "
            "the import path: put the module there (mypkg/data.py) or install it."
        ) from None
    try:
        out = build(**options)
    except Exception as exc:
        raise DataError(f"{where} failed: {root_cause(exc)}") from None
    made = _named_splits(out, where)
    return _loaded(made, getattr(made["train"], "classes", None), spec, f"{target}()")


def _named_splits(out: Any, where: str) -> dict[str, Any]:
    fix = (
        "it must return (train, val) or (train, val, test) datasets (val may be None), or a "
        "dict with train, val and optionally test"
    )
    if isinstance(out, Mapping):
        found = {k: out.get(k) for k in ("train", "val", "test")}
    elif isinstance(out, Sequence) and not isinstance(out, str) and len(out) in (2, 3):
        found = dict(zip(("train", "val", "test"), out, strict=False))
    else:
        raise DataError(f"{where} returned {type(out).__name__}: {fix}.")
    made = {k: v for k, v in found.items() if v is not None}
    for role, ds in made.items():
        if not (hasattr(ds, "__len__") and hasattr(ds, "__getitem__")):
            raise DataError(f"{where} returned a {type(ds).__name__} as its {role} split: {fix}.")
    if "train" not in made:
        raise DataError(f"{where} returned no train split: {fix}.")
    return made


def _loaded(made: dict[str, Any], names: Any, spec: DataSpec, source: str) -> Loaded:
    where = f"dataset {source}"
    splits = {role: _split(ds, spec, f"{where}, {role}") for role, ds in made.items()}
    classes = class_names(names, splits, where, spec.task)
    return Loaded(
        splits["train"],
        splits.get("val"),
        splits.get("test"),
        classes,
        source + f" ({', '.join(f'{k} {len(v)}' for k, v in splits.items())})",
    )


def _split(ds: Any, spec: DataSpec, where: str) -> Split:
    """In memory when the dataset keeps its samples in one array, else per sample."""
    if isinstance(ds, torch.utils.data.TensorDataset) and len(ds.tensors) >= 2:
        images = ds.tensors[0]
        targets = targets_of(ds.tensors[1], len(images), spec.task, f"{where}: its targets")
        return Split(images.to(torch.float32) if images.is_floating_point() else images, targets)
    data = getattr(ds, "data", None)
    if isinstance(data, np.ndarray | torch.Tensor) and data.ndim in (3, 4) and len(data) == len(ds):
        images = torch.as_tensor(np.asarray(data)) if isinstance(data, np.ndarray) else data
        if images.dtype == torch.uint8 and spec.image_size is None and spec.channels is None:
            if images.dim() == 3:
                images = images.unsqueeze(1)  # N x H x W
            elif images.shape[1] not in (1, 3):
                images = images.permute(0, 3, 1, 2)  # N x H x W x C
            return Split(images.contiguous(), labels_of(ds, where, spec.task))
    return Split(
        None, labels_of(ds, where, spec.task), TensorItems(ds, spec.channels, spec.image_size)
    )
