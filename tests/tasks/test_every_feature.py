"""The rest of lrrun per task: preview and find-lr, exact resume, the recipe features, the
pictures, the trackers' names and lrrun-report - each run as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lrrun.logs.trackers import epoch_point
from tests.conftest import assert_ok, read_csv, run_cli
from tests.sources import write_regression, write_text
from tests.tasks.test_language_model import TINY_GPT

FAST = ["trainer.device=cpu", "trainer.progress=false"]


@pytest.fixture
def tasks(tmp_path: Path) -> dict[str, list[str]]:
    """The arguments of a small run of each non-default task."""
    write_regression(tmp_path / "r.npz", n=160, features=3)
    write_text(tmp_path / "t.txt", 6_000)
    return {
        "regression": [
            "task=regression",
            "dataset=tensors",
            "dataset.path=r.npz",
            "trainer.batch_size=16",
        ],
        "language_model": [
            "dataset=text",
            "dataset.path=t.txt",
            *TINY_GPT,
            "dataset.steps_per_epoch=8",
        ],
    }


@pytest.mark.parametrize("task", ["regression", "language_model"])
def test_preview_is_what_training_logs(tmp_path: Path, tasks, task: str) -> None:
    args = [*tasks[task], "scheduler=one_cycle_lr", "trainer.epochs=2", "trainer.plot=false"]
    assert_ok(run_cli([*args, *FAST, "hydra.run.dir=run"], tmp_path))
    assert_ok(run_cli([*args, "hydra.run.dir=pv"], tmp_path, prog="lrrun-preview"))
    trained = [r["lr"] for r in read_csv(tmp_path / "run" / "steps.csv")]
    assert trained == [r["lr"] for r in read_csv(tmp_path / "pv" / "preview.csv")]


@pytest.mark.parametrize("task", ["regression", "language_model"])
def test_find_lr(tmp_path: Path, tasks, task: str) -> None:
    proc = run_cli(
        [
            *tasks[task],
            "find_lr.steps=30",
            "find_lr.plot=false",
            "trainer.device=cpu",
            "hydra.run.dir=fl",
        ],
        tmp_path,
        prog="lrrun-find-lr",
    )
    assert_ok(proc)
    rows = read_csv(tmp_path / "fl" / "find_lr.csv")
    assert len(rows) >= 10 and "steepest" in proc.stdout


@pytest.mark.slow
def test_regression_resumes_bit_exact(tmp_path: Path, tasks) -> None:
    args = [*tasks["regression"], "trainer.plot=false", *FAST]
    assert_ok(run_cli([*args, "trainer.epochs=4", "hydra.run.dir=full"], tmp_path))
    assert_ok(run_cli([*args, "trainer.epochs=2", "hydra.run.dir=part"], tmp_path))
    assert_ok(run_cli([*args, "trainer.epochs=4", "trainer.resume=part"], tmp_path))
    assert read_csv(tmp_path / "part" / "steps.csv") == read_csv(tmp_path / "full" / "steps.csv")
    best = [
        json.loads((tmp_path / d / "status.json").read_text())["test"] for d in ("part", "full")
    ]
    assert best[0] == best[1]  # the same epoch chosen by val_loss, the same test result


def test_recipe_features_on_a_language_model(tmp_path: Path, tasks) -> None:
    """bf16 autocast, 2 batches per optimizer step, clipping with its norm logged, warm-up,
    the plateau on val_ppl: 8 optimizer steps an epoch, as the schedule counts them."""
    args = [
        *tasks["language_model"],
        "trainer.precision=bf16",
        "trainer.accumulate=2",
        "trainer.clip_grad_norm=1.0",
        "scheduler=reduce_lr_on_plateau",
        "scheduler.monitor=val_ppl",
        "scheduler.warmup.steps=4",
        "trainer.epochs=2",
        *FAST,
        "hydra.run.dir=run",
    ]
    proc = run_cli(args, tmp_path)
    assert_ok(proc)
    steps = read_csv(tmp_path / "run" / "steps.csv")
    assert len(steps) == 16 and all(float(r["grad_norm"]) > 0 for r in steps)
    assert [float(r["lr"]) for r in steps[:4]] == pytest.approx([0.0, 2.5e-4, 5e-4, 7.5e-4])
    assert (tmp_path / "run" / "curves.png").stat().st_size > 10_000
    assert "monitor=val_ppl" in proc.stdout and "mode=min" in proc.stdout


@pytest.mark.slow
def test_pictures_and_report_per_task(tmp_path: Path, tasks) -> None:
    args = [
        "-m",
        *tasks["regression"],
        "optimizer.lr=0.01,0.001",
        "trainer.seed=1,2",
        "trainer.epochs=2",
        *FAST,
        "hydra.sweep.dir=sweep",
    ]
    proc = run_cli(args, tmp_path)
    assert_ok(proc)
    sweep = tmp_path / "sweep"
    assert (sweep / "0" / "curves.png").is_file() and (sweep / "sweep_curves.png").is_file()
    report = run_cli(["sweep"], tmp_path, prog="lrrun-report")
    assert_ok(report)
    out = " ".join(report.stdout.split())
    assert "best mean val_loss first" in out and "lower is better" in out
    summary = read_csv(sweep / "summary.csv")
    assert list(summary[0])[:6] == [
        "job",
        "optimizer.lr",
        "trainer.seed",
        "best_val_loss",
        "best_epoch",
        "test_loss",
    ]


def test_trackers_name_each_tasks_metrics() -> None:
    row = {
        "epoch": 3,
        "lr": 0.1,
        "train_loss": 2.0,
        "val_loss": 1.5,
        "val_mae": 1.0,
        "val_rmse": 1.2,
        "val_r2": 0.8,
        "test_loss": None,
        "epoch_time_s": 0.5,
    }
    assert epoch_point(row, 30) == (
        30,
        {
            "epoch": 3.0,
            "epoch_time_s": 0.5,
            "val/loss": 1.5,
            "val/mae": 1.0,
            "val/rmse": 1.2,
            "val/r2": 0.8,
        },
    )
    _, values = epoch_point(
        {
            "epoch": 1,
            "lr": 1e-3,
            "train_loss": 3.0,
            "val_loss": 2.0,
            "val_ppl": 7.39,
            "epoch_time_s": 1.0,
        },
        250,
    )
    assert values["val/ppl"] == 7.39 and "train/loss" not in values  # per step, from steps.csv
