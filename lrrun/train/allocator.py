"""Keep freed memory in the process on CPU, so training steps stop paying page faults.

A CPU training step allocates and frees the same large tensors every step (the CNN's
activations and their gradients are 5-10 MB each). glibc's malloc serves blocks that large
with fresh ``mmap`` pages, or trims them off the heap when they are freed, so every step
touches new pages and pays a page fault per 4 KiB: 4,000-6,000 faults per CNN step, 16% of
its time on the 2-core CPU we measured. Raising the mmap threshold to its maximum and
switching off trimming keeps those blocks in the heap for the next step - what PyTorch's own
CPU launcher (``torch.backends.xeon.run_cpu``) gets by preloading jemalloc or tcmalloc. The
cost: the process keeps its peak heap until it exits, which a training run reaches in its
first steps anyway.
"""

from __future__ import annotations

import ctypes
import os
import platform

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 * 2**20  # glibc refuses more than HEAP_MAX_SIZE / 2 on 64-bit
TRIM_THRESHOLD_MAX = 2**31 - 1  # a C int
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")


def keep_freed_memory(device_type: str) -> bool:
    """Tune glibc's malloc as above when training on ``device_type`` cpu; True if done. Leaves
    alone GPU runs (their large tensors are not in malloc's heap), a process whose allocator
    the user chose (a preloaded allocator, MALLOC_* or GLIBC_TUNABLES malloc settings) and
    any libc other than glibc."""
    if device_type != "cpu" or platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    if user_tuned():
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    # both or neither: setting either one switches off glibc's own threshold adjustment, and
    # either alone is slower than the default (trimming alone: 1.5x the CNN's step time)
    return bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_MAX)) and bool(
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)
    )


def user_tuned() -> bool:
    env = os.environ
    return (
        any(name in env for name in USER_SETTINGS)
        or "glibc.malloc" in env.get("GLIBC_TUNABLES", "")
        or "malloc" in env.get("LD_PRELOAD", "")
    )
