"""The members of one pass, trained side by side: lrrun.train.loop's contract for each, one
forward and one backward for all (lrrun.fused.forward).

Per optimizer step, each member's group of batches comes from its own data order; its
random draws (mixing) come from its own stream - the global RNG state it would have had
alone, swapped in around its draws and its checkpoint. The members' outputs come from one
pass; each member's loss is its own criterion on its share, and the sum's backward gives
each member exactly its own gradient. Then each member, with its own objects and by the
loop's own functions: clipping, warm-up, ``optimizer_step``, its averages,
``step_after_batch``, its steps.csv row (lrrun.train.loop.take_step). After the epoch, evaluation of the val split is one
pass too, and each member ends its epoch through ``end_epoch`` (averages, test, its row, its
schedule, its checkpoint).

A member whose loss turned NaN leaves the pass at the epoch's end (Diverged, as alone); so does
one that stops early. The others go on.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from lrrun.errors import Diverged
from lrrun.fused.batches import together
from lrrun.fused.dropout import Masks
from lrrun.fused.forward import Stacked
from lrrun.logs.console import RUN_LOG
from lrrun.train.distributed import signals_held
from lrrun.train.hooks import EpochEnd, TrainStats
from lrrun.train.loop import end_epoch, take_step
from lrrun.train.measure import check_finite
from lrrun.train.recipe import groups, set_mode
from lrrun.train.runner import Prepared


@dataclass
class Member:
    run: Prepared
    rng: torch.Tensor  # its global RNG state between its own draws
    log: list[logging.Handler] = field(default_factory=list)  # its lrrun.log
    history: list[dict[str, Any]] = field(default_factory=list)
    ended: BaseException | None = None  # Diverged, or another failure of its own
    stopped: bool = False  # its early stop said so

    @contextlib.contextmanager
    def stream(self) -> Iterator[None]:
        """The global RNG as this member alone would have it, and its console lines into
        its own lrrun.log."""
        outside, handlers = torch.get_rng_state(), RUN_LOG.handlers
        torch.set_rng_state(self.rng)
        RUN_LOG.handlers = self.log or handlers
        try:
            yield
        finally:
            self.rng = torch.get_rng_state()
            torch.set_rng_state(outside)
            RUN_LOG.handlers = handlers


def fit_members(
    members: list[Member],
    epochs: int,
    start_epoch: int,
    on_epoch: Callable[[int, list[Member]], None] | None = None,
) -> None:
    """Train the members' epochs ``start_epoch..epochs``; each member's rows go into its
    ``history``, its failure into ``ended``; ``on_epoch(epoch, members)`` after each."""
    step = members[0].run.step
    for epoch in range(start_epoch, epochs + 1):
        alive = [m for m in members if m.ended is None and not m.stopped]
        if not alive:
            return
        start = time.perf_counter()
        for m in alive:
            with m.stream():
                m.run.book.hooks().epoch_start(epoch)
        trained = dict(zip(map(id, alive), train_one_epoch(alive, epoch, step), strict=True))
        step = next(iter(trained.values())).last_step
        alive = [m for m in alive if m.ended is None]  # a NaN loss: Diverged, as alone
        vals = evaluate(alive) if alive else []
        with signals_held():  # Ctrl-C waits for every member's row and checkpoint: in step
            for m, val in zip(alive, vals, strict=True):
                _end_epoch(m, EpochEnd(epoch, step, start, trained[id(m)], val, m.run.parts.model))
        if on_epoch is not None:
            on_epoch(epoch, members)


def _end_epoch(m: Member, done: EpochEnd) -> None:
    """The member's rest of the epoch (lrrun.train.loop.end_epoch), in its stream; a failure
    of its own (Diverged on the val split, a full disk) ends it alone."""
    run = m.run
    try:
        with m.stream():
            row = end_epoch(
                done,
                run.book.stepper(),
                run.parts.task,
                run.book.hooks(),
                val=run.parts.val,
                test=run.parts.epoch_test,
                autocast=run.autocast,
                stop_on_nonfinite=run.settings.trainer.stop_on_nonfinite,
            )
    except Exception as exc:
        m.ended = exc
        return
    m.history.append(row)
    if run.stopper is not None and run.stopper.update(row):
        m.stopped = True


def train_one_epoch(members: list[Member], epoch: int, step: int) -> list[TrainStats]:
    """One epoch of every member; their stats in the members' order (a member whose loss
    turned NaN gets ``ended``)."""
    stacked = Stacked([m.run.parts.model for m in members]).train()
    dropout = Masks(members[0].run.parts.model)
    for m in members:
        set_mode(m.run.parts.optimizer, train=True)
        m.run.parts.train.set_epoch(epoch)
    meters = [m.run.parts.task.meter(train=True) for m in members]
    first: list[list[float] | None] = [None] * len(members)
    steppers = [m.run.book.stepper() for m in members]
    for step_groups, joint in _step_groups(members):
        losses = _forward_backward(members, step_groups, joint, stacked, epoch, meters, dropout)
        step += 1
        for i, stepper in enumerate(steppers):
            lrs = take_step(stepper, epoch, step, losses[i])
            first[i] = first[i] or lrs
    stats = []
    for i, m in enumerate(members):
        rows = steppers[i].recorder.flush()
        if m.run.settings.trainer.stop_on_nonfinite:
            try:
                check_finite(rows)
            except Diverged as exc:
                m.ended = exc
        assert first[i] is not None, "the training data yielded no batch"
        stats.append(TrainStats(first[i], meters[i].means(), step))
    return stats


def _step_groups(members: list[Member]) -> Iterator[tuple[tuple[list[Any], ...], list[Any] | None]]:
    """Each optimizer step's batches: every member's group (lrrun.train.recipe.groups), and
    the same group stacked for the pass where one gather gave it (lrrun.fused.batches)."""
    size = members[0].run.parts.recipe.accumulate
    joint = together([m.run.parts.train for m in members])
    if joint is None:
        orders = [groups(m.run.parts.train, size) for m in members]
        yield from ((g, None) for g in zip(*orders, strict=True))
        return
    for group in groups(joint, size):
        yield tuple([(x[i], y[i]) for x, y in group] for i in range(len(members))), group


def _forward_backward(
    members: list[Member],
    step_groups: tuple[list[Any], ...],
    joint: list[Any] | None,
    stacked: Stacked,
    epoch: int,
    meters: list[Any],
    dropout: Masks,
) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """Every member's gradients of one optimizer step (lrrun.train.loop.step_group's rule:
    each batch's loss over the group's size, summed); each member's mean loss and norm.
    ``joint``: the group's batches stacked already, the pass's inputs where no member mixes."""
    size = len(step_groups[0])
    for m in members:
        m.run.parts.optimizer.zero_grad(set_to_none=True)
    totals: list[torch.Tensor | None] = [None] * len(members)
    autocast = members[0].run.autocast
    for b in range(size):
        inputs, labels, masks = [], [], []
        plan = dropout.plan(stacked.members[0], step_groups[0][b][0], autocast) if dropout else []
        mixing = False  # a mixed batch is the member's own: the joint one no longer holds it
        for m, group in zip(members, step_groups, strict=True):
            samples, targets = group[b]
            recipe = m.run.parts.recipe
            draws = bool(plan) or recipe.mixes(epoch)  # else no stream to swap in
            mixing = mixing or recipe.mixes(epoch)
            with m.stream() if draws else contextlib.nullcontext():
                # mixing, then dropout: the member's own draws, in solo order
                x, y = recipe.mixed(samples, targets, epoch)
                masks.append(dropout.draw(plan))
            inputs.append(x)
            labels.append(y)
        extra = {k: torch.stack([d[k] for d in masks]) for k in masks[0]}
        x = joint[b][0] if joint is not None and not mixing else torch.stack(inputs)
        with autocast():
            out = stacked(x, extra=extra)
            losses = [
                m.run.parts.recipe.criterion(out[i], labels[i]) for i, m in enumerate(members)
            ]
        # each member's loss scaled as alone (fp16: by its own GradScaler), then one backward
        scaled = [
            m.run.parts.recipe.scaled(loss if size == 1 else loss / size)
            for m, loss in zip(members, losses, strict=True)
        ]
        sum(scaled).backward()  # type: ignore[union-attr]
        for i, loss in enumerate(losses):
            loss = loss.detach()
            meters[i].add(out[i].detach(), step_groups[i][b][1], loss)  # acc on the hard labels
            totals[i] = loss if totals[i] is None else totals[i] + loss
    out_losses = []
    for total, m in zip(totals, members, strict=True):
        assert total is not None
        norm = m.run.parts.recipe.clip(m.run.parts.optimizer)
        out_losses.append((total if size == 1 else total / size, norm))
    return out_losses


@torch.inference_mode()
def evaluate(members: list[Member]) -> list[dict[str, float | None]]:
    """The val split through one pass: each member's ``val_<metric>``s."""
    for m in members:
        set_mode(m.run.parts.optimizer, train=False)  # a schedule-free optimizer's eval weights
    stacked = Stacked([m.run.parts.model for m in members]).eval()
    meters = [m.run.parts.task.meter(train=False) for m in members]
    autocast = members[0].run.autocast
    for inputs, targets in members[0].run.parts.val:  # one split: every member's alike
        with autocast():
            out = stacked(inputs, shared=True)
        for i, meter in enumerate(meters):
            meter.add(out[i], targets)
    out = []
    for m, meter in zip(members, meters, strict=True):
        values = meter.means()
        out.append({f"val_{k}": values.get(k) for k in m.run.parts.task.metrics})
    return out
