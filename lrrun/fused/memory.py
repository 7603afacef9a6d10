"""How many members fit in one pass: ``hydra.launcher.max_members``' default.

A member's share of a pass is estimated from its model and one batch, not measured: its
parameters five times (its leaves - slices of the pass's packed tensors, lrrun.fused.forward -,
their gradient twice - backward's result, and its copy in the parameter's layout that
autograd keeps -, and two optimizer states - Adam's, the most a built-in torch optimizer
keeps), its buffers once (slices too), and twice what its modules output in a forward on a
training batch (kept for backward, then their gradients). A pass takes at most ``SHARE`` of the memory free on
its device (CUDA: ``torch.cuda.mem_get_info``; CPU: the kernel's MemAvailable), and at most
``LIMIT`` members, whatever the memory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

SHARE = 0.5
LIMIT = 64


@dataclass(frozen=True)
class Fit:
    members: int  # members of one pass at most
    member_bytes: int  # one member's estimated share
    free_bytes: int  # free on the device when estimated

    def said(self) -> str:
        return (
            f"{self.members} members fit ({_size(self.member_bytes)} each, estimated; "
            f"{_size(self.free_bytes)} free, {SHARE:.0%} of it for the pass, at most {LIMIT})"
        )


def free_bytes(device: torch.device) -> int:
    """Memory free for new tensors on ``device``."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def member_bytes(model: nn.Module, batch: torch.Tensor) -> int:
    """One member's estimated share of a pass (the module docstring's rule); ``batch``: one
    training batch of the pass."""
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    outputs = [0]

    def count(module: nn.Module, inputs: object, output: object) -> None:
        if not list(module.children()):  # leaf modules: a container's output is a leaf's
            for t in output if isinstance(output, tuple | list) else (output,):
                if isinstance(t, torch.Tensor):
                    outputs[0] += t.numel() * t.element_size()

    hooks = [m.register_forward_hook(count) for m in model.modules()]
    training = model.training
    try:
        with torch.no_grad():
            model.eval()(batch)  # eval: no running statistics touched, outputs of one size
    finally:
        model.train(training)
        for hook in hooks:
            hook.remove()
    return 5 * params + buffers + 2 * outputs[0]


def members_that_fit(model: nn.Module, batch: torch.Tensor, device: torch.device) -> Fit:
    need, free = member_bytes(model, batch), free_bytes(device)
    return Fit(max(1, min(LIMIT, int(SHARE * free) // max(need, 1))), need, free)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    raise AssertionError("unreachable")
