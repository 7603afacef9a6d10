"""Any model from config, fitted to the data and checked on it before epoch 1.

The data's facts reach the model by name (like Lightning CLI's linked arguments, or the
num_labels Hugging Face passes): when the model's ``_target_`` takes a parameter called

    num_classes   the number of classes
    in_channels   channels of an image sample (also in_chans, timm's name)
    input_shape   one sample's shape: (C, H, W), or (D,) for feature vectors
    input_dim     the number of values in one sample (C x H x W, or D)
    image_size    H (or (H, W) when not square)

and the config leaves it unset (or null), lrrun passes the data's value. A value the config
sets must agree with the data. The filled-in values are shown in the header and recorded in
the checkpoint's plan. Then one batch of two val samples goes through the model (eval mode,
no gradients: no parameter, statistic or random state changes): it must run and return
logits of shape (batch, classes).
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch
from torch import nn

from lrrun.config.checks import locate
from lrrun.errors import ConfigError, root_cause

FACTS = ("num_classes", "in_channels", "in_chans", "input_shape", "input_dim", "image_size")


def facts_of(num_classes: int, input_shape: tuple[int, ...]) -> dict[str, Any]:
    facts: dict[str, Any] = {"num_classes": num_classes, "input_shape": tuple(input_shape),
                             "input_dim": math.prod(input_shape)}  # fmt: skip
    if len(input_shape) == 3:
        c, h, w = input_shape
        facts |= {"in_channels": c, "in_chans": c, "image_size": h if h == w else (h, w)}
    return facts


def fill(node: dict[str, Any], facts: dict[str, Any]) -> dict[str, Any]:
    """The facts ``node``'s target takes and leaves unset; explicit values must agree."""
    try:
        params = inspect.signature(locate(node["_target_"])).parameters
    except Exception:  # not importable (instantiate says why) or no signature: pass nothing
        return {}
    filled = {}
    for name in FACTS:
        if name not in params or name not in facts:
            continue
        given = node.get(name)
        if given is None:
            filled[name] = facts[name]
        elif _as_tuple(given) != _as_tuple(facts[name]):
            raise ConfigError(
                f"model.{name}={given} does not fit the data: it has {_describe(name, facts)}. "
                f"Leave model.{name} out (lrrun passes it from the data) or set "
                f"model.{name}={_show(facts[name])}."
            )
    return filled


def probe(model: nn.Module, batch: torch.Tensor, num_classes: int, target: str) -> None:
    """Run two samples through ``model``; refuse it, with the fix, if that fails or its
    output is not (batch, num_classes) logits."""
    shape = "x".join(map(str, batch.shape))
    where = f"model._target_={target}"
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            out = model(batch)
    except Exception as exc:
        raise ConfigError(
            f"{where} fails on one batch of the data (input {shape}, {str(batch.dtype)[6:]}): "
            f"{root_cause(exc)}. Make the model take samples of this shape (lrrun passes "
            "num_classes, in_channels, input_shape, ... when its constructor takes them), or "
            "resize the data with dataset.image_size."
        ) from None
    finally:
        model.train(was_training)
    got = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
    if got != (len(batch), num_classes):
        raise ConfigError(
            f"{where} returns {got} for a batch of {shape}; lrrun needs logits of shape "
            f"({len(batch)}, {num_classes}) (batch, classes). Give the model num_classes="
            f"{num_classes} (lrrun passes it when the constructor takes num_classes) or make "
            f"its last layer {num_classes} wide."
        )


def _as_tuple(v: Any) -> Any:
    return tuple(v) if isinstance(v, list | tuple) else v


def _show(v: Any) -> str:
    return f"[{','.join(map(str, v))}]" if isinstance(v, list | tuple) else str(v)


def _describe(name: str, facts: dict[str, Any]) -> str:
    shape = "x".join(map(str, facts["input_shape"]))
    return {
        "num_classes": f"{facts['num_classes']} classes",
        "input_dim": f"{facts['input_dim']} values per sample ({shape})",
    }.get(name, f"samples of shape {shape}")
