"""Writing files so that a crash, Ctrl-C or a reader never meets half of one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_write(path: Path, mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """Write to a temporary file beside ``path``; on a clean exit fsync it and rename it
    over ``path``. On an error the temporary file is removed and ``path`` is untouched."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results should read like any other file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_rows(path: Path, columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> None:
    """A whole CSV (header, then ``rows``), written atomically; floats as repr (exact)."""
    import csv

    with atomic_write(path, newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)


# --- the run dir's lock ---------------------------------------------------------------------
LOCK = ".lrrun.lock"
HELD_BY_PARENT = "LRRUN_RUN_DIR_LOCKED"  # set for processes whose launcher holds the lock
_HELD: dict[Path, Any] = {}


def hold(run_dir: Path) -> bool:
    """Take ``run_dir``'s lock for the rest of this process; False when another process holds
    it. The lock is the OS's (filelock: flock), so it goes when its holder ends, however it
    ends: a killed run's dir is free for its resume at once. A process whose launcher holds
    the lock (trainer.devices=N's ranks: ``LRRUN_RUN_DIR_LOCKED``) needs none."""
    from filelock import FileLock, Timeout

    path = run_dir.expanduser().resolve()
    if path in _HELD or _parent_holds(path):
        return True
    path.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path / LOCK, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return False
    _HELD[path] = lock
    return True


def held_elsewhere(run_dir: Path) -> bool:
    """Whether another process holds ``run_dir``'s lock now (a run is training there)."""
    from filelock import FileLock, Timeout

    path = run_dir.expanduser().resolve()
    if path in _HELD or _parent_holds(path) or not (path / LOCK).is_file():
        return False
    try:
        FileLock(path / LOCK, timeout=0).acquire().lock.release()
    except Timeout:
        return True
    return False


def held() -> list[Path]:
    """The run dirs this process holds (a launcher passes them on: HELD_BY_PARENT)."""
    return list(_HELD)


def _parent_holds(path: Path) -> bool:
    return str(path) in os.environ.get(HELD_BY_PARENT, "").split(os.pathsep)


def release(run_dir: Path) -> None:
    """Give ``run_dir``'s lock back (a job of a sweep run in this process has ended)."""
    lock = _HELD.pop(run_dir.expanduser().resolve(), None)
    if lock is not None:
        lock.release()
