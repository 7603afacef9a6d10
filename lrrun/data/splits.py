"""Which split plays which role: train, val (selection) and test (reported only).

A source's own val split is the val split. Without one, ``dataset.val_split`` holds out a
seeded, stratified part of the train split (each class keeps its share, to within one
sample; regression targets have no classes: a seeded random part); ``dataset.val_split=0`` makes the test split the selection split, which the header,
status.json and a sweep's verdict then say plainly.
"""

from __future__ import annotations

import math

import torch

from lrrun.data.base import Split
from lrrun.errors import DataError


def held_out_count(val_split: int | float, n: int) -> int:
    """dataset.val_split as a number of train samples."""
    return int(val_split) if isinstance(val_split, int) else round(val_split * n)


def stratified_split(
    labels: torch.Tensor, count: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(train index, val index), both sorted: ``count`` samples for val, each class's share
    of them proportional to its share of ``labels`` (largest remainders), drawn by a
    permutation seeded with ``seed``: the same split on every machine and in every job."""
    n = len(labels)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    classes, counts = torch.unique(labels, return_counts=True)
    exact = [c * count / n for c in counts.tolist()]
    take = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(take)), key=lambda i: (-(exact[i] - take[i]), i))
    for i in by_remainder[: count - sum(take)]:
        take[i] += 1
    shuffled = labels[order]
    val = [order[shuffled == c][:k] for c, k in zip(classes.tolist(), take, strict=True)]
    val_index = torch.cat(val).sort().values if val else torch.empty(0, dtype=torch.long)
    keep = torch.ones(n, dtype=torch.bool)
    keep[val_index] = False
    return keep.nonzero().squeeze(1), val_index


def random_split(n: int, count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train index, val index), both sorted: ``count`` of ``n`` samples drawn for val by a
    permutation seeded with ``seed``."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[count:].sort().values, order[:count].sort().values


def assign_roles(
    train: Split, val: Split | None, test: Split | None, val_split: int | float, seed: int
) -> tuple[Split, Split, Split | None, str, str]:
    """(train, val, test, selection, how val came about) for a source's splits."""
    if val is not None:
        return train, val, test, "val", "the source's val split"
    if val_split:
        count = held_out_count(val_split, len(train))
        if not 0 < count < len(train):
            raise DataError(
                f"dataset.val_split={val_split} holds out {count} of the {len(train)} train "
                "samples: it must leave both splits non-empty. Lower dataset.val_split."
            )
        if train.labels.is_floating_point():  # regression targets: no classes to stratify
            train_index, val_index = random_split(len(train), count, seed)
            how = f"{count} held out of train (random, dataset.split_seed={seed})"
        else:
            train_index, val_index = stratified_split(train.labels, count, seed)
            how = f"{count} held out of train (stratified, dataset.split_seed={seed})"
        return train.subset(train_index), train.subset(val_index), test, "val", how
    if test is not None:
        return train, test, None, "test", "the test split (dataset.val_split=0)"
    raise DataError(
        "dataset.val_split=0 and the source has neither a val nor a test split: nothing to "
        "select on. Set dataset.val_split (e.g. 0.1) to hold out part of train."
    )
