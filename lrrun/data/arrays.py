"""``dataset=tensors dataset.path=FILE.npz``: arrays in one NumPy file.

Arrays ``x_train, y_train`` and optionally ``x_val, y_val`` and ``x_test, y_test`` (and
``classes``, the class names). Samples are images N x C x H x W or N x H x W x C (C = 1 or
3), N x H x W (grey), or flat feature vectors N x D; uint8 (pixels) or floats. Labels are
integers 0 .. classes - 1 (classes: len(classes), else the largest train label + 1); under
task=regression ``y_*`` are float targets, (N,) or (N, k) (lrrun.data.targets).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lrrun.config.dataset import DataSpec
from lrrun.data.base import Loaded, Split
from lrrun.data.items import class_names
from lrrun.data.targets import targets_of
from lrrun.errors import DataError, root_cause


def load_arrays(spec: DataSpec) -> Loaded:
    path = Path(spec.options["path"]).expanduser()
    where = f"dataset.path={spec.options['path']}"
    if not path.is_file():
        raise DataError(f"{where}: no such file. Give an .npz file with x_train and y_train.")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as exc:
        raise DataError(f"{where} could not be read as an .npz file ({root_cause(exc)}).") from None
    if "x_train" not in arrays or "y_train" not in arrays:
        raise DataError(
            f"{where} has arrays {sorted(arrays) or 'none'}; it needs x_train and y_train "
            "(and optionally x_val, y_val, x_test, y_test)."
        )
    splits = {}
    for role in ("train", "val", "test"):
        x, y = arrays.get(f"x_{role}"), arrays.get(f"y_{role}")
        if (x is None) != (y is None):
            missing = f"y_{role}" if y is None else f"x_{role}"
            raise DataError(f"{where} has {'x' if y is None else 'y'}_{role} but no {missing}.")
        if x is not None:
            if not len(x):
                raise DataError(
                    f"{where}: x_{role} is empty. Give samples, or leave the split out."
                )
            samples = as_samples(x, f"{where}: x_{role}")
            splits[role] = Split(samples, targets_of(y, len(x), spec.task, f"{where}: y_{role}"))
    classes = class_names(arrays.get("classes"), splits, where, spec.task)
    shapes = {tuple(s.images.shape[1:]) for s in splits.values()}
    if len(shapes) > 1:
        raise DataError(f"{where}: the splits' samples differ in shape ({sorted(shapes)}).")
    return Loaded(
        splits["train"],
        splits.get("val"),
        splits.get("test"),
        classes,
        f"{path} ({', '.join(f'{k} {len(v)}' for k, v in splits.items())})",
    )


def as_samples(x: np.ndarray, where: str) -> torch.Tensor:
    if x.dtype != np.uint8 and not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"{where} is {x.dtype}: samples must be uint8 pixels or floats.")
    t = torch.from_numpy(np.ascontiguousarray(x))
    if t.is_floating_point():
        t = t.to(torch.float32)
        if not torch.isfinite(t).all():
            raise DataError(f"{where} holds NaN or infinite values.")
    if t.dim() == 3:  # N x H x W: grey images
        return t.unsqueeze(1)
    if t.dim() == 4:
        if t.shape[1] in (1, 3):
            return t
        if t.shape[3] in (1, 3):  # N x H x W x C
            return t.permute(0, 3, 1, 2).contiguous()
        raise DataError(f"{where} is {tuple(t.shape)}: images need 1 or 3 channels (NCHW or NHWC).")
    if t.dim() == 2:
        return t
    raise DataError(
        f"{where} is {tuple(t.shape)}: give images (N, C, H, W), (N, H, W, C), (N, H, W) "
        "or feature vectors (N, D)."
    )
