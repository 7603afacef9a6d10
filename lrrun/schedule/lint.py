"""Plan checks before epoch 1: a schedule whose own length does not match the run's.

Where the run would be wrong (OneCycleLR shorter than the run, milestones of SequentialLR past
its end) the scheduler builder already refuses it; these are the legal-but-likely-unintended
cases, reported as warnings with the fix. Training and lrrun-preview both print them.
"""

from __future__ import annotations

from typing import Any

from lrrun.schedule.build import Stepping, schedule_length

_PER_STEP = ("OneCycleLR", "CyclicLR")


def lint(stepping: Stepping, epochs: int, steps_per_epoch: int) -> list[str]:
    """Warnings for ``stepping`` in a run of ``epochs`` x ``steps_per_epoch``."""
    name, a, interval = stepping.name, stepping.args, stepping.interval
    length = schedule_length(interval, epochs, steps_per_epoch)
    unit = "epochs" if interval == "epoch" else "optimizer steps"
    run = f"the run ({length} {unit})"
    out: list[str] = []
    warn = out.append

    if name in _PER_STEP and interval == "epoch":
        warn(
            f"{name} is meant to step per batch; with scheduler.interval=epoch its lr changes "
            f"only {epochs} times. Use scheduler.interval=step (lengths then count batches)."
        )
    if name == "CosineAnnealingLR" and a.get("T_max") != length:
        t = a["T_max"]
        if t < length:
            warn(
                f"scheduler.T_max={t} is shorter than {run}: after {t} {unit} the lr climbs "
                "back up the cosine. Use scheduler.T_max=null (the whole run), or "
                "scheduler=cosine_annealing_warm_restarts if you want restarts."
            )
        else:
            warn(
                f"scheduler.T_max={t} is longer than {run}: the run stops at "
                f"{length / t:.0%} of the cosine and never reaches eta_min. Use "
                "scheduler.T_max=null (the whole run)."
            )
    if name == "OneCycleLR" and a.get("total_steps", length) > length:
        warn(
            f"scheduler.total_steps={a['total_steps']} is longer than {run}: training stops "
            f"at {length / a['total_steps']:.0%} of the cycle, before the final anneal. "
            "Use scheduler.total_steps=null (the whole run)."
        )
    if name == "CyclicLR":
        up = _cyclic_rise(a)
        cycle = up + (a.get("step_size_down") or up)
        if cycle > length:
            warn(
                f"one CyclicLR cycle (step_size_up + step_size_down = {cycle}) is longer than "
                f"{run}: training ends mid-cycle. Lower scheduler.step_size_up or leave it "
                "null (a quarter of the run)."
            )
    if name == "MultiStepLR":
        late = [m for m in a.get("milestones", []) if m >= length]
        if late:
            warn(
                f"scheduler.milestones {late} lie at or past the end of {run}: they never "
                f"take effect. Use milestones below {length}."
            )
    if name == "StepLR" and a["step_size"] >= length:
        warn(
            f"scheduler.step_size={a['step_size']} is not shorter than {run}: the lr never "
            "changes. Lower scheduler.step_size."
        )
    if name in ("LinearLR", "PolynomialLR") and a.get("total_iters", length) > length:
        warn(
            f"scheduler.total_iters={a['total_iters']} is longer than {run}: the ramp stops at "
            f"{length / a['total_iters']:.0%}. Use scheduler.total_iters=null (the whole run)."
        )
    if name == "CosineAnnealingWarmRestarts" and a["T_0"] >= length:
        warn(
            f"scheduler.T_0={a['T_0']} is not shorter than {run}: there is no restart. "
            "Lower scheduler.T_0, or use scheduler=cosine_annealing_lr."
        )
    if name == "ReduceLROnPlateau" and a.get("patience", 10) >= epochs - 1:
        warn(
            f"scheduler.patience={a.get('patience')} with {epochs} epochs: the lr can never be "
            "reduced in this run. Lower scheduler.patience or train longer."
        )
    if name == "SWA" and a["swa_start"] > epochs:
        warn(
            f"scheduler.swa_start={a['swa_start']} is past the run's {epochs} epochs: nothing is "
            "averaged. Lower scheduler.swa_start (null: 75% of the epochs)."
        )
    out += _warmup(stepping, epochs * steps_per_epoch)
    factor = _total_decay(name, a, length)
    if factor is not None and factor < 1e-6:
        hint = " Did you mean scheduler.interval=epoch?" if interval == "step" else ""
        warn(
            f"{name} multiplies the lr by {factor:.1e} over {run}: it ends near zero "
            f"early in training.{hint}"
        )
    return out


def _warmup(stepping: Stepping, steps: int) -> list[str]:
    """A warm-up longer than the run, or than the rise of a schedule that warms up itself."""
    w, a = stepping.warmup.steps, stepping.args
    if not w:
        return []
    if w > steps:
        return [
            f"the warm-up ({w} steps) is longer than the run ({steps} optimizer steps): the lr "
            "never reaches the schedule. Lower scheduler.warmup.steps (or .epochs)."
        ]
    rise = None  # the schedule's own warm-up phase, in optimizer steps
    if stepping.interval == "step" and stepping.name == "OneCycleLR":
        rise = round(a["pct_start"] * a["total_steps"])
    elif stepping.interval == "step" and stepping.name == "CyclicLR":
        rise = _cyclic_rise(a)
    if rise is not None and w > rise:
        return [
            f"the warm-up ({w} steps) is longer than {stepping.name}'s own rise ({rise} steps), "
            f"which it duplicates: the two multiply. Use scheduler.warmup.steps <= {rise}, or "
            "no warm-up."
        ]
    return []


def _cyclic_rise(a: dict[str, Any]) -> int:
    """CyclicLR's step_size_up (torch's default 2000 when unset)."""
    return a.get("step_size_up") or 2000


def _total_decay(name: str, a: dict[str, Any], length: int) -> float | None:
    """The lr's factor between the first and the last interval, for the simple decays."""
    try:
        if name == "ExponentialLR":
            return a["gamma"] ** max(length - 1, 0)
        if name == "StepLR":
            return a["gamma"] ** ((length - 1) // a["step_size"])
    except (OverflowError, KeyError, ZeroDivisionError):
        pass
    return None
