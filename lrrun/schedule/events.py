"""Schedule events: when a schedule acted, as discrete events (events.csv, the console,
lrrun-preview, curves.png).

The watcher looks at the scheduler tree right after each ``scheduler.step()`` (lrrun.train.loop's
stepping functions, shared with the preview) and at each optimizer step for the warm-up.
Only discrete events are reported; smooth curves (cosine, exponential, polynomial, the body
of one_cycle and cyclic) produce none but these:

- ``warmup_end``: the first step after the warm-up (lrrun.schedule.warmup);
- ``decay``: a StepLR / MultiStepLR milestone, ConstantLR or LinearLR reaching its end;
- ``plateau``: a ReduceLROnPlateau cut (the metric, its best so far, bad epochs vs patience);
- ``restart``: CosineAnnealingWarmRestarts starting a new period;
- ``switch``: a SequentialLR milestone; SWA's start (scheduler=swa);
- ``peak``: OneCycleLR / CyclicLR at max_lr;
- ``skipped_step``: fp16's gradient scaler skipped an optimizer step (inf/NaN gradients); its
  ``step`` is the skipped step itself, and ``lr_before`` = ``lr_after`` its lr.

``step`` is the global step of the first optimizer step that uses ``lr_after``, so
``lr_after`` is steps.csv's lr at ``step`` and ``lr_before`` its lr at ``step - 1`` (group 0,
warm-up included). What the schedule does after the run's last step is an event too (the
checkpoint holds it, and a longer resumed run uses it): its step is one past steps.csv. ``epoch`` is the epoch in which the event happened (a cut decided after
epoch 3's evaluation is epoch 3; its step is epoch 4's first), so events.csv is flushed and
resumed with that epoch's rows. A decay or plateau that leaves the lr unchanged (gamma 1, lr
already at min_lr) is no event.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import asdict, dataclass
from typing import Any

from torch.optim.lr_scheduler import (
    ChainedScheduler,
    ConstantLR,
    CosineAnnealingWarmRestarts,
    CyclicLR,
    LinearLR,
    MultiStepLR,
    OneCycleLR,
    ReduceLROnPlateau,
    SequentialLR,
    StepLR,
)

from lrrun.schedule.swa import SWASchedule

COLUMNS = ["epoch", "step", "event", "lr_before", "lr_after", "message"]
_NEEDS_A_CHANGE = ("decay", "plateau")


@dataclass(frozen=True)
class Event:
    epoch: int
    step: int
    event: str
    lr_before: float
    lr_after: float
    message: str

    def row(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        """The console's line under the epoch row."""
        return (
            f"  epoch {self.epoch}: {self.event} - {self.message}: "
            f"lr {self.lr_before:.4e} -> {self.lr_after:.4e}"
        )


class NoEvents:
    """The loop's schedule hook (lrrun.train.hooks.Hooks.events) when nobody asks what the
    schedule did: told of every optimizer and scheduler step, it keeps nothing."""

    def before_step(self) -> float:
        return 0.0

    def after_step(self, lr_before: float, epoch: int, step: int, metric: float | None) -> None:
        pass

    def optimizer_stepped(self, epoch: int, step: int) -> None:
        pass

    def skipped(self, epoch: int, step: int, lr: float, scale: str) -> None:
        pass


NO_EVENTS = NoEvents()


