"""Composites inside composites (lrrun.schedule.nested): real CLI runs against torch's own classes.

The oracle: each segment of a SequentialLR is its child run alone, from the initial lr, with
torch's classes on a dummy parameter - which is what torch does for a plain child, and what
lrrun's nested composites do for a composite one (torch 2.x itself crashes at the switch).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.optim.lr_scheduler as lrs

from lrrun.schedule.nested import NestedChainedScheduler
from tests.conftest import TINY, TINY_STEPS_PER_EPOCH, assert_ok, read_csv, run_cli

T = "torch.optim.lr_scheduler"
CHAIN = (
    f"{{_target_:{T}.ChainedScheduler,_partial_:true,schedulers:{{"
    f"exp:{{_target_:{T}.ExponentialLR,_partial_:true,gamma:0.9}},"
    f"step:{{_target_:{T}.StepLR,_partial_:true,step_size:2,gamma:0.5}}}}}}"
)
CONST = f"{{_target_:{T}.ConstantLR,_partial_:true,factor:0.1,total_iters:2}}"
# torch's example: SequentialLR of [ConstantLR, ChainedScheduler of [ExponentialLR, StepLR]]
TWO_LEVELS = [
    "scheduler=sequential_lr",
    "~scheduler.schedulers.warmup",
    "~scheduler.schedulers.cosine",
    "scheduler.milestones=[2]",
    f"+scheduler.schedulers.const={CONST}",
    f"+scheduler.schedulers.chain={CHAIN}",
]
# SequentialLR of [LinearLR, SequentialLR of [ConstantLR, ChainedScheduler of [...]]]
THREE_LEVELS = [
    "scheduler=sequential_lr",
    "~scheduler.schedulers.cosine",
    "scheduler.schedulers.warmup.start_factor=0.5",
    "scheduler.schedulers.warmup.total_iters=1",
    f"+scheduler.schedulers.inner={{_target_:{T}.SequentialLR,_partial_:true,milestones:[2],"
    f"schedulers:{{const:{CONST},chain:{CHAIN}}}}}",
]
LR = 0.01


def alone(make, n: int) -> list[float]:
    """The lr of ``n`` intervals of the scheduler ``make(optimizer)`` on its own."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    scheduler, out = make(opt), []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    return out


def chain(opt: torch.optim.Optimizer) -> lrs.ChainedScheduler:
    return lrs.ChainedScheduler(
        [lrs.ExponentialLR(opt, gamma=0.9), lrs.StepLR(opt, step_size=2, gamma=0.5)], opt
    )


def const(opt: torch.optim.Optimizer) -> lrs.ConstantLR:
    return lrs.ConstantLR(opt, factor=0.1, total_iters=2)


def expected(levels: int, epochs: int) -> list[float]:
    if levels == 2:
        return alone(const, 2) + alone(chain, epochs - 2)
    warm = alone(lambda o: lrs.LinearLR(o, start_factor=0.5, total_iters=1), 1)
    return warm + alone(const, 2) + alone(chain, epochs - 3)


def per_epoch(steps: list[dict[str, str]]) -> list[float]:
    return [float(r["lr"]) for r in steps[::TINY_STEPS_PER_EPOCH]]


@pytest.mark.parametrize(
    ("levels", "args"),
    [(2, TWO_LEVELS), pytest.param(3, THREE_LEVELS, marks=pytest.mark.slow)],
)
def test_nested_composites_follow_torch_segment_by_segment(
    tmp_path: Path, levels: int, args: list[str]
) -> None:
    proc = run_cli([*TINY, "optimizer.lr=0.01", *args, "hydra.run.dir=run"], tmp_path)
    assert_ok(proc)
    steps = read_csv(tmp_path / "run" / "steps.csv")
    got, want = per_epoch(steps), expected(levels, 6)
    assert len(set(want)) >= 4  # the schedule moves at every level
    for g, w in zip(got, want, strict=True):
        assert math.isclose(g, w, rel_tol=1e-12), (got, want)
    assert "ChainedScheduler(" in proc.stdout and "ExponentialLR(gamma=0.9)" in proc.stdout
    # lrrun-preview steps the same schedule without training
    preview = run_cli(
        [*TINY, "optimizer.lr=0.01", *args, "hydra.run.dir=p"], tmp_path, prog="lrrun-preview"
    )
    assert_ok(preview)
    assert [r["lr"] for r in read_csv(tmp_path / "p" / "preview.csv")] == [r["lr"] for r in steps]


@pytest.mark.slow
def test_nested_per_step(tmp_path: Path) -> None:
    """interval=step: the lengths and milestones count optimizer steps at every level."""
    proc = run_cli(
        [*TINY, "optimizer.lr=0.01", *TWO_LEVELS, "scheduler.interval=step", "hydra.run.dir=run"],
        tmp_path,
    )
    assert_ok(proc)
    got = [float(r["lr"]) for r in read_csv(tmp_path / "run" / "steps.csv")]
    n = 6 * TINY_STEPS_PER_EPOCH
    want = alone(const, 2) + alone(chain, n - 2)
    assert all(math.isclose(g, w, rel_tol=1e-12) for g, w in zip(got, want, strict=True))


def test_composite_first_child_takes_no_extra_step() -> None:
    """torch alone skips a composite first child's first value (and warns); lrrun's not."""

    def nested_first(opt: torch.optim.Optimizer) -> lrs.SequentialLR:
        inner = NestedChainedScheduler(chain(opt)._schedulers, opt)
        return lrs.SequentialLR(opt, [inner, const(opt)], milestones=[3])

    assert alone(nested_first, 6) == pytest.approx(alone(chain, 3) + alone(const, 3), rel=1e-12)


def test_plateau_stays_refused_inside_composites(tmp_path: Path) -> None:
    plateau = f"{{_target_:{T}.ReduceLROnPlateau,_partial_:true}}"
    proc = run_cli(
        [*TINY, "scheduler=chained_scheduler", f"+scheduler.schedulers.plateau={plateau}"], tmp_path
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "scheduler.schedulers.plateau is ReduceLROnPlateau, which cannot be a child" in (
        proc.stderr
    )
