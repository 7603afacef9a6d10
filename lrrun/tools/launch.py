"""``trainer.devices=N``: lrrun starts its N data-parallel processes itself, as torchrun would
(the same environment: RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR,
MASTER_PORT; OMP_NUM_THREADS = cores / N unless set), all writing the same run dir (rank 0
writes, lrrun.train.distributed). Unlike torchrun it hands back the exit code the run would
have as one process: rank 0's (130 Ctrl-C, 143 SIGTERM, 3 diverged, 2 a user error).

Signals: Ctrl-C in a terminal reaches every process of the group (the other ranks ignore it
and end with rank 0); SIGINT or SIGTERM sent to this process alone is passed on. When a rank
ends and another has not ended a minute later, it is sent SIGTERM. When this process dies,
even by SIGKILL, the ranks get SIGTERM (follow_launcher): none is left training, orphaned.
A rank killed outright is recorded in status.json (failed), never left "running".
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from lrrun.files import HELD_BY_PARENT, held

GRACE_S = 60.0


def launch(devices: int, overrides: list[str], run_dir: Path, extra_args: list[str]) -> int:
    """Run ``python -m lrrun`` as ``devices`` ranks in ``run_dir``; rank 0's exit code (or the
    first failing rank's, if rank 0 ended 0)."""
    with socket.socket() as s:  # a free port for the rendezvous (rank 0 hosts it)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = dict(os.environ) | {
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "WORLD_SIZE": str(devices),
        "LOCAL_WORLD_SIZE": str(devices),
    }
    base.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // devices)))
    base[HELD_BY_PARENT] = os.pathsep.join(map(str, held()))  # the ranks write where it holds
    base[FOLLOW] = str(os.getpid())  # they die with it (follow_launcher)
    command = [
        sys.executable,
        "-m",
        "lrrun",
        *extra_args,
        *overrides,
        f"hydra.run.dir={run_dir.resolve()}",
    ]
    procs = [
        subprocess.Popen(command, env=base | {"RANK": str(r), "LOCAL_RANK": str(r)})
        for r in range(devices)
    ]

    def forward(signum: int, frame: object) -> None:
        targets = procs[:1] if signum == signal.SIGINT else procs  # the others ignore SIGINT
        for p in targets:
            if p.poll() is None:
                p.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        first_end = None
        while any(p.poll() is None for p in procs):
            if first_end is None and any(p.poll() is not None for p in procs):
                first_end = time.monotonic()
            if first_end is not None and time.monotonic() - first_end > GRACE_S:
                for p in procs:
                    if p.poll() is None:
                        p.terminate()
                first_end = time.monotonic()
            time.sleep(0.05)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    killed = [
        f"rank {r} was killed ({signal.Signals(-p.returncode).name})"
        for r, p in enumerate(procs)
        if p.returncode < 0
    ]
    if killed:
        _record_kill(run_dir, "; ".join(killed))
    codes = [128 - p.returncode if p.returncode < 0 else p.returncode for p in procs]  # signals
    return codes[0] if codes[0] else next((c for c in codes if c), 0)


def _record_kill(run_dir: Path, message: str) -> None:
    """A rank killed outright (SIGKILL, the OOM killer) writes nothing; its run must not be
    left "running": the launcher, which still holds the run dir, writes its end."""
    import json

    from lrrun.logs.csv_log import write_status

    try:
        if json.loads((run_dir / "status.json").read_text()).get("status") == "running":
            write_status(run_dir, "failed", message=message)
    except (OSError, ValueError, AttributeError):
        pass


FOLLOW = "LRRUN_LAUNCHER_PID"  # set for the ranks: the launcher they die with


def follow_launcher() -> None:
    """In a rank this launcher started: SIGTERM when the launcher dies, however it dies
    (Linux's PR_SET_PDEATHSIG), so no rank trains on, orphaned, holding a GPU. SIGTERM, not
    SIGKILL: each rank still saves what it did and ends as "interrupted"."""
    import ctypes
    import ctypes.util

    parent = os.environ.get(FOLLOW)
    if not parent or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != int(parent):  # it died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)
