"""The Task interface and its meters' shared arithmetic: the torch side of a run's task
(lrrun.config.task)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch

from lrrun.config.task import TaskSpec
from lrrun.world import sum_over_ranks

Criterion = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Meter(Protocol):
    """An epoch's (or an evaluation's) measurements, summed on the device."""

    def add(
        self, out: torch.Tensor, targets: torch.Tensor, loss: torch.Tensor | None = None
    ) -> None:
        """One batch: the model's output and the targets; ``loss``, the batch's mean training
        loss (training), or None: the meter computes the task's plain loss (evaluation)."""

    def means(self) -> dict[str, float]:
        """Every metric over all batches seen, by every rank: one all-reduce, one host read."""


class Task:
    """The base: ``spec`` and what every task shares; subclasses fill in the rest."""

    spec: TaskSpec

    def criterion(self, loss: Criterion) -> Criterion:
        """The training loss: the configured criterion, given what it expects."""
        raise NotImplementedError

    def meter(self, train: bool) -> Meter:
        raise NotImplementedError

    def check_output(self, out: Any, batch: torch.Tensor, where: str) -> None:
        """Refuse, with the fix, a model whose output on ``batch`` does not fit the task."""
        raise NotImplementedError

    @property
    def top5(self) -> bool:
        return False

    @property
    def metrics(self) -> tuple[str, ...]:
        """What an evaluated split measures (metrics.csv's val_* and test_*)."""
        return self.spec.evaluated(self.top5)


class Sums:
    """Named device tensors summed over batches, read once (lrrun.train.loop: no host sync
    per step)."""

    def __init__(self) -> None:
        self.values: dict[str, torch.Tensor] = {}
        self.seen = 0

    def add(self, count: int, **values: torch.Tensor) -> None:
        for name, value in values.items():
            total = self.values.get(name)
            self.values[name] = value if total is None else total + value
        self.seen += count

    def read(self) -> tuple[dict[str, list[float]], int]:
        """Each sum (over every rank) as a list of floats (one per element), and the count:
        one all-reduce, one host read."""
        assert self.values and self.seen, "no batch seen"
        names = list(self.values)
        first = self.values[names[0]]
        dtype = torch.float32 if first.device.type == "mps" else torch.float64  # mps: no float64
        flat = [self.values[n].reshape(-1).to(dtype) for n in names]
        stacked = torch.cat([*flat, first.new_tensor([float(self.seen)], dtype=dtype)])
        summed = sum_over_ranks(stacked).tolist()
        out, at = {}, 0
        for name, part in zip(names, flat, strict=True):
            out[name] = summed[at : at + part.numel()]
            at += part.numel()
        return out, int(summed[-1])


def output_shape(out: Any) -> tuple[int, ...] | str:
    """The output's shape, or the name of what the model returned instead of a tensor."""
    return tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