class EventWatcher(NoEvents):
    """Collects a run's events as its schedule steps; ``drain()`` hands them out per epoch."""

    def __init__(self, stepping: Any, optimizer: Any) -> None:
        self.stepping, self.optimizer = stepping, optimizer
        self.unit = "epochs" if stepping.interval == "epoch" else "steps"
        self.pending: list[Event] = []
        self._plateau: tuple[int, Any] | None = None
        self._step_done = 0  # the last optimizer step taken
        self._scheduled = 0.0  # group 0's scheduled lr before the scheduler's step

    # --- called by lrrun.train.loop around each scheduler step and after each optimizer step ---------
    def before_step(self) -> float:
        """The lr the step just taken used (to compare with the next one)."""
        s = self.stepping.scheduler
        if isinstance(s, ReduceLROnPlateau):
            self._plateau = (s.num_bad_epochs, s.best)
        self._scheduled = self._lr()
        return self._used(self._step_done)

    def after_step(self, lr_before: float, epoch: int, step: int, metric: float | None) -> None:
        """The scheduler has stepped after global step ``step`` of ``epoch``."""
        lr_after = self._used(step + 1)
        moved = self._lr() != self._scheduled  # the schedule's own lr, warm-up aside
        for event, message in self._detect(self.stepping.scheduler, metric):
            if event in _NEEDS_A_CHANGE and not moved:
                continue
            self.pending.append(Event(epoch, step + 1, event, lr_before, lr_after, message))

    def optimizer_stepped(self, epoch: int, step: int) -> None:
        self._step_done = step
        w = self.stepping.warmup.steps
        if w and step == w:
            self.pending.append(
                Event(
                    epoch,
                    step + 1,
                    "warmup_end",
                    self._used(step),
                    self._used(step + 1),
                    f"warm-up done after {w} steps",
                )
            )

    def skipped(self, epoch: int, step: int, lr: float, scale: str) -> None:
        """fp16's gradient scaler skipped optimizer step ``step`` (lrrun.train.recipe)."""
        self.pending.append(
            Event(
                epoch,
                step,
                "skipped_step",
                lr,
                lr,
                f"inf/NaN gradients: the gradient scaler skipped optimizer "
                f"step {step} (scale {scale}); the schedule stepped as usual",
            )
        )

    def drain(self) -> list[Event]:
        out, self.pending = self.pending, []
        return out

    # --- helpers ---------------------------------------------------------------------------
    def _lr(self) -> float:
        """Group 0's scheduled lr, as the optimizer holds it between steps."""
        return float(self.optimizer.param_groups[0]["lr"])

    def _used(self, k: int) -> float:
        """Group 0's lr at global step k as the loop uses it: scheduled x w(k)."""
        return self.stepping.warmup.lrs([self._lr()], k)[0]

    def _detect(self, s: Any, metric: float | None) -> list[tuple[str, str]]:
        """(event, message) for what ``s`` (and, for composites, its children) just did."""
        t, unit = s.last_epoch if hasattr(s, "last_epoch") else 0, self.unit
        if isinstance(s, SWASchedule):
            if t == s.swa_start:
                return [
                    (
                        "switch",
                        f"SWA averages from epoch {t} on; SWALR anneals to swa_lr "
                        f"over {s.swalr.anneal_epochs} epochs",
                    )
                ]
            return self._detect(s.before, metric) if t < s.swa_start and s.before else []
        if isinstance(s, SequentialLR):
            if t in s._milestones:
                i = s._milestones.index(t) + 1
                child = type(s._schedulers[i]).__name__.removeprefix("Nested")
                return [
                    (
                        "switch",
                        f"SequentialLR switches to child {i + 1} of "
                        f"{len(s._schedulers)} ({child}) after {t} {unit}",
                    )
                ]
            return self._detect(s._schedulers[bisect_right(s._milestones, t)], metric)
        if isinstance(s, ChainedScheduler):
            return [e for child in s._schedulers for e in self._detect(child, metric)]
        if isinstance(s, ReduceLROnPlateau):
            return [("plateau", self._plateau_message(s, metric))]
        if isinstance(s, StepLR) and t > 0 and t % s.step_size == 0:
            return [("decay", f"StepLR every {s.step_size} {unit}: x{s.gamma}")]
        if isinstance(s, MultiStepLR) and t in s.milestones:
            return [("decay", f"MultiStepLR milestone {t}: x{s.gamma ** s.milestones[t]}")]
        if isinstance(s, ConstantLR) and t == s.total_iters:
            return [("decay", f"ConstantLR ends after {t} {unit}: factor {s.factor} -> 1")]
        if isinstance(s, LinearLR) and t == s.total_iters:
            return [("decay", f"LinearLR reaches end_factor {s.end_factor} after {t} {unit}")]
        if isinstance(s, CosineAnnealingWarmRestarts) and t > 0 and s.T_cur == 0:
            return [("restart", f"CosineAnnealingWarmRestarts restarts after {t} {unit}")]
        if isinstance(s, OneCycleLR) and t == _one_cycle_peak(s):
            return [("peak", f"OneCycleLR at its peak (max_lr) after {t} {unit}")]
        if isinstance(s, CyclicLR) and t > 0 and t % s.total_size == _cyclic_up(s):
            cycle = int(t // s.total_size) + 1
            return [("peak", f"CyclicLR at max_lr (cycle {cycle}) after {t} {unit}")]
        return []

    def _plateau_message(self, s: ReduceLROnPlateau, metric: float | None) -> str:
        bad, best = self._plateau if self._plateau else (0, s.best)
        monitor = self.stepping.monitor or "metric"
        value = f"{metric:.4f}" if metric is not None else "?"
        return (
            f"{monitor} {value} not better than {best:.4f} for {bad + 1} epochs "
            f"(patience {s.patience})"
        )


def _one_cycle_peak(s: OneCycleLR) -> int:
    """The scheduler step with the highest lr: the end of the rising phase, rounded to the
    neighbouring step whose lr is higher."""
    end = s._schedule_phases[0]["end_step"]
    low, high = math.floor(end), math.ceil(end)
    if low == high:
        return low
    group = s.optimizer.param_groups[0]
    rising = s._anneal_func(group["initial_lr"], group["max_lr"], low / end)
    phase = s._schedule_phases[1]
    falling_to = group[phase["end_lr"]]
    falling = s._anneal_func(group["max_lr"], falling_to, (high - end) / (phase["end_step"] - end))
    return high if falling > rising else low


def _cyclic_up(s: CyclicLR) -> float:
    return round(s.total_size * s.step_ratio)
