"""The training loop: the only place that calls ``backward()`` and ``step()``.

Stepping contract
-----------------
For every batch::

    forward -> loss -> backward
    lr *= w(step)                   # warm-up (lrrun.schedule.warmup; w = 1 without one or after it)
    lrs = param_groups' lr          # logged: the lr this optimizer step uses
    momentum = group 0's            # logged too when the schedule cycles it
    optimizer.step()
    lr = the scheduled lr again     # the scheduler never sees the warm-up factor
    scheduler.step()                # only if interval == "step"

After every epoch::

    evaluate on the val split (and the test split, with trainer.test_every_epoch)
    -> write the metrics row
    scheduler.step()                # if interval == "epoch"
    scheduler.step(row[monitor])    # ReduceLROnPlateau (always per epoch)

So the scheduler is always stepped after the optimizer (torch never warns), its counter
``last_epoch`` equals the number of completed intervals, and a schedule f(t) gives f(0) for
the first interval, f(1) for the second, and so on: no off-by-one. The lr is read from
``optimizer.param_groups`` before the step, never from ``get_lr()`` (which computes the
*next* value for chainable schedulers) nor from ``get_last_lr()`` after a step.

Host syncs
----------
None per step: the lr is a Python float the host already has, the loss stays on the device
(buffered by the StepRecorder) and so do the loss/accuracy sums. An epoch costs one sync
when steps.csv and the metrics row are written. (The live progress bar reads the latest
loss at most four times a second, and only on an interactive terminal.)
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import ReduceLROnPlateau

from lrrun.data.batches import Batches
from lrrun.errors import Diverged
from lrrun.logs.csv_log import StepRecorder, lr_columns
from lrrun.schedule.build import Stepping, current_lrs, current_momentum
from lrrun.schedule.warmup import warmed_up

Autocast = Callable[[], contextlib.AbstractContextManager[Any]]
OnStep = Callable[[int, list[float], torch.Tensor], None]


def no_autocast() -> contextlib.AbstractContextManager[Any]:
    return contextlib.nullcontext()


@dataclass
class TrainStats:
    lrs: list[float]  # each group's lr at the epoch's first step
    loss: float
    acc: float
    last_step: int  # global, 1-based


def step_after_batch(stepping: Stepping, epoch: int = 0, step: int = 0) -> None:
    """After optimizer step ``step`` (global) of ``epoch``: a per-step scheduler steps."""
    watch = stepping.watch  # lrrun.schedule.events: what the schedule did, if anyone asks
    if watch is not None:
        watch.optimizer_stepped(epoch, step)
    if stepping.per_batch:
        before = watch.before_step() if watch is not None else 0.0
        stepping.scheduler.step()
        if watch is not None:
            watch.after_step(before, epoch, step, None)


def step_after_epoch(
    stepping: Stepping, metrics: dict[str, Any], epoch: int = 0, step: int = 0
) -> None:
    """After epoch ``epoch`` (its last global step ``step``) was evaluated and logged."""
    if stepping.scheduler is None or stepping.interval != "epoch":
        return
    watch = stepping.watch
    before = watch.before_step() if watch is not None else 0.0
    metric = None
    if isinstance(stepping.scheduler, ReduceLROnPlateau):
        assert stepping.monitor is not None
        metric = metrics[stepping.monitor]
        stepping.scheduler.step(metric)
    else:
        stepping.scheduler.step()
    if watch is not None:
        watch.after_step(before, epoch, step, metric)


def train_one_epoch(
    model: nn.Module,
    batches: Batches,
    optimizer: Optimizer,
    stepping: Stepping,
    epoch: int,
    step: int,
    recorder: StepRecorder,
    autocast: Autocast = no_autocast,
    on_step: OnStep | None = None,
    stop_on_nonfinite: bool = True,
) -> TrainStats:
    model.train()
    batches.set_epoch(epoch)
    loss_sum = correct = None
    seen, first_lrs = 0, None
    for done, (images, targets) in enumerate(batches, 1):
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            logits = model(images)
            loss = F.cross_entropy(logits, targets)
        loss.backward()
        # warm-up: the scheduled lr x w(step) for this step only; the scheduler never sees it
        with warmed_up(optimizer, stepping.warmup.factor(step + 1)):
            lrs = current_lrs(optimizer)  # the lr this optimizer step uses
            momentum = current_momentum(optimizer) if stepping.momentum else None
            optimizer.step()
        first_lrs = first_lrs or lrs
        step += 1
        step_after_batch(stepping, epoch, step)
        loss = loss.detach()
        recorder.record(epoch, step, lrs, loss, momentum)
        loss_sum = _add(loss_sum, loss * targets.numel())
        correct = _add(correct, (logits.argmax(1) == targets).sum())
        seen += targets.numel()
        if on_step is not None:
            on_step(done, lrs, loss)
    rows = recorder.flush()
    assert first_lrs is not None, "the training data yielded no batch"
    if stop_on_nonfinite:
        check_finite(rows)
    mean_loss, acc = _means(loss_sum, correct, seen)  # the epoch's one host sync
    return TrainStats(first_lrs, mean_loss, acc, step)


@torch.inference_mode()
def evaluate(
    model: nn.Module, batches: Batches, autocast: Autocast = no_autocast
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy (0..1) over all batches."""
    model.eval()
    loss_sum = correct = None
    seen = 0
    for images, targets in batches:
        with autocast():
            logits = model(images)
        loss_sum = _add(loss_sum, F.cross_entropy(logits.float(), targets, reduction="sum"))
        correct = _add(correct, (logits.argmax(1) == targets).sum())
        seen += targets.numel()
    return _means(loss_sum, correct, seen)


