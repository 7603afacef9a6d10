"""What a split's targets must be, per task, from any source - never reinterpreted:

- classification: integer class indices, (N,) (or an (N, 1) column). Float targets are
  refused, integer-valued or not: casting them would silently turn a measurement into
  hundreds of classes (or truncate 2.7 to class 2); the message names task=regression.
- regression: numbers, (N,) or (N, k), finite; kept as float32 (N, k).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from lrrun.errors import DataError

FLOAT_FIX = (
    "under task=classification targets must be integer class indices. For float targets "
    "(a measurement to predict) use task=regression; for classes, store them as integers."
)


def targets_of(values: Any, n: int, task: str, where: str) -> torch.Tensor:
    """``values`` (an array, tensor or list of n targets) checked for ``task``: (N,) int64
    class indices, or (N, k) float32 regression targets."""
    array = values.numpy() if torch.is_tensor(values) else np.asarray(values)
    if array.ndim == 2 and array.shape[1] == 1 and task != "regression":
        array = array[:, 0]  # a column of labels
    if array.dtype == bool or not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise DataError(f"{where} is {array.dtype}: targets must be numbers.")
    if len(array) != n:
        raise DataError(
            f"{where} has shape {array.shape} but there are {n} samples: give one target per "
            "sample."
        )
    if task == "regression":
        if array.ndim not in (1, 2):
            raise DataError(
                f"{where} has shape {array.shape}: regression targets are (N,) or (N, k)."
            )
        out = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
        if not torch.isfinite(out).all():
            raise DataError(f"{where} holds NaN or infinite values: drop or fill those samples.")
        return out.reshape(n, -1)
    if np.issubdtype(array.dtype, np.floating):
        raise DataError(f"{where} is {array.dtype}: {FLOAT_FIX}")
    if array.ndim != 1:
        raise DataError(f"{where} has shape {array.shape}: give one integer label per sample (N,).")
    return torch.from_numpy(array.astype(np.int64))


def target_value(value: Any, task: str, where: str) -> Any:
    """One item's target as read from a dataset's (sample, target) pair: an int class index,
    or regression values; a float under classification is refused (FLOAT_FIX)."""
    if torch.is_tensor(value):
        value = value.item() if value.numel() == 1 else value.tolist()
    elif isinstance(value, np.ndarray | np.generic):
        value = value.item() if value.size == 1 else value.tolist()
    if task == "regression":
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise DataError(f"{where}: a target is {type(value).__name__} {value!r}; {FLOAT_FIX}")
    return value
