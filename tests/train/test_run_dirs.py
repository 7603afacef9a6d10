"""Run dirs that nothing loses: two runs started together never share one, a second process
aimed at a dir a run is training in is refused before it writes anything, and a killed run's
dir is never overwritten by anything but its resume (issue 25, parts 1 and 2)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import TINY, _epochs_done, assert_ok, read_csv, run_cli

LONG = [
    *[a for a in TINY if not a.startswith(("dataset.train_size", "trainer.epochs"))],
    "dataset.train_size=8192",
    "trainer.epochs=40",
]


def digest(run_dir: Path) -> dict[str, str]:
    """Every file of the run dir (Hydra's .hydra/ too) by content."""
    return {
        str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file()
    }


def start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return subprocess.Popen(
        [sys.executable, "-m", "lrrun", *args],
        cwd=cwd,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )


def wait_for_an_epoch(proc: subprocess.Popen[str], run_dir: Path) -> None:
    deadline = time.monotonic() + 120
    while _epochs_done(run_dir) < 1:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no finished epoch after 120 s"
        time.sleep(0.02)


@pytest.mark.slow
def test_runs_started_together_get_their_own_dirs(tmp_path: Path) -> None:
    """Four runs with the default dated dir, in the same second: four dirs, four good runs."""
    procs = [start([*TINY, "trainer.epochs=2", f"trainer.seed={s}"], tmp_path) for s in range(4)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    dirs = sorted(d for d in (tmp_path / "outputs").glob("*/*") if d.is_dir())
    assert len(dirs) == 4
    seeds = set()
    for d in dirs:
        assert len(read_csv(d / "metrics.csv")) == 2 and len(read_csv(d / "steps.csv")) == 8
        seeds.add((d / ".hydra" / "overrides.yaml").read_text())
    assert len(seeds) == 4  # each dir holds its own run


@pytest.mark.slow
def test_a_busy_and_a_killed_run_dir_are_never_overwritten(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    args = [*LONG, "hydra.run.dir=run"]
    first = start(args, tmp_path)
    try:
        wait_for_an_epoch(first, run_dir)
        for other in ([*args], [*LONG, "trainer.resume=run", "hydra.run.dir=elsewhere"]):
            proc = run_cli(other, tmp_path)
            assert proc.returncode == 2 and "Traceback" not in proc.stderr
            assert "another lrrun process is training in" in proc.stderr
        assert not (tmp_path / "elsewhere").exists()
    finally:
        first.send_signal(signal.SIGKILL)  # as the OOM killer or a node failure would
        first.communicate(timeout=60)
    before = digest(run_dir)
    again = run_cli(args, tmp_path)  # a scheduler's requeue: the same command, no resume
    assert again.returncode == 2 and "Traceback" not in again.stderr
    text = " ".join(again.stderr.split())
    assert "holds a run that was killed (status running, and no process holds its lock)" in text
    assert "Resume it with: lrrun" in text and f"trainer.resume={run_dir}" in text
    assert digest(run_dir) == before  # .hydra/ included: nothing was written
    assert_ok(run_cli([*LONG, "trainer.resume=run", "hydra.run.dir=resumed"], tmp_path))
    assert len(read_csv(run_dir / "metrics.csv")) == 40
    assert_ok(run_cli([*LONG, "hydra.run.dir=full"], tmp_path))
    assert read_csv(run_dir / "steps.csv") == read_csv(tmp_path / "full" / "steps.csv")
