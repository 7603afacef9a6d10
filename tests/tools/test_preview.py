"""lrrun-preview: the lr it shows is the lr training logs; its lint warnings; its output."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from lrrun.config.location import config_dir
from lrrun.errors import ConfigError
from lrrun.tools.preview import simulate, sparkline
from tests.conftest import TINY, assert_ok, read_csv, run_cli

SCHEDULES = [
    "step_lr",
    "one_cycle_lr",
    "cosine_annealing_warm_restarts",
    "sequential_lr",
    "cyclic_lr",
    "lambda_lr",
]


def preview_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_cli(args, cwd, prog="lrrun-preview")


def compose_preview(*overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose(config_name="preview", overrides=[*TINY, *overrides])


@pytest.mark.slow  # the default run keeps the param-group + momentum case (test_param_groups)
def test_preview_equals_training_lr(tmp_path: Path) -> None:
    """The same six schedules previewed (one multirun) and trained (one multirun)."""
    sweep = [f"scheduler={','.join(SCHEDULES)}"]
    proc = preview_cli(["-m", *TINY, *sweep, "hydra.sweep.dir=preview"], tmp_path)
    assert_ok(proc)
    assert_ok(
        run_cli(["-m", *TINY, *sweep, "trainer.plot=false", "hydra.sweep.dir=train"], tmp_path)
    )
    for job in range(len(SCHEDULES)):
        previewed = read_csv(tmp_path / "preview" / str(job) / "preview.csv")
        trained = read_csv(tmp_path / "train" / str(job) / "steps.csv")
        assert [(r["epoch"], r["step"], r["lr"]) for r in previewed] == [
            (r["epoch"], r["step"], r["lr"]) for r in trained
        ], SCHEDULES[job]
    # All schedules overlaid in one picture.
    assert (tmp_path / "preview" / "preview.png").stat().st_size > 10_000
    assert "scheduler=one_cycle_lr" in proc.stdout or "one_cycle_lr" in proc.stdout


def test_plateau_preview_replays_a_runs_metrics(compose_cfg, tmp_path: Path) -> None:
    from lrrun.train.runner import run

    args = [
        "scheduler=reduce_lr_on_plateau",
        "scheduler.patience=0",
        "scheduler.monitor=val_loss",
        "scheduler.threshold=0.5",
    ]
    run(compose_cfg(*args), tmp_path)
    cfg = compose_preview(*args, f"preview.metrics_csv={tmp_path / 'metrics.csv'}")
    _, rows, _ = simulate(cfg)
    assert [float(r["lr"]) for r in read_csv(tmp_path / "steps.csv")] == [r["lr"] for r in rows]
    assert len({r["lr"] for r in rows}) > 1  # the plateau did reduce


def test_plateau_preview_needs_a_metric_trace() -> None:
    with pytest.raises(ConfigError, match=r"preview.metrics=\[...\] \(6 values\)"):
        simulate(compose_preview("scheduler=reduce_lr_on_plateau"))
    with pytest.raises(ConfigError, match="has 2 value"):
        simulate(compose_preview("scheduler=reduce_lr_on_plateau", "preview.metrics=[1,2]"))
    _, rows, _ = simulate(
        compose_preview(
            "scheduler=reduce_lr_on_plateau",
            "scheduler.patience=0",
            "preview.metrics=[1.0,1.0,1.0,1.0,1.0,1.0]",
        )
    )
    # flat metric, patience 0: epoch 2 is no better than epoch 1 -> epoch 3 runs at 0.1x
    assert [rows[i]["lr"] for i in (4, 8, 12)] == pytest.approx([0.01, 0.001, 0.0001])


def test_console_facts_and_lint_warning(tmp_path: Path) -> None:
    proc = preview_cli(
        [*TINY, "scheduler=cosine_annealing_lr", "scheduler.T_max=3", "hydra.run.dir=p"], tmp_path
    )
    assert_ok(proc)
    assert "warning: scheduler.T_max=3 is shorter than the run (6 epochs)" in proc.stderr
    out = proc.stdout
    for key in ("scheduler", "plan", "lr", "start", "peak", "final", "changes", "wrote"):
        assert f"\n{key} " in f"\n{out}", key
    assert "6 epochs x 4 steps = 24 optimizer steps" in out
    assert "start      1.0000e-02" in out
    assert (tmp_path / "p" / "preview.png").is_file()


def test_sparkline_shape() -> None:
    assert sparkline([1.0] * 10) == "▄" * 10
    line = sparkline([float(i) for i in range(100)], width=8)
    assert line[0] == "▁" and line[-1] == "█" and len(line) == 8
