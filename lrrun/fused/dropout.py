"""Dropout in a pass. A member's dropout masks are drawn from its own stream, in the order
its solo forward draws them, before the pass (``lrrun.models.Dropout.draw``), and handed to
the pass as stacked per-member buffers that ``Dropout.forward`` multiplies by
(``fused_mask``): each member gets the masks its solo run gets. The shapes and layouts come
from one forward of the model in eval mode (no draws) per batch shape.

Any other random draw inside the forward - torch's own ``nn.Dropout`` (``bernoulli_``),
``F.dropout`` in a forward, stochastic depth, attention dropout, lrrun's Dropout on a GPU
(torch's fused kernel there) - happens inside the pass, where one pass cannot give each
member its stream: such a model trains alone (``why_alone``, checked before a pass; and the
pass's vmap refuses any random operation, so none can slip through unseen)."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from lrrun.errors import ConfigError
from lrrun.models.builtin import Dropout

Plan = list[tuple[str, tuple[int, ...], tuple[int, ...], torch.dtype]]


def why_alone(model: nn.Module, inputs: torch.Tensor) -> str | None:
    """Why a model's random draws keep it out of a pass (None: they do not): lrrun's Dropout
    off a CPU, or any random number its training forward draws anywhere else - torch's
    nn.Dropout, F.dropout in a forward, timm's DropPath, attention dropout. Found by running
    a training and an evaluation forward of a copy on ``inputs`` and watching every
    operation torch marks as seeded by a generator (the global RNG is left as it was)."""
    for name, module in model.named_modules():
        if type(module) is Dropout and 0 < module.p < 1 and inputs.device.type != "cpu":
            return (
                f"{_named(name, module)} draws in its forward on {inputs.device.type} (torch's "
                "kernel there): one pass cannot give each member its own stream there "
                "(lrrun.models.Dropout on a CPU can)"
            )
    copy_ = copy.deepcopy(model).train()
    masks_of_ones(copy_, inputs.device)  # as in a pass: its masks drawn before
    watch = _Draws(copy_)
    devices = [inputs.device] if inputs.device.type == "cuda" else []
    with torch.random.fork_rng(devices), torch.no_grad(), watch:
        copy_(inputs)
        copy_.eval()(inputs)  # evaluation is a pass too (a model may draw there as well)
    watch.remove()
    if watch.first is None:
        return None
    where, op = watch.first
    return (
        f"{where} draws random numbers in its forward ({op}): one pass cannot give each "
        "member its own stream there (lrrun.models.Dropout on a CPU can)"
    )


def masks_of_ones(model: nn.Module, device: torch.device) -> None:
    """lrrun's Dropout layers of ``model`` (a copy) multiply by a mask of ones: what is left
    of them inside a pass, whose masks are drawn per member before it."""
    for module in model.modules():
        if type(module) is Dropout:
            module.fused_mask = torch.ones((), device=device)


def _named(name: str, module: nn.Module) -> str:
    """The module as a sentence's subject: "the model's fc.drop (Dropout, p=0.2)", or "the
    model (Net)" for the model itself."""
    p = getattr(module, "p", None)
    kind = type(module).__name__ + (f", p={p}" if isinstance(p, float) else "")
    return f"the model's {name} ({kind})" if name else f"the model ({kind})"


def _draws(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether the operation draws from a generator: torch tags every op that may; attention
    with ``dropout_p=0`` (the GPT's sdpa at model.dropout=0) may, but does not."""
    if torch.Tag.nondeterministic_seeded not in func.tags:
        return False
    for i, arg in enumerate(func._schema.arguments):
        if arg.name == "dropout_p":
            value = kwargs.get(arg.name, args[i] if i < len(args) else arg.default_value)
            return value != 0
    return True


class _Draws(TorchDispatchMode):
    """The first generator-seeded operation of a forward, and the module it ran in."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.first: tuple[str, str] | None = None
        self.inside: list[str] = []
        self.handles = []
        for name, module in model.named_modules():
            self.handles.append(module.register_forward_pre_hook(self._enter(_named(name, module))))
            self.handles.append(module.register_forward_hook(self._leave))

    def _enter(self, described: str) -> Any:
        def hook(*_: Any) -> None:
            self.inside.append(described)

        return hook

    def _leave(self, *_: Any) -> None:
        self.inside.pop()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if self.first is None and _draws(func, args, kwargs or {}):
            where = self.inside[-1] if self.inside else "the model"
            self.first = (where, str(func.overloadpacket))
        return func(*args, **(kwargs or {}))

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


class Masks:
    """The dropout layers of a model, and the masks one member's forward would draw."""

    def __init__(self, model: nn.Module) -> None:
        self.layers = {
            n: m for n, m in model.named_modules() if isinstance(m, Dropout) and 0 < m.p < 1
        }
        self._plans: dict[Any, Plan] = {}

    def __bool__(self) -> bool:
        return bool(self.layers)

    def plan(self, model: nn.Module, inputs: torch.Tensor, autocast: Any) -> Plan:
        """Each dropout call of a forward of ``inputs``: (layer, shape, strides, dtype), in
        call order; from one eval-mode forward per input shape."""
        key = (tuple(inputs.shape), tuple(inputs.stride()), inputs.dtype)
        if key in self._plans:
            return self._plans[key]
        calls: Plan = []

        def seen(module: nn.Module, args: tuple[Any, ...]) -> None:
            name = next(n for n, m in self.layers.items() if m is module)
            if any(c[0] == name for c in calls):
                raise ConfigError(
                    f"the model calls its dropout {name} twice in one forward: one mask "
                    "per layer and pass, so this job trains alone"
                )
            calls.append((name, *Dropout.layout(args[0]), args[0].dtype))

        handles = [m.register_forward_pre_hook(seen) for m in self.layers.values()]
        training = model.training
        try:
            with torch.no_grad(), autocast():
                model.eval()(inputs)
        finally:
            model.train(training)
            for handle in handles:
                handle.remove()
        self._plans[key] = calls
        return calls

    def draw(self, plan: Plan) -> dict[str, torch.Tensor]:
        """One member's masks for one forward, drawn from the global generator (its stream,
        swapped in by the caller), in the solo forward's order."""
        return {
            f"{name}.fused_mask": self.layers[name].draw(shape, stride, dtype)
            for name, shape, stride, dtype in plan
        }
