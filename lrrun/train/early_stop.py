"""trainer.early_stop: PyTorch Lightning's EarlyStopping rule, on the metrics rows.

After every epoch's row: the monitored metric improved when it beats the best so far by more
than ``min_delta`` (above it for accuracy-like metrics, below for losses and errors); each
epoch without improvement counts, and the run stops after ``patience`` of them in a row. The
state is a function of the rows, so a resumed run replays the rows it kept and decides as the
run that was never stopped would. A run that stops ends with status ``stopped_early`` (a
finished run: tested on its best epoch, ranked by sweeps like ``ok``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass
class EarlyStop:
    monitor: str
    higher: bool
    patience: int
    min_delta: float = 0.0
    best: float | None = None
    best_epoch: int = 0
    waited: int = 0  # epochs in a row without improvement
    stopped_after: int | None = None  # the epoch the run stopped after

    def update(self, row: dict[str, Any]) -> bool:
        """Count ``row``; True when the run should stop after it."""
        value = float(row[self.monitor])
        improved = self.best is None or (
            value > self.best + self.min_delta
            if self.higher
            else value < self.best - self.min_delta
        )
        if improved:
            self.best, self.best_epoch, self.waited = value, int(row["epoch"]), 0
        else:
            self.waited += 1
        if self.waited >= self.patience and self.stopped_after is None:
            self.stopped_after = int(row["epoch"])
        return self.stopped_after is not None

    def replay(self, rows: Iterable[dict[str, Any]]) -> None:
        """The rows a resumed run kept, as they were counted."""
        for row in rows:
            self.update(row)
        self.stopped_after = None

    def record(self) -> dict[str, Any]:
        """status.json's ``stopped_early``."""
        return {
            "after_epoch": self.stopped_after,
            "monitor": self.monitor,
            "best": self.best,
            "best_epoch": self.best_epoch,
            "patience": self.patience,
            "min_delta": self.min_delta,
        }

    def line(self) -> str:
        return (
            f"stopped early after epoch {self.stopped_after}: {self.monitor} has not improved "
            f"by more than {self.min_delta:g} for {self.patience} epoch(s) (best "
            f"{self.best:.4f} at epoch {self.best_epoch}); trainer.early_stop"
        )