def check_finite(rows: list[dict[str, Any]]) -> None:
    """Raise Diverged at the first step whose loss is NaN or infinite.

    Checked once per epoch, on the losses steps.csv has just received: checking per step
    would cost a host sync per step. The rows (NaNs included) are already on disk.
    """
    for row in rows:
        if not math.isfinite(row["loss"]):
            raise Diverged(row["epoch"], row["step"], row["lr"], row["loss"])


def _add(total: torch.Tensor | None, value: torch.Tensor) -> torch.Tensor:
    """Accumulate on the device (no host sync); starts from the first value's device."""
    return value if total is None else total + value


def _means(
    loss_sum: torch.Tensor | None, correct: torch.Tensor | None, seen: int
) -> tuple[float, float]:
    assert loss_sum is not None and correct is not None and seen > 0, "no batch was seen"
    loss, right = torch.stack([loss_sum.float(), correct.float()]).tolist()
    return loss / seen, right / seen


@dataclass
class Hooks:
    """What the runner does around the loop (console, CSV, checkpoints); all optional."""

    epoch_start: Callable[[int], None] = lambda epoch: None
    step: OnStep | None = None
    epoch_end: Callable[[dict[str, Any]], None] = lambda row: None  # before the schedule moves
    epoch_done: Callable[[int, int], None] = lambda epoch, step: None  # after: checkpoint here


def fit(
    model: nn.Module,
    train_batches: Batches,
    val_batches: Batches,
    optimizer: Optimizer,
    stepping: Stepping,
    recorder: StepRecorder,
    epochs: int,
    *,
    start_epoch: int = 1,
    step: int = 0,
    autocast: Autocast = no_autocast,
    hooks: Hooks | None = None,
    stop_on_nonfinite: bool = True,
    test_batches: Batches | None = None,
) -> list[dict[str, Any]]:
    """Train epochs ``start_epoch..epochs``; return their metrics rows (test_loss and
    test_acc None unless ``test_batches`` are given: the test split is reported, never
    used to choose, so by default it is evaluated once, at the end, lrrun.train.final_test).

    A resumed run passes the epoch and global step to continue from; the model, optimizer,
    scheduler and RNG states must already be restored.
    """
    hooks = hooks or Hooks()
    history: list[dict[str, Any]] = []
    for epoch in range(start_epoch, epochs + 1):
        start = time.perf_counter()
        hooks.epoch_start(epoch)
        # --- train
        train = train_one_epoch(
            model, train_batches, optimizer, stepping, epoch, step, recorder, autocast,
            hooks.step, stop_on_nonfinite,
        )  # fmt: skip
        step = train.last_step
        # --- evaluate
        val_loss, val_acc = evaluate(model, val_batches, autocast)
        test_loss, test_acc = (
            evaluate(model, test_batches, autocast) if test_batches else (None, None)
        )
        # --- log (the row is on disk before the schedule moves on)
        row = {
            "epoch": epoch,
            **dict(zip(lr_columns(len(train.lrs)), train.lrs, strict=True)),
            "train_loss": train.loss,
            "train_acc": train.acc,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "test_loss": test_loss,
            "test_acc": test_acc,
            "epoch_time_s": time.perf_counter() - start,
        }
        hooks.epoch_end(row)
        history.append(row)
        # --- schedule
        step_after_epoch(stepping, row, epoch, step)
        hooks.epoch_done(epoch, step)
    return history
