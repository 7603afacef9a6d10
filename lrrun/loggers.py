"""The run's two CSVs. Every row is flushed as written, so a crash or Ctrl-C loses nothing
that was logged.

metrics.csv: epoch, lr[, lr_1, ...], train_loss, train_acc, val_loss, val_acc, epoch_time_s
steps.csv:   epoch, step, lr[, lr_1, ...], loss
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch


def lr_columns(n_groups: int) -> list[str]:
    """``lr`` for param group 0, ``lr_1``, ``lr_2``, ... for the others."""
    return ["lr"] + [f"lr_{i}" for i in range(1, n_groups)]


def metrics_columns(n_groups: int) -> list[str]:
    return [
        "epoch",
        *lr_columns(n_groups),
        "train_loss",
        "train_acc",
        "val_loss",
        "val_acc",
        "epoch_time_s",
    ]


def steps_columns(n_groups: int) -> list[str]:
    return ["epoch", "step", *lr_columns(n_groups), "loss"]


class CSVLog:
    """Append rows to a CSV with a fixed header, flushing every write."""

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        self.path, self.columns = path, list(columns)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("w", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=self.columns)
        self._writer.writeheader()
        self._file.flush()

    def write(self, row: dict[str, Any]) -> None:
        self.write_many([row])

    def write_many(self, rows: Sequence[dict[str, Any]]) -> None:
        self._writer.writerows(rows)  # floats are written with repr(): exact round trip
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


class StepRecorder:
    """Collect one row per optimizer step; write them when the epoch ends.

    The lr is a host float; the loss stays a device tensor until ``flush()``, so logging
    every step costs no host sync (one ``tolist()`` per epoch). ``flush()`` also runs when
    a run fails or is interrupted, so every step taken is on disk.
    """

    def __init__(self, log: CSVLog) -> None:
        self.log = log
        self._pending: list[tuple[int, int, list[float], torch.Tensor]] = []

    def record(self, epoch: int, step: int, lrs: list[float], loss: torch.Tensor) -> None:
        self._pending.append((epoch, step, lrs, loss.detach()))

    def flush(self) -> None:
        if not self._pending:
            return
        losses = torch.stack([p[3] for p in self._pending]).float().tolist()
        names = lr_columns(len(self._pending[0][2]))
        rows = [
            {"epoch": epoch, "step": step, **dict(zip(names, lrs, strict=True)), "loss": loss}
            for (epoch, step, lrs, _), loss in zip(self._pending, losses, strict=True)
        ]
        self._pending.clear()
        self.log.write_many(rows)
