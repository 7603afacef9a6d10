"""Which device a run trains on."""

from __future__ import annotations

import torch

from lrrun.errors import ConfigError
from lrrun.world import SINGLE, World


def auto_device(cuda_count: int, mps: bool, job_num: int | None) -> str:
    """What ``trainer.device=auto`` picks: cuda, else mps, else cpu. Jobs of a multirun
    (``job_num`` set) go round robin over the CUDA devices, so parallel jobs (joblib) do not
    all land on cuda:0."""
    if cuda_count > 1 and job_num is not None:
        return f"cuda:{job_num % cuda_count}"
    if cuda_count:
        return "cuda"
    return "mps" if mps else "cpu"


def resolve_device(spec: str, job_num: int | None = None, world: World = SINGLE) -> torch.device:
    """``auto`` (see auto_device), or an explicit device, which must exist on this machine.
    A rank of a data-parallel run on CUDA takes ``cuda:<LOCAL_RANK>``."""
    if world.active and spec in ("auto", "cuda") and torch.cuda.is_available():
        return resolve_device(f"cuda:{world.local_rank}")
    if spec == "auto":
        cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return torch.device(auto_device(cuda, torch.backends.mps.is_available(), job_num))
    try:
        device = torch.device(spec)
    except (RuntimeError, ValueError):
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(
            f"trainer.device={spec!r} is not a device: use auto, cpu, cuda, cuda:N or mps."
        )
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(
                f"trainer.device={spec!r} is not available: this machine has no usable CUDA "
                "GPU. Use trainer.device=auto (picks the best there is) or trainer.device=cpu."
            )
        if device.index is not None and device.index >= count:
            raise ConfigError(
                f"trainer.device={spec!r} is not available: this machine has {count} CUDA "
                f"device(s), cuda:0 to cuda:{count - 1}."
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(
            f"trainer.device={spec!r} is not available: MPS needs Apple silicon. "
            "Use trainer.device=auto or cpu."
        )
    return device
