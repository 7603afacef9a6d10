"""scheduler.warmup (lrrun.schedule.warmup): real CLI runs against torch's own schedulers replayed on a
dummy parameter, times w(k) = start_factor + (1 - start_factor) (k - 1) / W for k <= W."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.optim.lr_scheduler as lrs
import yaml

from lrrun.schedule.warmup import Warmup, warmed_up
from tests.conftest import TINY, TINY_STEPS_PER_EPOCH, assert_ok, read_csv, run_cli
from tests.schedule.test_schedules import replay

EPOCHS = 6
N = EPOCHS * TINY_STEPS_PER_EPOCH


def w(k: int, steps: int, start: float) -> float:
    return start + (1 - start) * (k - 1) / steps if k <= steps else 1.0


def logged(job: Path) -> list[float]:
    return [float(r["lr"]) for r in read_csv(job / "steps.csv")]


def assert_warmed(job: Path, expected_schedule: list[float], steps: int, start: float) -> None:
    got = logged(job)
    want = [lr * w(k, steps, start) for k, lr in enumerate(expected_schedule, start=1)]
    assert len(got) == N
    for k, (g, e) in enumerate(zip(got, want, strict=True), start=1):
        assert g == e or math.isclose(g, e, rel_tol=1e-12), (k, got, want)
    assert got[0] == expected_schedule[0] * start  # 0 when start_factor is 0


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, float], Path]:
    """4 schedulers x start_factor 0 / 0.5, W = 6 steps (one and a half epochs)."""
    cwd = tmp_path_factory.mktemp("warmup")
    proc = run_cli(
        [
            "-m",
            *TINY,
            "scheduler=step_lr,exponential_lr,one_cycle_lr,sequential_lr",
            "scheduler.warmup.steps=6",
            "scheduler.warmup.start_factor=0.0,0.5",
            "hydra.sweep.dir=sw",
        ],
        cwd,
    )
    assert_ok(proc)
    jobs = {}
    for job in (cwd / "sw").iterdir():
        if job.is_dir() and (job / "steps.csv").is_file():
            hydra = yaml.safe_load((job / ".hydra" / "hydra.yaml").read_text())["hydra"]
            start = yaml.safe_load((job / ".hydra" / "config.yaml").read_text())["scheduler"]
            jobs[(hydra["runtime"]["choices"]["scheduler"], start["warmup"]["start_factor"])] = job
    return jobs


@pytest.mark.parametrize("start", [0.0, 0.5])
@pytest.mark.parametrize("name", ["step_lr", "exponential_lr", "one_cycle_lr", "sequential_lr"])
def test_warmup_multiplies_torchs_schedule(sweep, name: str, start: float) -> None:
    job = sweep[(name, start)]
    interval = "step" if name == "one_cycle_lr" else "epoch"
    assert_warmed(job, replay(job, name, interval, EPOCHS, TINY_STEPS_PER_EPOCH), 6, start)


@pytest.mark.slow
def test_after_the_warmup_the_run_is_the_run_without_one(sweep, tmp_path: Path) -> None:
    """From step W+1 on, the lr is bit for bit the lr without warm-up: the factor never
    leaked into a chainable scheduler (ExponentialLR, StepLR) nor a closed-form one."""
    proc = run_cli(
        ["-m", *TINY, "scheduler=step_lr,exponential_lr,one_cycle_lr", "hydra.sweep.dir=plain"],
        tmp_path,
    )
    assert_ok(proc)
    for num, name in enumerate(("step_lr", "exponential_lr", "one_cycle_lr")):
        plain = [r["lr"] for r in read_csv(tmp_path / "plain" / str(num) / "steps.csv")]
        warmed = [r["lr"] for r in read_csv(sweep[(name, 0.0)] / "steps.csv")]
        assert warmed[6:] == plain[6:], name  # the CSV strings: exact floats
        assert warmed[:6] != plain[:6], name


def test_warmup_epochs_per_step_cosine(tmp_path: Path) -> None:
    """warmup.epochs = 2 -> W = 8 steps, in front of a per-step cosine."""
    proc = run_cli(
        [
            *TINY,
            "scheduler=cosine_annealing_lr",
            "scheduler.interval=step",
            "scheduler.warmup.epochs=2",
            "scheduler.warmup.start_factor=0.5",
            "hydra.run.dir=run",
        ],
        tmp_path,
    )
    assert_ok(proc)
    assert "warmup     8 steps from 0.5 (x the schedule)" in proc.stdout
    job = tmp_path / "run"
    schedule = replay(job, "cosine_annealing_lr", "step", EPOCHS, TINY_STEPS_PER_EPOCH)
    assert_warmed(job, schedule, 8, 0.5)


def test_warmup_before_reduce_lr_on_plateau(tmp_path: Path) -> None:
    """Plateau on val_acc (max) sees every epoch's metric; the warm-up multiplies its lr."""
    proc = run_cli(
        [
            *TINY,
            "optimizer.lr=0.05",
            "scheduler=reduce_lr_on_plateau",
            "scheduler.monitor=val_acc",
            "scheduler.patience=0",
            "scheduler.factor=0.5",
            "scheduler.threshold=0.5",
            "scheduler.warmup.steps=6",
            "hydra.run.dir=run",
        ],
        tmp_path,
    )
    assert_ok(proc)
    job = tmp_path / "run"
    cfg = yaml.safe_load((job / ".hydra" / "config.yaml").read_text())["scheduler"]
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.05)
    plateau = lrs.ReduceLROnPlateau(
        opt, mode="max", factor=0.5, patience=0, threshold=cfg["threshold"]
    )
    schedule = []
    for row in read_csv(job / "metrics.csv"):
        schedule += [opt.param_groups[0]["lr"]] * TINY_STEPS_PER_EPOCH
        plateau.step(float(row["val_acc"]))
    assert len(set(schedule)) > 1, "the plateau must cut the lr for this test to mean anything"
    assert_warmed(job, schedule, 6, 0.0)


