"""Failures in the middle of a run: a run dir that stops taking files ends the run with one
line and status "failed" (never "running"), and a user's model that raises keeps its
traceback and is told how to resume. Each through the CLI, in a fresh interpreter."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import assert_ok, read_csv, run_cli

ARGS = [
    "dataset=synthetic",
    "dataset.train_size=256",
    "dataset.val_size=64",
    "dataset.test_size=64",
    "trainer.batch_size=32",
    "trainer.device=cpu",
    "trainer.progress=false",
    "trainer.epochs=4",
]
ENV = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}

# A disk that fills up during epoch 3: the OS's ENOSPC, raised where the OS raises it for the
# checkpoint's write (a full disk cannot be made here without root's mount).
FULL_AT_EPOCH_3 = """
import errno, sys
import lrrun.train.checkpoint as checkpoint
from lrrun.files import atomic_write

def write(state, path):
    if state.get("epoch", 0) >= 3:
        raise OSError(errno.ENOSPC, "No space left on device", str(path.parent / ".checkpoint.pt.x"))
    with atomic_write(path, "wb") as f:
        checkpoint.torch.save(state, f)

checkpoint.save_atomic = write
sys.argv = ["lrrun", *sys.argv[1:]]
from lrrun.cli import main
main()
"""


def status(run_dir: Path) -> dict:
    return json.loads((run_dir / "status.json").read_text())


def test_a_file_size_limit_ends_the_run_with_one_line(tmp_path: Path) -> None:
    """The OS refuses the checkpoint for real (RLIMIT_FSIZE: "File too large") at the end of
    epoch 1: one line, exit 1, status failed with the OS's words, the logged rows kept."""

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))

    proc = subprocess.run(
        [sys.executable, "-m", "lrrun", *ARGS, "hydra.run.dir=run"],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=small_files,
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [x for x in proc.stderr.splitlines() if x.startswith("error: ")]
    assert len(errors) == 1 and "stopped taking the run's files (File too large)" in errors[0]
    assert "no epoch was saved: run it again" in errors[0]
    end = status(tmp_path / "run")
    assert (end["status"], end["message"]) == ("failed", "File too large")
    assert len(read_csv(tmp_path / "run" / "metrics.csv")) == 1


@pytest.mark.slow
def test_a_disk_full_mid_run_keeps_what_was_saved_and_resumes(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", FULL_AT_EPOCH_3, *ARGS, "hydra.run.dir=run"],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    line = next(x for x in proc.stderr.splitlines() if x.startswith("error: "))
    assert "stopped taking the run's files (No space left on device" in line
    assert "every completed epoch is saved in" in line and "Resume with: lrrun" in line
    end = status(tmp_path / "run")
    assert end["status"] == "failed" and end["epoch"] == 2
    assert end["message"].startswith("No space left on device")
    # space freed: the printed command finishes the run
    assert_ok(run_cli([*ARGS, "trainer.resume=run"], tmp_path))
    assert status(tmp_path / "run")["status"] == "ok"
    assert [r["epoch"] for r in read_csv(tmp_path / "run" / "metrics.csv")] == ["1", "2", "3", "4"]


BAD_NET = """
import torch
from torch import nn


class Net(nn.Module):
    '''Trains well for 20 steps, then a bug of the user's own.'''

    def __init__(self, num_classes: int, input_shape) -> None:
        super().__init__()
        self.fc = nn.Linear(int(torch.tensor(input_shape).prod()), num_classes)
        self.calls = 0

    def forward(self, x):
        if self.training:
            self.calls += 1
            if self.calls > 20:
                raise ValueError("my own bug at call 21")
        return self.fc(x.flatten(1))
"""


def test_a_user_model_that_raises_keeps_its_traceback_and_says_how_to_resume(
    tmp_path: Path,
) -> None:
    (tmp_path / "mynet.py").write_text(BAD_NET)
    proc = run_cli(
        [*ARGS, "model=custom", "model._target_=mynet.Net", "hydra.run.dir=run"],
        tmp_path,
        fresh=True,
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" in proc.stderr and "mynet.py" in proc.stderr  # theirs to read
    assert "ValueError: my own bug at call 21" in proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("error: the run failed with ValueError (traceback above)"), line
    assert "every completed epoch is saved in" in line and "Resume with: lrrun " in line
    assert "trainer.resume=" in line
    end = status(tmp_path / "run")
    assert (end["status"], end["epoch"]) == ("failed", 2)  # 8 steps an epoch: 2 saved
