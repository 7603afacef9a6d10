"""Everything a run writes while it trains: the console (header, rows, events), metrics.csv,
steps.csv, events.csv, the trackers, status.json and the checkpoints - and the hooks that
hand them the loop's numbers (lrrun.train.loop.Hooks).

In a data-parallel run only rank 0 writes: the other ranks keep the same numbers (the best
epoch, the step rows they all-reduced) and write nothing, but take part in gathering every
rank's RNG state for the checkpoint.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from lrrun.config import param_groups
from lrrun.config.settings import Settings
from lrrun.logs.console import RunConsole, print_warning
from lrrun.logs.csv_log import (
    CSVLog,
    StepRecorder,
    lr_columns,
    lr_labels,
    parse_row,
    steps_columns,
    write_status,
)
from lrrun.logs.tracker_backends import open_trackers
from lrrun.logs.trackers import Trackers, flatten
from lrrun.schedule.build import Stepping
from lrrun.schedule.events import COLUMNS as EVENT_COLUMNS
from lrrun.schedule.events import EventWatcher
from lrrun.train import averaging, checkpoint, final_test
from lrrun.train.assembly import Parts
from lrrun.train.averaging import Average
from lrrun.train.hooks import Hooks, Stepper
from lrrun.train.run_dir import process_age, short
from lrrun.world import World, gather


class Logbook:
    def __init__(
        self,
        settings: Settings,
        parts: Parts,
        stepping: Stepping,
        run_dir: Path,
        world: World,
        resumed: tuple[int, int] | None,  # (start epoch, step) of a resumed run
        best: tuple[float, int] | None,
        plan: dict[str, Any],  # what a resume must not change (lrrun.train.resume.plan)
        averages: Sequence[Average] = (),  # averaged weights: checkpointed (lrrun.train.averaging)
        screen: bool = True,  # False: the console's lines go to the run's log only
    ) -> None:
        self.settings, self.parts, self.stepping, self.run_dir = settings, parts, stepping, run_dir
        self.world, self.best, self.plan, self.averages = world, best, plan, averages
        self.inputs = inputs_record(parts.data)
        self.last_row: dict[str, Any] = {}
        self.start_epoch, step = resumed or (1, 0)
        trainer, optimizer = settings.trainer, parts.optimizer
        self.groups = param_groups.names(optimizer)
        columns = settings.task.columns(
            lr_columns(len(self.groups)), parts.task.top5, [a.name for a in averages]
        )
        every_epoch = parts.epoch_test is not None
        shown = [c for c in columns if every_epoch or not c.startswith("test_")]
        steps = steps_columns(len(self.groups), stepping.momentum, parts.recipe.grad_norm)
        main = world.main
        self.console = RunConsole(
            shown,
            trainer.epochs,
            len(parts.train),
            trainer.progress and main,
            lr_labels(self.groups),
            quiet=not main,
            screen=screen,
        )
        self.tracked = (
            open_trackers(trainer, run_dir, self.groups, step if resumed else None)
            if main
            else Trackers([], self.groups)
        )
        self.metrics = self.steps = self.events = None
        try:  # from here on a tracker run is open: it must not be left "running"
            self.tracked.log_config(flatten(settings.resolved))
            if main:
                keep = self.start_epoch - 1 if resumed else None  # a half-done epoch's rows go
                self.metrics = CSVLog(run_dir / "metrics.csv", columns, keep)
                self.steps = CSVLog(run_dir / "steps.csv", steps, keep)
                self.events = CSVLog(run_dir / "events.csv", EVENT_COLUMNS, keep)
        except BaseException as exc:
            self.tracked.close(failure(exc), [])
            raise
        self.recorder = StepRecorder(self.steps, self.tracked.steps, steps, world.size)
        self.watch = EventWatcher(stepping, optimizer)  # the loop's events hook
        # the rows of the epochs before a resume (metrics.csv keeps them)
        self.resumed_rows = [parse_row(r) for r in self.metrics.kept] if self.metrics else []

    def header(self, items: dict[str, str], warnings: list[str]) -> None:
        self.console.header(items | self.tracked.header())
        if self.world.main:
            for warning in warnings:
                print_warning(warning)
        for row in self.resumed_rows:
            self.console.epoch_end(row)

    def status(self, status: str, **fields: Any) -> None:
        if self.world.main:
            write_status(self.run_dir, status, **fields)

    def running(self, **facts: Any) -> None:
        """status.json "running", with the run's param groups and its trackers' run ids."""
        self.status("running", **facts, param_groups=self.groups, **self.tracked.ids())

    def line(self, text: str) -> None:
        self.console.line(text)

    def tested(self, tested: dict[str, Any], step: int) -> None:
        """The final test's result (lrrun.train.final_test), on the screen and in the trackers."""
        self.tracked.test(tested, step)
        self.console.line(final_test.line(tested))

    def finish(self, history: list[dict[str, Any]]) -> None:
        """The console's last line: the best epoch of the whole ``history``."""
        task = self.settings.task
        self.console.finish(task.best(history), task.select, short(self.run_dir))

    def hooks(self) -> Hooks:
        return Hooks(self.epoch_start, self.console.step_update, self.epoch_end, self.epoch_done)

    def stepper(self) -> Stepper:
        """The run's optimizer step, its rows written here, its schedule's events heard."""
        parts = self.parts
        return Stepper(
            parts.optimizer, self.stepping, self.recorder, parts.recipe, self.averages, self.watch
        )

    def epoch_start(self, epoch: int) -> None:
        if epoch == self.start_epoch:  # set-up is done: the next thing is the first step
            self.status(
                "running", startup_s=round(process_age(), 3), torch_threads=torch.get_num_threads()
            )
        self.console.epoch_start(epoch)

    def epoch_end(self, row: dict[str, Any]) -> None:
        if self.metrics is not None:
            self.metrics.write(row)
        self.last_row = row
        self.console.epoch_end(row)
        self.best = self.settings.task.best_after(self.best, row)  # on the val split only

    def epoch_done(self, epoch: int, step: int) -> None:
        self.log_events()
        self.tracked.epoch(self.last_row, step)
        rng = gather(checkpoint.rng_state())  # every rank's, in rank order
        if self.world.main:
            parts, stepping = self.parts, self.stepping
            state = checkpoint.Saved(
                epoch=epoch,
                step=step,
                model=parts.model.state_dict(),
                optimizer=parts.optimizer.state_dict(),
                scheduler=stepping.scheduler.state_dict() if stepping.scheduler else None,
                rng=rng[0] if len(rng) == 1 else rng,
                best=self.best,
                plan=self.plan,
                inputs=self.inputs,
                averages=averaging.states(self.averages),
                selected=self.settings.trainer.select,
                scaler=parts.recipe.scaler.state_dict() if parts.recipe.scaler else None,
            ).state()
            checkpoint.save_atomic(state, self.run_dir / checkpoint.NAME)
            if self.settings.trainer.save_best and self.best is not None and self.best[1] == epoch:
                checkpoint.save_atomic(state, self.run_dir / checkpoint.BEST)
        self.status("running", epoch=epoch, step=step)

    def log_events(self) -> None:
        """Under the epoch's row, and on disk with its rows."""
        happened = self.watch.drain()
        if self.events is not None:
            self.events.write_many([e.row() for e in happened])
        for event in happened:
            self.console.event(event.line())

    def close(self, outcome: str, artifacts: list[Path]) -> None:
        """Whatever happened, every step taken is on disk (and in the trackers); after a
        failure without a collective (lrrun.logs.csv_log.StepRecorder.flush)."""

        def guarded() -> contextlib.AbstractContextManager[None]:
            # after a failure, one more failed write (a full disk) must not hide the first
            return contextlib.suppress(OSError) if outcome != "ok" else contextlib.nullcontext()

        with guarded():
            self.recorder.flush(reduce=outcome == "ok")
            self.log_events()
        for log in (self.metrics, self.steps, self.events):
            if log is not None:
                with guarded():
                    log.close()
        self.console.close()
        if outcome != "ok":
            self.tracked.close(outcome, artifacts)

    def close_trackers(self, artifacts: list[Path]) -> None:
        """After a run that ended well wrote its last files (``artifacts``: curves.png...)."""
        self.tracked.close("ok", artifacts)


def inputs_record(data: Any) -> dict[str, Any]:
    """What using the trained model needs beyond the plan (lrrun.tools.use): the inputs'
    normalisation, and whether its images were float (16-bit files: decoded to [0, 1])."""
    from lrrun.data.base import Data

    if not isinstance(data, Data):  # a token stream: the plan's vocabulary is all
        return {"mean": [], "std": [], "wide": False}
    train = data.train
    sample = train.images[:1] if train.in_memory else torch.as_tensor(train.items[0][0])
    return {"mean": list(data.mean), "std": list(data.std), "wide": sample.is_floating_point()}


def failure(exc: BaseException) -> str:
    """The status a run that raised ``exc`` ends with."""
    from lrrun.errors import Diverged

    if isinstance(exc, Diverged):
        return "diverged"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return "failed"
