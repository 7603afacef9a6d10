"""Shared fixtures: compose the real configs with Hydra's compose API, shrunk to tiny CPU
runs, and run the real CLI as a subprocess the way a user does."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from lrrun.config.location import config_dir

# Decoded image folders are cached under XDG_CACHE_HOME: keep the tests' out of ~/.cache.
os.environ.setdefault("XDG_CACHE_HOME", tempfile.mkdtemp(prefix="lrrun-test-cache-"))

# 128 train samples / batch 32 = 4 steps per epoch; tiny but every code path runs.
TINY = [
    "dataset=synthetic",
    "dataset.train_size=128",
    "dataset.val_size=64",
    "dataset.test_size=64",
    "trainer.batch_size=32",
    "trainer.epochs=6",
    "trainer.device=cpu",
    "trainer.progress=false",
    "trainer.plot=false",
]
TINY_STEPS_PER_EPOCH = 4
TINY_TRAINER = [o for o in TINY if o.startswith("trainer.")]


@pytest.fixture
def compose_cfg() -> Iterator[Callable[..., DictConfig]]:
    """compose_cfg(*overrides, tiny=True) -> the real root config, shrunk by TINY (or only
    its trainer part when tiny=False), with the overrides applied."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        yield lambda *overrides, tiny=True: compose(
            config_name="config", overrides=[*(TINY if tiny else TINY_TRAINER), *overrides]
        )
    GlobalHydra.instance().clear()


ENTRIES = {
    "lrrun": "lrrun.cli:main",
    "lrrun-preview": "lrrun.tools.preview:main",
    "lrrun-report": "lrrun.sweep.report:main",
    "lrrun-find-lr": "lrrun.tools.find_lr:main",
    "lrrun-sample": "lrrun.tools.sample:main",
    "lrrun-predict": "lrrun.tools.predict:main",
    "lrrun-export": "lrrun.tools.export:main",
}


class ForkServer:
    """tests/forkserver.py, started once per session (see its docstring)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("forkserver.py"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).parent.parent,
        )

    def run(
        self, prog: str, args: list[str], cwd: Path, env: dict[str, str], timeout: float
    ) -> subprocess.CompletedProcess[str]:
        import json
        import select
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            out, err = Path(tmp) / "out", Path(tmp) / "err"
            req = {
                "entry": ENTRIES[prog],
                "prog": prog,
                "args": args,
                "cwd": str(cwd),
                "env": env,
                "stdout": str(out),
                "stderr": str(err),
            }
            assert self.proc.stdin is not None and self.proc.stdout is not None
            self.proc.stdin.write(json.dumps(req) + "\n")
            self.proc.stdin.flush()
            ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
            if not ready:
                raise subprocess.TimeoutExpired([prog, *args], timeout)
            code = json.loads(self.proc.stdout.readline())["code"]
            return subprocess.CompletedProcess(
                [prog, *args], code, out.read_text(), err.read_text()
            )

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


_SERVER: ForkServer | None = None


def _server() -> ForkServer:
    global _SERVER
    if _SERVER is None or _SERVER.proc.poll() is not None:
        _SERVER = ForkServer()
    return _SERVER


def pytest_sessionfinish(session, exitstatus) -> None:
    if _SERVER is not None:
        _SERVER.close()


def run_cli(
    args: list[str],
    cwd: Path,
    timeout: float = 300,
    env: dict[str, str] | None = None,
    prog: str = "lrrun",
    fresh: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run ``prog ARGS`` in ``cwd`` without a TTY, as CI would.

    By default in a fork of a warm process (tests/forkserver.py) through the same main() as
    the console script; ``fresh=True`` starts a new interpreter (``python -m lrrun`` for lrrun).
    """
    full_env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    full_env.update(env or {})
    if not fresh:
        return _server().run(prog, args, cwd, full_env, timeout)
    module = ENTRIES[prog].split(":")[0]
    command = ["-m", "lrrun"] if prog == "lrrun" else ["-c", f"import {module}; {module}.main()"]
    return subprocess.run(
        [sys.executable, *command, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        stdin=subprocess.DEVNULL,
    )


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def assert_ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    )
    assert "Traceback" not in proc.stderr
    # The scheduler is stepped after the optimizer: torch must never warn about order.
    assert "lr_scheduler.step()" not in proc.stderr, proc.stderr


def interrupt_after_first_epoch(
    args: list[str], cwd: Path, run_dir: Path, sig: int = signal.SIGINT
) -> subprocess.CompletedProcess[str]:
    """Start ``lrrun ARGS`` in a fresh interpreter, send ``sig`` in the middle of the epoch
    after its first checkpoint, and wait for it to exit."""
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "lrrun", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        # As in a terminal: a background shell (nohup, `&` in a script) starts children
        # with SIGINT ignored, and Python then keeps ignoring it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while _epochs_done(run_dir) < 1:  # status.json is written last, after the checkpoint
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no finished epoch after 120 s"
        time.sleep(0.02)
    # Into the next epoch, to its middle: half an epoch's time (under load an epoch takes
    # several times longer, and a fixed delay can land on the boundary).
    rows = read_csv(run_dir / "metrics.csv")
    time.sleep(max(0.05, 0.5 * float(rows[0]["epoch_time_s"])))
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _epochs_done(run_dir: Path) -> int:
    try:
        return int(json.loads((run_dir / "status.json").read_text()).get("epoch") or 0)
    except (OSError, ValueError):  # not written yet, or (never: it is atomic) half-written
        return 0
