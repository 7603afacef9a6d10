"""The jobs of one pass: each prepared as it would be alone (lrrun.train.runner.prepare: its
seed, its parts on the data loaded once, its logbook, header and status), trained side by
side (lrrun.fused.loop), and ended as alone - its test, status, curves and trackers - or
failed alone: a job that cannot be built, diverges or fails in its own hooks ends by itself
and the others go on. An interrupt ends every member as an interrupted run (each keeps its
last checkpoint and every step taken)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from lrrun.config.run_dirs import claim
from lrrun.config.settings import Settings
from lrrun.data.batches import probe_batch
from lrrun.data.load import load_data
from lrrun.errors import ConfigError
from lrrun.files import release
from lrrun.fused.dropout import why_alone
from lrrun.fused.forward import measure, precision_differs
from lrrun.fused.loop import Member, fit_members
from lrrun.fused.memory import Fit, members_that_fit
from lrrun.logs.console import RUN_LOG
from lrrun.train import checkpoint
from lrrun.train.allocator import keep_freed_memory
from lrrun.train.assembly import MEMORY
from lrrun.train.devices import resolve_device
from lrrun.train.logbook import failure
from lrrun.train.parts import precision_context
from lrrun.train.recipe import Autocast
from lrrun.train.run_dir import artifacts
from lrrun.train.runner import conclude, failed, prepare, test_chosen

Result = list[dict[str, Any]] | BaseException  # a member's history, or how it ended


def why_not_fused(settings: Settings) -> str | None:
    """What keeps a job out of any pass, from its settings (None: nothing)."""
    t = settings.trainer
    if t.devices > 1:
        return f"trainer.devices={t.devices}: a data-parallel run has its own processes"
    if t.compile:
        return "trainer.compile=true: the pass is not compiled"
    return None


def probe(settings: list[Settings]) -> tuple[float, float, Any]:
    """Seconds per step of the pass's model (forward and backward, random weights, one
    batch of its data, its precision) for all members in one pass and one after another,
    and the data loaded for it (run_members takes it): whether fusing pays on this device."""
    model, batch, data = _model_and_batch(settings[0])
    autocast = precision_context(settings[0].trainer.precision, batch.device)
    keep_freed_memory(batch.device.type)  # malloc as the members' runs will have it
    fused, alone = measure(model, len(settings), batch, autocast)
    return fused, alone, data


def why_apart(settings: Settings) -> str | None:
    """Why jobs like this one cannot train as alone in a pass on their device (None: they
    can): random layers that draw inside the forward, or layers the pass would compute in
    another precision (lrrun.fused.forward.precision_differs)."""
    model, batch, _ = _model_and_batch(settings)
    autocast = precision_context(settings.trainer.precision, batch.device)
    return _why_apart(model, batch[:2], autocast)


def _why_apart(model: torch.nn.Module, batch: torch.Tensor, autocast: Autocast) -> str | None:
    return why_alone(model, batch) or precision_differs(model, batch, autocast)


def capacity(settings: Settings) -> Fit:
    """How many members of this job's kind fit in one pass on its device."""
    model, batch, _ = _model_and_batch(settings)
    return members_that_fit(model, batch, batch.device)


def _model_and_batch(settings: Settings) -> tuple[torch.nn.Module, torch.Tensor, Any]:
    """A model of the job's architecture (random weights, seed 0: nothing of a run changes),
    one training batch of its data in its memory format on its device, and the data (loaded
    once per process: lrrun.data.load)."""
    from lrrun.train.parts import build_model, memory_format_for

    t = settings.trainer
    device = resolve_device(t.device)
    data = load_data(settings.dataset, MEMORY[t.data_path], device)
    torch.manual_seed(0)
    model, _ = build_model(settings.model, data.facts)
    model = model.to(device)
    layout = memory_format_for(t.channels_last, model)
    one = probe_batch(data, device, layout)[:1]
    batch = one.expand(t.batch_size, *one.shape[1:]).contiguous(memory_format=layout)
    return model.to(memory_format=layout), batch, data


def run_members(
    settings: list[Settings],
    run_dirs: list[Path],
    logs: list[list[logging.Handler]] | None = None,
    on_epoch: Callable[[int, list[Member]], None] | None = None,
    data: Any = None,
) -> list[Result]:
    """Train the jobs ``settings`` (one pass: lrrun.fused.plan) into ``run_dirs``; each
    job's history, or the exception it ended with. ``logs``: each job's lrrun.log handlers
    (its console lines go there, not to the screen); ``on_epoch``: told after each epoch;
    ``data``: loaded already (probe)."""
    first = settings[0].trainer
    device = resolve_device(first.device)
    if data is None:
        data = load_data(settings[0].dataset, MEMORY[first.data_path], device)
    results: list[Result | None] = [None] * len(settings)
    members: list[tuple[int, Member]] = []
    try:
        for i, (one, run_dir) in enumerate(zip(settings, run_dirs, strict=True)):
            try:
                log = logs[i] if logs else []
                members.append((i, _member(one, run_dir, device, data, log)))
            except Exception as exc:  # this job's config or model: it fails alone
                release(run_dir)
                results[i] = exc
        starts = {m.run.start_epoch for _, m in members}
        if len(starts) > 1:
            raise ConfigError(f"the members resume from different epochs ({sorted(starts)})")
        if members:
            fit_members([m for _, m in members], first.epochs, starts.pop(), on_epoch)
    except BaseException as exc:  # an interrupt: every member ends as an interrupted run
        for i, m in members:
            with m.stream():
                results[i] = _end_failed(m, m.ended or exc)
        raise
    for i, m in members:
        with m.stream():  # its RNG for the test, its log for the last lines
            results[i] = _end_failed(m, m.ended) if m.ended is not None else _end_ok(m)
    return [r for r in results if r is not None]


def _member(
    one: Settings, run_dir: Path, device: torch.device, data: Any, log: list[logging.Handler]
) -> Member:
    claim(run_dir, "run dir", str(run_dir))
    saved = None
    if one.trainer.resume:
        saved = checkpoint.read(checkpoint.locate(str(one.trainer.resume)))
    handlers, RUN_LOG.handlers = RUN_LOG.handlers, log or RUN_LOG.handlers
    try:
        torch.manual_seed(one.trainer.seed)  # as run() seeds a job alone
        run = prepare(one, "", run_dir, saved, device, data=data, screen=not log)
        batch = probe_batch(data, device, run.parts.memory_format)
        why = _why_apart(run.parts.model, batch, run.autocast)
        if why is not None:
            run.book.close("failed", [])
            raise ConfigError(why + ", so this job cannot share a pass")
    finally:
        RUN_LOG.handlers = handlers
    return Member(run, torch.get_rng_state(), log)


def _end_ok(m: Member) -> Result:
    run = m.run
    try:
        tested = test_chosen(run)
    except Exception as exc:
        return _end_failed(m, exc)
    run.book.close("ok", artifacts(run.run_dir))
    try:
        return conclude(run, m.history, tested)
    finally:
        release(run.run_dir)


def _end_failed(m: Member, error: BaseException) -> Result:
    run = m.run
    try:
        exc = failed(run, error)
        run.book.close(failure(exc), artifacts(run.run_dir))
        return exc
    finally:
        release(run.run_dir)
