"""The scheduler node's own checks, beyond each key's rule: its policy keys (interval,
monitor, warmup), ReduceLROnPlateau's mode, lr_lambda's expression, and every named child
of a composite. Null lengths pass here; lrrun.schedule checks them once they are derived."""

from __future__ import annotations

from typing import Any

from lrrun.config.checks import check_known, check_node, show
from lrrun.config.expr import EpochExpression
from lrrun.config.rules import CLASS_RULES, SCHEDULER_RULES, WARMUP_RULES, Rule
from lrrun.config.task import higher_is_better
from lrrun.errors import ConfigError


def scheduler_rules(target: Any) -> dict[str, Rule]:
    name = str(target).rsplit(".", 1)[-1]
    return {**SCHEDULER_RULES, **CLASS_RULES.get(name, {})}


def check_scheduler(node: dict[str, Any], prefix: str = "scheduler") -> None:
    """Check a resolved scheduler node and its named children; nulls (derived) pass."""
    check_node(prefix, node, scheduler_rules(node.get("_target_")))
    if prefix == "scheduler":
        check_warmup(node.get("warmup"))
        check_monitor(node)
    elif "warmup" in node:
        raise ConfigError(
            f"{prefix}.warmup: a warm-up applies to the whole schedule, not to one child. "
            "Set scheduler.warmup.steps (or .epochs) instead."
        )
    if "let" in node:
        check_let(node["let"], f"{prefix}.let")
    if "lr_lambda" in node:
        names = let_names(node.get("let"))
        EpochExpression(
            str(node["lr_lambda"]),
            f"{prefix}.lr_lambda",
            dict.fromkeys(names, 1.0),
            check_only=bool(names),
        )
    if str(node.get("_target_", "")).endswith("ReduceLROnPlateau"):
        if node.get("interval", "epoch") != "epoch":
            raise ConfigError(
                f"{prefix}.interval={node['interval']!r} is not allowed for ReduceLROnPlateau: "
                f"it is stepped once per epoch with {prefix}.monitor. Use {prefix}.interval=epoch."
            )
        plateau_mode(node.get("monitor") or "val_loss", node.get("mode", "auto"))
    if isinstance(node.get("before"), dict):  # scheduler=swa's schedule before averaging
        check_scheduler(node["before"], f"{prefix}.before")
    children = node.get("schedulers")
    if isinstance(children, dict):
        for name, child in children.items():
            if isinstance(child, dict):
                check_scheduler(child, f"{prefix}.schedulers.{name}")


def check_monitor(node: dict[str, Any]) -> None:
    """scheduler.monitor only where a metric is read: ReduceLROnPlateau (and scheduler=swa,
    whose ``before`` may be one)."""
    target = str(node.get("_target_", ""))
    name = target.rsplit(".", 1)[-1]
    if node.get("monitor") is not None and target and name not in ("ReduceLROnPlateau", "SWALR"):
        raise ConfigError(
            f"scheduler.monitor={node['monitor']!r} is only used by reduce_lr_on_plateau; "
            f"{name} ignores metrics. Remove scheduler.monitor."
        )


def fights_schedule_free(optimizer: str, scheduler_target: str) -> ConfigError:
    """A schedule-free optimizer with a scheduler: refused from the config (settings.read)
    and, for one known only once built, by lrrun.schedule.build - in these words."""
    return ConfigError(
        f"optimizer {optimizer} is schedule-free: it replaces the schedule, "
        f"and scheduler._target_={scheduler_target} would fight it. Use scheduler=none "
        "(for a warm-up: optimizer.warmup_steps=N, its own)."
    )


def check_warmup(node: Any) -> None:
    """scheduler.warmup: steps or epochs (not both), start_factor in [0, 1]."""
    if node is None:
        return
    if not isinstance(node, dict):
        raise ConfigError(
            f"scheduler.warmup={show(node)} must be a mapping: set scheduler.warmup.steps=N "
            "(or .epochs=N) and optionally scheduler.warmup.start_factor."
        )
    check_known("scheduler.warmup", node, WARMUP_RULES)
    check_node("scheduler.warmup", node, WARMUP_RULES)
    if node.get("steps") is not None and node.get("epochs") is not None:
        raise ConfigError(
            f"scheduler.warmup.steps={node['steps']} and scheduler.warmup.epochs="
            f"{node['epochs']} are both set: give the warm-up's length one way. Set the other "
            "to null."
        )


def plateau_mode(monitor: str, mode: str) -> str:
    """ReduceLROnPlateau's mode for ``monitor``: auto picks it; a contradiction is an error."""
    natural = "max" if higher_is_better(monitor) else "min"
    if mode == "auto":
        return natural
    if mode != natural:
        raise ConfigError(
            f"scheduler.mode={mode!r} does not fit scheduler.monitor={monitor!r}: "
            f"{monitor} improves when it {'rises' if natural == 'max' else 'falls'}, so use "
            f"scheduler.mode={natural} (or mode=auto)."
        )
    return mode


def let_names(let: Any) -> list[str]:
    """The names a node's ``let`` block gives its lr_lambda (lrrun.schedule.lengths.derive_let
    computes their values from the run):

    - every key with a number (or null) value, e.g. ``d_model``, ``power``, ``lr_init``;
    - ``total``: the run's length in scheduler steps (null or absent: derived);
    - ``<x>`` for each ``<x>_steps`` (with an optional ``<x>_ratio``): the steps if set, else
      ceil(ratio x total) (e.g. ``warmup``, ``cooldown``).

    Other values (text, mappings) only help compose the expression by interpolation.
    """
    if not isinstance(let, dict):
        return []
    names = {"total"}
    for key, value in let.items():
        if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
            names.add(key)
            if key.endswith("_steps"):
                names.add(key.rsplit("_", 1)[0])
    return sorted(names)


def check_let(let: Any, where: str) -> None:
    if not isinstance(let, dict):
        raise ConfigError(f"{where}={show(let)} must be a mapping of names to numbers.")
    for key, value in let.items():
        if key.endswith("_steps") or key == "total":
            ok = value is None or (
                isinstance(value, int) and not isinstance(value, bool) and value >= 0
            )
            allowed = "an integer >= 0, or null"
        elif key.endswith("_ratio"):
            ok = isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1
            allowed = "a number in [0, 1]"
        else:
            ok = True
            allowed = ""
        if not ok:
            raise ConfigError(f"{where}.{key}={show(value)} is not allowed: it must be {allowed}.")
