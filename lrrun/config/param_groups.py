"""optimizer.param_groups: parts of the model with their own lr (or other optimizer keys).

    optimizer:
      param_groups:
        - {name: head, params: [fc2.*], lr: 0.1}

``params`` are fnmatch patterns over ``model.named_parameters()`` names. The parameters no
pattern matches form group 0, ``default``, with the optimizer node's own values; the listed
groups follow in order, so their lrs are the ``lr_1``, ``lr_2``, ... columns of the CSVs.
Checked twice: the shape and values with the rest of the config (``check``, before any
data is loaded), the patterns against the model once it is built (``split``). Every error
names the group and the key.

``optimizer.no_decay`` (e.g. ``[bias, norm]``) takes weight decay off where it does not
belong, as param groups: within each group, the parameters a rule matches move to a group
``<name>_no_decay`` right after it, with the same keys and ``weight_decay=0``. Rules: ``bias``
(parameters named ``bias``), ``norm`` (the parameters of normalisation layers: BatchNorm,
LayerNorm, GroupNorm, InstanceNorm, RMSNorm, LocalResponseNorm), ``1d`` (every parameter with
at most one dimension: biases and norm scales, as timm's ``param_groups_weight_decay``), or
an fnmatch pattern of parameter names (``*.pos_embed``).
"""

from __future__ import annotations

import fnmatch
from typing import TYPE_CHECKING, Any

from lrrun.config.checks import check_node, check_signature
from lrrun.config.rules import OPTIMIZER_RULES
from lrrun.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn
    from torch.optim import Optimizer

KEY = "param_groups"
NO_DECAY = "no_decay"
NO_DECAY_RULES = ("bias", "norm", "1d")
DEFAULT = "default"
EXAMPLE = "+optimizer.param_groups=[{name:head,params:[fc2.*],lr:0.1}]"


def check(groups: Any) -> list[dict[str, Any]]:
    """The groups of a resolved ``optimizer.param_groups`` (``[]`` when unset), checked."""
    if groups is None:
        return []
    if not isinstance(groups, list) or not groups:
        raise ConfigError(
            f"optimizer.param_groups must be a non-empty list of groups, e.g. {EXAMPLE}"
        )
    names: list[str] = []
    for i, group in enumerate(groups):
        if not isinstance(group, dict):
            raise ConfigError(
                f"optimizer.param_groups[{i}]={group!r} must be a mapping with a name, params "
                f"and the optimizer keys it overrides, e.g. {EXAMPLE}"
            )
        name = group.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError(
                f"optimizer.param_groups[{i}] has no name: give each group one, e.g. "
                "{name:head,params:[fc2.*],lr:0.1}."
            )
        where = _where(name)
        if name == DEFAULT or name in names:
            taken = "is the group of the unmatched parameters" if name == DEFAULT else "is taken"
            raise ConfigError(f"{where}: the name {name!r} {taken}. Use another name.")
        names.append(name)
        patterns(group)  # checks them
        check_node(where, own_keys(group), OPTIMIZER_RULES)
    return groups


def patterns(group: dict[str, Any]) -> list[str]:
    value = group.get("params")
    found = [value] if isinstance(value, str) else value
    if not isinstance(found, list) or not found or not all(isinstance(p, str) and p for p in found):
        raise ConfigError(
            f"{_where(group['name'])}.params={value!r} must be one or more patterns of "
            "parameter names, e.g. params:[fc2.*] or params:[fc1.weight,fc2.weight]."
        )
    return found


def own_keys(group: dict[str, Any]) -> dict[str, Any]:
    """The optimizer keys a group overrides (everything but name and params)."""
    keys = {k: v for k, v in group.items() if k not in ("name", "params")}
    if isinstance(keys.get("betas"), list):
        keys["betas"] = tuple(keys["betas"])
    return keys


def check_no_decay(rules: Any) -> tuple[str, ...]:
    """optimizer.no_decay: a list of rules (``bias``, ``norm``, ``1d``, or name patterns)."""
    if rules is None:
        return ()
    if not isinstance(rules, list) or not all(isinstance(r, str) and r for r in rules):
        raise ConfigError(
            f"optimizer.no_decay={rules!r} must be a list of rules: bias, norm, 1d, or "
            "patterns of parameter names, e.g. optimizer.no_decay=[bias,norm]."
        )
    return tuple(rules)


