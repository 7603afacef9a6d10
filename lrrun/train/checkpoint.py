"""Checkpoints: written atomically after every epoch, read back for an exact resume.

``checkpoint.pt`` holds everything the next epoch depends on: model, optimizer and
scheduler state, the epoch and global step reached, every RNG (torch, CUDA, numpy, Python;
the data order is a pure function of seed and epoch, ``lrrun.data.order.epoch_order``; a
language model's windows of seed, epoch and batch, ``lrrun.data.windows``), the best val
metric so far (val_acc, or val_loss), the averaged weights (``averages``: trainer.ema,
scheduler=swa) and which weights the run selects (``selected``), and the resolved config with the scheduler's derived
arguments and the data as the run saw it, so a resume can refuse a config that would change
the run.
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lrrun.errors import ConfigError, root_cause
from lrrun.files import atomic_write

NAME = "checkpoint.pt"
BEST = "best.pt"
FORMAT = 2  # 2: RNG states as tensors and plain values (loaded with weights_only=True)


def rng_state() -> dict[str, Any]:
    """Every RNG, as tensors and plain values only (loadable with weights_only=True)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(state["python"])


def save_atomic(state: dict[str, Any], path: Path) -> None:
    """A reader (or a crash) sees the old checkpoint or the new one, never half of one."""
    with atomic_write(path, "wb") as f:
        torch.save(state, f)


def weights(state: dict[str, Any]) -> dict[str, Any]:
    """The model weights a checkpoint's run selected (trainer.select): the trained model's,
    or those of an average it kept (lrrun.train.averaging: ema, swa)."""
    chosen = state.get("selected", "model")
    return state["model"] if chosen == "model" else state["averages"][chosen]["module"]


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


def load(path: Path, where: str = "trainer.resume") -> dict[str, Any]:
    """Read a checkpoint without running any code from it: ``weights_only=True`` unpickles
    tensors and plain values only, so a checkpoint from someone else cannot execute anything.
    A file that needs more is refused, and nothing is loaded or overwritten. ``where``: who
    reads it, for the messages."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        why = next((line.strip() for line in str(exc).splitlines() if "Unsupported" in line),
                   root_cause(exc))  # fmt: skip
        raise ConfigError(
            f"{where}: {path} holds more than tensors and plain values ({why}), so "
            "loading it could run code. lrrun loads checkpoints with weights_only=True and "
            f"refuses this one. Resume from a {NAME} written by this lrrun version."
        ) from None
    except Exception as exc:
        raise ConfigError(
            f"{where}: {path} could not be read ({root_cause(exc)}). It may be from "
            "an incompatible version or damaged."
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ConfigError(f"{where}: {path} is not an lrrun checkpoint (format {FORMAT}).")
    return state
