"""Dropout in a pass. A member's dropout masks are drawn from its own stream, in the order
its solo forward draws them, before the pass (``lrrun.models.Dropout.draw``), and handed to
the pass as stacked per-member buffers that ``Dropout.forward`` multiplies by
(``fused_mask``): each member gets the masks its solo run gets. The shapes and layouts come
from one forward of the model in eval mode (no draws) per batch shape.

torch's own ``nn.Dropout`` draws inside the forward (``bernoulli_``), where one pass cannot
give each member its stream; so does lrrun's Dropout on a GPU (torch's fused kernel there). A
model with such a layer trains alone (lrrun.fused.runner)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lrrun.errors import ConfigError
from lrrun.models.builtin import Dropout

Plan = list[tuple[str, tuple[int, ...], tuple[int, ...], torch.dtype]]


def why_alone(model: nn.Module, device: torch.device) -> str | None:
    """Why a model's random layers keep it out of a pass (None: they do not)."""
    for name, module in model.named_modules():
        if not isinstance(module, nn.modules.dropout._DropoutNd) or module.p <= 0:
            continue
        mine = type(module) is Dropout and device.type == "cpu"
        if not mine:
            where = f"on {device.type}" if type(module) is Dropout else ""
            return (
                f"the model's {name or 'root'} ({type(module).__name__}, p={module.p}) draws "
                f"inside the forward{' ' + where if where else ''}: one pass cannot give each "
                "member its own stream there (lrrun.models.Dropout on a CPU can)"
            )
    return None


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
