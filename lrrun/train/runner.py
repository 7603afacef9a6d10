"""A run's story: read its config once (lrrun.config.settings), assemble its parts (data,
model, optimizer, batches: lrrun.train.assembly) and its schedule, restore a checkpoint
(lrrun.train.resume), open the logs (CSVs, lrrun.logs.trackers) and print the header
(lrrun.train.header), hand over to ``loop.fit``, test the chosen epoch
(lrrun.train.final_test), finish (status, curves.png, trackers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from lrrun.config import param_groups
from lrrun.config.settings import Settings, read
from lrrun.errors import Diverged
from lrrun.logs.console import RunConsole, print_warning
from lrrun.logs.csv_log import (
    CSVLog,
    StepRecorder,
    lr_labels,
    metrics_columns,
    parse_row,
    steps_columns,
    write_status,
)
from lrrun.logs.tracker_backends import open_trackers
from lrrun.logs.trackers import flatten
from lrrun.schedule.build import build_scheduler
from lrrun.schedule.events import COLUMNS as EVENT_COLUMNS
from lrrun.schedule.events import EventWatcher
from lrrun.schedule.lint import lint
from lrrun.train import checkpoint, final_test, header
from lrrun.train.allocator import keep_freed_memory
from lrrun.train.assembly import assemble
from lrrun.train.devices import resolve_device
from lrrun.train.loop import Hooks, fit
from lrrun.train.parts import precision_context, set_deterministic
from lrrun.train.resume import plan as resume_plan
from lrrun.train.resume import restore
from lrrun.train.run_dir import artifacts, check_output_dir, plot, process_age, short


def run(
    cfg: Settings | DictConfig,
    run_dir: Path,
    choices: dict[str, Any] | None = None,
    job_num: int | None = None,
) -> list[dict[str, Any]]:
    """Train as the config says, writing metrics.csv, steps.csv, checkpoint.pt and status.json
    into ``run_dir`` (with ``trainer.resume``: into the checkpoint's run dir).

    ``cfg``: the config's Settings (lrrun.cli reads them before torch is imported), or a
    composed config, read here (tests, notebooks). ``choices``: Hydra's group choices, for
    the header, when ``cfg`` is a composed config. ``job_num``: this job's number in a
    multirun (trainer.device=auto spreads jobs over GPUs by it)."""
    settings = cfg if isinstance(cfg, Settings) else read(cfg, choices)
    trainer = settings.trainer
    saved = None
    if trainer.resume:
        path = checkpoint.locate(str(trainer.resume))
        saved, run_dir = checkpoint.load(path), path.parent
    torch.manual_seed(trainer.seed)
    device = resolve_device(trainer.device, job_num)
    set_deterministic(trainer.deterministic)
    kept = keep_freed_memory(device.type)
    autocast = precision_context(trainer.precision, device)

    parts = assemble(settings, device)
    model, optimizer = parts.model, parts.optimizer
    epochs, steps_per_epoch = trainer.epochs, parts.steps_per_epoch
    stepping = build_scheduler(settings.scheduler, optimizer, epochs, steps_per_epoch)
    plan = resume_plan(settings.plain, stepping, steps_per_epoch, header.data_facts(parts))
    start_epoch, step, best = 1, 0, None
    if saved is not None:
        start_epoch, step, best = restore(saved, plan, model, optimizer, stepping, trainer)
    check_output_dir(run_dir, model, epochs * steps_per_epoch)
    forward = torch.compile(model) if trainer.compile else model
    every_epoch = trainer.test_every_epoch and parts.test is not None

    groups = param_groups.names(optimizer)
    columns = metrics_columns(len(groups), parts.top5)
    shown = [c for c in columns if every_epoch or not c.startswith("test_")]
    console = RunConsole(shown, epochs, len(parts.train), trainer.progress, lr_labels(groups))
    speed = header.speed(parts.data_path, trainer, parts.memory_format, kept)
    tracked = open_trackers(trainer, run_dir, groups, step if saved else None)
    try:  # from here on a tracker run is open: it must not be left "running"
        tracked.log_config(flatten(settings.plain))
        console.header(
            header.header(settings, parts, stepping, steps_per_epoch)
            | {"device": f"{device} ({speed})", "run dir": short(run_dir)}
            | ({"resumed": f"after epoch {start_epoch - 1} (step {step})"} if saved else {})
            | tracked.header()
        )
        for warning in lint(stepping, epochs, steps_per_epoch):
            print_warning(warning)
        keep = start_epoch - 1 if saved else None  # resume: a half-done epoch's rows go
        metrics = CSVLog(run_dir / "metrics.csv", columns, keep)
        steps = CSVLog(run_dir / "steps.csv", steps_columns(len(groups), stepping.momentum,
                                                             parts.recipe.grad_norm), keep)  # fmt: skip
        events = CSVLog(run_dir / "events.csv", EVENT_COLUMNS, keep)
    except BaseException as exc:
        tracked.close(_failure(exc), [])
        raise
    recorder = StepRecorder(steps, on_flush=tracked.steps)
    stepping.watch = EventWatcher(stepping, optimizer)

    def log_events() -> None:  # under the epoch's row, and on disk with its rows
        happened = stepping.watch.drain()
        events.write_many([e.row() for e in happened])
        for event in happened:
            console.event(event.line())

    previous: list[dict[str, Any]] = [parse_row(r) for r in metrics.kept]
    for row in previous:
        console.epoch_end(row)

    last_row: dict[str, Any] = {}  # this run's latest metrics row, for the trackers

    def epoch_end(row: dict[str, Any]) -> None:
        nonlocal best, last_row
        metrics.write(row)
        last_row = row
        console.epoch_end(row)
        if best is None or row["val_acc"] > best[0]:  # chosen on the val split only
            best = (row["val_acc"], row["epoch"])

    def epoch_done(epoch: int, step: int) -> None:
        log_events()
        tracked.epoch(last_row, step)
        state = {
            "format": checkpoint.FORMAT,
            "epoch": epoch,
            "step": step,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": stepping.scheduler.state_dict() if stepping.scheduler else None,
            "rng": checkpoint.rng_state(),
            "best": best,
            "plan": plan,
        }
        checkpoint.save_atomic(state, run_dir / checkpoint.NAME)
        if trainer.save_best and best is not None and best[1] == epoch:
            checkpoint.save_atomic(state, run_dir / checkpoint.BEST)
        write_status(run_dir, "running", epoch=epoch, step=step)

    def epoch_start(epoch: int) -> None:
        if epoch == start_epoch:  # set-up is done: the next thing is the first step
            write_status(run_dir, "running", startup_s=round(process_age(), 3),
                         device=str(device), torch_threads=torch.get_num_threads())  # fmt: skip
        console.epoch_start(epoch)

    hooks = Hooks(epoch_start, console.step_update, epoch_end, epoch_done)
    write_status(run_dir, "running", epoch=start_epoch - 1, step=step, param_groups=groups,
                 data=header.data_facts(parts), **tracked.ids())  # fmt: skip
    history: list[dict[str, Any]] = []
    outcome, tested = "ok", None
    try:
        history = fit(
            forward, parts.train, parts.val, optimizer, stepping, recorder, epochs,
            start_epoch=start_epoch, step=step, autocast=autocast, hooks=hooks,
            stop_on_nonfinite=trainer.stop_on_nonfinite,
            test_batches=parts.test if every_epoch else None, recipe=parts.recipe,
            top5=parts.top5,
        )  # fmt: skip
        if parts.test is not None and not every_epoch:
            tested = final_test.test_selected(model, forward, parts.test, autocast, run_dir,
                                              epochs, trainer.save_best, parts.top5)  # fmt: skip
    except BaseException as exc:
        outcome = _failure(exc)
        write_status(run_dir, outcome, message=str(exc) or type(exc).__name__)
        if isinstance(exc, Diverged):
            plot(run_dir, trainer)
        raise
    finally:  # whatever happens, every step taken is on disk (and in the trackers)
        recorder.flush()
        log_events()
        metrics.close()
        steps.close()
        events.close()
        console.close()
        if outcome != "ok":
            tracked.close(outcome, artifacts(run_dir))
    if tested is not None:
        final_test.write_into_metrics(run_dir, tested)
        tracked.test(tested, tested["epoch"] * steps_per_epoch)
        console.line(final_test.line(tested))
    write_status(run_dir, "ok", test=tested)  # epoch and step: from the last epoch_done
    plot(run_dir, trainer)
    tracked.close("ok", artifacts(run_dir))
    history = previous + history
    console.finish(history, short(run_dir))
    return history


def _failure(exc: BaseException) -> str:
    if isinstance(exc, Diverged):
        return "diverged"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return "failed"
