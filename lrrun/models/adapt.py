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
``facts``). A target that takes them through ``**kwargs`` (``timm.create_model``) names them
in ``model.facts=[num_classes, in_chans]``. A value the config sets must agree with the data. The filled-in values are shown
in the header and recorded in the checkpoint's plan. Then one batch of two val samples goes
through the model (eval mode, no gradients: no parameter, statistic or random state changes):
it must run, and its output must be what the task needs (lrrun.tasks: ``check_output``).

A forward that returns more than the output - a tuple, a dict, a Hugging Face ``ModelOutput``
- is used through ``model.output``: the key, attribute or index to take (``logits``, ``0``;
dotted for nested ones), and the probe names the entries when it is missing. Lazy modules
(``nn.LazyLinear``) are materialised by the probe batch before anything touches them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from lrrun.config.checks import locate
from lrrun.errors import ConfigError, root_cause

FACTS = (
    "num_classes",
    "num_outputs",
    "in_channels",
    "in_chans",
    "input_shape",
    "input_dim",
    "image_size",
    "vocab_size",
    "block_size",
)
AT_LEAST = ("vocab_size", "block_size")  # a model may take more than the data needs
OWN_KEYS = ("output", "facts")  # the model node's keys lrrun reads itself (not the target's)


def fill(node: dict[str, Any], facts: dict[str, Any]) -> dict[str, Any]:
    """The facts ``node``'s target takes and leaves unset; explicit values must agree."""
    try:
        params = inspect.signature(locate(node["_target_"])).parameters
    except Exception:  # not importable (instantiate says why) or no signature: pass nothing
        return {}
    named = set(node.get("facts") or ())
    unknown = named - set(FACTS)
    if unknown:
        raise ConfigError(
            f"model.facts names {', '.join(sorted(unknown))}: the data's facts are "
            f"{', '.join(FACTS)}."
        )
    params = {**params, **{name: None for name in named}}  # passed through **kwargs
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


class OutputOf(nn.Module):
    """``model`` giving only the part of its forward's return ``model.output`` names."""

    def __init__(self, model: nn.Module, path: str) -> None:
        super().__init__()
        self.model, self.path = model, str(path)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return pick(self.model(*args, **kwargs), self.path)


def pick(out: Any, path: str) -> Any:
    """The entry ``path`` (``logits``, ``0``, ``a.b``) of a forward's return."""
    for part in path.split("."):
        if isinstance(out, dict) and part in out:  # dicts and Hugging Face's ModelOutput
            out = out[part]
        elif isinstance(out, list | tuple) and part.lstrip("-").isdigit():
            out = out[int(part)]
        elif not isinstance(out, dict | list | tuple) and hasattr(out, part):
            out = getattr(out, part)
        else:
            raise ConfigError(
                f"model.output={path}: the forward returns {_entries(out)}, with no {part!r}"
            )
    return out


def materialise(model: nn.Module, batch: torch.Tensor, target: str) -> None:
    """Run the lazy modules (nn.LazyLinear, ...) once, with gradients off but real tensors
    (not inference_mode's), so their parameters exist before they are moved or optimised."""
    from torch.nn.modules.lazy import LazyModuleMixin

    lazy = (
        isinstance(m, LazyModuleMixin) and m.has_uninitialized_params() for m in model.modules()
    )
    if any(lazy):
        _run(model, batch, target, torch.no_grad())


def probe(
    model: nn.Module,
    batch: torch.Tensor,
    target: str,
    check: Callable[[Any, torch.Tensor, str], None],
) -> None:
    """Run two samples through ``model``; refuse it, with the fix that fits the failure, if
    that fails or ``check`` (the task's) refuses its output."""
    shape = "x".join(map(str, batch.shape))
    where = f"model._target_={target}"
    out = _run(model, batch, target, torch.inference_mode())
    if not torch.is_tensor(out) and (isinstance(out, dict | list | tuple) or hasattr(out, "keys")):
        raise ConfigError(
            f"{where} returns {_entries(out)} for a batch of {shape}; lrrun needs the output "
            "tensor: name it with model.output=<key, attribute or index> (e.g. "
            f"model.output={_first_tensor(out)})."
        )
    check(out, batch, where)


def _run(model: nn.Module, batch: torch.Tensor, target: str, mode: Any) -> Any:
    """``model(batch)`` in eval mode under ``mode`` (no_grad / inference_mode), its training
    mode restored; a failure as one ConfigError with the hint that fits it."""
    was_training = model.training
    model.eval()
    try:
        with mode:
            return model(batch)
    except ConfigError:
        raise
    except Exception as exc:
        raise _fails(target, batch, exc) from None
    finally:
        model.train(was_training)


def _fails(target: str, batch: torch.Tensor, exc: Exception) -> ConfigError:
    shape = "x".join(map(str, batch.shape))
    return ConfigError(
        f"model._target_={target} fails on one batch of the data (input {shape}, "
        f"{str(batch.dtype)[6:]}): {type(exc).__name__}: {root_cause(exc)}{_where(exc)}. "
        f"{_hint(exc, batch)}"
    )


def _entries(out: Any) -> str:
    def desc(v: Any) -> str:
        return "x".join(map(str, v.shape)) if torch.is_tensor(v) else type(v).__name__

    if isinstance(out, dict) or hasattr(out, "keys"):
        return f"a {type(out).__name__} of " + ", ".join(f"{k} ({desc(out[k])})" for k in out)
    if isinstance(out, list | tuple):
        return f"a {type(out).__name__} of " + ", ".join(
            f"{i}: {desc(v)}" for i, v in enumerate(out)
        )
    return f"a {desc(out)}"


def _first_tensor(out: Any) -> str:
    """The entry to suggest: ``logits`` when there is one (Hugging Face's name), else the
    first tensor."""
    items = list(out.items()) if hasattr(out, "items") else list(enumerate(out))
    if any(k == "logits" for k, _ in items):
        return "logits"
    return next((str(k) for k, v in items if torch.is_tensor(v)), "logits")


def _where(exc: Exception) -> str:
    """The deepest frame of the failure outside torch's own code: the user's line."""
    import traceback

    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if "/torch/" not in f.filename and "/lrrun/" not in f.filename
    ]
    return (
        f" (at {frames[-1].filename}:{frames[-1].lineno}, in {frames[-1].name})" if frames else ""
    )


def _hint(exc: Exception, batch: torch.Tensor) -> str:
    """What to change, by what the message says went wrong."""
    text = str(exc)
    passes = (
        "lrrun passes num_classes, in_channels / in_chans, input_dim, input_shape, "
        "vocab_size, ... when the constructor takes them, or names them in model.facts "
        "for **kwargs"
    )
    if batch.dim() == 4 and "channels" in text:
        return (
            f"The data has {batch.shape[1]} channel(s): give the model in_channels="
            f"{batch.shape[1]} (or in_chans; {passes})."
        )
    if "mat1 and mat2" in text or "shapes cannot be multiplied" in text:
        return (
            f"A layer's input size does not fit: one sample holds "
            f"{batch[0].numel()} values ({passes})."
        )
    if batch.dim() == 4 and ("size" in text or "kernel" in text):
        return f"Make the model take samples of this size ({passes}), or set dataset.image_size."
    return f"The error is in the model's forward: fix it there ({passes})."


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
