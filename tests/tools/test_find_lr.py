"""lrrun-find-lr on the synthetic set: the lr schedule it records, its suggestions, its stop."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from lrrun.tools.find_lr import lr_at, suggest
from tests.conftest import TINY, assert_ok, read_csv, run_cli

ARGS = [
    *TINY,
    "dataset.train_size=512",
    "find_lr.steps=60",
    "find_lr.min_lr=1e-5",
    "find_lr.max_lr=10",
    "hydra.run.dir=f",
]


def test_range_test_records_the_lr_used_and_suggests_inside_the_range(tmp_path: Path) -> None:
    proc = run_cli([*ARGS, "find_lr.diverge=1000"], tmp_path, prog="lrrun-find-lr")
    assert_ok(proc)
    rows = read_csv(tmp_path / "f" / "find_lr.csv")
    assert len(rows) >= 10
    for i, r in enumerate(rows):  # exactly the geometric schedule, as the optimizer used it
        assert float(r["lr"]) == pytest.approx(lr_at(i, 60, 1e-5, 10.0, "exp"), rel=1e-12)
    tips = suggest([{k: float(v) for k, v in r.items()} for r in rows])
    for name in ("steepest", "min_loss/10"):
        assert 1e-6 <= tips[name] <= 10, name
        assert f"{tips[name]:.2e}" in proc.stdout
    assert f"scheduler=one_cycle_lr scheduler.max_lr={tips['min_loss/10']:.2e}" in proc.stdout
    assert f"scheduler.base_lr={tips['min_loss/10'] / 4:.2e}" in proc.stdout
    assert (tmp_path / "f" / "find_lr.png").stat().st_size > 10_000
    # It trains a fresh model and saves nothing a later run could pick up.
    assert sorted(p.name for p in (tmp_path / "f").iterdir() if not p.name.startswith(".")) == [
        "find_lr.csv",
        "find_lr.png",
        "lrrun-find-lr.log",
        "status.json",
    ]


def test_stops_early_when_the_loss_diverges(tmp_path: Path) -> None:
    proc = run_cli(
        [*ARGS, "find_lr.max_lr=1e6", "find_lr.diverge=2"], tmp_path, prog="lrrun-find-lr"
    )
    assert_ok(proc)
    rows = read_csv(tmp_path / "f" / "find_lr.csv")
    assert len(rows) < 60 and "stopped: the loss diverged" in proc.stdout
    last = float(rows[-1]["smoothed_loss"])
    best = min(float(r["smoothed_loss"]) for r in rows[:-1])
    assert not math.isfinite(last) or last > 2 * best


def test_linear_mode_and_bad_range(tmp_path: Path) -> None:
    assert lr_at(0, 5, 0.1, 0.5, "linear") == 0.1 and lr_at(4, 5, 0.1, 0.5, "linear") == 0.5
    assert lr_at(2, 5, 0.1, 0.5, "linear") == pytest.approx(0.3)
    proc = run_cli(
        [*ARGS, "find_lr.min_lr=1", "find_lr.max_lr=0.1"], tmp_path, prog="lrrun-find-lr"
    )
    assert (
        proc.returncode == 2 and "find_lr.min_lr=1 must be below find_lr.max_lr=0.1" in proc.stderr
    )
    proc = run_cli([*ARGS, "find_lr.mode=cubic"], tmp_path, prog="lrrun-find-lr")
    assert proc.returncode == 2 and "find_lr.mode='cubic' is not allowed" in proc.stderr


def test_a_find_lr_sweep_is_not_reported_as_failed_training(tmp_path: Path) -> None:
    args = [
        "-m",
        *[a for a in ARGS if not a.startswith("hydra.")],
        "optimizer=sgd,adam",
        "find_lr.steps=20",
        "hydra.sweep.dir=sw",
    ]
    proc = run_cli(args, tmp_path, prog="lrrun-find-lr")
    assert_ok(proc)
    assert (tmp_path / "sw" / "1" / "find_lr.csv").is_file()
    assert not (tmp_path / "sw" / "summary.csv").exists()


def test_the_printed_commands_train_the_user_s_model(tmp_path: Path) -> None:
    """Each suggestion is a whole command: the user's overrides (here a model and a
    scheduler of their own) kept, find_lr.* dropped, a new scheduler's keys replacing the
    old one's. Pasted, it trains the user's model at the suggested lr."""
    import shlex

    mine = ["model=fashion_mnist_net", "scheduler=exponential_lr", "scheduler.gamma=0.9"]
    proc = run_cli([*ARGS, *mine], tmp_path, prog="lrrun-find-lr")
    assert_ok(proc)
    lines = {line.split()[0]: line for line in proc.stdout.splitlines() if line.strip()}
    command = lambda line: shlex.split(line[line.index("lrrun ") :])  # noqa: E731
    steepest = command(lines["steepest"])
    assert steepest[0] == "lrrun" and "model=fashion_mnist_net" in steepest
    assert not any(a.startswith("find_lr.") for a in steepest)
    assert "scheduler.gamma=0.9" in steepest and steepest[-1].startswith("optimizer.lr=")
    cycle = command(lines["one_cycle_lr"])
    assert "scheduler=one_cycle_lr" in cycle and "scheduler.gamma=0.9" not in cycle
    trained = run_cli([*steepest[1:], "trainer.epochs=1", "hydra.run.dir=pasted"], tmp_path)
    assert_ok(trained)
    assert "FashionMNISTNet" in trained.stdout
    assert steepest[-1] in (tmp_path / "pasted" / ".hydra" / "overrides.yaml").read_text()
