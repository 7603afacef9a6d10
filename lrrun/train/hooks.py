"""What the training loop (lrrun.train.loop) hands around: the runner's hooks, what takes an
optimizer step, an epoch's training statistics, an epoch trained and evaluated."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer

from lrrun.logs.csv_log import StepRecorder
from lrrun.schedule.build import Stepping
from lrrun.schedule.events import NO_EVENTS, NoEvents
from lrrun.train.averaging import Average
from lrrun.train.recipe import Recipe

OnStep = Callable[[int, list[float], torch.Tensor], None]


@dataclass
class TrainStats:
    lrs: list[float]  # each group's lr at the epoch's first step
    metrics: dict[str, float]  # the task's training metrics: loss (and acc)
    last_step: int  # global, 1-based


@dataclass
class Hooks:
    """What the runner does around the loop (console, CSV, checkpoints); all optional."""

    epoch_start: Callable[[int], None] = lambda epoch: None
    step: OnStep | None = None
    epoch_end: Callable[[dict[str, Any]], None] = lambda row: None  # before the schedule moves
    epoch_done: Callable[[int, int], None] = lambda epoch, step: None  # after: checkpoint here


@dataclass
class Stepper:
    """What takes an optimizer step once the gradients are in (lrrun.train.loop.take_step):
    the optimizer and its schedule, how a step is made, the averages each step updates, where
    the step's steps.csv row goes, and who is told what the schedule did (events.csv). Each
    run has one, and so has each member of a fused pass."""

    optimizer: Optimizer
    stepping: Stepping
    recorder: StepRecorder
    recipe: Recipe = field(default_factory=Recipe)
    averages: Sequence[Average] = ()
    events: NoEvents = NO_EVENTS


@dataclass
class EpochEnd:
    """An epoch trained and evaluated on the val split, by ``judge`` (the model itself)."""

    epoch: int
    step: int  # its last global step
    started: float  # time.perf_counter() at its start
    train: TrainStats
    val: dict[str, Any]
    judge: nn.Module
