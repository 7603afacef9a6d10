"""``scheduler=swa``: Stochastic Weight Averaging's schedule (Izmailov et al., 2018), with
torch's own objects (``torch.optim.swa_utils``).

Stepped once per epoch (``interval: epoch``), after epoch ``e`` (1-based)::

    e <  swa_start:  before.step()      # the schedule before averaging (none: a constant lr)
    e >= swa_start:  swalr.step()       # torch's SWALR: each group's lr anneals to swa_lr
                                        # over anneal_epochs epochs (cos or linear), then stays

and the weights after epoch ``swa_start`` and after every later epoch are averaged
(lrrun.train.averaging.SWA: torch's ``AveragedModel`` and ``update_bn``). This is the loop of
torch's SWA example (``if epoch > swa_start: swa_model.update_parameters(model);
swa_scheduler.step() else: scheduler.step()``, there with 0-based epochs and a first average
one epoch later); lrrun counts epochs from 1 and averages from the epoch named.

Lengths derived when null: ``swa_start`` = 75% of the epochs (the paper averages over the
last quarter of its budget), ``swa_lr`` = half of each group's lr, a ``before`` child's
``T_max`` / ``total_iters`` = ``swa_start``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler
from torch.optim.swa_utils import SWALR

from lrrun.config.checks import check_signature
from lrrun.errors import ConfigError

OWN_KEYS = ("swa_start", "before")  # lrrun's keys of the node; the rest is SWALR's


class SWASchedule:
    """A ``before`` scheduler (or none) for the epochs before ``swa_start``, SWALR after."""

    def __init__(
        self, optimizer: Optimizer, before: LRScheduler | None, swalr: SWALR, swa_start: int
    ) -> None:
        self.optimizer, self.before, self.swalr, self.swa_start = (
            optimizer,
            before,
            swalr,
            swa_start,
        )
        self.last_epoch = 0  # epochs completed
        self._schedulers = [s for s in (before, swalr) if s is not None]

    @property
    def averaging(self) -> bool:
        """Whether the epoch just completed is averaged."""
        return self.last_epoch >= self.swa_start

    def step(self) -> None:
        self.last_epoch += 1
        if self.last_epoch >= self.swa_start:
            self.swalr.step()
        elif self.before is not None:
            self.before.step()

    def get_last_lr(self) -> list[float]:
        return [float(g["lr"]) for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {
            "last_epoch": self.last_epoch,
            "swa_start": self.swa_start,
            "before": self.before.state_dict() if self.before is not None else None,
            "swalr": self.swalr.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.last_epoch = state["last_epoch"]
        if self.before is not None and state["before"] is not None:
            self.before.load_state_dict(state["before"])
        self.swalr.load_state_dict(state["swalr"])


def swa_start(value: Any, epochs: int) -> int:
    """The epoch averaging starts after: the node's, or 75% of the run (at least 1). One
    past the run is legal - a run resumed longer gets there - and lrrun.schedule.lint warns."""
    return max(1, int(0.75 * epochs)) if value is None else int(value)


def swa_lrs(value: Any, optimizer: Optimizer) -> list[float]:
    """Each group's swa_lr: the node's (one, or one per group), or half the group's lr."""
    groups = optimizer.param_groups
    if value is None:
        return [float(g["lr"]) / 2 for g in groups]
    if isinstance(value, list | tuple):
        if len(value) != len(groups):
            raise ConfigError(
                f"scheduler.swa_lr has {len(value)} values, but the optimizer has "
                f"{len(groups)} param groups: give one value, or one per group."
            )
        return [float(v) for v in value]
    return [float(value)] * len(groups)


def build(
    kwargs: dict[str, Any],
    before: Any,
    optimizer: Optimizer,
    epochs: int,
    interval: str,
    build_child: Callable[[dict[str, Any], int], LRScheduler],
) -> tuple[SWASchedule, dict[str, Any]]:
    """The schedule of a resolved ``scheduler=swa`` node (``kwargs``: its keys but Hydra's
    and the policy's), and its resolved arguments for the header and the plan.
    ``build_child(node, length)`` builds ``before`` as any scheduler node is built."""
    if interval != "epoch":
        raise ConfigError(
            f"scheduler.interval={interval} is not allowed for scheduler=swa: SWALR anneals "
            "and the weights are averaged per epoch. Use scheduler.interval=epoch."
        )
    start = swa_start(kwargs.get("swa_start"), epochs)
    first = None
    if before:
        if not isinstance(before, dict):
            raise ConfigError(
                "scheduler.before must be a scheduler node (null: a constant lr until "
                "swa_start), e.g. {_target_:torch.optim.lr_scheduler.CosineAnnealingLR,"
                "_partial_:true,T_max:null}."
            )
        first = build_child(before, start)
    swalr_kwargs = {k: v for k, v in kwargs.items() if k not in OWN_KEYS}
    swalr_kwargs["swa_lr"] = swa_lrs(swalr_kwargs.get("swa_lr"), optimizer)
    check_signature(SWALR, swalr_kwargs, "scheduler")
    try:
        swalr = SWALR(optimizer, **swalr_kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"scheduler (SWALR) rejected its arguments: {exc}") from None
    args = {**swalr_kwargs, "swa_start": start}
    if first is not None:
        args["before"] = type(first).__name__
    return SWASchedule(optimizer, first, swalr, start), args
