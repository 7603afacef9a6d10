"""Where the configs live, and the checks that apply lrrun.rules to a composed config.

Checks run before any data is loaded, so a typo fails in a second with a message that names
the key, the value and what is allowed. Constructor kwargs are also checked against the
torch class's signature, and torch's own ValueErrors are re-raised as ConfigError.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lrrun.errors import ConfigError
from lrrun.rules import (
    CLASS_RULES,
    DATASET_RULES,
    DATASETS,
    MODEL_RULES,
    OPTIMIZER_RULES,
    SCHEDULER_RULES,
    TRAINER_RULES,
    WARMUP_RULES,
    Rule,
)


def config_dir() -> Path:
    """The conf/ directory: inside the package when installed from a wheel, else the repo's."""
    packaged = Path(__file__).resolve().parent / "conf"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "conf"


def check_value(key: str, value: Any, rule: Rule) -> None:
    test, allowed = rule
    if not test(value):
        raise ConfigError(f"{key}={_show(value)} is not allowed: it must be {allowed}.")


def check_node(prefix: str, node: Mapping[str, Any], rules: Mapping[str, Rule]) -> None:
    """Check every known key of a plain (resolved) mapping; keys without a rule pass."""
    for key, value in node.items():
        if key in rules:
            check_value(f"{prefix}.{key}", value, rules[key])


def check_known(prefix: str, node: Mapping[str, Any], known: Iterable[str]) -> None:
    known = set(known)
    for key in node:
        if key not in known:
            raise ConfigError(
                f"{prefix}.{key} is not a known key. Known keys: {', '.join(sorted(known))}."
            )


def check_signature(cls: type, kwargs: Mapping[str, Any], prefix: str) -> None:
    """Reject kwargs the class does not take, listing the ones it does."""
    params = inspect.signature(cls).parameters
    takes = [p for p in params if p not in ("self", "params", "optimizer", "last_epoch")]
    for key in kwargs:
        if key not in takes:
            raise ConfigError(
                f"{prefix}.{key} is not an argument of {cls.__name__}. Its arguments: "
                f"{', '.join(takes)}."
            )


def resolved(node: DictConfig, prefix: str) -> dict[str, Any]:
    """A plain dict of a config node, with interpolation errors turned into ConfigError."""
    try:
        out = OmegaConf.to_container(node, resolve=True)
    except Exception as exc:  # omegaconf raises many types; all mean "bad config"
        raise ConfigError(f"{prefix}: {exc}".splitlines()[0]) from None
    assert isinstance(out, dict)
    return out


def validate(cfg: DictConfig) -> None:
    """Check every group before torch is imported or data is loaded.

    optimizer.param_groups' patterns are matched once the model is built (lrrun.parts).

    lrrun.schedulers checks the scheduler again once its null lengths are derived (that
    needs the number of batches per epoch) and turns torch's own ValueErrors into messages.
    """
    from lrrun import param_groups, trackers  # they use this module's checks

    trainer = resolved(cfg.trainer, "trainer")
    check_known("trainer", trainer, TRAINER_RULES)
    check_node("trainer", trainer, TRAINER_RULES)
    trackers.check(trainer.get("trackers"))
    dataset = resolved(cfg.dataset, "dataset")
    if "name" not in dataset:
        raise ConfigError("dataset.name is missing: it must be one of " + ", ".join(DATASETS))
    check_node("dataset", dataset, DATASET_RULES)
    check_node("model", resolved(cfg.model, "model"), MODEL_RULES)
    optimizer = resolved(cfg.optimizer, "optimizer")
    check_node("optimizer", optimizer, OPTIMIZER_RULES)
    param_groups.check(optimizer.get(param_groups.KEY))
    check_scheduler(resolved(cfg.scheduler, "scheduler"))


def scheduler_rules(target: Any) -> dict[str, Rule]:
    name = str(target).rsplit(".", 1)[-1]
    return {**SCHEDULER_RULES, **CLASS_RULES.get(name, {})}


def check_scheduler(plain: dict[str, Any], prefix: str = "scheduler") -> None:
    """Check a resolved scheduler node and its named children; nulls (derived) pass."""
    from lrrun.expr import EpochExpression

    check_node(prefix, plain, scheduler_rules(plain.get("_target_")))
    if prefix == "scheduler":
        check_warmup(plain.get("warmup"))
    elif "warmup" in plain:
        raise ConfigError(
            f"{prefix}.warmup: a warm-up applies to the whole schedule, not to one child. "
            "Set scheduler.warmup.steps (or .epochs) instead."
        )
    if "lr_lambda" in plain:
        EpochExpression(str(plain["lr_lambda"]), f"{prefix}.lr_lambda")
    if str(plain.get("_target_", "")).endswith("ReduceLROnPlateau"):
        if plain.get("interval", "epoch") != "epoch":
            raise ConfigError(
                f"{prefix}.interval={plain['interval']!r} is not allowed for ReduceLROnPlateau: "
                f"it is stepped once per epoch with {prefix}.monitor. Use {prefix}.interval=epoch."
            )
        plateau_mode(plain.get("monitor") or "val_loss", plain.get("mode", "auto"))
    children = plain.get("schedulers")
    if isinstance(children, dict):
        for name, child in children.items():
            if isinstance(child, dict):
                check_scheduler(child, f"{prefix}.schedulers.{name}")


def check_warmup(node: Any) -> None:
    """scheduler.warmup: steps or epochs (not both), start_factor in [0, 1]."""
    if node is None:
        return
    if not isinstance(node, dict):
        raise ConfigError(
            f"scheduler.warmup={_show(node)} must be a mapping: set scheduler.warmup.steps=N "
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
    natural = "max" if monitor.endswith("_acc") else "min"
    if mode == "auto":
        return natural
    if mode != natural:
        raise ConfigError(
            f"scheduler.mode={mode!r} does not fit scheduler.monitor={monitor!r}: "
            f"{monitor} improves when it {'rises' if natural == 'max' else 'falls'}, so use "
            f"scheduler.mode={natural} (or mode=auto)."
        )
    return mode


def _show(value: Any) -> str:
    """A value as the user would type it on the command line."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    return str(value)