def split(
    model: nn.Module, groups: list[dict[str, Any]], cls: type, no_decay: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """torch param groups: ``default`` (every parameter no pattern matches), then ``groups``;
    each followed by its ``<name>_no_decay`` group when ``no_decay`` rules match in it."""
    named = list(model.named_parameters())
    owner: dict[str, str] = {}
    for group in groups:
        where = _where(group["name"])
        check_signature(cls, own_keys(group), where)
        for pattern in patterns(group):
            hits = fnmatch.filter([n for n, _ in named], pattern)
            if not hits:
                raise ConfigError(
                    f"{where}.params: {pattern!r} matches no parameter of "
                    f"{type(model).__name__}. Its parameters: {', '.join(n for n, _ in named)}."
                )
            for hit in hits:
                if owner.get(hit, group["name"]) != group["name"]:
                    raise ConfigError(
                        f"parameter {hit!r} is matched by {_where(owner[hit])} and by {where} "
                        f"({pattern!r}): a parameter belongs to one group. Narrow a pattern."
                    )
                owner[hit] = group["name"]
    out = [{"name": DEFAULT, "params": [p for n, p in named if n not in owner]}] + [
        {"name": g["name"], "params": [p for n, p in named if owner.get(n) == g["name"]]}
        | own_keys(g)
        for g in groups
    ]
    if not no_decay:
        return out
    exempt = _no_decay_names(model, no_decay)
    by_id = {id(p): n for n, p in named}
    split_out = []
    for group in out:
        keep = [p for p in group["params"] if by_id[id(p)] not in exempt]
        free = [p for p in group["params"] if by_id[id(p)] in exempt]
        split_out.append(group | {"params": keep})
        if free:
            split_out.append(
                group | {"name": f"{group['name']}_no_decay", "params": free, "weight_decay": 0.0}
            )
    return split_out


def _no_decay_names(model: nn.Module, rules: tuple[str, ...]) -> set[str]:
    """The parameter names optimizer.no_decay's rules match."""
    from torch import nn

    norms = (
        nn.modules.batchnorm._NormBase,
        nn.LayerNorm,
        nn.GroupNorm,
        nn.LocalResponseNorm,
        nn.RMSNorm,
    )
    named = dict(model.named_parameters())
    found: set[str] = set()
    for rule in rules:
        if rule == "bias":
            found |= {n for n in named if n.rsplit(".", 1)[-1] == "bias"}
        elif rule == "norm":
            found |= {
                f"{m}.{n}" if m else n
                for m, module in model.named_modules()
                if isinstance(module, norms)
                for n, _ in module.named_parameters(recurse=False)
            }
        elif rule == "1d":
            found |= {n for n, p in named.items() if p.dim() <= 1}
        else:
            hits = fnmatch.filter(named, rule)
            if not hits:
                raise ConfigError(
                    f"optimizer.no_decay: {rule!r} matches no parameter of "
                    f"{type(model).__name__} (rules: {', '.join(NO_DECAY_RULES)}, or patterns "
                    f"of its parameter names: {', '.join(list(named)[:8])}, ...)."
                )
            found |= set(hits)
    return found


def names(optimizer: Optimizer) -> list[str]:
    """Each param group's name: lrrun's own, else ``default`` / ``group <i>``."""
    return [str(g.get("name") or unnamed(i)) for i, g in enumerate(optimizer.param_groups)]


def unnamed(i: int) -> str:
    """The name of a param group that has none (group 0 is the unmatched parameters)."""
    return DEFAULT if i == 0 else f"group {i}"


def describe(optimizer: Optimizer, groups: list[dict[str, Any]]) -> str:
    """``default 79,510 params; head 1,010 params, lr=0.1`` for the run header."""
    own = {g["name"]: own_keys(g) for g in groups}
    parts = []
    for name, group in zip(names(optimizer), optimizer.param_groups, strict=True):
        count = sum(p.numel() for p in group["params"])
        parent = name.removesuffix(f"_{NO_DECAY}")
        mine = own.get(name, {}) if parent == name else own.get(parent, {}) | {"weight_decay": 0.0}
        keys = "".join(f", {k}={v}" for k, v in mine.items())
        parts.append(f"{name} {count:,} params{keys}")
    return "; ".join(parts)


def _where(name: str) -> str:
    return f"optimizer.param_groups[{name}]"
