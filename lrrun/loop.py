"""The training loop: the only place that calls ``backward()`` and ``step()``.

Stepping contract
-----------------
For every batch::

    lrs = param_groups' lr          # logged: the lr this optimizer step uses
    forward -> loss -> backward -> optimizer.step()
    scheduler.step()                # only if interval == "step"

After every epoch::

    evaluate on the test split -> write the metrics row
    scheduler.step()                # if interval == "epoch"
    scheduler.step(row[monitor])    # ReduceLROnPlateau (always per epoch)

So the scheduler is always stepped after the optimizer (torch never warns), its counter
``last_epoch`` equals the number of completed intervals, and a schedule f(t) gives f(0) for
the first interval, f(1) for the second, and so on: no off-by-one. The lr is read from
``optimizer.param_groups`` before the step, never from ``get_lr()`` (which computes the
*next* value for chainable schedulers) nor from ``get_last_lr()`` after a step.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torch.utils.data import DataLoader

from lrrun.loggers import StepRecorder, lr_columns
from lrrun.schedulers import Stepping, current_lrs


@dataclass
class TrainStats:
    lrs: list[float]  # each group's lr at the epoch's first step
    loss: float
    acc: float
    last_step: int  # global, 1-based


def step_after_batch(stepping: Stepping) -> None:
    if stepping.scheduler is not None and stepping.interval == "step":
        stepping.scheduler.step()


def step_after_epoch(stepping: Stepping, metrics: dict[str, Any]) -> None:
    if stepping.scheduler is None or stepping.interval != "epoch":
        return
    if isinstance(stepping.scheduler, ReduceLROnPlateau):
        assert stepping.monitor is not None
        stepping.scheduler.step(metrics[stepping.monitor])
    else:
        stepping.scheduler.step()


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    optimizer: Optimizer,
    stepping: Stepping,
    device: torch.device,
    epoch: int,
    step: int,
    recorder: StepRecorder,
) -> TrainStats:
    model.train()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen, first_lrs = 0, None
    for images, targets in loader:
        images = images.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True)
        lrs = current_lrs(optimizer)  # the lr this optimizer step will use
        first_lrs = first_lrs or lrs
        optimizer.zero_grad(set_to_none=True)
        logits = model(images)
        loss = F.cross_entropy(logits, targets)
        loss.backward()
        optimizer.step()
        step_after_batch(stepping)
        step += 1
        recorder.record(epoch, step, lrs, loss)
        loss_sum += loss.detach() * targets.numel()
        correct += (logits.argmax(1) == targets).sum()
        seen += targets.numel()
    recorder.flush()
    assert first_lrs is not None, "the training loader yielded no batch"
    return TrainStats(first_lrs, (loss_sum / seen).item(), correct.item() / seen, step)


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, device: torch.device) -> tuple[float, float]:
    """Mean cross-entropy and accuracy (0..1) over the whole loader."""
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    for images, targets in loader:
        images = images.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True)
        logits = model(images)
        loss_sum += F.cross_entropy(logits, targets, reduction="sum")
        correct += (logits.argmax(1) == targets).sum()
        seen += targets.numel()
    return (loss_sum / seen).item(), correct.item() / seen


def fit(
    model: nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader,
    optimizer: Optimizer,
    stepping: Stepping,
    epochs: int,
    device: torch.device,
    recorder: StepRecorder,
    on_epoch: Callable[[dict[str, Any]], None],
    on_epoch_start: Callable[[int], None] = lambda epoch: None,
) -> list[dict[str, Any]]:
    """Train for ``epochs``; return the metrics rows (also passed to ``on_epoch`` as they end)."""
    history: list[dict[str, Any]] = []
    step = 0
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        on_epoch_start(epoch)
        # --- train
        train = train_one_epoch(
            model, train_loader, optimizer, stepping, device, epoch, step, recorder
        )
        step = train.last_step
        # --- evaluate
        val_loss, val_acc = evaluate(model, val_loader, device)
        # --- log (the row is on disk before the schedule moves on)
        row = {
            "epoch": epoch,
            **dict(zip(lr_columns(len(train.lrs)), train.lrs, strict=True)),
            "train_loss": train.loss,
            "train_acc": train.acc,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "epoch_time_s": time.perf_counter() - start,
        }
        on_epoch(row)
        history.append(row)
        # --- schedule
        step_after_epoch(stepping, row)
    return history
