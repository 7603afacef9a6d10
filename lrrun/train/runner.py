"""A run's story: read its config once (lrrun.config.settings), join the other ranks of a
data-parallel run (lrrun.train.distributed), assemble its parts (data, model, optimizer,
batches: lrrun.train.assembly) and its schedule, restore a checkpoint (lrrun.train.resume),
open what it writes (lrrun.train.logbook) and print the header (lrrun.train.header), hand over
to ``loop.fit``, test the chosen epoch (lrrun.train.final_test), finish (status, curves.png,
trackers)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from lrrun.config.run_dirs import claim
from lrrun.config.settings import Settings, read
from lrrun.errors import Diverged
from lrrun.files import release
from lrrun.schedule.build import Stepping, build_scheduler
from lrrun.schedule.lint import lint
from lrrun.schedule.swa import SWASchedule
from lrrun.train import averaging, checkpoint, distributed, final_test, header
from lrrun.train.allocator import keep_freed_memory
from lrrun.train.assembly import Parts, assemble
from lrrun.train.devices import resolve_device
from lrrun.train.early_stop import EarlyStop
from lrrun.train.logbook import Logbook, failure
from lrrun.train.loop import fit
from lrrun.train.parts import precision_context, set_deterministic
from lrrun.train.recipe import Autocast
from lrrun.train.resume import plan as resume_plan
from lrrun.train.resume import restore
from lrrun.train.run_dir import (
    artifacts,
    check_output_dir,
    orphan_end,
    plot,
    short,
    write_failure,
)
from lrrun.world import SINGLE, World, env_world, gather


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
    multirun (trainer.device=auto spreads jobs over GPUs by it). Started by torchrun (or
    trainer.devices=N), this is one rank of a data-parallel run: rank 0 writes."""
    settings = cfg if isinstance(cfg, Settings) else read(cfg, choices)
    world = env_world()
    settings, scaling_note = settings.scaled(world.size)  # optimizer.lr_scaling, all of it
    trainer = settings.trainer
    saved = None
    if trainer.resume:
        path = checkpoint.locate(str(trainer.resume))
        saved, run_dir = checkpoint.read(path), path.parent
    if world.main:  # its lock, before anything is written (a sweep's job, a dated dir)
        claim(run_dir, "run dir", str(run_dir))
    torch.manual_seed(trainer.seed)
    device = resolve_device(trainer.device, job_num, world)
    distributed.start(world, device)
    try:  # every rank leaves the process group before it exits, however the run ends
        history = _train(settings, scaling_note, run_dir, saved, device, world)
    except BaseException:
        distributed.stop(wait=False)
        raise
    finally:
        release(run_dir)  # the next job of a sweep run in this process may take its own
    distributed.stop(wait=True)
    return history


@dataclass
class Prepared:
    """A run ready for its first step: its parts, schedule, averages and logbook opened, its
    header printed, status.json "running" (lrrun.fused trains several side by side)."""

    settings: Settings
    run_dir: Path
    world: World
    parts: Parts
    stepping: Stepping
    averages: list[averaging.Average]
    book: Logbook
    autocast: Autocast
    step_module: torch.nn.Module  # what a step calls: the model, DDP around it, compiled
    start_epoch: int
    step: int
    stopper: EarlyStop | None


def prepare(
    settings: Settings,
    scaling_note: str,
    run_dir: Path,
    saved: checkpoint.Saved | None,
    device: torch.device,
    world: World = SINGLE,
    data: Any = None,
    screen: bool = True,
) -> Prepared:
    """Everything before epoch 1 (``data``: loaded already, and ``screen=False``: its
    console lines in its log only - for members of one pass, lrrun.fused)."""
    trainer = settings.trainer
    set_deterministic(trainer.deterministic)
    keeps_freed = keep_freed_memory(device.type)
    autocast = precision_context(trainer.precision, device)

    parts = assemble(settings, device, world, data)
    model, optimizer = parts.model, parts.optimizer
    epochs, steps_per_epoch = trainer.epochs, parts.steps_per_epoch
    stepping = build_scheduler(settings.scheduler, optimizer, epochs, steps_per_epoch)
    schedule = stepping.scheduler
    swa_start = schedule.swa_start if isinstance(schedule, SWASchedule) else None
    averages = averaging.build(trainer.ema, swa_start, trainer.select, model, parts.train)
    facts = header.data_facts(parts, world)  # status.json's and the checkpoint plan's
    if averages:  # which weights select (runs written before averaging have none)
        facts |= {"averages": [a.name for a in averages], "select": trainer.select}
    plan = resume_plan(settings.resolved, stepping, steps_per_epoch, facts)
    start_epoch, step, best = 1, 0, None
    if saved is not None:
        start_epoch, step, best = restore(saved, plan, model, optimizer, stepping, trainer, world)
        averaging.restore(averages, saved.averages)
        if parts.recipe.scaler is not None and saved.scaler:  # fp16's loss scale
            parts.recipe.scaler.load_state_dict(saved.scaler)
    if world.main:
        check_output_dir(run_dir, model, epochs * steps_per_epoch)
    step_module = torch.compile(parts.wrapped) if trainer.compile else parts.wrapped

    book = Logbook(
        settings=settings,
        parts=parts,
        stepping=stepping,
        run_dir=run_dir,
        world=world,
        resumed=(start_epoch, step) if saved else None,
        best=best,
        plan=plan,
        averages=averages,
        screen=screen,
    )
    speed = header.speed(parts.data_path, trainer, parts.memory_format, keeps_freed, world)
    try:  # from here on a tracker run is open: it must not be left "running"
        book.header(
            header.header(settings, parts, stepping, steps_per_epoch, scaling_note)
            | {"device": f"{device} ({speed})", "run dir": short(run_dir)}
            | ({"resumed": f"after epoch {start_epoch - 1} (step {step})"} if saved else {}),
            lint(stepping, epochs, steps_per_epoch),
        )
    except BaseException as exc:
        book.close(failure(exc), [])
        raise
    book.running(epoch=start_epoch - 1, step=step, data=facts, device=str(device))
    stopper = EarlyStop(*trainer.early_stop) if trainer.early_stop else None
    if stopper is not None:
        # a resumed run decides as the unstopped one would; every rank on rank 0's rows
        stopper.replay(gather(book.resumed_rows)[0])
    return Prepared(
        settings=settings,
        run_dir=run_dir,
        world=world,
        parts=parts,
        stepping=stepping,
        averages=averages,
        book=book,
        autocast=autocast,
        step_module=step_module,
        start_epoch=start_epoch,
        step=step,
        stopper=stopper,
    )


