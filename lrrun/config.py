"""Where the configs live, and which values each key accepts.

Checks run before any data is loaded, so a typo fails in a second with a message that names
the key, the value and what is allowed. Constructor kwargs are also checked against the
torch class's signature, and torch's own ValueErrors are re-raised as ConfigError.
"""

from __future__ import annotations

import inspect
import itertools
import math
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lrrun.errors import ConfigError

METRICS = ("train_loss", "train_acc", "val_loss", "val_acc")
INTERVALS = ("epoch", "step")
DATASETS = ("fashion_mnist", "mnist", "synthetic")
# Keys of the scheduler node that are lrrun's stepping policy, never passed to torch.
POLICY_KEYS = ("interval", "monitor", "warmup")


def config_dir() -> Path:
    """The conf/ directory: inside the package when installed from a wheel, else the repo's."""
    packaged = Path(__file__).resolve().parent / "conf"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "conf"


# --- value rules: (predicate, what is allowed) ---------------------------------------------

Rule = tuple[Callable[[Any], bool], str]


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _optional(rule: Rule) -> Rule:
    test, allowed = rule
    return (lambda v: v is None or test(v)), f"{allowed}, or null (derived)"


def _choice(*options: str) -> Rule:
    return (lambda v: v in options), "one of " + ", ".join(options)


def _increasing_ints(v: Any) -> bool:
    return (
        isinstance(v, list | tuple)
        and len(v) > 0
        and all(_int(x) and x >= 1 for x in v)
        and all(a < b for a, b in itertools.pairwise(v))
    )


POSITIVE: Rule = (lambda v: _num(v) and v > 0, "a number > 0")
NON_NEGATIVE: Rule = (lambda v: _num(v) and v >= 0, "a number >= 0")
INT_GE1: Rule = (lambda v: _int(v) and v >= 1, "an integer >= 1")
INT_GE0: Rule = (lambda v: _int(v) and v >= 0, "an integer >= 0")
INT: Rule = (_int, "an integer")
BOOL: Rule = (lambda v: isinstance(v, bool), "true or false")
UNIT_CLOSED: Rule = (lambda v: _num(v) and 0 <= v <= 1, "a number in [0, 1]")
UNIT_HALF_OPEN: Rule = (lambda v: _num(v) and 0 <= v < 1, "a number in [0, 1)")
UNIT_OPEN: Rule = (lambda v: _num(v) and 0 < v < 1, "a number in (0, 1)")
FACTOR: Rule = (lambda v: _num(v) and 0 < v <= 1, "a number in (0, 1]")
STRING: Rule = (lambda v: isinstance(v, str) and v != "", "a non-empty string")
BETAS: Rule = (
    lambda v: isinstance(v, list | tuple) and len(v) == 2 and all(UNIT_HALF_OPEN[0](b) for b in v),
    "a pair [beta1, beta2] of numbers in [0, 1)",
)
MILESTONES: Rule = (_increasing_ints, "a non-empty list of strictly increasing integers >= 1")

