"""Any model from config, fitted to the data and checked on it before epoch 1.

The data's facts reach the model by name (like Lightning CLI's linked arguments, or the
num_labels Hugging Face passes): when the model's ``_target_`` takes a parameter called

    num_classes   the output width: the number of classes (regression: targets per sample)
    num_outputs   the same
    in_channels   channels of an image sample (also in_chans, timm's name)
    input_shape   one sample's shape: (C, H, W), or (D,) for feature vectors
    input_dim     the number of values in one sample (C x H x W, or D)
    image_size    H (or (H, W) when not square)
    vocab_size    a language model's vocabulary (a larger value, e.g. padded, is accepted)
    block_size    its context: dataset.block_size (a larger value is accepted)

and the config leaves it unset (or null), lrrun passes the data's value (lrrun.data's
``facts``). A value the config sets must agree with the data. The filled-in values are shown
in the header and recorded in the checkpoint's plan. Then one batch of two val samples goes
through the model (eval mode, no gradients: no parameter, statistic or random state changes):
it must run, and its output must be what the task needs (lrrun.tasks: ``check_output``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from lrrun.config.checks import locate
from lrrun.errors import ConfigError, root_cause

FACTS = ("num_classes", "num_outputs", "in_channels", "in_chans", "input_shape", "input_dim",
         "image_size", "vocab_size", "block_size")  # fmt: skip
AT_LEAST = ("vocab_size", "block_size")  # a model may take more than the data needs


def fill(node: dict[str, Any], facts: dict[str, Any]) -> dict[str, Any]:
    """The facts ``node``'s target takes and leaves unset; explicit values must agree."""
    try:
        params = inspect.signature(locate(node["_target_"])).parameters
    except Exception:  # not importable (instantiate says why) or no signature: pass nothing
        return {}
    filled = {}
    for name in FACTS:
        if name in params and name in node and node[name] is None and name not in facts:
            raise ConfigError(
                f"model.{name} is null (from the data), and this data has no {name}: it gives "
                f"{', '.join(sorted(facts))}. Set model.{name}, or choose a model for this data "
                "(model=gpt for token streams; model=feedforward for samples)."
            )
        if name not in params or name not in facts:
            continue
        given = node.get(name)
        if given is None:
            filled[name] = facts[name]
        elif name in AT_LEAST and isinstance(given, int) and given >= facts[name]:
            continue
        elif _as_tuple(given) != _as_tuple(facts[name]):
            raise ConfigError(
                f"model.{name}={given} does not fit the data: it has {_describe(name, facts)}. "
                f"Leave model.{name} out (lrrun passes it from the data) or set "
                f"model.{name}={_show(facts[name])}."
            )
    return filled


def probe(
    model: nn.Module,
    batch: torch.Tensor,
    target: str,
    check: Callable[[Any, torch.Tensor, str], None],
) -> None:
    """Run two samples through ``model``; refuse it, with the fix, if that fails or ``check``
    (the task's) refuses its output."""
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
            "num_classes, in_channels, input_shape, vocab_size, ... when its constructor takes "
            "them)" + (", or resize the data with dataset.image_size." if batch.dim() == 4 else ".")
        ) from None
    finally:
        model.train(was_training)
    check(out, batch, where)


def _as_tuple(v: Any) -> Any:
    return tuple(v) if isinstance(v, list | tuple) else v


def _show(v: Any) -> str:
    return f"[{','.join(map(str, v))}]" if isinstance(v, list | tuple) else str(v)


def _describe(name: str, facts: dict[str, Any]) -> str:
    if name in AT_LEAST:
        return f"{name} {facts[name]} (a model may take more, not less)"
    shape = "x".join(map(str, facts["input_shape"]))
    return {
        "num_classes": f"{facts['num_classes']} classes",
        "num_outputs": f"{facts['num_outputs']} outputs",
        "input_dim": f"{facts['input_dim']} values per sample ({shape})",
    }.get(name, f"samples of shape {shape}")
