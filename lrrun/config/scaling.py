"""optimizer.lr_scaling: the lr for a global batch other than optimizer.reference_batch.

The global batch is trainer.batch_size x processes x trainer.accumulate. ``linear`` multiplies
the lr by global / reference (Goyal et al. 2017, "Accurate, Large Minibatch SGD"); ``sqrt`` by
its square root (Krizhevsky 2014; Malladi et al. 2022 for Adam-style optimizers). The whole
schedule is scaled, so the lr at every step is the factor x the unscaled run's: optimizer.lr,
each param group's own lr, and the scheduler's absolute lrs (SCHEDULE_LR_KEYS, in composites'
children too). The factors of a schedule (gamma, start_factor, lr_lambda, warm-up) are not
lrs and stay. Applied to the Settings (Settings.scaled) before anything is built, so a run
and its preview agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# the scheduler keys that are learning rates, not factors: torch's arguments, and the
# ``let`` names of the cited schedules (hf_polynomial's lr_end and lr_init)
SCHEDULE_LR_KEYS = ("max_lr", "base_lr", "eta_min", "min_lr", "lr_end", "lr_init")

Nodes = tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class LrScaling:
    rule: str = "none"  # none, linear or sqrt
    reference_batch: int = 256

    def factor(self, global_batch: int) -> float:
        ratio = global_batch / self.reference_batch
        return {"none": 1.0, "linear": ratio, "sqrt": ratio**0.5}[self.rule]

    def apply(self, nodes: Nodes, global_batch: int) -> tuple[Nodes, str]:
        """The optimizer node, param groups and scheduler node scaled for ``global_batch``,
        and the header's account (``lr 0.1 x 4 (linear, global batch 256 / 64) = 0.4``)."""
        optimizer, groups, scheduler = nodes
        if self.rule == "none":
            return nodes, ""
        f, lr = self.factor(global_batch), optimizer["lr"]
        touched: list[str] = []
        scaled = (
            optimizer | {"lr": lr * f},
            [g | {"lr": g["lr"] * f} if "lr" in g else g for g in groups],
            _scaled(scheduler, f, "scheduler", touched),
        )
        said = (
            f"lr {lr:g} x {f:g} ({self.rule}, global batch {global_batch} / "
            f"{self.reference_batch}) = {lr * f:g}"
        )
        if touched:
            said += f"; also {', '.join(touched)}"
        if any("lr" in g for g in groups):
            said += "; also the param groups' own lr"
        return scaled, said


def global_batch(batch_size: int, processes: int, accumulate: int) -> int:
    """Samples per optimizer step, over every process."""
    return batch_size * processes * accumulate


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
