"""lrrun's warm-up in front of any schedule (``scheduler.warmup``), plateau and composites
included.

Contract (per optimizer step, whatever the scheduler's interval): for global optimizer step
k (1-based) the optimizer uses ``lr_k = scheduled_lr_k * w(k)`` with::

    w(k) = start_factor + (1 - start_factor) * (k - 1) / W    for k <= W
    w(k) = 1                                                  after

where W is ``warmup.steps`` (or ``warmup.epochs`` x batches per epoch) and ``scheduled_lr_k``
is exactly what the schedule gives without warm-up. The factor is applied only around
``optimizer.step()`` (lrrun.train.loop) and the scheduled lr is put back right after, so no
scheduler ever sees it: chainable torch schedulers (ExponentialLR, StepLR, ...) read the
optimizer's lr when they step, and checkpoints hold the scheduled lr. steps.csv logs lr_k, the
lr actually used. Unlike torch's LinearLR, the warm-up may start at 0.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from torch.optim import Optimizer


@dataclass(frozen=True)
class Warmup:
    steps: int = 0  # W; 0 = off
    start_factor: float = 0.0

    def factor(self, k: int) -> float:
        """w(k) for global optimizer step k (1-based)."""
        if k > self.steps:
            return 1.0
        return self.start_factor + (1.0 - self.start_factor) * (k - 1) / self.steps

    def lrs(self, scheduled: list[float], k: int) -> list[float]:
        """The lrs global step k uses, from the scheduled ones (what steps.csv logs)."""
        return scale(scheduled, self.factor(k))

    def describe(self) -> str:
        return f"{self.steps} steps from {self.start_factor}" if self.steps else "off"

    def header(self) -> dict[str, str]:
        """The console's warm-up line (run header, preview facts); none when off."""
        return {"warmup": f"{self.describe()} (x the schedule)"} if self.steps else {}


def from_config(node: dict[str, Any] | None, steps_per_epoch: int) -> Warmup:
    """The warm-up of a checked ``scheduler.warmup`` node (lrrun.config.scheduler.check_warmup)."""
    node = node or {}
    steps = node.get("steps")
    if steps is None and node.get("epochs") is not None:
        steps = node["epochs"] * steps_per_epoch
    return Warmup(int(steps or 0), float(node.get("start_factor", 0.0)))


def scale(lrs: list[Any], factor: float) -> list[Any]:
    """The one warm-up arithmetic: the training loop, lrrun-preview and the event log all
    multiply this way, so their lrs agree to the bit."""
    return lrs if factor == 1.0 else [lr * factor for lr in lrs]


@contextmanager
def warmed_up(optimizer: Optimizer, factor: float) -> Iterator[None]:
    """Every group's lr times ``factor`` inside the block; the exact scheduled values after."""
    if factor == 1.0:
        yield
        return
    scheduled = [group["lr"] for group in optimizer.param_groups]
    for group, lr in zip(optimizer.param_groups, scale(scheduled, factor), strict=True):
        group["lr"] = lr
    try:
        yield
    finally:
        for group, lr in zip(optimizer.param_groups, scheduled, strict=True):
            group["lr"] = lr
