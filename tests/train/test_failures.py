"""Runs that fail or are stopped keep what they did, say how to go on, and exit non-zero.
Real signals to real subprocesses, as a user's Ctrl-C or a cluster's SIGTERM."""

from __future__ import annotations

import json
import shlex
import signal
from pathlib import Path

import pytest

from tests.conftest import TINY, assert_ok, interrupt_after_first_epoch, read_csv, run_cli

# 128 steps per epoch, ~0.1-0.3 s per epoch: long enough to be interrupted mid-run.
LONG = [
    "dataset=synthetic",
    "dataset.train_size=4096",
    "dataset.test_size=256",
    "trainer.batch_size=32",
    "trainer.epochs=12",
    "trainer.device=cpu",
    "trainer.progress=false",
    "scheduler=exponential_lr",
    "scheduler.gamma=0.8",
]


def status(run_dir: Path) -> dict:
    return json.loads((run_dir / "status.json").read_text())


@pytest.mark.parametrize(
    ("sig", "code"),
    [(signal.SIGINT, 130), pytest.param(signal.SIGTERM, 143, marks=pytest.mark.slow)],
)
def test_signal_saves_prints_resume_command_and_resume_is_exact(tmp_path: Path, sig, code):
    run_dir = tmp_path / "run"
    proc = interrupt_after_first_epoch([*LONG, "hydra.run.dir=run"], tmp_path, run_dir, sig)
    err = proc.stderr
    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert status(run_dir)["status"] == "interrupted"
    done = len(read_csv(run_dir / "metrics.csv"))
    assert 1 <= done < 12, "the signal must land mid-run"
    line = next(x for x in err.splitlines() if "Resume with: " in x)
    command = shlex.split(line.split("Resume with: ", 1)[1])
    assert command[0] == "lrrun" and command[-1] == f"trainer.resume={run_dir}"
    assert_ok(run_cli(command[1:], tmp_path))
    assert status(run_dir)["status"] == "ok"
    assert_ok(run_cli([*LONG, "hydra.run.dir=full"], tmp_path))
    assert read_csv(run_dir / "steps.csv") == read_csv(tmp_path / "full" / "steps.csv")
    resumed, full = (read_csv(d / "metrics.csv") for d in (run_dir, tmp_path / "full"))
    drop = lambda rows: [{k: v for k, v in r.items() if k != "epoch_time_s"} for r in rows]  # noqa: E731
    assert drop(resumed) == drop(full)


@pytest.mark.slow
def test_the_printed_resume_command_works_for_any_run_dir_name(tmp_path: Path) -> None:
    """A dir name Hydra's lexer would refuse unquoted: the printed command, pasted into a
    shell, resumes it."""
    from lrrun.config.run_dirs import hydra_value

    name = "ü run, 2 [x]=(y)#"
    run_dir = tmp_path / name
    proc = interrupt_after_first_epoch(
        [*LONG, f"hydra.run.dir={hydra_value(name)}"], tmp_path, run_dir
    )
    assert proc.returncode == 130, proc.stderr
    line = next(x for x in proc.stderr.splitlines() if "Resume with: " in x)
    command = shlex.split(line.split("Resume with: ", 1)[1])
    assert_ok(run_cli(command[1:], tmp_path))
    assert status(run_dir)["status"] == "ok" and len(read_csv(run_dir / "metrics.csv")) == 12


def test_divergence_stops_with_epoch_step_lr_and_keeps_rows(tmp_path: Path) -> None:
    proc = run_cli([*TINY, "optimizer.lr=1e10", "hydra.run.dir=run"], tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "diverged: loss=nan at epoch " in proc.stderr or "diverged: loss=inf" in proc.stderr
    assert "(lr 1e+10)" in proc.stderr and "trainer.stop_on_nonfinite=false" in proc.stderr
    run_dir = tmp_path / "run"
    assert status(run_dir)["status"] == "diverged"
    steps = read_csv(run_dir / "steps.csv")
    bad = [r for r in steps if r["loss"] in ("nan", "inf")]
    assert bad, "the non-finite losses are logged"
    epoch = int(bad[0]["epoch"])
    assert f"at epoch {epoch}, step {bad[0]['step']} " in proc.stderr
    assert len(read_csv(run_dir / "metrics.csv")) == epoch - 1


def test_stop_on_nonfinite_false_keeps_training(tmp_path: Path) -> None:
    args = [*TINY, "optimizer.lr=1e10", "trainer.stop_on_nonfinite=false", "hydra.run.dir=run"]
    proc = run_cli(args, tmp_path)
    assert_ok(proc)
    assert len(read_csv(tmp_path / "run" / "metrics.csv")) == 6
    assert status(tmp_path / "run")["status"] == "ok"


def test_sweep_goes_on_past_a_diverged_and_a_failed_job(tmp_path: Path) -> None:
    args = ["-m", *TINY, "optimizer.lr=1e10,0.01", "scheduler.gamma=0.5,-1", "hydra.sweep.dir=sw"]
    proc = run_cli(args, tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    statuses = {d.name: status(d)["status"] for d in (tmp_path / "sw").iterdir() if d.is_dir()}
    # jobs: (1e10, 0.5) diverged, (1e10, -1) failed, (0.01, 0.5) ok, (0.01, -1) failed
    assert statuses == {"0": "diverged", "1": "failed", "2": "ok", "3": "failed"}
    assert len(read_csv(tmp_path / "sw" / "2" / "metrics.csv")) == 6
    assert "3 job(s) did not finish ok" in proc.stderr
    assert "scheduler.gamma=-1 is not allowed" in proc.stderr


NAN_IN_EVAL = '''
import torch
from torch import nn


class Net(nn.Module):
    """Trains normally; its eval-mode outputs are NaN (a broken BatchNorm would do this)."""

    def __init__(self, input_dim: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(input_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fc(x.flatten(1))
        return out if self.training or x.shape[0] <= 2 else out * float("nan")
'''


def test_a_non_finite_val_loss_ends_the_run_as_diverged(tmp_path: Path) -> None:
    """The plateau would otherwise cut the lr every epoch on NaN and the run end "ok" with a
    NaN test loss: the row is written, then the run stops, status diverged, exit 3."""
    (tmp_path / "nanval.py").write_text(NAN_IN_EVAL)
    proc = run_cli(
        [
            *TINY,
            "model=custom",
            "model._target_=nanval.Net",
            "scheduler=reduce_lr_on_plateau",
            "scheduler.patience=0",
            "hydra.run.dir=run",
        ],
        tmp_path,
    )
    assert proc.returncode == 3 and "Traceback" not in proc.stderr
    assert "diverged: val_loss=nan after epoch 1" in proc.stderr
    rows = read_csv(tmp_path / "run" / "metrics.csv")
    assert len(rows) == 1 and rows[0]["val_loss"] == "nan"
    assert json.loads((tmp_path / "run" / "status.json").read_text())["status"] == "diverged"
    assert len(read_csv(tmp_path / "run" / "events.csv")) == 0  # the plateau never acted
