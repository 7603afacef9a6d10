"""From a checked scheduler node to a torch object: the class its ``_target_`` names, the
constructor's kwargs (lrrun's policy keys left out), Hydra's partial with derived values in,
and the constructor call - each failure one ConfigError naming the key (lrrun.schedule.build
decides what to build and with which lengths)."""

from __future__ import annotations

from typing import Any

import hydra.utils
from omegaconf import OmegaConf
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

from lrrun.config.rules import POLICY_KEYS
from lrrun.errors import ConfigError, root_cause


def scheduler_class(target: Any, key: str) -> type:
    if not isinstance(target, str) or not target:
        raise ConfigError(f"{key} is missing: name a torch.optim.lr_scheduler class.")
    try:
        cls = hydra.utils.get_class(target)
    except Exception:
        raise ConfigError(
            f"{key}={target!r} cannot be imported. Use a class of torch.optim.lr_scheduler, "
            "e.g. torch.optim.lr_scheduler.StepLR."
        ) from None
    if not (issubclass(cls, LRScheduler) or cls is ReduceLROnPlateau):
        raise ConfigError(f"{key}={target!r} is not a learning-rate scheduler class.")
    return cls


def node_kwargs(node: dict[str, Any]) -> dict[str, Any]:
    """Constructor kwargs: everything but Hydra's ``_x_`` keys and lrrun's policy keys."""
    return {k: v for k, v in node.items() if not k.startswith("_") and k not in POLICY_KEYS}


def instantiate(target: str, kwargs: dict[str, Any], prefix: str) -> Any:
    """Hydra-instantiate the ``_partial_`` node with derived values filled in."""
    finished = {"_target_": target, "_partial_": True, "_convert_": "all", **kwargs}
    lam = finished.pop("lr_lambda", None)
    try:
        partial = hydra.utils.instantiate(OmegaConf.create(finished))
    except Exception as exc:
        raise ConfigError(f"{prefix} could not be instantiated: {root_cause(exc)}") from None
    if lam is not None:  # a callable cannot pass through OmegaConf
        partial.keywords["lr_lambda"] = lam
    return partial


def construct(
    factory: Any, prefix: str, *args: Any, _name: str | None = None, **kwargs: Any
) -> Any:
    name = _name or getattr(factory, "__name__", "scheduler")
    try:
        return factory(*args, **kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigError(f"{prefix} ({name}) rejected its arguments: {exc}") from None
    except ArithmeticError as exc:  # e.g. OneCycleLR with pct_start x total_steps = 1
        raise ConfigError(
            f"{prefix} ({name}) cannot compute its schedule from these arguments ({exc}): "
            "a phase is too short. Lengthen it (e.g. a larger pct_start or total_steps)."
        ) from None
