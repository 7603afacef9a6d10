"""No orphans, no noise: the ranks of a data-parallel run die with their launcher, Ctrl-C
says one line, and a rank killed outright never leaves the run "running". Real signals to
real processes (gloo on CPU)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ARGS = [
    "dataset=synthetic",
    "trainer.epochs=40",
    "trainer.batch_size=16",
    "trainer.device=cpu",
    "trainer.progress=false",
    "trainer.plot=false",
    "hydra.run.dir=run",
]
ENV = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"} | {"OMP_NUM_THREADS": "1"}

pytestmark = pytest.mark.slow


def start(tmp_path: Path, torchrun: bool) -> subprocess.Popen[str]:
    """The run as a user starts it, in its own process group (as a terminal's job), once
    its first epoch is saved."""
    if torchrun:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        command = [
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            f"--master_port={port}",
            "-m",
            "lrrun",
            *ARGS,
        ]
    else:
        command = ["-m", "lrrun", *ARGS, "trainer.devices=2"]
    proc = subprocess.Popen(
        [sys.executable, *command],
        cwd=tmp_path,
        env=ENV,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while status(tmp_path).get("epoch", 0) < 1:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no epoch after 120 s"
        time.sleep(0.05)
    return proc


def status(tmp_path: Path) -> dict:
    try:
        return json.loads((tmp_path / "run" / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def ranks(launcher: int) -> list[int]:
    """The processes running lrrun's training under ``launcher`` (torchrun: its workers)."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid=,args="], capture_output=True, text=True)
    rows = [line.split(None, 2) for line in out.stdout.splitlines()]
    kids = [int(pid) for pid, ppid, _ in rows if int(ppid) == launcher]
    return sorted(kids)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is dead, waiting for its parent
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_ranks_die_with_their_launcher(tmp_path: Path) -> None:
    """SIGKILL of the trainer.devices=2 launcher: no rank alive 5 s later (they get SIGTERM,
    save and end as interrupted), and the run resumes from its dir."""
    proc = start(tmp_path, torchrun=False)
    children = ranks(proc.pid)
    assert len(children) == 2
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    time.sleep(5)
    left = [pid for pid in children if alive(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, "ranks outlived their launcher"
    assert status(tmp_path)["status"] == "interrupted"


def test_ctrl_c_under_two_ranks_is_one_line(tmp_path: Path) -> None:
    proc = start(tmp_path, torchrun=False)
    os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole group
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "frame #" not in err and "Traceback" not in err, err
    lines = [x for x in err.splitlines() if not x.startswith("warning: ")]
    assert len(lines) == 1 and "Resume with: lrrun " in lines[0], err
    assert status(tmp_path)["status"] == "interrupted"


@pytest.mark.parametrize("victim", [0, 1])
def test_a_rank_killed_under_torchrun_never_leaves_the_run_running(
    tmp_path: Path, victim: int
) -> None:
    """Rank 1 killed: rank 0 finds its peer gone and records it. Rank 0 killed: nobody holds
    the run dir any more, and the rank that outlives it records the end for it."""
    proc = start(tmp_path, torchrun=True)
    workers = ranks(proc.pid)
    assert len(workers) == 2
    os.kill(workers[victim], signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "frame #" not in err
    end = status(tmp_path)
    assert end["status"] == "failed", end
    assert "ended without a word (killed?)" in end["message"]
