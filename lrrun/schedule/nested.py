"""Composites inside composites: a SequentialLR or ChainedScheduler as a child of another.

torch lets a composite be a child (SequentialLR undoes its children's initial steps
recursively), but it does not start one correctly: at a SequentialLR milestone it calls
``child._update_lr(0)``, which composites do not implement (torch 2.x raises
NotImplementedError at the switch), and a composite first child takes its initial step as
an ordinary step (the first value is skipped, with torch's "step() before optimizer.step()"
warning). lrrun builds composite children from these subclasses, which start like a composite
built on its own: every scheduler inside takes its own initial step, in order (ChainedScheduler:
every child; SequentialLR: the child that runs first). At a milestone every group's lr first
goes back to its ``initial_lr`` and every scheduler inside back to before its first step, the
way torch restarts a plain child from its closed form. So each segment of a SequentialLR is
exactly its child run alone from the initial lr. Stepping, state_dict and load_state_dict are
torch's own.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Any

from torch.optim.lr_scheduler import ChainedScheduler, SequentialLR


def _rewind(scheduler: Any) -> None:
    """Every scheduler in the tree back to before its first step (last_epoch = -1)."""
    for child in getattr(scheduler, "_schedulers", []):
        _rewind(child)
    scheduler.last_epoch = -1


class _StartsFresh:
    optimizer: Any
    _schedulers: list[Any]

    def _first(self) -> list[Any]:
        """The children that take an initial step when this composite starts."""
        raise NotImplementedError

    def _initial_step(self) -> None:
        self._step_count = 0
        for child in self._first():
            child._initial_step()
        self.last_epoch = 0
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def _update_lr(self, epoch: int | None = None) -> None:
        """Called by a parent SequentialLR at its milestone, with epoch 0: start afresh."""
        if epoch != 0:
            raise NotImplementedError(f"{type(self).__name__} only starts at epoch 0")
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"]
        _rewind(self)
        self._initial_step()


class NestedChainedScheduler(_StartsFresh, ChainedScheduler):
    """A ChainedScheduler inside a SequentialLR or ChainedScheduler."""

    def _first(self) -> list[Any]:
        return list(self._schedulers)


class NestedSequentialLR(_StartsFresh, SequentialLR):
    """A SequentialLR inside a SequentialLR or ChainedScheduler."""

    _milestones: list[int]

    def _first(self) -> list[Any]:
        return [self._schedulers[bisect_right(self._milestones, 0)]]


NESTED: dict[type, type] = {
    ChainedScheduler: NestedChainedScheduler,
    SequentialLR: NestedSequentialLR,
}
