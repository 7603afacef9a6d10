"""Members of one architecture in one pass.

Each member keeps its own leaf parameters - its own torch optimizer steps them, its own
scheduler sets their lr. For a pass, each parameter is packed once (as FSDP packs its flat
parameter): one tensor over the members, and each member's leaf re-pointed at its slice
(``p.data = packed[i]``: the same Parameter object, so its optimizer's state still keys it).
``torch.func.functional_call`` runs the architecture under ``vmap`` over the member
dimension on the packed tensors; the packed gradient's slices become the members' ``.grad``
(added to one already there, as autograd accumulates a leaf's): what the member's solo
forward and backward give, to float rounding (tests/fused). The members' losses are summed
before backward, so no member's gradient depends on another's. An optimizer's in-place step
on a member's leaf writes the packed tensor: nothing is stacked or copied per step.

Buffers (BatchNorm's running statistics, its step counter) are packed as well: a pass in
train mode updates each member's own, as its solo forward would.

A checkpoint of a member's weights must not save the pass's whole storage with its slice:
``lrrun.train.checkpoint.save_atomic`` writes a slice as its own tensor.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.func import functional_call, vmap

from lrrun.errors import ConfigError
from lrrun.fused.dropout import masks_of_ones
from lrrun.train.recipe import Autocast, no_autocast


class Stacked:
    """``members`` (modules of one architecture: the same parameter and buffer names and
    shapes) called as one: ``stacked(x)`` with ``x`` of shape (members, batch, ...), or one
    batch for all with ``shared=True``; the output has the member dimension first."""

    def __init__(self, members: Sequence[nn.Module], randomness: str = "error") -> None:
        """``randomness``: vmap's; "error" refuses any random draw inside the pass, where no
        member would get its own stream (lrrun.fused.dropout draws them before)."""
        if not members:
            raise ValueError("no members to stack")
        first = members[0]
        self.members = list(members)
        self.randomness = randomness
        self.param_names = [name for name, _ in first.named_parameters()]
        self.buffer_names = [name for name, _ in first.named_buffers()]
        for i, member in enumerate(self.members[1:], 2):
            _check_same(first, member, i)
        params = [[dict(m.named_parameters())[n] for m in self.members] for n in self.param_names]
        buffers = [[dict(m.named_buffers())[n] for m in self.members] for n in self.buffer_names]
        self.own = dict(zip(self.param_names, params, strict=True))  # each member's leaves
        self.params = {n: _pack(own) for n, own in self.own.items()}
        self.buffers = {n: _pack(own) for n, own in zip(self.buffer_names, buffers, strict=True)}
        for name, packed in self.params.items():
            if packed.requires_grad:
                packed.register_post_accumulate_grad_hook(_hand_out(self.own[name]))
        self.skeleton = _skeleton(first)

    def __len__(self) -> int:
        return len(self.members)

    def train(self, mode: bool = True) -> Stacked:
        for module in (self.skeleton, *self.members):
            module.train(mode)
        return self

    def eval(self) -> Stacked:
        return self.train(False)

    def __call__(
        self,
        inputs: torch.Tensor,
        shared: bool = False,
        extra: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """``extra``: more stacked tensors for the pass, by module attribute name (each
        member's dropout masks: lrrun.fused.dropout). An operation vmap has no batching
        rule for (CPU flash attention) runs member by member inside the pass, as torch's
        warning says: hushed here, since fuse=auto's probe measures what it costs."""

        def one(
            p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], x: torch.Tensor
        ) -> torch.Tensor:
            return functional_call(self.skeleton, (p, b), (x,))

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "There is a performance drop because we have not")
            return vmap(one, in_dims=(0, 0, None if shared else 0), randomness=self.randomness)(
                self.params, self.buffers | (extra or {}), inputs
            )


def _skeleton(module: nn.Module) -> nn.Module:
    """The architecture without storage: a copy whose tensors are on the meta device. Each
    tensor is replaced once (deepcopy's memo), so weights the model ties - a head tied to
    the token embedding - stay one parameter and functional_call fills both places
    (``.to("meta")`` would give each place its own)."""
    memo: dict[int, object] = {}
    for t in (*module.parameters(), *module.buffers()):
        meta = torch.empty_like(t, device="meta")
        memo[id(t)] = nn.Parameter(meta, t.requires_grad) if isinstance(t, nn.Parameter) else meta
    return copy.deepcopy(module, memo)


def _pack(own: list[torch.Tensor]) -> torch.Tensor:
    """One tensor over the members, each member's tensor re-pointed at its slice; a leaf
    that needs a gradient if any member's does. Normal tensors even under inference mode
    (an evaluation's pass): the members go on training."""
    with torch.inference_mode(False), torch.no_grad():
        packed = torch.stack([t.detach() for t in own])
        for i, t in enumerate(own):
            t.data = packed[i]
    return packed.requires_grad_(any(t.requires_grad for t in own))


