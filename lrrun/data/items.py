"""Other people's datasets as lrrun reads them: (sample, target) pairs where the sample may be
a PIL image, a NumPy array or a tensor. ``TensorItems`` turns each into a tensor (images:
uint8 C x H x W, grey or RGB as asked, resized to ``dataset.image_size``); ``labels_of``
reads the targets without decoding when the dataset keeps them (``targets``, ``labels``),
checked for the task (lrrun.data.targets)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from lrrun.data.base import Split
from lrrun.data.targets import target_value, targets_of
from lrrun.errors import DataError


class TensorItems(torch.utils.data.Dataset):
    def __init__(self, dataset: Any, channels: int | None, size: tuple[int, int] | None) -> None:
        self.dataset, self.channels, self.size = dataset, channels, size

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, Any]:
        sample, target = self.dataset[i][:2]
        return as_tensor(sample, self.channels, self.size), target


def as_tensor(sample: Any, channels: int | None, size: tuple[int, int] | None) -> torch.Tensor:
    from torchvision.transforms.v2 import functional as TF

    if hasattr(sample, "convert") and hasattr(sample, "mode"):  # a PIL image
        if sample.mode not in ("L", "RGB") or (channels == 3 and sample.mode == "L"):
            sample = sample.convert("RGB")
        elif channels == 1 and sample.mode == "RGB":
            sample = sample.convert("L")
        image = TF.pil_to_tensor(sample)
    elif isinstance(sample, np.ndarray):
        image = torch.from_numpy(np.ascontiguousarray(sample))
        if image.dim() == 2:
            image = image.unsqueeze(0)
        elif image.dim() == 3 and image.shape[-1] in (1, 3) and image.shape[0] not in (1, 3):
            image = image.permute(2, 0, 1).contiguous()  # H x W x C
    elif torch.is_tensor(sample):
        image = sample
    else:
        raise DataError(
            f"a sample is a {type(sample).__name__}: lrrun reads tensors, NumPy arrays and "
            "PIL images (return one of those from the dataset's __getitem__)."
        )
    if image.is_floating_point():
        image = image.to(torch.float32)
    if size is not None and image.dim() == 3 and tuple(image.shape[-2:]) != size:
        image = TF.resize(image, list(size), antialias=True)
    return image


def labels_of(dataset: Any, where: str, task: str = "classification") -> torch.Tensor:
    """Every target of ``dataset``: its ``targets`` / ``labels`` when it has them, else read
    item by item (which decodes every sample once); checked for ``task``."""
    n = len(dataset)
    for name in ("targets", "labels"):
        found = getattr(dataset, name, None)
        if found is not None and len(found) == n:
            return targets_of(found, n, task, f"{where}: its {name}")
    try:
        values = [target_value(dataset[i][1], task, where) for i in range(n)]
    except (TypeError, IndexError) as exc:
        raise DataError(
            f"{where}: an item is not a (sample, target) pair ({exc}). Items must be "
            "(sample, class index) pairs, or (sample, values) under task=regression."
        ) from None
    return targets_of(values, n, task, f"{where}: the targets")


def class_names(
    names: Any, splits: dict[str, Split], where: str, task: str = "classification"
) -> tuple[str, ...]:
    """The classes: ``names`` when given, else 0 .. the largest train label; every split's
    labels must lie in [0, classes). Regression targets have none: ()."""
    for role, split in splits.items():
        if not len(split):
            raise DataError(f"{where}: the {role} split is empty.")
    if task == "regression":
        widths = {tuple(s.labels.shape[1:]) for s in splits.values()}
        if len(widths) > 1:
            raise DataError(f"{where}: the splits' targets differ in width ({sorted(widths)}).")
        return ()
    count = len(names) if names is not None else int(splits["train"].labels.max()) + 1
    for role, split in splits.items():
        low, high = int(split.labels.min()), int(split.labels.max())
        if low < 0 or high >= count:
            basis = "its class names" if names is not None else "the train labels"
            raise DataError(
                f"{where}: the {role} labels include {low if low < 0 else high}, outside "
                f"[0, {count}) ({count} classes from {basis}). Labels must be class indices "
                f"0 .. {count - 1}: fix the labels, or name every class."
            )
    return tuple(str(c) for c in names) if names is not None else tuple(map(str, range(count)))
