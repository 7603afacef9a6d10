"""optimizer.lr_scaling: the lr for a global batch other than optimizer.reference_batch.

The global batch is trainer.batch_size x processes x trainer.accumulate. ``linear`` multiplies
the lr by global / reference (Goyal et al. 2017, "Accurate, Large Minibatch SGD"); ``sqrt`` by
its square root (Krizhevsky 2014; Malladi et al. 2022 for Adam-style optimizers). The whole
schedule is scaled, so the lr at every step is the factor x the unscaled run's: optimizer.lr,
each param group's own lr, and the scheduler's absolute lrs (SCHEDULE_LR_KEYS, in composites'
children too). The factors of a schedule (gamma, start_factor, lr_lambda, warm-up) are not
lrs and stay. Done on the Settings before anything is built, so a run and its preview agree.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lrrun.config.settings import Settings

# the scheduler keys that are learning rates, not factors: torch's arguments, and the
# ``let`` names of the cited schedules (hf_polynomial's lr_end and lr_init)
SCHEDULE_LR_KEYS = ("max_lr", "base_lr", "eta_min", "min_lr", "lr_end", "lr_init")


@dataclass(frozen=True)
class LrScaling:
    rule: str = "none"  # none, linear or sqrt
    reference_batch: int = 256

    def factor(self, global_batch: int) -> float:
        ratio = global_batch / self.reference_batch
        return {"none": 1.0, "linear": ratio, "sqrt": ratio**0.5}[self.rule]


def global_batch(settings: Settings, processes: int) -> int:
    """Samples per optimizer step, over every process."""
    trainer = settings.trainer
    return trainer.batch_size * processes * trainer.accumulate


def scale(settings: Settings, processes: int) -> tuple[Settings, str]:
    """``settings`` with the schedule scaled for ``processes`` data-parallel processes, and
    the header's account of it (``lr 0.1 x 4 (linear, global batch 256 / 64) = 0.4``; "" for
    lr_scaling=none). ``settings.plain`` stays the config as written (the checkpoint's plan)."""
    scaling = settings.lr_scaling
    if scaling.rule == "none":
        return settings, ""
    batch = global_batch(settings, processes)
    f = scaling.factor(batch)
    lr = settings.optimizer["lr"]
    groups = [g | {"lr": g["lr"] * f} if "lr" in g else g for g in settings.param_groups]
    touched: list[str] = []
    scheduler = _scaled(settings.scheduler, f, "scheduler", touched)
    said = (
        f"lr {lr:g} x {f:g} ({scaling.rule}, global batch {batch} / "
        f"{scaling.reference_batch}) = {lr * f:g}"
    )
    if touched:
        said += f"; also {', '.join(touched)}"
    if groups != settings.param_groups:
        said += "; also the param groups' own lr"
    return dataclasses.replace(
        settings,
        optimizer=settings.optimizer | {"lr": lr * f},
        param_groups=groups,
        scheduler=scheduler,
    ), said


def _scaled(node: Any, f: float, where: str, touched: list[str]) -> Any:
    """``node`` with every SCHEDULE_LR_KEYS value (a number, or one per param group) x f."""
    if isinstance(node, list):
        return [_scaled(v, f, f"{where}[{i}]", touched) for i, v in enumerate(node)]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in SCHEDULE_LR_KEYS and _numbers(value):
            out[key] = [v * f for v in value] if isinstance(value, list) else value * f
            if any(v != 0 for v in (value if isinstance(value, list) else [value])):
                touched.append(f"{where}.{key}")
        else:
            out[key] = _scaled(value, f, f"{where}.{key}", touched)
    return out


def _numbers(value: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    return bool(values) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values
    )
