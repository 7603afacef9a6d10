"""The checks every config node goes through: a value against its rule (lrrun.config.rules),
unknown keys, constructor kwargs against a class's signature, and resolving a node into
plain values with interpolation errors turned into one-line ConfigErrors."""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lrrun.config.rules import Rule
from lrrun.errors import ConfigError


def check_value(key: str, value: Any, rule: Rule) -> None:
    test, allowed = rule
    if not test(value):
        raise ConfigError(f"{key}={show(value)} is not allowed: it must be {allowed}.")


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


def show(value: Any) -> str:
    """A value as the user would type it on the command line."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    return str(value)


def locate(target: str) -> Any:
    """The object a ``_target_`` names (``mypkg.net.Net``), imported as Hydra would, but
    without Hydra's error log line: the caller turns a failure into one message."""
    import importlib

    parts = target.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError as exc:
            if exc.name is not None and not ".".join(parts[:cut]).startswith(exc.name):
                raise  # the module exists but imports something missing: say that
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(f"no module named {parts[0]!r}")
