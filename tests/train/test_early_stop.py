"""trainer.early_stop: Lightning's EarlyStopping rule on the metrics rows; the run stops at the
right epoch with status stopped_early, tests its best epoch, resumes deciding exactly as the
unstopped run, and the sweep's verdict says which configs stopped early."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lrrun.train.early_stop import EarlyStop
from tests.conftest import assert_ok, read_csv, run_cli

ARGS = [
    "dataset=synthetic",
    "trainer.device=cpu",
    "trainer.progress=false",
    "trainer.plot=false",
    "trainer.epochs=20",
    "trainer.early_stop.patience=2",
]


def rows(metric: str, values: list[float]) -> list[dict]:
    return [{"epoch": i, metric: v} for i, v in enumerate(values, 1)]


@pytest.mark.parametrize(
    ("metric", "higher", "min_delta", "values", "stop"),
    [
        ("val_loss", False, 0.0, [1.0, 0.9, 0.95, 0.91, 0.5], 4),  # 2 epochs without a new low
        ("val_loss", False, 0.0, [1.0, 0.9, 0.89, 0.88, 0.87], None),  # always improving
        ("val_loss", False, 0.05, [1.0, 0.9, 0.89, 0.88, 0.87], 4),  # by too little: 0.89, 0.88
        ("val_acc", True, 0.0, [0.5, 0.6, 0.6, 0.7, 0.7, 0.7], 6),  # equal is no improvement
        ("val_acc", True, 0.0, [0.5, 0.4, 0.45, 0.9], 3),
    ],
)
def test_the_rule_is_lightnings(metric, higher, min_delta, values, stop) -> None:
    """improved: value < best - min_delta (losses) or > best + min_delta (accuracy); stop
    after ``patience`` epochs in a row without it."""
    stopper = EarlyStop(metric, higher, patience=2, min_delta=min_delta)
    said = [stopper.update(r) for r in rows(metric, values)]
    first = said.index(True) + 1 if True in said else None
    assert first == stop and stopper.stopped_after == stop


def test_a_run_stops_at_the_right_epoch(tmp_path: Path) -> None:
    """lr 1e-12 (no learning): val_acc is the same every epoch, so the run stops after epoch
    1 + patience; status stopped_early, exit 0, the test split evaluated on epoch 1."""
    proc = run_cli([*ARGS, "optimizer.lr=1e-12", "hydra.run.dir=run"], tmp_path)
    assert_ok(proc)
    metrics = read_csv(tmp_path / "run" / "metrics.csv")
    assert [r["epoch"] for r in metrics] == ["1", "2", "3"]
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["status"] == "stopped_early" and status["epoch"] == 3
    assert status["stopped_early"]["after_epoch"] == 3 and status["test"]["epoch"] == 1
    assert "stopped early after epoch 3: val_acc has not improved" in proc.stdout


def test_a_resumed_run_stops_where_the_unstopped_one_did(tmp_path: Path) -> None:
    fast = [*ARGS, "optimizer.lr=0.5"]
    assert_ok(run_cli([*fast, "hydra.run.dir=whole"], tmp_path))
    whole = read_csv(tmp_path / "whole" / "metrics.csv")
    stop = len(whole)
    assert 4 <= stop < 20, "the config must stop early, and late enough to cut before it"
    cut = [a if a != "trainer.epochs=20" else f"trainer.epochs={stop - 2}" for a in fast]
    assert_ok(run_cli([*cut, "hydra.run.dir=cut"], tmp_path))
    assert json.loads((tmp_path / "cut" / "status.json").read_text())["status"] == "ok"
    assert_ok(run_cli([*fast, "trainer.resume=cut"], tmp_path))
    resumed = read_csv(tmp_path / "cut" / "metrics.csv")
    drop = lambda rs: [{k: v for k, v in r.items() if k != "epoch_time_s"} for r in rs]  # noqa: E731
    assert drop(resumed) == drop(whole)
    assert json.loads((tmp_path / "cut" / "status.json").read_text())["status"] == "stopped_early"


def test_the_verdict_names_configs_that_stopped_early(tmp_path: Path) -> None:
    proc = run_cli(
        ["-m", *ARGS, "optimizer.lr=1e-12,0.01", "trainer.epochs=4", "hydra.sweep.dir=sweep"],
        tmp_path,
    )
    assert_ok(proc)
    summary = read_csv(tmp_path / "sweep" / "summary.csv")
    assert sorted(r["status"] for r in summary)[-1] == "stopped_early"
    assert (
        "optimizer.lr=1e-12: 1 of 1 run(s) stopped early (trainer.early_stop, after epoch 3)"
        in (" ".join(proc.stdout.split()))
    )


def test_a_monitor_the_task_does_not_log_is_one_line(tmp_path: Path) -> None:
    proc = run_cli([*ARGS, "trainer.early_stop.monitor=val_r2", "hydra.run.dir=run"], tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "trainer.early_stop.monitor=val_r2 is not a metric this task logs" in proc.stderr