TRAINER_RULES: dict[str, Rule] = {
    "epochs": INT_GE1,
    "batch_size": INT_GE1,
    "eval_batch_size": (lambda v: v == "auto" or INT_GE1[0](v), "auto or an integer >= 1"),
    "device": STRING,
    "seed": INT,
    "num_workers": INT_GE0,
    "progress": BOOL,
    "data_path": _choice("auto", "tensor", "loader"),
    "precision": _choice("fp32", "bf16"),
    "compile": BOOL,
    "channels_last": (lambda v: v == "auto" or isinstance(v, bool), "auto, true or false"),
    "resume": (
        lambda v: v is None or (isinstance(v, str) and v != ""),
        "a run dir, a checkpoint file, or null",
    ),
    "allow_config_change": BOOL,
    "save_best": BOOL,
    "stop_on_nonfinite": BOOL,
    "deterministic": BOOL,
    "plot": BOOL,
}
DATASET_RULES: dict[str, Rule] = {
    "name": _choice(*DATASETS),
    "root": STRING,
    "system_dir": (lambda v: v is None or (isinstance(v, str) and v != ""), "a path or null"),
    "download": BOOL,
    "normalize": BOOL,
    "train_size": INT_GE1,
    "test_size": INT_GE1,
    "noise": NON_NEGATIVE,
    "seed": INT,
}
MODEL_RULES: dict[str, Rule] = {
    "input_dim": INT_GE1,
    "hidden_dim": INT_GE1,
    "output_dim": INT_GE1,
    "dropout1": UNIT_HALF_OPEN,
    "dropout2": UNIT_HALF_OPEN,
}
OPTIMIZER_RULES: dict[str, Rule] = {
    "lr": POSITIVE,
    "momentum": UNIT_HALF_OPEN,
    "dampening": UNIT_CLOSED,
    "weight_decay": NON_NEGATIVE,
    "nesterov": BOOL,
    "betas": BETAS,
    "eps": POSITIVE,
    "amsgrad": BOOL,
    "alpha": UNIT_CLOSED,
    "centered": BOOL,
}
SCHEDULER_RULES: dict[str, Rule] = {
    "interval": _choice(*INTERVALS),
    "monitor": _choice(*METRICS),
    "lr_lambda": (
        (lambda v: isinstance(v, str | int | float) and not isinstance(v, bool)),
        "an expression of `epoch`, e.g. '0.1 ** epoch'",
    ),
    "gamma": POSITIVE,
    "step_size": INT_GE1,
    "milestones": _optional(MILESTONES),
    "factor": FACTOR,
    "total_iters": _optional(INT_GE1),
    "start_factor": FACTOR,
    "end_factor": UNIT_CLOSED,
    "power": NON_NEGATIVE,
    "T_max": _optional(INT_GE1),
    "eta_min": NON_NEGATIVE,
    "T_0": INT_GE1,
    "T_mult": INT_GE1,
    "base_lr": _optional(POSITIVE),
    "max_lr": _optional(POSITIVE),
    "step_size_up": _optional(INT_GE1),
    "step_size_down": _optional(INT_GE1),
    "cycle_momentum": BOOL,
    "base_momentum": UNIT_CLOSED,
    "max_momentum": UNIT_CLOSED,
    "total_steps": _optional(INT_GE1),
    "pct_start": UNIT_OPEN,
    "anneal_strategy": _choice("cos", "linear"),
    "div_factor": POSITIVE,
    "final_div_factor": POSITIVE,
    "three_phase": BOOL,
    "patience": INT_GE0,
    "threshold": NON_NEGATIVE,
    "threshold_mode": _choice("rel", "abs"),
    "cooldown": INT_GE0,
    "min_lr": NON_NEGATIVE,
    "eps": NON_NEGATIVE,
}
# The same keyword means different things in different torch classes.
CLASS_RULES: dict[str, dict[str, Rule]] = {
    "CyclicLR": {"mode": _choice("triangular", "triangular2", "exp_range")},
    "ReduceLROnPlateau": {"mode": _choice("auto", "min", "max"), "factor": UNIT_OPEN},
    "ConstantLR": {"factor": UNIT_CLOSED},
}


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

    lrrun.schedulers checks the scheduler again once its null lengths are derived (that
    needs the number of batches per epoch) and turns torch's own ValueErrors into messages.
    """
    trainer = resolved(cfg.trainer, "trainer")
    check_known("trainer", trainer, TRAINER_RULES)
    check_node("trainer", trainer, TRAINER_RULES)
    dataset = resolved(cfg.dataset, "dataset")
    if "name" not in dataset:
        raise ConfigError("dataset.name is missing: it must be one of " + ", ".join(DATASETS))
    check_node("dataset", dataset, DATASET_RULES)
    check_node("model", resolved(cfg.model, "model"), MODEL_RULES)
    check_node("optimizer", resolved(cfg.optimizer, "optimizer"), OPTIMIZER_RULES)
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


WARMUP_RULES: dict[str, Rule] = {
    "steps": _optional(INT_GE0),
    "epochs": _optional(INT_GE0),
    "start_factor": UNIT_CLOSED,
}


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