def _train(
    settings: Settings,
    scaling_note: str,
    run_dir: Path,
    saved: checkpoint.Saved | None,
    device: torch.device,
    world: World,
) -> list[dict[str, Any]]:
    run_dir = Path(gather(str(run_dir))[0])  # rank 0's: the other ranks read best.pt there
    run = prepare(settings, scaling_note, run_dir, saved, device, world)
    parts, book, trainer = run.parts, run.book, settings.trainer
    history: list[dict[str, Any]] = []
    outcome, tested = "ok", None
    try:
        history = fit(
            run.step_module,
            book.stepper(),
            parts.task,
            trainer.epochs,
            train=parts.train,
            val=parts.val,
            test=parts.epoch_test,
            start_epoch=run.start_epoch,
            step=run.step,
            autocast=run.autocast,
            hooks=book.hooks(),
            stop_on_nonfinite=trainer.stop_on_nonfinite,
            eval_model=parts.model,
            early_stop=run.stopper,
        )
        tested = test_chosen(run)
    except BaseException as error:
        outcome = failure(error)
        exc = failed(run, error)
        if exc is error:
            raise
        raise exc from None
    finally:
        book.close(outcome, artifacts(run_dir))
    return conclude(run, history, tested)


def test_chosen(run: Prepared) -> dict[str, Any] | None:
    """After the last epoch: the early stop's line, and the test split on the chosen weights
    (None: no test split, or tested every epoch)."""
    parts, stopper, trainer = run.parts, run.stopper, run.settings.trainer
    if stopper is not None and stopper.stopped_after is not None:
        run.book.line(stopper.line())
    if parts.test is None or parts.epoch_test is not None:
        return None
    distributed.barrier()  # rank 0 has written best.pt
    last = stopper.stopped_after if stopper and stopper.stopped_after else trainer.epochs
    chosen = averaging.selected(run.averages)
    weights = chosen.module if chosen is not None and chosen.updates else parts.model
    return final_test.test_selected(
        model=weights,
        batches=parts.test,
        autocast=run.autocast,
        run_dir=run.run_dir,
        last_epoch=last,
        save_best=trainer.save_best,
        task=parts.task,
        select=run.settings.task.select,
    )


def failed(run: Prepared, error: BaseException) -> BaseException:
    """What a run that raised ``error`` writes (its status, curves.png when it diverged);
    the exception to raise on (a peer's end, a full disk, explained)."""
    world, run_dir = run.world, run.run_dir
    with distributed.signals_held():  # a launcher's SIGTERM now must not skip the status
        exc = distributed.explain(error, world)  # a peer's end, when a collective failed
        exc = write_failure(exc, run_dir)  # the disk, not the run
        outcome = failure(exc)
        distributed.post_outcome(world, outcome, type(exc).__name__, str(exc))
        with contextlib.suppress(OSError):  # a dir that takes nothing takes no status
            run.book.status(outcome, message=getattr(exc, "reason", str(exc)) or type(exc).__name__)
        if not world.main:
            orphan_end(run_dir, outcome, str(exc) or type(exc).__name__)  # rank 0 killed
        if isinstance(exc, Diverged) and world.main:
            plot(run_dir, run.settings.trainer)
    return exc


def conclude(
    run: Prepared, history: list[dict[str, Any]], tested: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """A run that ended well (its logbook closed): the test result into metrics.csv, status
    ok or stopped_early, curves.png, the trackers closed, the console's last line."""
    book, stopper, run_dir = run.book, run.stopper, run.run_dir
    stopped = stopper is not None and stopper.stopped_after is not None
    if run.world.main:
        if tested is not None:
            final_test.write_into_metrics(run_dir, tested)
            book.tested(tested, tested["epoch"] * run.parts.steps_per_epoch)
        book.status(
            "stopped_early" if stopped else "ok",
            test=tested,
            **({"stopped_early": stopper.record()} if stopped else {}),
        )
        plot(run_dir, run.settings.trainer)
        book.close_trackers(artifacts(run_dir))
    history = book.resumed_rows + history
    book.finish(history)
    return history
