"""The run dir: checked before training (writable, room for the run's files), what is kept
there at the end (curves.png), and how it is named on the console."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import time
from pathlib import Path

from torch import nn

from lrrun.config.trainer import TrainerSettings
from lrrun.errors import ConfigError, WriteFailed, root_cause
from lrrun.logs.console import print_warning

ARTIFACTS = ("curves.png", "metrics.csv", "steps.csv")  # what the trackers get at the end


def check_output_dir(run_dir: Path, model: nn.Module, total_steps: int) -> None:
    """Fail at start, not at epoch 37, if the run dir cannot take the run's files."""
    hint = "Choose another with hydra.run.dir=... (sweeps: hydra.sweep.dir=...)."
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=run_dir, prefix=".write-test."):
            pass
        free = shutil.disk_usage(run_dir).free
    except OSError as exc:
        raise ConfigError(
            f"run dir {run_dir} is not writable ({exc.strerror or exc}). {hint}"
        ) from None
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    need = 4 * params + 100 * total_steps + (1 << 20)  # 2 checkpoints (+ momenta), steps.csv
    if free < need:
        raise ConfigError(
            f"run dir {run_dir} has {free / 2**20:.1f} MiB free; this run needs about "
            f"{need / 2**20:.1f} MiB (checkpoints and CSVs). Free some space. {hint}"
        )


WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}


def write_failure(exc: BaseException, run_dir: Path) -> BaseException:
    """``exc`` as WriteFailed when it is the run dir refusing a write: an OSError on a file
    there, or one of a full or read-only disk - also beneath the error torch.save raises on
    it. Anything else (a user's model raising OSError on its own files) is left as it is."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError):
            name = str(seen.filename or "")
            inside = bool(name) and Path(name).resolve().is_relative_to(run_dir.resolve())
            if seen.errno in WRITE_ERRNOS or inside:
                reason = f"{seen.strerror or seen}" + (f": {name}" if name else "")
                return WriteFailed(run_dir, reason)
        seen = seen.__cause__ or seen.__context__
    return exc


def orphan_end(run_dir: Path, outcome: str, message: str) -> None:
    """A rank other than 0 that outlives rank 0 (killed under torchrun) writes the run's end,
    which rank 0 could not: never over rank 0's own, and only once nobody holds the run
    dir's lock (rank 0 holds it while alive; under trainer.devices=N the launcher, which
    writes the end itself: lrrun.tools.launch)."""
    import json

    from lrrun.files import HELD_BY_PARENT, held_elsewhere
    from lrrun.logs.csv_log import write_status

    if os.environ.get(HELD_BY_PARENT) or held_elsewhere(run_dir):
        return
    try:
        if json.loads((run_dir / "status.json").read_text()).get("status") != "running":
            return
    except (OSError, ValueError, AttributeError):
        return
    write_status(run_dir, outcome, message=f"rank 0 ended without a word (killed?); {message}")


def plot(run_dir: Path, trainer: TrainerSettings) -> None:
    """curves.png (lr per step, loss and the task's other metric per epoch); a failure here
    only warns."""
    if not trainer.plot:
        return
    try:
        from lrrun.logs.plots import plot_run_dir

        plot_run_dir(run_dir)
    except Exception as exc:
        print_warning(f"curves.png was not written ({root_cause(exc)}); try lrrun-report {run_dir}")


def artifacts(run_dir: Path) -> list[Path]:
    return [run_dir / name for name in ARTIFACTS]


def short(path: Path) -> str:
    """The run dir relative to the current directory when it is below it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel


def process_age() -> float:
    """Seconds since this process started (Linux /proc; else since lrrun was imported)."""
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        with open("/proc/self/stat") as f:
            started = int(f.read().rsplit(")", 1)[1].split()[19]) / ticks
        with open("/proc/uptime") as f:
            return float(f.read().split()[0]) - started
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - _IMPORTED


_IMPORTED = time.perf_counter()
