"""Which values each config key accepts: (predicate, what is allowed) per key, per group.
lrrun.config.checks applies them; messages quote the "what is allowed" part."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

# What ReduceLROnPlateau may monitor, over every task (each task allows its own: lrrun.config.task)
METRICS = (
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "val_mae",
    "val_rmse",
    "val_r2",
    "val_ppl",
)
INTERVALS = ("epoch", "step")
SOURCES = (
    "idx",
    "synthetic",
    "image_folder",
    "tensors",
    "torchvision",
    "callable",
    "text",
    "tokens",
)
# Keys of the scheduler node that are lrrun's stepping policy, never passed to torch.
POLICY_KEYS = ("interval", "monitor", "warmup", "let")


Rule = tuple[Callable[[Any], bool], str]


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _optional(rule: Rule) -> Rule:
    test, allowed = rule
    return (lambda v: v is None or test(v)), f"{allowed}, or null (derived)"


def choice(*options: str) -> Rule:
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


def per_group(rule: Rule) -> Rule:
    """One value for every param group, or a list with one per group (length checked once
    the optimizer is built: lrrun.schedule.lengths)."""
    test, allowed = rule
    return (
        lambda v: test(v) or (isinstance(v, list | tuple) and len(v) > 0 and all(map(test, v))),
        f"{allowed}, or a list of them (one per param group)",
    )


def _size(v: Any) -> bool:
    return (
        v is None
        or INT_GE1[0](v)
        or (isinstance(v, list | tuple) and len(v) == 2 and all(INT_GE1[0](x) for x in v))
    )


DATASET_RULES: dict[str, Rule] = {
    "source": choice(*SOURCES),
    "name": STRING,
    "root": STRING,
    "path": STRING,
    "system_dir": (lambda v: v is None or (isinstance(v, str) and v != ""), "a path or null"),
    "download": BOOL,
    "normalize": BOOL,
    "train_size": INT_GE1,
    "val_size": INT_GE1,
    "test_size": INT_GE1,
    "noise": NON_NEGATIVE,
    "seed": INT,
    "val_split": (
        lambda v: INT_GE0[0](v) or (_num(v) and 0 < v < 1),
        "a number of samples (an integer >= 0; 0: no val split, select on test) or a share "
        "of the train split in (0, 1)",
    ),
    "split_seed": INT,
    "image_size": (_size, "an integer >= 1, a pair [height, width], or null (as stored)"),
    "channels": (lambda v: v is None or v in (1, 3), "1, 3, or null (as the first image)"),
    # token streams (dataset=text, dataset=tokens)
    "block_size": INT_GE1,
    "steps_per_epoch": INT_GE1,
    "eval_windows": (lambda v: v == "all" or INT_GE1[0](v), "an integer >= 1, or all"),
    "vocab_size": (lambda v: v is None or INT_GE1[0](v), "an integer >= 1, or null (from meta)"),
    "test_split": (lambda v: _num(v) and 0 <= v < 1, "a share of the text in [0, 1)"),
    "val_path": (lambda v: v is None or (isinstance(v, str) and v != ""), "a path or null"),
    "test_path": (lambda v: v is None or (isinstance(v, str) and v != ""), "a path or null"),
}


def _from_data(rule: Rule) -> Rule:
    test, allowed = rule
    return (lambda v: v is None or test(v)), f"{allowed}, or null (from the data)"


MODEL_RULES: dict[str, Rule] = {
    "input_dim": _from_data(INT_GE1),
    "hidden_dim": INT_GE1,
    "output_dim": INT_GE1,
    "num_classes": _from_data(INT_GE1),
    "in_channels": _from_data(INT_GE1),
    "dropout1": UNIT_HALF_OPEN,
    "dropout2": UNIT_HALF_OPEN,
    "vocab_size": _from_data(INT_GE1),
    "block_size": _from_data(INT_GE1),
    "n_layer": INT_GE1,
    "n_head": INT_GE1,
    "n_embd": INT_GE1,
    "dropout": UNIT_HALF_OPEN,
    "bias": BOOL,
    "output": (
        lambda v: v is None or isinstance(v, str | int),
        "a key, attribute or index of the forward's return (e.g. logits, 0), or null",
    ),
    "facts": (
        lambda v: v is None or (isinstance(v, list) and all(isinstance(x, str) for x in v)),
        "a list of the data's facts to pass, e.g. [num_classes, in_chans]",
    ),
}
LOSS_RULES: dict[str, Rule] = {"label_smoothing": UNIT_HALF_OPEN, "delta": POSITIVE}
SCALING_RULES: dict[str, Rule] = {
    "lr_scaling": choice("none", "linear", "sqrt"),
    "reference_batch": INT_GE1,
}
MIX_RULES: dict[str, Rule] = {
    "alpha": POSITIVE,
    "off_epoch": (lambda v: v is None or INT_GE1[0](v), "an integer >= 1, or null (always)"),
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
    "warmup_steps": INT_GE0,
    "r": NON_NEGATIVE,
    "weight_lr_power": NON_NEGATIVE,
}
SCHEDULER_RULES: dict[str, Rule] = {
    "interval": choice(*INTERVALS),
    "monitor": choice(*METRICS),
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
    "base_lr": _optional(per_group(POSITIVE)),
    "max_lr": _optional(per_group(POSITIVE)),
    "step_size_up": _optional(INT_GE1),
    "step_size_down": _optional(INT_GE1),
    "cycle_momentum": BOOL,
    "base_momentum": UNIT_CLOSED,
    "max_momentum": UNIT_CLOSED,
    "total_steps": _optional(INT_GE1),
    "pct_start": UNIT_OPEN,
    "anneal_strategy": choice("cos", "linear"),
    "div_factor": POSITIVE,
    "final_div_factor": POSITIVE,
    "three_phase": BOOL,
    "patience": INT_GE0,
    "threshold": NON_NEGATIVE,
    "threshold_mode": choice("rel", "abs"),
    "cooldown": INT_GE0,
    "min_lr": per_group(NON_NEGATIVE),
    "eps": NON_NEGATIVE,
    "swa_lr": _optional(per_group(POSITIVE)),
    "anneal_epochs": INT_GE0,
    "swa_start": _optional(INT_GE1),
}
# The same keyword means different things in different torch classes.
CLASS_RULES: dict[str, dict[str, Rule]] = {
    "CyclicLR": {"mode": choice("triangular", "triangular2", "exp_range")},
    "ReduceLROnPlateau": {"mode": choice("auto", "min", "max"), "factor": UNIT_OPEN},
    "ConstantLR": {"factor": UNIT_CLOSED},
}


WARMUP_RULES: dict[str, Rule] = {
    "steps": _optional(INT_GE0),
    "epochs": _optional(INT_GE0),
    "start_factor": UNIT_CLOSED,
}
