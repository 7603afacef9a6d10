"""The run header: what the console prints before the first epoch (dataset and its splits,
model with what it took from the data, optimizer with its param groups, scheduler, warm-up,
trainer, device and its speed settings), and the data's facts status.json and the
checkpoint's plan record."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from lrrun.config import param_groups
from lrrun.config.settings import Settings
from lrrun.config.trainer import TrainerSettings
from lrrun.data.base import dims
from lrrun.data.tokens import TokenData
from lrrun.models import parameter_count
from lrrun.schedule.build import Stepping, format_args
from lrrun.world import SINGLE, World

if TYPE_CHECKING:
    from lrrun.train.assembly import Parts

SHOWN_CLASSES = 6


def speed(
    data_path: str,
    trainer: TrainerSettings,
    memory_format: torch.memory_format,
    kept: bool,
    world: World = SINGLE,
) -> str:
    parts = [f"data_path={data_path}", f"precision={trainer.precision}"]
    if world.active:
        import torch.distributed as dist

        parts.insert(0, f"DDP, {world.size} processes ({dist.get_backend()}), this is rank 0")
    if memory_format == torch.channels_last:
        parts.append("channels_last")
    if trainer.compile:
        parts.append("compile")
    if kept:
        parts.append("malloc keeps freed memory")
    return ", ".join(parts)


def data_facts(parts: Parts, world: World = SINGLE) -> dict[str, Any]:
    """The data as the run saw it (status.json's ``data``, and the checkpoint's plan: a
    resume must see the same classes, sizes and split, and the same number of processes)."""
    data = parts.data
    return {
        **({"processes": world.size} if world.active else {}),
        "task": parts.task.spec.name,
        **data.record(),
        "selection": data.selection,
        "model_args": {
            k: list(v) if isinstance(v, tuple) else v for k, v in parts.model_args.items()
        },
    }


def header(
    settings: Settings, parts: Parts, stepping: Stepping, steps_per_epoch: int, scaled: str = ""
) -> dict[str, str]:
    """The run's plan as the console shows it; ``scaled``: lrrun.config.scaling's account."""
    choices, trainer, configured = settings.choices, settings.trainer, settings.param_groups
    model, optimizer = parts.model, parts.optimizer
    opt_args = {k: v for k, v in optimizer.defaults.items() if k in settings.optimizer}
    split = configured or settings.no_decay
    groups = {"param groups": param_groups.describe(optimizer, configured)} if split else {}
    sched_args = format_args(stepping.args)
    monitor = f", monitor={stepping.monitor}" if stepping.monitor else ""
    given = format_args(parts.model_args)
    return {
        **_data_lines(settings, parts),
        "model": f"{choices.get('model', '')} ({type(model).__name__}, "
        f"{parameter_count(model):,} parameters"
        + (f"; from the data: {given}" if given else "")
        + ")",
        "optimizer": f"{choices.get('optimizer', '')} ({type(optimizer).__name__} "
        + format_args(opt_args)
        + ")",
        **groups,
        "scheduler": f"{choices.get('scheduler', '')} ({stepping.name}"
        + (f" {sched_args}" if sched_args else "")
        + f"), interval={stepping.interval}{monitor}",
        **stepping.warmup.header(),
        **({"lr scaling": scaled} if scaled else {}),
        "trainer": f"{trainer.epochs} epoch(s) x {steps_per_epoch} steps, batch "
        f"{trainer.batch_size}"
        + (
            f" per process ({parts.global_batch // trainer.accumulate} in all)"
            if parts.global_batch != trainer.batch_size * trainer.accumulate
            else ""
        )
        + f", seed {trainer.seed}",
        **_recipe_line(settings, parts),
    }


def _recipe_line(settings: Settings, parts: Parts) -> dict[str, str]:
    """How a step is made, when it is more than one batch's cross-entropy."""
    t, said = settings.trainer, []
    if t.accumulate > 1:
        said.append(
            f"accumulate {t.accumulate} batches per optimizer step (batch "
            f"{t.batch_size * t.accumulate})"
        )
    if t.clip_grad_norm is not None:
        said.append(f"clip_grad_norm {t.clip_grad_norm}")
    if t.clip_grad_value is not None:
        said.append(f"clip_grad_value {t.clip_grad_value}")
    loss = {k: v for k, v in settings.loss.items() if not k.startswith("_") and v}
    if loss or settings.loss.get("_target_") != "torch.nn.CrossEntropyLoss":
        said.append(
            f"loss {str(settings.loss.get('_target_')).rsplit('.', 1)[-1]}"
            + (f" {format_args(loss)}" if loss else "")
        )
    if parts.recipe.mix is not None:
        off = settings.mix.get("off_epoch")
        said.append(
            f"mix {type(parts.recipe.mix).__name__}" + (f" until epoch {off - 1}" if off else "")
        )
    return {"recipe": "; ".join(said)} if said else {}


