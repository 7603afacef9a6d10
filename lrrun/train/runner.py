"""A run's story: read its config once (lrrun.config.settings), build its parts
(lrrun.train.parts), restore a checkpoint (lrrun.train.resume), open the logs (CSVs,
lrrun.logs.trackers) and print the header (lrrun.train.header), hand over to ``loop.fit``,
finish (status, curves.png, trackers)."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn

from lrrun.config import param_groups
from lrrun.config.settings import Settings, TrainerSettings, read
from lrrun.data.batches import make_batches
from lrrun.data.load import load_data
from lrrun.errors import ConfigError, Diverged, root_cause
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
from lrrun.train import checkpoint, header
from lrrun.train.allocator import keep_freed_memory
from lrrun.train.devices import resolve_device
from lrrun.train.loop import Hooks, fit
from lrrun.train.parts import build_model, build_optimizer, precision_context, set_deterministic
from lrrun.train.parts import memory_format as memory_format_for
from lrrun.train.resume import plan as resume_plan
from lrrun.train.resume import restore


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

    data = load_data(settings.dataset)
    model = build_model(settings.model).to(device)
    memory_format = memory_format_for(trainer.channels_last, model)
    model = model.to(memory_format=memory_format)
    optimizer = build_optimizer(settings.optimizer, settings.param_groups, model)
    train_batches, val_batches, data_path = make_batches(
        data, device, trainer.batch_size, trainer.eval_batch_size, trainer.seed,
        trainer.data_path, trainer.num_workers, memory_format,
    )  # fmt: skip
    epochs, steps_per_epoch = trainer.epochs, len(train_batches)
    stepping = build_scheduler(settings.scheduler, optimizer, epochs, steps_per_epoch)
    plan = resume_plan(settings.plain, stepping, steps_per_epoch)
    start_epoch, step, best = 1, 0, None
    if saved is not None:
        start_epoch, step, best = restore(saved, plan, model, optimizer, stepping, trainer)
    check_output_dir(run_dir, model, epochs * steps_per_epoch)
    forward = torch.compile(model) if trainer.compile else model

    groups = param_groups.names(optimizer)
    console = RunConsole(metrics_columns(len(groups)), epochs, steps_per_epoch,
                         trainer.progress, lr_labels(groups))  # fmt: skip
    speed = header.speed(data_path, trainer, memory_format, kept)
    tracked = open_trackers(trainer, run_dir, groups, step if saved else None)
    try:  # from here on a tracker run is open: it must not be left "running"
        tracked.log_config(flatten(settings.plain))
        console.header(
            header.header(settings, model, optimizer, stepping, data, steps_per_epoch)
            | {"device": f"{device} ({speed})", "run dir": _short(run_dir)}
            | ({"resumed": f"after epoch {start_epoch - 1} (step {step})"} if saved else {})
            | tracked.header()
        )
        for warning in lint(stepping, epochs, steps_per_epoch):
            print_warning(warning)
        keep = start_epoch - 1 if saved else None  # resume: a half-done epoch's rows go
        metrics = CSVLog(run_dir / "metrics.csv", metrics_columns(len(groups)), keep)
        steps = CSVLog(run_dir / "steps.csv", steps_columns(len(groups), stepping.momentum), keep)
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
        if best is None or row["val_acc"] > best[0]:
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
                 **tracked.ids())  # fmt: skip
    history: list[dict[str, Any]] = []
    outcome = "ok"
    try:
        history = fit(
            forward, train_batches, val_batches, optimizer, stepping, recorder, epochs,
            start_epoch=start_epoch, step=step, autocast=autocast, hooks=hooks,
            stop_on_nonfinite=trainer.stop_on_nonfinite,
        )  # fmt: skip
    except BaseException as exc:
        outcome = _failure(exc)
        write_status(run_dir, outcome, message=str(exc) or type(exc).__name__)
        if isinstance(exc, Diverged):
            _plot(run_dir, trainer)
        raise
    finally:  # whatever happens, every step taken is on disk (and in the trackers)
        recorder.flush()
        log_events()
        metrics.close()
        steps.close()
        events.close()
        console.close()
        if outcome != "ok":
            tracked.close(outcome, _artifacts(run_dir))
    write_status(run_dir, "ok")  # epoch and step: from the last epoch_done
    _plot(run_dir, trainer)
    tracked.close("ok", _artifacts(run_dir))
    history = previous + history
    console.finish(history, _short(run_dir))
    return history


def process_age() -> float:
    """Seconds since this process started (Linux /proc; else since lrrun was imported)."""
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        with open("/proc/self/stat") as f:
            started = int(f.read().rsplit(")", 1)[1].split()[19]) / ticks
        with open("/proc/uptime") as f:
            return float(f.read().split()[0]) - started
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - _IMPORTED


_IMPORTED = time.perf_counter()


def _plot(run_dir: Path, trainer: TrainerSettings) -> None:
    """curves.png (lr per step, loss and accuracy per epoch); a failure here only warns."""
    if not trainer.plot:
        return
    try:
        from lrrun.logs.plots import plot_run_dir

        plot_run_dir(run_dir)
    except Exception as exc:
        print_warning(f"curves.png was not written ({root_cause(exc)}); try lrrun-report {run_dir}")


def _artifacts(run_dir: Path) -> list[Path]:
    return [run_dir / name for name in ("curves.png", "metrics.csv", "steps.csv")]


def _failure(exc: BaseException) -> str:
    if isinstance(exc, Diverged):
        return "diverged"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return "failed"


def check_output_dir(run_dir: Path, model: nn.Module, total_steps: int) -> None:
    """Fail at start, not at epoch 37, if the run dir cannot take the run's files."""
    hint = "Choose another with hydra.run.dir=... (sweeps: hydra.sweep.dir=...)."
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=run_dir, prefix=".write-test."):
            pass
        free = shutil.disk_usage(run_dir).free
    except OSError as exc:
        raise ConfigError(
            f"run dir {run_dir} is not writable ({exc.strerror or exc}). {hint}"
        ) from None
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    need = 4 * params + 100 * total_steps + (1 << 20)  # 2 checkpoints (+ momenta), steps.csv
    if free < need:
        raise ConfigError(
            f"run dir {run_dir} has {free / 2**20:.1f} MiB free; this run needs about "
            f"{need / 2**20:.1f} MiB (checkpoints and CSVs). Free some space. {hint}"
        )


def _short(path: Path) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel
