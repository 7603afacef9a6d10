"""Averaged weights kept beside the trained model: an exponential moving average
(``trainer.ema``) and SWA's average (``scheduler=swa``). Each is evaluated on the val split
after every epoch (metrics.csv: every val metric again as ``val_<metric>_ema`` / ``_swa``),
held in every checkpoint and resumed exactly; ``trainer.select`` makes best.pt and the test
use one of them (lrrun.train.checkpoint.Saved.weights).

EMA, timm's ``ModelEmaV3`` rule: after optimizer step t (global, 1-based; every ``every``
steps) each floating tensor of the model's state - parameters and buffers, so BatchNorm's
running statistics too - moves as ``ema = d_t ema + (1 - d_t) model`` (other tensors are
copied), with d_t = 0 at t = 1 (a copy), and from then on ``min(decay, 1 - t^(-2/3))`` with
the warm-up (ModelEmaV3's use_warmup, inv_gamma 1, power 2/3), or ``decay`` without.

SWA, torch's recipe (torch.optim.swa_utils): after epoch swa_start and every later epoch
(lrrun.schedule.swa), ``AveragedModel.update_parameters`` (the running mean of the
parameters), then ``update_bn`` over the training batches for the average's BatchNorm
statistics - every RNG saved and restored around it, so the trained model's run is the one
without SWA. Under DDP each rank computes them on its shard and the ranks' means are averaged.

Neither changes the trained model, the optimizer or the schedule: the lr per step and the
model's own metrics equal the run's without averaging (a test).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, update_bn

from lrrun.train import checkpoint


class Average:
    """Weights averaged from ``model``'s; ``module`` evaluates them."""

    name = ""
    module: nn.Module
    selected = False  # trainer.select names it: the test evaluates it, best.pt holds it

    @property
    def updates(self) -> int:
        raise NotImplementedError

    def after_step(self, step: int) -> None:
        """After optimizer step ``step`` (global, 1-based)."""

    def after_epoch(self, epoch: int) -> None:
        """After epoch ``epoch`` was trained (before it is evaluated)."""

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])


class EMA(Average):
    name = "ema"

    def __init__(self, model: nn.Module, decay: float, every: int, warmup: bool) -> None:
        self.decay, self.every, self.warmup, self.count = decay, every, warmup, 0
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        # the model's own tensors (keep_vars), not detached copies of today's storage: a fused
        # pass re-points a member's leaves at its packed slices (lrrun.fused.forward)
        theirs = model.state_dict(keep_vars=True).values()
        pairs = zip(self.module.state_dict().values(), theirs, strict=True)
        self.floats: tuple[list[torch.Tensor], list[torch.Tensor]] = ([], [])
        self.others: list[tuple[torch.Tensor, torch.Tensor]] = []
        for mine, theirs in pairs:
            if mine.is_floating_point():
                self.floats[0].append(mine)
                self.floats[1].append(theirs)
            else:
                self.others.append((mine, theirs))

    @property
    def updates(self) -> int:
        return self.count

    def decay_at(self, step: int) -> float:
        """ModelEmaV3.get_decay(step) with update_after_step 0, min_decay 0."""
        t = step - 1
        if t <= 0:
            return 0.0
        if not self.warmup:
            return self.decay
        return max(min(1 - (1 + t) ** (-2 / 3), self.decay), 0.0)

    @torch.no_grad()
    def after_step(self, step: int) -> None:
        if step % self.every:
            return
        mine, theirs = self.floats
        torch._foreach_lerp_(mine, [t.detach() for t in theirs], 1 - self.decay_at(step))
        for a, b in self.others:
            a.copy_(b)
        self.count += 1

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.count = int(state["updates"])


class SWA(Average):
    name = "swa"

    def __init__(self, model: nn.Module, start: int, batches: Iterable[Any]) -> None:
        self.model, self.start, self.batches = model, start, batches
        self.averaged = AveragedModel(model)
        self.module = self.averaged.module.eval().requires_grad_(False)

    @property
    def updates(self) -> int:
        return int(self.averaged.n_averaged)

    def after_epoch(self, epoch: int) -> None:
        if epoch < self.start:
            return
        self.averaged.update_parameters(self.model)
        if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.module.modules()):
            return
        rng = checkpoint.rng_state()  # the batches draw augmentations: the run must not see it
        try:
            update_bn(self.batches, self.module)
        finally:
            checkpoint.set_rng_state(rng)
        self.module.eval()
        _mean_over_ranks(self.module)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.averaged.n_averaged.fill_(int(state["updates"]))


def _mean_over_ranks(module: nn.Module) -> None:
    """Each floating buffer (BatchNorm's statistics) as the mean of every rank's."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    for buffer in module.buffers():
        if buffer.is_floating_point():
            dist.all_reduce(buffer)
            buffer.div_(dist.get_world_size())


def build(
    ema: tuple[float, int, bool] | None,
    swa_start: int | None,
    select: str,
    model: nn.Module,
    batches: Iterable[Any],
) -> list[Average]:
    """The averages a run keeps: EMA with ``trainer.ema``, SWA with scheduler=swa."""
    averages: list[Average] = []
    if ema is not None:
        averages.append(EMA(model, *ema))
    if swa_start is not None:
        averages.append(SWA(model, swa_start, batches))
    for average in averages:
        average.selected = average.name == select
    return averages


def states(averages: Sequence[Average]) -> dict[str, Any]:
    """The checkpoint's ``averages``."""
    return {a.name: a.state_dict() for a in averages}


def restore(averages: Sequence[Average], saved: dict[str, Any]) -> None:
    """A resumed run's averages, from its checkpoint's (one it lacks starts afresh)."""
    for average in averages:
        state = saved.get(average.name)
        if state is not None:
            average.load_state_dict(state)


def evaluated(
    averages: Sequence[Average], epoch: int, batches: Any, task: Any, autocast: Any
) -> dict[str, Any]:
    """After epoch ``epoch`` was trained: each average updated (SWA) and evaluated,
    ``val_<metric>_<name>`` (None before its first update)."""
    from lrrun.train.measure import evaluated as measured

    out: dict[str, Any] = {}
    for average in averages:
        average.after_epoch(epoch)
        values = measured(
            "val", average.module, batches if average.updates else None, task, autocast
        )
        out |= {f"{k}_{average.name}": v for k, v in values.items()}
    return out


def tested(averages: Sequence[Average], model: nn.Module) -> nn.Module:
    """What the test split evaluates: the selected average once it has weights, else
    ``model``."""
    chosen = selected(averages)
    return chosen.module if chosen is not None and chosen.updates else model


def selected(averages: Sequence[Average]) -> Average | None:
    """The average ``trainer.select`` names (None: the trained model)."""
    return next((a for a in averages if a.selected), None)