def _hand_out(own: list[torch.Tensor]) -> Callable[[torch.Tensor], None]:
    """After backward: each member's slice of the packed gradient as its leaf's ``.grad``,
    added to one it already has (a group of batches, trainer.accumulate), as autograd
    would; the packed gradient is dropped, so the next backward starts a new one."""

    def hook(packed: torch.Tensor) -> None:
        assert packed.grad is not None
        for t, grad in zip(own, packed.grad, strict=True):
            if not t.requires_grad:
                continue
            if t.grad is None:
                t.grad = grad
            else:
                t.grad.add_(grad)
        packed.grad = None

    return hook


def _check_same(first: nn.Module, other: nn.Module, number: int) -> None:
    """The same names and shapes, or a message that says which differs."""
    for kind, a, b in (
        ("parameter", first.named_parameters(), other.named_parameters()),
        ("buffer", first.named_buffers(), other.named_buffers()),
    ):
        mine = {n: (tuple(t.shape), t.dtype) for n, t in a}
        theirs = {n: (tuple(t.shape), t.dtype) for n, t in b}
        if mine != theirs:
            diff = sorted(set(mine.items()) ^ set(theirs.items()))[:1]
            raise ConfigError(
                f"member {number} is not member 1's architecture: {kind} {diff[0][0]} differs "
                f"({diff[0][1]}); only models of one architecture and size share a pass."
            )


def precision_differs(model: nn.Module, inputs: torch.Tensor, autocast: Autocast) -> str | None:
    """Where the pass would compute in another dtype than ``model`` alone under the run's
    ``autocast`` (None: every layer alike). autocast does not reach every kernel under
    ``vmap``: on a CPU a batched Linear with a bias or a convolution stays float32 (torch
    2.14), so a half-precision pass there would not train its members as alone. Compared per
    leaf module by its output's dtype, on copies in eval mode (no random draws)."""
    solo, one = copy.deepcopy(model).eval(), Stacked([copy.deepcopy(model)]).eval()
    seen: list[list[tuple[str, str, torch.dtype]]] = [[], []]
    handles = []
    for into, module in zip(seen, (solo, one.skeleton), strict=True):
        for name, leaf in module.named_modules():
            if not any(leaf.children()):
                handles.append(leaf.register_forward_hook(_dtype_of(into, name)))
    try:
        with torch.no_grad(), autocast():
            solo(inputs)
            one(inputs, shared=True)
    finally:
        for handle in handles:
            handle.remove()
    for (name, kind, alone), (_, _, fused) in zip(*seen, strict=True):
        if alone != fused:
            return (
                f"the pass would compute {name} ({kind}) in {_short(fused)}, alone in "
                f"{_short(alone)}: autocast does not reach that layer's kernel under vmap here"
            )
    return None


def _short(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _dtype_of(into: list[tuple[str, str, torch.dtype]], name: str) -> Callable[..., None]:
    def hook(module: nn.Module, args: object, out: object) -> None:
        if isinstance(out, torch.Tensor):
            into.append((name or "root", type(module).__name__, out.dtype))

    return hook


def measure(
    model: nn.Module,
    members: int,
    inputs: torch.Tensor,
    autocast: Autocast = no_autocast,
    repeats: int = 5,
    budget: float = 2.0,
) -> tuple[float, float]:
    """Seconds per training step (forward and backward) of ``members`` copies of ``model``
    on ``inputs`` (one batch), in one pass and one after another, forwards under the run's
    ``autocast`` (its precision: a half-precision pass can pay where fp32 does not, or the
    reverse) - measured on copies, so nothing of a run changes. What decides whether a pass
    pays on this device. Each way warmed up once, then timed up to ``repeats`` times (at
    least twice, fewer past ``budget`` seconds: a pass of 16 CNN members takes seconds a
    step on a CPU), the two ways taking turns so that a machine's drift hits both alike;
    the medians (a process's first steps still pay for its kernels and allocator)."""
    import statistics
    import time

    copies = [copy.deepcopy(model).train() for _ in range(members)]
    for c in copies:  # lrrun's Dropout draws its masks outside a pass, both ways alike
        masks_of_ones(c, inputs.device)
    stacked = Stacked(copies, randomness="different").train()  # timing: dropout may draw
    batch = inputs.expand(members, *inputs.shape)

    def fused() -> None:
        with autocast():
            out = stacked(batch)
        out.float().square().mean().backward()

    def alone() -> None:
        for m in copies:
            with autocast():
                out = m(inputs)
            out.float().square().mean().backward()

    for step in (fused, alone):
        step()
    timings: dict[Callable[[], None], list[float]] = {fused: [], alone: []}
    for turn in range(repeats):
        if turn >= 2 and sum(timings[fused]) + sum(timings[alone]) > budget:
            break
        for step in (fused, alone):
            _sync(inputs.device)
            start = time.perf_counter()
            step()
            _sync(inputs.device)
            timings[step].append(time.perf_counter() - start)
    return statistics.median(timings[fused]), statistics.median(timings[alone])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
