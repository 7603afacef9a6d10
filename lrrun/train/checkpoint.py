"""Checkpoints: written atomically after every epoch, read back for an exact resume.

``checkpoint.pt`` holds everything the next epoch depends on (``Saved``: the one definition
of its content, which the logbook writes and the resume, the final test and ``load_run``
read): model, optimizer and scheduler state, the epoch and global step reached, every RNG
(torch, CUDA, numpy, Python; the data order is a pure function of seed and epoch,
``lrrun.data.order.epoch_order``; a language model's windows of seed, epoch and batch,
``lrrun.data.windows``), the best val metric so far (val_acc, or val_loss), the averaged
weights (``averages``: trainer.ema, scheduler=swa) and which weights the run selects
(``selected``), and the resolved config with the scheduler's derived arguments and the data
as the run saw it, so a resume can refuse a config that would change the run.
"""

from __future__ import annotations

import pickle
import random
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils._pytree import tree_map_only

from lrrun.errors import ConfigError, root_cause
from lrrun.files import atomic_write

NAME = "checkpoint.pt"
BEST = "best.pt"
FORMAT = 2  # 2: RNG states as tensors and plain values (loaded with weights_only=True)


@dataclass
class Saved:
    """What a checkpoint holds. Keys a checkpoint written by an earlier lrrun lacks take
    these defaults: such runs still resume and load."""

    epoch: int  # epochs completed
    step: int  # optimizer steps taken (global)
    model: dict[str, Any]  # state_dict of the model (the module under DDP)
    optimizer: dict[str, Any]
    scheduler: dict[str, Any] | None  # None without a scheduler
    rng: Any  # rng_state(), or a list of one per rank of a data-parallel run
    best: tuple[float, int] | None  # (the selection metric's best value, its epoch)
    plan: dict[str, Any]  # what a resume must not change (lrrun.train.resume.plan)
    inputs: dict[str, Any] | None = None  # what using the model needs (lrrun.tools.use)
    averages: dict[str, Any] = field(default_factory=dict)  # name -> state (averaging)
    selected: str = "model"  # trainer.select: whose weights the run chose
    scaler: dict[str, Any] | None = None  # fp16's GradScaler

    def state(self) -> dict[str, Any]:
        """The file's dict: plain values and tensors only (loaded with weights_only)."""
        return {"format": FORMAT, **{f.name: getattr(self, f.name) for f in fields(self)}}

    @classmethod
    def of(cls, state: dict[str, Any]) -> Saved:
        return cls(**{f.name: state[f.name] for f in fields(cls) if f.name in state})

    def weights(self) -> dict[str, Any]:
        """The model weights the run selected (trainer.select): the trained model's, or
        those of an average it kept (lrrun.train.averaging: ema, swa)."""
        return self.model if self.selected == "model" else self.averages[self.selected]["module"]


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
    """A reader (or a crash) sees the old checkpoint or the new one, never half of one.
    A tensor that is a slice of a larger storage (a fused member's weights, lrrun.fused.forward)
    is written as its own: torch.save would write the whole storage with it."""
    state = tree_map_only(torch.Tensor, _own_storage, state)
    with atomic_write(path, "wb") as f:
        torch.save(state, f)


def _own_storage(t: torch.Tensor) -> torch.Tensor:
    return t.clone() if t.untyped_storage().nbytes() > t.nbytes else t


def read(path: Path, where: str = "trainer.resume") -> Saved:
    """The checkpoint at ``path`` (load's checks), as ``Saved``."""
    return Saved.of(load(path, where))


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
        why = next(
            (line.strip() for line in str(exc).splitlines() if "Unsupported" in line),
            root_cause(exc),
        )
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
