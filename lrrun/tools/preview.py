"""``lrrun-preview``: what a schedule will do, without training.

It builds the exact configured optimizer (on the configured model's parameters) and
scheduler, then runs the loop's own stepping rule (``loop.step_after_batch`` /
``loop.step_after_epoch``) over the real plan: epochs x batches per epoch, from the dataset's
size and the batch size. So it logs what training logs (tests/tools/test_preview.py compares it
with steps.csv). ReduceLROnPlateau needs a metric trace: ``preview.metrics`` or
``preview.metrics_csv``.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from lrrun.config.location import config_dir
from lrrun.config.settings import Settings, read
from lrrun.errors import ConfigError, LrrunError

SPARK = "▁▂▃▄▅▆▇█"


def simulate(cfg: Settings | DictConfig) -> tuple[Any, list[dict[str, Any]], int]:
    """(stepping, rows of epoch/step/lr[, lr_1...][, momentum], steps per epoch) for the
    plan of ``cfg`` (Settings, or a composed config read here)."""
    return _simulate(cfg)[:3]


def _simulate(cfg: Settings | DictConfig) -> tuple[Any, list[dict[str, Any]], int, Any]:
    """simulate's, and the schedule's events (an lrrun.schedule.events.EventWatcher)."""
    import torch

    from lrrun.data.batches import train_batches
    from lrrun.data.load import describe
    from lrrun.logs.csv_log import lr_columns
    from lrrun.schedule.build import (
        build_scheduler,
        current_lrs,
        current_momentum,
        schedule_free,
    )
    from lrrun.schedule.events import EventWatcher
    from lrrun.schedule.warmup import warmed_up
    from lrrun.train.loop import step_after_batch, step_after_epoch
    from lrrun.train.parts import build_model, build_optimizer
    from lrrun.train.recipe import Recipe, used_lrs

    settings = cfg if isinstance(cfg, Settings) else read(cfg)
    settings, _ = settings.scaled(settings.trainer.devices)  # as the run will (lr_scaling)
    trainer = settings.trainer
    epochs = trainer.epochs
    data = describe(settings.dataset)  # sizes and facts; nothing decoded
    # each of trainer.devices processes trains on its shard (lrrun.world.shard)
    batches = train_batches(data, trainer.batch_size, trainer.devices, trainer.accumulate)
    spe = Recipe(trainer.accumulate).steps_per_epoch(batches)  # optimizer steps, as training
    torch.manual_seed(trainer.seed)
    model, _ = build_model(settings.model, data.facts)
    optimizer = build_optimizer(settings.optimizer, settings.param_groups, model, settings.no_decay)
    stepping = build_scheduler(settings.scheduler, optimizer, epochs, spe)
    watch = EventWatcher(stepping, optimizer)
    preview = settings.resolved.get("preview") or {}
    trace = _metric_trace(preview, stepping.monitor, epochs) if stepping.monitor else None
    # No gradients exist, so optimizer.step() changes nothing; calling it once tells torch
    # the optimizer has stepped (the scheduler would warn otherwise). A schedule-free
    # optimizer (no scheduler) is stepped at every step instead: its step scales the lr by
    # its own warm-up, and the loop logs the lr it used.
    free = schedule_free(optimizer)
    if free:
        optimizer.train()  # type: ignore[attr-defined]
    else:
        optimizer.step()
    names = lr_columns(len(optimizer.param_groups))

    def momentum() -> dict[str, float]:  # logged as steps.csv logs it
        return {"momentum": current_momentum(optimizer)} if stepping.momentum else {}

    rows, step = [], 0
    for epoch in range(1, epochs + 1):
        scheduled, moment = current_lrs(optimizer), momentum()
        for _ in range(spe):
            step += 1
            if stepping.per_batch:  # otherwise nothing moves the lr inside an epoch
                scheduled, moment = current_lrs(optimizer), momentum()
            lrs = stepping.warmup.lrs(scheduled, step)  # as loop.train_one_epoch applies it
            if free:
                with warmed_up(optimizer, stepping.warmup.factor(step)):
                    optimizer.step()
                lrs = used_lrs(optimizer, lrs)
            rows.append(
                {"epoch": epoch, "step": step, **dict(zip(names, lrs, strict=True)), **moment}
            )
            step_after_batch(stepping, epoch, step, watch)
        metrics = {stepping.monitor: trace[epoch - 1]} if trace else {}
        step_after_epoch(stepping, metrics, epoch, step, watch)
    return stepping, rows, spe, watch


def _metric_trace(preview: dict[str, Any], monitor: str, epochs: int) -> list[float]:
    values, source = preview.get("metrics"), "preview.metrics"
    if values is None and preview.get("metrics_csv"):
        path = Path(preview["metrics_csv"])
        source = f"preview.metrics_csv={path}"
        try:
            with path.open(newline="") as f:
                values = [float(r[monitor]) for r in csv.DictReader(f)]
        except (OSError, KeyError, ValueError) as exc:
            raise ConfigError(f"{source}: cannot read column {monitor!r} ({exc}).") from None
    if values is None:
        raise ConfigError(
            f"scheduler=reduce_lr_on_plateau reacts to {monitor}, which a preview does not "
            f"compute. Give one value per epoch: preview.metrics=[...] ({epochs} values), or "
            "preview.metrics_csv=<an earlier run's metrics.csv>."
        )
    values = [float(v) for v in values]
    if len(values) < epochs:
        raise ConfigError(
            f"{source} has {len(values)} value(s); the plan has {epochs} epochs. Give "
            f"{epochs} values (or lower trainer.epochs)."
        )
    return values


def sparkline(values: list[float], width: int = 64) -> str:
    """One character per bucket of steps; on a log scale when ``plots.log_scale`` says so."""
    import math

    from lrrun.logs.plots import log_scale

    if not values:
        return ""
    buckets = [values[int(i * len(values) / width)] for i in range(min(width, len(values)))]
    positive = [v for v in buckets if v > 0]
    log = log_scale(values) and bool(positive)
    f = (lambda v: math.log(v) if v > 0 else math.log(min(positive))) if log else (lambda v: v)
    lo, hi = min(map(f, buckets)), max(map(f, buckets))
    if hi == lo:
        return SPARK[3] * len(buckets)
    return "".join(SPARK[round((f(v) - lo) / (hi - lo) * (len(SPARK) - 1))] for v in buckets)


def facts(rows: list[dict[str, Any]]) -> dict[str, str]:
    """Start, peak, final lr, and when the lr changes."""
    lrs = [r["lr"] for r in rows]
    peak = max(range(len(lrs)), key=lrs.__getitem__)
    changes = [i for i in range(1, len(lrs)) if lrs[i] != lrs[i - 1]]
    if not changes:
        when = "none (constant lr)"
    elif len(changes) > 12:  # a per-step schedule: where it changes is everywhere
        when = f"at {len(changes)} of {len(lrs) - 1} step boundaries (a per-step schedule)"
    else:
        when = ", ".join(
            f"step {rows[i]['step']} (epoch {rows[i]['epoch']}) -> {lrs[i]:.4e}" for i in changes
        )
    return {
        "start": f"{lrs[0]:.4e}",
        "peak": f"{lrs[peak]:.4e} at step {rows[peak]['step']} (epoch {rows[peak]['epoch']})",
        "final": f"{lrs[-1]:.4e} (min {min(lrs):.4e})",
        "changes": when,
    }


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """steps.csv's columns and number format (floats as repr: exact round trip)."""
    with path.open("w", newline="") as f:  # numbers only: no quoting needed, join is 3x faster
        f.write(",".join(rows[0]) + "\n")
        f.write("".join(",".join(map(repr, r.values())) + "\n" for r in rows))


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="preview")
def _hydra_main(cfg: DictConfig) -> None:
    from lrrun.config import param_groups
    from lrrun.logs.console import print_items, print_warning
    from lrrun.logs.csv_log import lr_columns, write_status
    from lrrun.logs.plots import log_scale
    from lrrun.schedule.build import format_args
    from lrrun.schedule.lint import lint
    from lrrun.tools.common import fail_job

    hydra_cfg = HydraConfig.get()
    out = Path(hydra_cfg.runtime.output_dir)
    try:
        settings = read(cfg, hydra_cfg.runtime.choices)
        stepping, rows, spe, watch = _simulate(settings)
    except LrrunError as exc:
        fail_job(exc, out)
        return
    trainer, plot = settings.trainer, settings.resolved["preview"]["plot"]
    _, scaled = settings.scaled(trainer.devices)
    for warning in lint(stepping, trainer.epochs, spe):
        print_warning(warning)
    write_csv(rows, out / "preview.csv")
    choice = settings.choices.get("scheduler", "")
    described = (
        f"{choice} ({stepping.name} {format_args(stepping.args)}), interval={stepping.interval}"
    )
    groups = param_groups.names(watch.optimizer)
    if plot:
        from lrrun.logs.plots import plot_lr

        steps = [r["step"] for r in rows]
        traces = {
            name: (steps, [r[c] for r in rows])
            for name, c in zip(groups, lr_columns(len(groups)), strict=True)
        }
        plot_lr(
            traces if len(groups) > 1 else {choice: traces[param_groups.DEFAULT]},
            spe,
            out / "preview.png",
            f"{choice}{_warmup_title(stepping)}: lr per optimizer step "
            f"({trainer.epochs} epochs x {spe} steps)",
            legend="param group",
        )
    write_status(out, "ok", epoch=trainer.epochs, step=len(rows), param_groups=groups)
    lrs = [r["lr"] for r in rows]
    items = {
        "scheduler": described,
        **stepping.warmup.header(),
        **({"lr scaling": scaled} if scaled else {}),
        "plan": f"{trainer.epochs} epochs x {spe} steps = {len(rows)} optimizer steps "
        f"(batch {trainer.batch_size}"
        + (f" per process, {trainer.devices} processes" if trainer.devices > 1 else "")
        + ")",
        "lr": sparkline(lrs) + (" (log scale)" if log_scale(lrs) else ""),
        **facts(rows),
        "wrote": f"{out}/preview.csv" + (", preview.png" if plot else ""),
    }
    print_items(items)
    happened = watch.drain()
    if happened:
        print_items({"events": f"{len(happened)} (as training would log them in events.csv)"})
        for event in happened:
            print(event.line())


def _warmup_title(stepping: Any) -> str:
    return f" with warm-up ({stepping.warmup.describe()})" if stepping.warmup.steps else ""


def main() -> None:
    from lrrun.tools.common import precheck

    precheck(sys.argv[1:], extra_roots=("preview",))
    _hydra_main()
