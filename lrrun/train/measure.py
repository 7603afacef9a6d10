"""What an epoch measures: loss, accuracy (and top-5) sums kept on the device until the
epoch's one host read, evaluation on a split, and the divergence check on the logged losses."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lrrun.data.batches import Batches
from lrrun.errors import Diverged
from lrrun.train.recipe import Autocast, no_autocast
from lrrun.world import sum_over_ranks


class Sums:
    """Loss, correct and seen counts of an epoch, on the device (no host sync until means)."""

    def __init__(self, top5: bool = False) -> None:
        self.loss: torch.Tensor | None = None
        self.correct: torch.Tensor | None = None
        self.top: torch.Tensor | None = None
        self.seen, self.top5 = 0, top5

    def add(
        self, loss: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor, summed: bool = False
    ) -> None:
        n = targets.numel()
        self.loss = _add(self.loss, loss if summed else loss * n)
        self.correct = _add(self.correct, (logits.argmax(1) == targets).sum())
        if self.top5:
            top = logits.topk(min(5, logits.shape[1]), dim=1).indices
            self.top = _add(self.top, (top == targets[:, None]).any(1).sum())
        self.seen += n

    def means(self) -> tuple[float, float, float | None]:
        """The means over every sample seen, by all ranks of a data-parallel run (one
        all-reduce, one host read)."""
        assert self.loss is not None and self.correct is not None and self.seen, "no batch seen"
        values = [self.loss.float(), self.correct.float()]
        if self.top is not None:
            values.append(self.top.float())
        values.append(self.loss.new_tensor(float(self.seen)))
        *sums, seen = sum_over_ranks(torch.stack(values)).tolist()
        out = [v / seen for v in sums]
        return out[0], out[1], out[2] if self.top is not None else None


def _add(total: torch.Tensor | None, value: torch.Tensor) -> torch.Tensor:
    """Accumulate on the device (no host sync); starts from the first value's device."""
    return value if total is None else total + value


@torch.inference_mode()
def evaluate(
    model: nn.Module, batches: Batches, autocast: Autocast = no_autocast, top5: bool = False
) -> tuple[float, float] | tuple[float, float, float]:
    """Mean cross-entropy and accuracy (0..1) over all batches (and top-5 accuracy)."""
    model.eval()
    sums = Sums(top5)
    for images, targets in batches:
        with autocast():
            logits = model(images)
        sums.add(F.cross_entropy(logits.float(), targets, reduction="sum"), logits, targets,
                 summed=True)  # fmt: skip
    loss, acc, top = sums.means()
    return (loss, acc, top) if top5 else (loss, acc)


def evaluated(
    split: str, model: nn.Module, batches: Batches | None, autocast: Autocast, top5: bool
) -> dict[str, float | None]:
    """``<split>_loss``, ``<split>_acc`` (and ``<split>_top5``) of ``batches``; None without."""
    names = [f"{split}_loss", f"{split}_acc", *([f"{split}_top5"] if top5 else [])]
    values = evaluate(model, batches, autocast, top5) if batches is not None else (None,) * 3
    return dict(zip(names, values, strict=False))


def check_finite(rows: list[dict[str, Any]]) -> None:
    """Raise Diverged at the first step whose loss is NaN or infinite.

    Checked once per epoch, on the losses steps.csv has just received: checking per step
    would cost a host sync per step. The rows (NaNs included) are already on disk.
    """
    for row in rows:
        if not math.isfinite(row["loss"]):
            raise Diverged(row["epoch"], row["step"], row["lr"], row["loss"])
