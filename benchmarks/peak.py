"""Peak memory of the benchmark's own process, shared by the benchmarks that report it."""

from __future__ import annotations

import resource
from pathlib import Path


def peak_mib() -> float:
    """This process's peak resident memory, MiB: VmHWM, its own memory's high-water mark
    (getrusage's ru_maxrss would keep a larger parent's peak across exec on Linux)."""
    try:
        status = Path("/proc/self/status").read_text().split("VmHWM:")[1]
        return int(status.split()[0]) / 1024
    except (OSError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
