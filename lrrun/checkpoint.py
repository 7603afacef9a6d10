"""Checkpoints: written atomically after every epoch, read back for an exact resume.

``checkpoint.pt`` holds everything the next epoch depends on: model, optimizer and
scheduler state, the epoch and global step reached, every RNG (torch, CUDA, numpy, Python;
the data order is a pure function of seed and epoch, ``lrrun.data.epoch_order``), the best
val_acc so far, and the resolved config with the scheduler's derived arguments, so a resume
can refuse a config that would change the run.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lrrun.errors import ConfigError, root_cause
from lrrun.files import atomic_write

NAME = "checkpoint.pt"
BEST = "best.pt"
FORMAT = 1


def rng_state() -> dict[str, Any]:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def save_atomic(state: dict[str, Any], path: Path) -> None:
    """A reader (or a crash) sees the old checkpoint or the new one, never half of one."""
    with atomic_write(path, "wb") as f:
        torch.save(state, f)


def locate(spec: str) -> Path:
    """``trainer.resume`` may name a run dir or a checkpoint file."""
    path = Path(spec).expanduser()
    if path.is_dir():
        path = path / NAME
    if not path.is_file():
        raise ConfigError(
            f"trainer.resume={spec!r}: no checkpoint there ({path} does not exist). "
            f"Give a run dir that has a {NAME} (written after every completed epoch) or the "
            "file itself."
        )
    return path


def load(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ConfigError(
            f"trainer.resume: {path} could not be read ({root_cause(exc)}). It may be from "
            "an incompatible version or damaged."
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ConfigError(f"trainer.resume: {path} is not an lrrun checkpoint (format {FORMAT}).")
    return state
