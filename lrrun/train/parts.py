"""The parts a run is built from, each from its config node: the model, the optimizer, the
precision context, the memory layout and determinism. lrrun.train.runner puts them together;
lrrun-preview and lrrun-find-lr build the same parts the same way."""

from __future__ import annotations

import functools
import os
from typing import Any

import hydra.utils
import torch
from torch import nn
from torch.optim import Optimizer

from lrrun.config import param_groups
from lrrun.config.checks import check_signature
from lrrun.errors import ConfigError, root_cause
from lrrun.models.adapt import OWN_KEYS, OutputOf, fill
from lrrun.train.recipe import Autocast, no_autocast


def build_model(node: dict[str, Any], facts: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    """Instantiate the resolved model node with the data's facts its target takes
    (lrrun.models.adapt); the model and the values passed."""
    filled = fill(node, facts)
    target = {k: v for k, v in node.items() if k not in OWN_KEYS}
    try:
        model = hydra.utils.instantiate({"_convert_": "all", **target, **filled})
    except Exception as exc:
        raise ConfigError(
            f"model could not be built from {node.get('_target_')!r}: {root_cause(exc)}"
        ) from None
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"model._target_={node['_target_']} returned a {type(model).__name__}, not an "
            "nn.Module: name a module class, or a function that returns one."
        )
    if node.get("output") is not None:
        model = OutputOf(model, node["output"])  # a forward that returns more than the output
    return model, filled


def build_optimizer(
    node: dict[str, Any],
    groups: list[dict[str, Any]],
    model: nn.Module,
    no_decay: tuple[str, ...] = (),
) -> Optimizer:
    """Finish the optimizer's resolved ``_partial_`` node with the model's parameters, split
    into the checked ``optimizer.param_groups`` and ``optimizer.no_decay`` groups when there
    are some (lrrun.config.param_groups)."""
    try:
        cls = hydra.utils.get_class(node["_target_"])
    except Exception:
        raise ConfigError(
            f"optimizer._target_={node.get('_target_')!r} cannot be imported. "
            "Use a torch.optim class, e.g. torch.optim.SGD."
        ) from None
    check_signature(cls, {k: v for k, v in node.items() if not k.startswith("_")}, "optimizer")
    split = groups or no_decay
    params = param_groups.split(model, groups, cls, no_decay) if split else model.parameters()
    try:
        partial = hydra.utils.instantiate(node, _convert_="all")
        return partial(params)
    except Exception as exc:
        raise ConfigError(
            f"optimizer ({cls.__name__}) rejected its arguments: {root_cause(exc)}"
        ) from None


def set_deterministic(on: bool) -> None:
    """Deterministic kernels (bit-exact reruns on GPU too, somewhat slower); CPU runs of
    these models are deterministic either way."""
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it
    if torch.are_deterministic_algorithms_enabled() != on:  # the call costs ~2 s of imports
        torch.use_deterministic_algorithms(on)
    torch.backends.cudnn.benchmark = False


def precision_context(precision: str, device: torch.device) -> Autocast:
    """fp32: no autocast. bf16 / fp16: autocast to bfloat16 / float16 (forward and loss;
    weights stay fp32; fp16's gradient scaler: lrrun.train.recipe)."""
    if precision == "fp32":
        return no_autocast
    if precision == "fp16":
        if device.type not in ("cpu", "cuda"):
            raise ConfigError(
                f"trainer.precision=fp16 is supported on cpu and cuda, not {device.type}. "
                "Use trainer.precision=fp32."
            )
        return functools.partial(torch.autocast, device.type, dtype=torch.float16)
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(
            f"trainer.precision={precision} is not supported by {torch.cuda.get_device_name()}. "
            "Use trainer.precision=fp32."
        )
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(
            f"trainer.precision={precision} is supported on cpu and cuda, not {device.type}. "
            "Use trainer.precision=fp32."
        )
    return functools.partial(torch.autocast, device.type, dtype=torch.bfloat16)


def memory_format_for(setting: str | bool, model: nn.Module) -> torch.memory_format:
    """channels_last=auto: NHWC for models with 2-D convolutions (the CNN trains ~25% faster
    per step on CPU, benchmarks/peer.py), the default layout for others."""
    if setting == "auto":
        setting = any(isinstance(m, nn.Conv2d) for m in model.modules())
    return torch.channels_last if setting else torch.contiguous_format
