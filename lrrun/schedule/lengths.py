"""Lengths and ranges a schedule derives from the run when its config leaves them null.

Lengths are in units of the scheduler's interval: the run's epochs, or epochs x batches per
epoch for interval=step (a SequentialLR child: its segment of the run). one_cycle's max_lr and
cyclic's base_lr default to each param group's lr (cyclic's max_lr to 10x that, its
step_size_up to a quarter of the run); given as lists, they need one value per group. A
SequentialLR's null milestones follow each child's total_iters.
"""

from __future__ import annotations

import math
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    CyclicLR,
    LinearLR,
    OneCycleLR,
    PolynomialLR,
)

from lrrun.config import param_groups
from lrrun.errors import ConfigError

# Which lengths a class derives when left null: {class: key}.
_LENGTH_KEYS: dict[type, str] = {
    CosineAnnealingLR: "T_max",
    PolynomialLR: "total_iters",
    LinearLR: "total_iters",
    OneCycleLR: "total_steps",
}


def milestones(
    classes: list[type], kwargs: list[dict[str, Any]], names: list[str], prefix: str
) -> list[int]:
    milestones, at = [], 0
    for cls, kw, name in zip(classes[:-1], kwargs[:-1], names[:-1], strict=True):
        span = kw.get("total_iters")
        if span is None:
            raise ConfigError(
                f"{prefix}.milestones is null, so each child but the last needs a fixed "
                f"total_iters, and {prefix}.schedulers.{name} ({cls.__name__}) has none. "
                f"Set {prefix}.milestones=[...] or {prefix}.schedulers.{name}.total_iters."
            )
        at += int(span)
        milestones.append(at)
    return milestones


def derive(
    cls: type, kwargs: dict[str, Any], optimizer: Optimizer, length: int, prefix: str
) -> None:
    key = next((k for c, k in _LENGTH_KEYS.items() if issubclass(cls, c)), None)
    if key is not None and kwargs.get(key) is None:
        if length < 1:
            raise ConfigError(f"{prefix}.{key} cannot be derived: this part of the run is empty.")
        kwargs[key] = length
    group_lrs = [float(g["lr"]) for g in optimizer.param_groups]
    for per_group in ("base_lr", "max_lr", "min_lr"):  # a list: one value per param group
        value = kwargs.get(per_group)
        if isinstance(value, list | tuple) and len(value) != len(group_lrs):
            names = ", ".join(param_groups.names(optimizer))
            raise ConfigError(
                f"{prefix}.{per_group}={list(value)} has {len(value)} values, the optimizer "
                f"has {len(group_lrs)} param groups ({names}). Give one value per group, one "
                "number for all, or null (each group's own lr)."
            )
    if issubclass(cls, OneCycleLR) and kwargs.get("max_lr") is None:
        kwargs["max_lr"] = _one_or_list(group_lrs)
    if issubclass(cls, CyclicLR):
        if kwargs.get("base_lr") is None:
            kwargs["base_lr"] = _one_or_list(group_lrs)
        if kwargs.get("max_lr") is None:
            base = kwargs["base_lr"]
            kwargs["max_lr"] = [10 * b for b in base] if isinstance(base, list) else 10 * base
        if kwargs.get("step_size_up") is None:
            kwargs["step_size_up"] = max(1, length // 4)


def _one_or_list(values: list[float]) -> float | list[float]:
    return values[0] if len(values) == 1 else values


def derive_let(let: dict[str, Any] | None, length: int, optimizer: Optimizer) -> dict[str, Any]:
    """The values of a ``let`` block's names (lrrun.config.scheduler.let_names) for a run of
    ``length`` scheduler steps: ``total`` the length when null; ``<x>`` from ``<x>_steps``, or
    when that is null ceil(``<x>_ratio`` x total), as Hugging Face derives warm-up steps;
    ``lr_init`` null: the optimizer's lr (Hugging Face's polynomial schedule's lr_init);
    ``timescale`` null: the warm-up's steps, or 10,000 without one (its inverse_sqrt)."""
    if not let:
        return {}
    names = {k: v for k, v in let.items() if v is None or isinstance(v, int | float)}
    total = names.get("total")
    names["total"] = length if total is None else total
    for key in list(let):
        if key.endswith("_steps"):
            base = key.rsplit("_", 1)[0]
            steps, ratio = let.get(f"{base}_steps"), let.get(f"{base}_ratio")
            names[base] = steps if steps is not None else math.ceil((ratio or 0) * names["total"])
            names[f"{base}_steps"], names[f"{base}_ratio"] = names[base], ratio or 0
    if "lr_init" in names and names["lr_init"] is None:
        names["lr_init"] = float(optimizer.defaults["lr"])
    if "timescale" in names and names["timescale"] is None:
        names["timescale"] = names.get("warmup") or 10_000
    for key, value in names.items():
        if value is None:
            raise ConfigError(f"scheduler.let.{key} is null and has nothing to be derived from.")
    return names
