"""What a resumed run must keep: the plan a checkpoint records, and loading a checkpoint into
freshly built objects (refusing a config that would change the run)."""

from __future__ import annotations

from typing import Any

from torch import nn
from torch.optim import Optimizer

from lrrun.config.trainer import RESUME_FREE, TrainerSettings
from lrrun.errors import ConfigError, root_cause
from lrrun.schedule.build import Stepping, current_lrs
from lrrun.train import checkpoint
from lrrun.world import SINGLE, World


def plan(
    resolved: dict[str, Any], stepping: Stepping, steps_per_epoch: int, data: dict[str, Any]
) -> dict[str, Any]:
    """What a resume must not change: the resolved config (``Settings.resolved``), minus keys
    that only affect speed or display, plus the scheduler's derived arguments, the batches
    per epoch and the data as the run saw it (classes, sizes, split, the model's values from
    the data: lrrun.train.header.data_facts)."""
    trainer = {k: v for k, v in resolved["trainer"].items() if k not in RESUME_FREE}
    if (trainer.get("ema") or {}).get("decay") is None:  # off: as runs before trainer.ema
        trainer.pop("ema", None)
    if trainer.get("select") == "model":
        trainer.pop("select")
    return {
        **{
            k: resolved.get(k)
            for k in ("dataset", "model", "loss", "mix", "optimizer", "scheduler")
        },
        "trainer": trainer,
        "scheduler (derived)": _plain({"name": stepping.name, **stepping.args}),
        "steps_per_epoch": steps_per_epoch,
        "data": _plain(data),
    }


def _plain(value: Any) -> Any:
    """Plain values only (a checkpoint is loaded weights_only): objects such as an
    lr_lambda's EpochExpression are kept as their repr."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


def restore(
    saved: checkpoint.Saved,
    plan: dict[str, Any],
    model: nn.Module,
    optimizer: Optimizer,
    stepping: Stepping,
    trainer: TrainerSettings,
    world: World = SINGLE,
) -> tuple[int, int, tuple[float, int] | None]:
    """Load a checkpoint into the freshly built objects; return (start epoch, step, best).
    Every rank of a data-parallel run reads it and takes back its own RNG state.

    The optimizer's state is loaded after the scheduler was constructed: constructing a
    scheduler resets the optimizer's lr to the schedule's start, and the checkpoint's
    param_groups put the lr of the saved epoch back.
    """
    if saved.epoch >= trainer.epochs:
        raise ConfigError(
            f"trainer.resume: the checkpoint is at epoch {saved.epoch}, and "
            f"trainer.epochs={trainer.epochs}: nothing left to train. Raise trainer.epochs "
            "to train longer."
        )
    saved.plan.get("data", {}).setdefault("task", "classification")  # written before tasks
    changes = diff(saved.plan, plan)
    if changes and not trainer.allow_config_change:
        raise ConfigError(
            "trainer.resume: this config differs from the checkpoint's: "
            + "; ".join(changes)
            + ". Resume with the checkpoint's values, or set trainer.allow_config_change=true "
            "to continue with the new ones (a changed scheduler starts from its beginning)."
        )
    fresh_lrs = current_lrs(optimizer)  # where the just-built schedule starts
    try:
        model.load_state_dict(saved.model)
        optimizer.load_state_dict(saved.optimizer)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise ConfigError(
            f"trainer.resume: the checkpoint's model/optimizer do not fit this config "
            f"({root_cause(exc)})."
        ) from None
    same_scheduler = saved.plan["scheduler (derived)"] == plan["scheduler (derived)"]
    if same_scheduler and stepping.scheduler is not None and saved.scheduler is not None:
        stepping.scheduler.load_state_dict(saved.scheduler)
    else:  # another schedule (allowed): it starts from its beginning
        for group, lr in zip(optimizer.param_groups, fresh_lrs, strict=True):
            group["lr"] = lr
    rng = saved.rng  # one state, or one per rank of a data-parallel run
    checkpoint.set_rng_state(rng[world.rank] if isinstance(rng, list) else rng)
    return saved.epoch + 1, saved.step, saved.best


def diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    """``key: old -> new`` for every leaf that differs."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            name = f"{prefix}.{key}" if prefix else str(key)
            out += diff(old.get(key, "<unset>"), new.get(key, "<unset>"), name)
        return out
    return [] if old == new else [f"{prefix}: {old!r} -> {new!r}"]