def _data_lines(settings: Settings, parts: Parts) -> dict[str, str]:
    data = parts.data
    test = f" / {len(data.test):,} test" if data.test is not None else ", no test split"
    chosen = settings.choices.get("dataset", settings.dataset.name)
    task = settings.task
    said = f"{task.name}: measures {', '.join(parts.task.metrics)}; selects on {task.select} " + (
        "(higher is better)" if task.higher else "(lower is better)"
    )
    lines = {"task": said} if task.name != "classification" else {}
    if isinstance(data, TokenData):
        return lines | _token_lines(chosen, data)
    if data.target_mean:
        stats = ", ".join(
            f"{m:.4g} +- {s:.4g}" for m, s in zip(data.target_mean, data.target_std, strict=True)
        )
        k = len(data.target_mean)
        what = (
            f"{k} target{'s' if k > 1 else ''} per sample (mean +- std on train: {stats}; "
            "standardised for training, reported in their units)"
        )
    else:
        names = ", ".join(data.classes[:SHOWN_CLASSES]) + (
            ", ..." if data.num_classes > SHOWN_CLASSES else ""
        )
        what = f"{data.num_classes} classes ({names})"
    shape = dims(data.input_shape)
    norm = ""
    if data.mean:
        stats = [f"{m:.4f}" for m in data.mean], [f"{s:.4f}" for s in data.std]
        norm = f", normalised (mean {', '.join(stats[0])}; std {', '.join(stats[1])})"
    val = f"{data.val_from}: selects (best.pt, plateau, verdict)"
    if data.selection == "test":
        val = (
            f"{data.val_from}: selection is on the test split, so its numbers are "
            "optimistic; hold out a val split with dataset.val_split"
        )
    augment = ", ".join(type(t).__name__ for t in data.augment)
    return lines | {
        "dataset": f"{chosen}: {len(data.train):,} train / {len(data.val):,} val{test}, "
        f"{what}, samples {shape}, from {data.source}{norm}",
        "val split": val,
        **({"augment": f"{augment} (train split)"} if augment else {}),
    }


def _token_lines(chosen: str, data: TokenData) -> dict[str, str]:
    test = (
        f" / {len(data.test):,} test tokens" if data.test is not None else " tokens, no test split"
    )
    shown = repr("".join(data.vocab[:40])) + (" ..." if len(data.vocab) > 40 else "")
    vocab = f"vocabulary {data.vocab_size}" + (f": {shown}" if data.vocab else "")
    windows = (
        "the whole split in order"
        if data.eval_windows == "all"
        else (f"{data.eval_windows} fixed windows")
    )
    return {
        "dataset": f"{chosen}: {len(data.train):,} train / {len(data.val):,} val{test}, "
        f"{vocab}, from {data.source}",
        "val split": f"{data.val_from}: selects (best.pt, plateau, verdict)",
        "windows": f"{data.block_size} tokens of context; an epoch is "
        f"{data.steps_per_epoch} optimizer steps of random windows (seeded); val and test "
        f"on {windows}, the same every evaluation",
    }