def test_preview_shows_the_warmup_as_training_uses_it(sweep, tmp_path: Path) -> None:
    job = sweep[("exponential_lr", 0.5)]
    proc = run_cli(
        [
            *TINY,
            "scheduler=exponential_lr",
            "scheduler.warmup.steps=6",
            "scheduler.warmup.start_factor=0.5",
            "hydra.run.dir=p",
        ],
        tmp_path,
        prog="lrrun-preview",
    )
    assert_ok(proc)
    previewed = [r["lr"] for r in read_csv(tmp_path / "p" / "preview.csv")]
    assert previewed == [r["lr"] for r in read_csv(job / "steps.csv")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["scheduler.warmup.steps=4", "scheduler.warmup.epochs=1"], "are both set"),
        (["scheduler.warmup.start_factor=1.5"], "scheduler.warmup.start_factor=1.5"),
        (["scheduler.warmup.steps=-2"], "scheduler.warmup.steps=-2"),
        (["scheduler.warmup.epochs=0.5"], "scheduler.warmup.epochs=0.5"),
        (["scheduler.warmup=5"], "scheduler.warmup=5 must be a mapping"),
        (["+scheduler.warmup.stpes=4"], "scheduler.warmup.stpes is not a known key"),
        (
            ["scheduler=sequential_lr", "+scheduler.schedulers.warmup.warmup={steps:2}"],
            "scheduler.schedulers.warmup.warmup: a warm-up applies to the whole schedule",
        ),
    ],
)
def test_bad_warmups_are_clear_errors(tmp_path: Path, args: list[str], message: str) -> None:
    proc = run_cli([*TINY, *args], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_warmed_up_restores_the_exact_scheduled_values() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.3})
    with warmed_up(opt, 1 / 3):
        assert [g["lr"] for g in opt.param_groups] == [0.1 * (1 / 3), 0.3 * (1 / 3)]
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.3]  # not 0.1 * (1/3) * 3
    with pytest.raises(RuntimeError), warmed_up(opt, 0.5):
        raise RuntimeError
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.3]
    assert [Warmup(4, 0.0).factor(k) for k in range(1, 7)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    assert Warmup().factor(1) == 1.0
