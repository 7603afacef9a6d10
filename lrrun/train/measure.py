"""What an epoch measures: the task's metrics (lrrun.tasks: sums kept on the device until
the epoch's one host read), evaluation on a split, and the divergence checks."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from lrrun.data.batches import Batches
from lrrun.errors import Diverged
from lrrun.tasks import Task
from lrrun.train.recipe import Autocast, no_autocast


@torch.inference_mode()
def evaluate(
    model: nn.Module, batches: Batches, task: Task, autocast: Autocast = no_autocast
) -> dict[str, float]:
    """The task's metrics over all batches, in eval mode: the plain loss (cross-entropy, or
    the squared error in the targets' units), acc / mae, rmse, r2 / ppl."""
    model.eval()
    meter = task.meter(train=False)
    for inputs, targets in batches:
        with autocast():
            out = model(inputs)
        meter.add(out, targets)
    return meter.means()


def evaluated(
    split: str, model: nn.Module, batches: Batches | None, task: Task, autocast: Autocast
) -> dict[str, float | None]:
    """``<split>_<metric>`` for each of the task's metrics of ``batches``; None without."""
    values = evaluate(model, batches, task, autocast) if batches is not None else {}
    return {f"{split}_{m}": values.get(m) for m in task.metrics}


def check_finite(rows: list[dict[str, Any]]) -> None:
    """Raise Diverged at the first step whose loss is NaN or infinite.

    Checked once per epoch, on the losses steps.csv has just received: checking per step
    would cost a host sync per step. The rows (NaNs included) are already on disk.
    """
    for row in rows:
        if not math.isfinite(row["loss"]):
            raise Diverged(row["epoch"], row["step"], row["lr"], row["loss"])


def check_evaluated(row: dict[str, Any], step: int) -> None:
    """Raise Diverged when an evaluated loss of the epoch's row is NaN or infinite: a model
    whose val outputs are not finite has diverged too, however its training loss looks (and
    ReduceLROnPlateau must not act on a NaN). The row is on disk first."""
    for split in ("val", "test"):
        value = row.get(f"{split}_loss")
        if value is not None and not math.isfinite(value):
            raise Diverged(row["epoch"], step, row["lr"], value, split)
