"""Shared fixtures: compose the real configs with Hydra's compose API, shrunk to tiny CPU
runs, and run the real CLI as a subprocess the way a user does."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from lrrun.config import config_dir

# 128 train samples / batch 32 = 4 steps per epoch; tiny but every code path runs.
TINY = [
    "dataset=synthetic",
    "dataset.train_size=128",
    "dataset.test_size=64",
    "trainer.batch_size=32",
    "trainer.epochs=6",
    "trainer.device=cpu",
    "trainer.progress=false",
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


def run_cli(
    args: list[str], cwd: Path, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m lrrun ARGS`` in ``cwd`` without a TTY, as CI would."""
    full_env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "lrrun", *args],
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
