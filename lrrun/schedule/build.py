"""Scheduler construction: finish the Hydra ``_partial_`` node with run-time arguments.

The scheduler node (resolved and checked by lrrun.config.settings.read) holds torch's
constructor kwargs plus lrrun's stepping policy (``interval``, ``monitor``, ``warmup``),
which is split off here and never reaches torch. Lengths left ``null`` are derived from the
run (lrrun.schedule.lengths), in units of the interval: ``epochs`` for ``interval=epoch``,
``epochs * batches_per_epoch`` for ``interval=step``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import (
    ChainedScheduler,
    LambdaLR,
    LRScheduler,
    MultiplicativeLR,
    OneCycleLR,
    ReduceLROnPlateau,
    SequentialLR,
)
from torch.optim.swa_utils import SWALR

from lrrun.config.checks import check_node, check_signature, check_value
from lrrun.config.expr import EpochExpression
from lrrun.config.rules import SCHEDULER_RULES
from lrrun.config.scheduler import fights_schedule_free, plateau_mode, scheduler_rules
from lrrun.errors import ConfigError
from lrrun.schedule import swa
from lrrun.schedule.construct import construct, instantiate, node_kwargs, scheduler_class
from lrrun.schedule.lengths import derive, derive_let
from lrrun.schedule.lengths import milestones as derive_milestones
from lrrun.schedule.nested import NESTED
from lrrun.schedule.warmup import Warmup
from lrrun.schedule.warmup import from_config as warmup_from_config

_COMPOSITES = (SequentialLR, ChainedScheduler)


@dataclass
class Stepping:
    """A built scheduler and the policy that says when the loop steps it."""

    scheduler: LRScheduler | ReduceLROnPlateau | None
    interval: str = "epoch"
    monitor: str | None = None
    name: str = "none"
    args: dict[str, Any] = field(default_factory=dict)  # resolved kwargs, for the console
    warmup: Warmup = field(default_factory=Warmup)  # lrrun.schedule.warmup: around optimizer.step()
    momentum: bool = False  # the schedule cycles momentum / beta1: steps.csv logs it

    @property
    def per_batch(self) -> bool:
        """Whether the loop steps the scheduler after every optimizer step."""
        return self.scheduler is not None and self.interval == "step"


def schedule_length(interval: str, epochs: int, steps_per_epoch: int) -> int:
    """A run's length in the scheduler's own unit: epochs, or optimizer steps."""
    return epochs if interval == "epoch" else epochs * steps_per_epoch


def build_scheduler(
    node: dict[str, Any], optimizer: Optimizer, epochs: int, steps_per_epoch: int
) -> Stepping:
    """Build the scheduler of the resolved ``node`` on ``optimizer`` for a run of the given
    length. Its keys were checked by lrrun.config.settings.read; the values derived here are
    checked here."""
    config = dict(node)
    interval = config.get("interval", "epoch")
    monitor = config.get("monitor")
    warmup = warmup_from_config(config.get("warmup"), steps_per_epoch)
    if "_target_" in config and schedule_free(optimizer):
        raise fights_schedule_free(type(optimizer).__name__, config["_target_"])
    if "_target_" not in config:
        return Stepping(None, interval, None, "none", {}, warmup)
    cls = scheduler_class(config["_target_"], "scheduler._target_")
    if cls is SWALR:
        return _build_swa(config, optimizer, epochs, interval, warmup)
    length = schedule_length(interval, epochs, steps_per_epoch)

    if cls is ReduceLROnPlateau:
        monitor = monitor or "val_loss"
        config["mode"] = plateau_mode(monitor, config.get("mode", "auto"))
    elif monitor is not None:
        raise ConfigError(
            f"scheduler.monitor={monitor!r} is only used by reduce_lr_on_plateau; "
            f"{cls.__name__} ignores metrics. Remove scheduler.monitor."
        )

    kwargs = node_kwargs(config)
    scheduler = _build(cls, config, kwargs, optimizer, length, "scheduler")
    return Stepping(
        scheduler,
        interval,
        monitor,
        cls.__name__,
        dict(kwargs),
        warmup,
        momentum=cycles_momentum(scheduler),
    )


def _build_swa(
    config: dict[str, Any], optimizer: Optimizer, epochs: int, interval: str, warmup: Warmup
) -> Stepping:
    """scheduler=swa (lrrun.schedule.swa), its ``before`` child built by the rules of any."""

    def child(node: dict[str, Any], length: int) -> Any:
        cls = scheduler_class(node.get("_target_"), "scheduler.before._target_")
        if cls is ReduceLROnPlateau or cls is SWALR:
            raise ConfigError(
                f"scheduler.before={cls.__name__} cannot run before SWA: use a schedule "
                "such as CosineAnnealingLR or LinearLR (or null: a constant lr)."
            )
        return _build(cls, node, node_kwargs(node), optimizer, length, "scheduler.before")

    schedule, args = swa.build(
        node_kwargs(config), config.get("before"), optimizer, epochs, interval, child
    )
    return Stepping(schedule, "epoch", None, "SWA", args, warmup)


def cycles_momentum(scheduler: Any) -> bool:
    """Whether the scheduler (or a child of a composite) is a one_cycle / cyclic schedule
    with cycle_momentum: true."""
    children = getattr(scheduler, "_schedulers", None) or []
    return bool(getattr(scheduler, "cycle_momentum", False)) or any(map(cycles_momentum, children))


def _build(
    cls: type,
    node: dict[str, Any],
    kwargs: dict[str, Any],
    optimizer: Optimizer,
    length: int,
    prefix: str,
) -> Any:
    """Derive null lengths, check values, then finish the partial with the optimizer."""
    if issubclass(cls, _COMPOSITES):
        nested = prefix != "scheduler"  # a child of another composite (lrrun.schedule.nested)
        return _build_composite(
            NESTED[cls] if nested else cls, node, kwargs, optimizer, length, prefix
        )
    derive(cls, kwargs, optimizer, length, prefix)
    check_node(prefix, kwargs, scheduler_rules(cls.__name__))
    check_signature(cls, kwargs, prefix)
    if issubclass(cls, LambdaLR | MultiplicativeLR):
        names = derive_let(node.get("let"), length, optimizer)
        kwargs["lr_lambda"] = EpochExpression(
            str(kwargs["lr_lambda"]), f"{prefix}.lr_lambda", names
        )
    if (
        cls is OneCycleLR
        and kwargs.get("total_steps") is not None
        and kwargs["total_steps"] < length
    ):
        raise ConfigError(
            f"{prefix}.total_steps={kwargs['total_steps']} is too small: this run takes "
            f"{length} scheduler steps. Leave it null to derive it."
        )
    partial = instantiate(node["_target_"], kwargs, prefix)
    return construct(partial, prefix, optimizer, _name=cls.__name__)


def _build_composite(
    cls: type,
    node: dict[str, Any],
    kwargs: dict[str, Any],
    optimizer: Optimizer,
    length: int,
    prefix: str,
) -> Any:
    """SequentialLR / ChainedScheduler: build named children, derive milestones. A child may
    itself be a SequentialLR or ChainedScheduler (built by the same rules, at any depth: a
    SequentialLR child gets its segment of the run as its length)."""
    torch_name = next(c for c in _COMPOSITES if issubclass(cls, c)).__name__
    children_node = node.get("schedulers")
    if not isinstance(children_node, dict | list):
        raise ConfigError(f"{prefix}.schedulers must be a mapping of named child schedulers.")
    if isinstance(children_node, list):
        names, child_nodes = [str(i) for i in range(len(children_node))], children_node
    else:
        names, child_nodes = [str(k) for k in children_node], list(children_node.values())
    if not child_nodes:
        raise ConfigError(f"{prefix}.schedulers is empty: give at least one child scheduler.")
    for c, n in zip(child_nodes, names, strict=True):
        if not isinstance(c, dict):
            raise ConfigError(
                f"{prefix}.schedulers.{n} must be a scheduler node with a _target_, e.g. "
                "{_target_:torch.optim.lr_scheduler.LinearLR,_partial_:true,total_iters:2}."
            )
    child_kwargs = [node_kwargs(c) for c in child_nodes]
    child_classes = [
        scheduler_class(c.get("_target_"), f"{prefix}.schedulers.{n}._target_")
        for c, n in zip(child_nodes, names, strict=True)
    ]
    for child_cls, n in zip(child_classes, names, strict=True):
        if child_cls is ReduceLROnPlateau:  # torch refuses it too: it steps on a metric
            raise ConfigError(
                f"{prefix}.schedulers.{n} is ReduceLROnPlateau, which cannot be a child of "
                f"{torch_name} (it steps on a metric). Use a schedule such as LinearLR or "
                "CosineAnnealingLR, or SequentialLR / ChainedScheduler (they nest)."
            )

    lengths = [length] * len(child_nodes)
    if issubclass(cls, SequentialLR):
        milestones = kwargs.get("milestones")
        if milestones is None:
            milestones = derive_milestones(child_classes, child_kwargs, names, prefix)
        check_value(f"{prefix}.milestones", milestones, SCHEDULER_RULES["milestones"])
        if len(milestones) != len(child_nodes) - 1:
            raise ConfigError(
                f"{prefix}.milestones={milestones} has {len(milestones)} entries, but "
                f"{len(child_nodes)} children need {len(child_nodes) - 1}."
            )
        if milestones and milestones[-1] >= length:
            raise ConfigError(
                f"{prefix}.milestones={milestones}: the last milestone must be below the run's "
                f"length of {length} scheduler steps, or the last child never runs."
            )
        bounds = [0, *milestones, length]
        lengths = [b - a for a, b in itertools.pairwise(bounds)]
        kwargs["milestones"] = milestones
    children = [
        _build(c_cls, c_node, c_kwargs, optimizer, c_len, f"{prefix}.schedulers.{n}")
        for c_cls, c_node, c_kwargs, c_len, n in zip(
            child_classes, child_nodes, child_kwargs, lengths, names, strict=True
        )
    ]
    kwargs["schedulers"] = {
        n: f"{c.__name__}({format_args(kw)})"
        for n, c, kw in zip(names, child_classes, child_kwargs, strict=True)
    }
    if issubclass(cls, SequentialLR):
        return construct(
            cls,
            prefix,
            optimizer,
            schedulers=children,
            milestones=kwargs["milestones"],
            _name=torch_name,
        )
    return construct(cls, prefix, children, optimizer=optimizer, _name=torch_name)


def format_args(kwargs: dict[str, Any]) -> str:
    """``k=v, ...`` for the console header."""
    return ", ".join(f"{k}={v}" for k, v in kwargs.items())


def schedule_free(optimizer: Optimizer) -> bool:
    """A schedule-free optimizer (facebookresearch/schedule_free): it has train/eval modes
    and replaces the schedule."""
    return "train_mode" in optimizer.param_groups[0]


def current_lrs(optimizer: Optimizer) -> list[float]:
    """The lr of every param group, as plain floats: what the next optimizer.step() uses."""
    return [
        float(g["lr"]) if not torch.is_tensor(g["lr"]) else g["lr"].item()
        for g in optimizer.param_groups
    ]


def current_momentum(optimizer: Optimizer) -> float:
    """Group 0's momentum (beta1 for Adam-style optimizers): what the next step uses."""
    group = optimizer.param_groups[0]
    value = group["betas"][0] if "betas" in group else group["momentum"]
    return value.item() if torch.is_tensor(value) else float(value)
