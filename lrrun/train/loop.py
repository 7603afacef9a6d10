"""The training loop: the only place that calls ``backward()`` and ``step()`` (with its
fused twin, lrrun.fused.loop, which steps the members of one pass by these same functions).

Stepping contract
-----------------
For every group of ``trainer.accumulate`` batches (one batch by default; the epoch's last
group may be shorter)::

    for each batch: forward -> loss / (batches in the group) -> backward
                                    # DDP: one all-reduce, in the group's last backward
    clip the gradients (trainer.clip_grad_norm / clip_grad_value), keep their norm
    lr *= w(step)                   # warm-up (lrrun.schedule.warmup; w = 1 without one or after it)
    lrs = param_groups' lr          # logged: the lr this optimizer step uses
    momentum = group 0's            # logged too when the schedule cycles it
    optimizer.step()                # fp16: the gradient scaler's, which may skip it (an event;
                                    # the step counts all the same: lrrun.train.recipe)
    lr = the scheduled lr again     # the scheduler never sees the warm-up factor
    ema.update(step)                # trainer.ema: the moving average (lrrun.train.averaging)
    scheduler.step()                # only if interval == "step"

After every epoch::

    evaluate on the val split (and the test split, with trainer.test_every_epoch)
    swa.update(epoch), then each average on the val split (val_*_ema, val_*_swa)
    -> write the metrics row
    scheduler.step()                # if interval == "epoch"
    scheduler.step(row[monitor])    # ReduceLROnPlateau (always per epoch)

So the scheduler is always stepped after the optimizer (torch never warns), its counter
``last_epoch`` equals the number of completed intervals (optimizer steps, never batches),
and a schedule f(t) gives f(0) for the first interval, f(1) for the second, and so on: no
off-by-one. The lr is read from ``optimizer.param_groups`` before the step, never from
``get_lr()`` (which computes the *next* value for chainable schedulers) nor from
``get_last_lr()`` after a step. (A schedule-free optimizer scales its lr inside its step; its
own record of the lr it used is read right after: lrrun.train.recipe.)

Host syncs: none per step. The lr is a Python float; the loss, the gradient norm (buffered by
the StepRecorder) and the task's metric sums stay on the device until the epoch's rows are
written. (A live progress bar reads the loss at most four times a second, only on a terminal;
fp16's scaler reads its inf check per step.)
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import ReduceLROnPlateau

from lrrun.data.batches import Batches
from lrrun.logs.csv_log import lr_columns
from lrrun.schedule.build import Stepping, current_lrs, current_momentum
from lrrun.schedule.events import NO_EVENTS, NoEvents
from lrrun.schedule.warmup import warmed_up
from lrrun.tasks import Meter, Task
from lrrun.train import averaging, distributed
from lrrun.train.early_stop import EarlyStop
from lrrun.train.hooks import EpochEnd, Hooks, OnStep, Stepper, TrainStats
from lrrun.train.measure import check_evaluated, check_finite, evaluated
from lrrun.train.recipe import (
    Autocast,
    Batch,
    Recipe,
    after_a_skip,
    groups,
    no_autocast,
    set_mode,
    used_lrs,
)


def step_after_batch(
    stepping: Stepping, epoch: int = 0, step: int = 0, events: NoEvents = NO_EVENTS
) -> None:
    """After optimizer step ``step`` (global) of ``epoch``: a per-step scheduler steps;
    ``events`` (lrrun.schedule.events) is told what the schedule did."""
    events.optimizer_stepped(epoch, step)
    if stepping.per_batch:
        before = events.before_step()
        stepping.scheduler.step()
        events.after_step(before, epoch, step, None)


def step_after_epoch(
    stepping: Stepping,
    metrics: dict[str, Any],
    epoch: int = 0,
    step: int = 0,
    events: NoEvents = NO_EVENTS,
) -> None:
    """After epoch ``epoch`` (its last global step ``step``) was evaluated and logged."""
    if stepping.scheduler is None or stepping.interval != "epoch":
        return
    before = events.before_step()
    metric = None
    if isinstance(stepping.scheduler, ReduceLROnPlateau):
        assert stepping.monitor is not None
        metric = metrics[stepping.monitor]
        stepping.scheduler.step(metric)
    else:
        stepping.scheduler.step()
    events.after_step(before, epoch, step, metric)


def train_one_epoch(
    model: nn.Module,
    batches: Batches,
    stepper: Stepper,
    task: Task,
    epoch: int,
    step: int,
    *,
    autocast: Autocast = no_autocast,
    on_step: OnStep | None = None,
    stop_on_nonfinite: bool = True,
) -> TrainStats:
    optimizer, recipe = stepper.optimizer, stepper.recipe
    model.train()
    set_mode(optimizer, train=True)
    batches.set_epoch(epoch)
    meter, first_lrs, done = task.meter(train=True), None, 0
    for group in groups(batches, recipe.accumulate):
        stepped = step_group(model, group, optimizer, recipe, autocast, epoch, meter)
        step, done = step + 1, done + len(group)
        lrs = take_step(stepper, epoch, step, stepped)
        first_lrs = first_lrs or lrs
        if on_step is not None:
            on_step(done, lrs, stepped[0])
    rows = stepper.recorder.flush()
    assert first_lrs is not None, "the training data yielded no batch"
    if stop_on_nonfinite:
        check_finite(rows)
    return TrainStats(first_lrs, meter.means(), step)  # the epoch's one host sync


def take_step(
    stepper: Stepper, epoch: int, step: int, stepped: tuple[torch.Tensor, torch.Tensor | None]
) -> list[float]:
    """Optimizer step ``step`` (global, 1-based) once ``stepped`` (step_group's loss and norm)
    is in: the contract's per-step part, for fused members too (lrrun.fused.loop); its lrs."""
    optimizer, stepping, events = stepper.optimizer, stepper.stepping, stepper.events
    # warm-up: the scheduled lr x w(step) for this step only; the scheduler never sees it
    with warmed_up(optimizer, stepping.warmup.factor(step)):
        lrs = current_lrs(optimizer)  # the lr this optimizer step uses
        momentum = current_momentum(optimizer) if stepping.momentum else None
        skipped = optimizer_step(optimizer, stepper.recipe.scaler)
    lrs = used_lrs(optimizer, lrs)
    if skipped:
        events.skipped(epoch, step, lrs[0], skipped)
    for average in stepper.averages:
        average.after_step(step)
    with after_a_skip() if skipped else contextlib.nullcontext():
        step_after_batch(stepping, epoch, step, events)
    stepper.recorder.record(epoch, step, lrs, stepped[0], momentum, stepped[1])
    return lrs


def optimizer_step(optimizer: Optimizer, scaler: torch.amp.GradScaler | None) -> str | None:
    """``optimizer.step()``; with fp16's gradient scaler, its step and update. None, or when
    the scaler skipped the step (inf/NaN gradients) the scale it lowered: "65536 -> 32768"."""
    if scaler is None:
        optimizer.step()
        return None
    before = scaler.get_scale()
    scaler.step(optimizer)
    scaler.update()
    return None if (after := scaler.get_scale()) >= before else f"{before:g} -> {after:g}"


def step_group(
    model: nn.Module,
    group: list[Batch],
    optimizer: Optimizer,
    recipe: Recipe,
    autocast: Autocast,
    epoch: int,
    meter: Meter | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The gradients of one optimizer step: each batch's loss over the group's size, summed
    by backward() (DDP: all-reduced once, the others under ``no_sync()``, as nanoGPT and
    Lightning accumulate); then clipped. The group's mean loss and the norm before clipping."""
    optimizer.zero_grad(set_to_none=True)
    total: torch.Tensor | None = None
    for i, (samples, targets) in enumerate(group):
        inputs, labels = recipe.mixed(samples, targets, epoch)
        # DDP all-reduces the group's summed gradients once, in its last backward
        with distributed.no_sync(model) if i < len(group) - 1 else contextlib.nullcontext():
            with autocast():
                out = model(inputs)
                loss = recipe.criterion(out, labels)
            recipe.scaled(loss if len(group) == 1 else loss / len(group)).backward()
        loss = loss.detach()
        total = loss if total is None else total + loss
        if meter is not None:
            meter.add(out.detach(), targets, loss)  # accuracy on the hard labels
    assert total is not None
    return (total if len(group) == 1 else total / len(group)), recipe.clip(optimizer)


def end_epoch(
    done: EpochEnd,
    stepper: Stepper,
    task: Task,
    hooks: Hooks,
    *,
    val: Batches,
    test: Batches | None = None,
    autocast: Autocast = no_autocast,
    stop_on_nonfinite: bool = True,
) -> dict[str, Any]:
    """The rest of an epoch: the averages and the test split evaluated, the row logged (on
    disk before the schedule moves on), the schedule stepped, the checkpoint written."""
    averages = stepper.averages
    averaged = averaging.evaluated(averages, done.epoch, val, task, autocast)
    judge = averaging.tested(averages, done.judge)  # the weights trainer.select names
    tested = evaluated("test", judge, test, task, autocast)
    train = done.train
    row = {
        "epoch": done.epoch,
        **dict(zip(lr_columns(len(train.lrs)), train.lrs, strict=True)),
        **{f"train_{name}": value for name, value in train.metrics.items()},
        **done.val,
        **tested,
        **averaged,
        "epoch_time_s": time.perf_counter() - done.started,
    }
    hooks.epoch_end(row)
    if stop_on_nonfinite:
        check_evaluated(row, done.step)  # a NaN val loss is divergence; the plateau never sees it
    step_after_epoch(stepper.stepping, row, done.epoch, done.step, stepper.events)
    hooks.epoch_done(done.epoch, done.step)
    return row


def fit(
    model: nn.Module,
    stepper: Stepper,
    task: Task,
    epochs: int,
    *,
    train: Batches,
    val: Batches,
    test: Batches | None = None,
    start_epoch: int = 1,
    step: int = 0,
    autocast: Autocast = no_autocast,
    hooks: Hooks | None = None,
    stop_on_nonfinite: bool = True,
    eval_model: nn.Module | None = None,
    early_stop: EarlyStop | None = None,
) -> list[dict[str, Any]]:
    """Train epochs ``start_epoch..epochs``; their metrics rows (test_* None unless ``test``
    batches are given: by default the test split is evaluated once, at the end,
    lrrun.train.final_test). ``eval_model``: what evaluates when ``model`` is a DDP wrapper
    (the module: each rank its shard). A resumed run passes the epoch and step to continue
    from, its states restored. ``early_stop``: ends the loop after the epoch it says, its row,
    schedule and checkpoint done. The stepper's averages (lrrun.train.averaging) are
    evaluated after every epoch; the selected one (trainer.select) is what ``test`` evaluates."""
    hooks = hooks or Hooks()
    history: list[dict[str, Any]] = []
    for epoch in range(start_epoch, epochs + 1):
        start = time.perf_counter()
        hooks.epoch_start(epoch)
        # --- train
        trained = train_one_epoch(
            model,
            train,
            stepper,
            task,
            epoch,
            step,
            autocast=autocast,
            on_step=hooks.step,
            stop_on_nonfinite=stop_on_nonfinite,
        )
        step = trained.last_step
        # --- evaluate (a schedule-free optimizer's evaluation weights, kept for checkpoints)
        set_mode(stepper.optimizer, train=False)
        judge = eval_model or model
        done = EpochEnd(
            epoch, step, start, trained, evaluated("val", judge, val, task, autocast), judge
        )
        row = end_epoch(
            done,
            stepper,
            task,
            hooks,
            val=val,
            test=test,
            autocast=autocast,
            stop_on_nonfinite=stop_on_nonfinite,
        )
        history.append(row)
        if early_stop is not None and early_stop.update(row):
            break
    return history
