"""The run header: what the console prints before the first epoch (dataset, model, optimizer
with its param groups, scheduler, warm-up, trainer, device and its speed settings)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer

from lrrun.config import param_groups
from lrrun.config.settings import Settings, TrainerSettings
from lrrun.models import parameter_count
from lrrun.schedule.build import Stepping, format_args


def speed(
    data_path: str, trainer: TrainerSettings, memory_format: torch.memory_format, kept: bool
) -> str:
    parts = [f"data_path={data_path}", f"precision={trainer.precision}"]
    if memory_format == torch.channels_last:
        parts.append("channels_last")
    if trainer.compile:
        parts.append("compile")
    if kept:
        parts.append("malloc keeps freed memory")
    return ", ".join(parts)


def header(
    settings: Settings,
    model: nn.Module,
    optimizer: Optimizer,
    stepping: Stepping,
    data: Any,
    steps_per_epoch: int,
) -> dict[str, str]:
    choices, trainer, configured = settings.choices, settings.trainer, settings.param_groups
    opt_args = {k: v for k, v in optimizer.defaults.items() if k in settings.optimizer}
    groups = {"param groups": param_groups.describe(optimizer, configured)} if configured else {}
    sched_args = format_args(stepping.args)
    monitor = f", monitor={stepping.monitor}" if stepping.monitor else ""
    return {
        "dataset": f"{choices.get('dataset', settings.dataset['name'])}: {len(data.train)} train / "
        f"{len(data.test)} test, from {data.source}"
        + (f", normalised (mean {data.mean:.4f}, std {data.std:.4f})" if data.std != 1 else ""),
        "model": f"{choices.get('model', '')} ({type(model).__name__}, "
        f"{parameter_count(model):,} parameters)",
        "optimizer": f"{choices.get('optimizer', '')} ({type(optimizer).__name__} "
        + format_args(opt_args)
        + ")",
        **groups,
        "scheduler": f"{choices.get('scheduler', '')} ({stepping.name}"
        + (f" {sched_args}" if sched_args else "")
        + f"), interval={stepping.interval}{monitor}",
        **stepping.warmup.header(),
        "trainer": f"{trainer.epochs} epoch(s) x {steps_per_epoch} steps, batch {trainer.batch_size}, "
        f"seed {trainer.seed}",
    }
