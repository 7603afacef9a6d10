"""The run's two CSVs. Every row is flushed as written, so a crash or Ctrl-C loses nothing
that was logged.

metrics.csv: epoch, lr[, lr_1, ...], train_<metric>..., val_<metric>..., test_<metric>...,
             epoch_time_s; the task's metrics (lrrun.config.task.TaskSpec.columns):
             classification train_loss, train_acc, val_loss, val_acc[, val_top5], test_loss,
             test_acc[, test_top5]; regression train_loss, val/test loss, mae, rmse, r2;
             language_model train_loss, val/test loss, ppl. test_*: empty but for the epoch
             the test split was evaluated for, or every epoch with trainer.test_every_epoch;
             *_top5 when the data has more than 5 classes
steps.csv:   epoch, step, lr[, lr_1, ...][, momentum], loss[, grad_norm]

``lr_1``, ``lr_2``, ...: the lrs of optimizer.param_groups (lrrun.config.param_groups).
``momentum``: only when the schedule cycles it (one_cycle / cyclic with cycle_momentum);
group 0's momentum, or beta1 for Adam-style optimizers, at that optimizer step.
``loss``: the step's loss (with trainer.accumulate: the mean over its batches).
``grad_norm``: the gradients' total 2-norm before clipping (when clipping, or with
trainer.log_grad_norm).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lrrun.errors import ConfigError
from lrrun.files import atomic_write, write_rows

if TYPE_CHECKING:  # torch is imported where losses are gathered: lrrun-report needs none
    import torch


def lr_columns(n_groups: int) -> list[str]:
    """``lr`` for param group 0, ``lr_1``, ``lr_2``, ... for the others."""
    return ["lr"] + [f"lr_{i}" for i in range(1, n_groups)]


def lr_labels(group_names: list[str]) -> dict[str, str]:
    """Console headings of the lr columns when there are several groups: ``lr default``,
    ``lr head``, ..."""
    if len(group_names) < 2:
        return {}
    return {
        col: f"lr {name}"
        for col, name in zip(lr_columns(len(group_names)), group_names, strict=True)
    }


def steps_columns(n_groups: int, momentum: bool = False, grad_norm: bool = False) -> list[str]:
    return [
        "epoch",
        "step",
        *lr_columns(n_groups),
        *(["momentum"] if momentum else []),
        "loss",
        *(["grad_norm"] if grad_norm else []),
    ]


def parse_row(row: dict[str, str]) -> dict[str, Any]:
    """A row of metrics.csv or steps.csv as numbers (epoch and step as ints; an empty cell,
    such as test_acc of an epoch the test split was not evaluated for, or val_acc_swa before
    SWA averaged, as None)."""
    return {
        k: int(v)
        if k in ("epoch", "step")
        else (None if v == "" and (k.startswith("test_") or k.endswith("_swa")) else float(v))
        for k, v in row.items()
    }


class CSVLog:
    """Append rows to a CSV with a fixed header, flushing every write.

    ``keep_epochs=None`` starts a new file. On resume, ``keep_epochs=N`` keeps the rows of
    epochs 1..N already in the file (rows of a half-done epoch are dropped, to be redone)
    and appends after them; ``kept`` holds those rows.
    """

    def __init__(self, path: Path, columns: Sequence[str], keep_epochs: int | None = None) -> None:
        self.path, self.columns = path, list(columns)
        self.kept: list[dict[str, str]] = []
        path.parent.mkdir(parents=True, exist_ok=True)
        if keep_epochs is not None and path.is_file():
            self.kept = self._keep(keep_epochs)
        self._file = path.open("w" if keep_epochs is None else "a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=self.columns)
        if self._file.tell() == 0:
            self._writer.writeheader()
        self._file.flush()

    def _keep(self, epochs: int) -> list[dict[str, str]]:
        with self.path.open(newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames != self.columns:
                raise ConfigError(
                    f"trainer.resume: {self.path} has columns {reader.fieldnames}, this run "
                    f"writes {self.columns}. Resume with the checkpoint's config."
                )
            rows = [r for r in reader if r.get("epoch", "").isdigit() and int(r["epoch"]) <= epochs]
        write_rows(self.path, self.columns, rows)
        return rows

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

    The lr is a host float; the loss (and the gradient norm) stay device tensors until
    ``flush()``, so logging every step costs no host sync (one ``tolist()`` per epoch).
    ``flush()`` also runs when a run fails or is interrupted, so every step taken is on disk.
    In a data-parallel run the losses are averaged over the ranks there (one all-reduce per
    epoch) and only rank 0 has a log to write them to.
    """

    def __init__(
        self,
        log: CSVLog | None,
        on_flush: Callable[[list[dict[str, Any]]], None] | None = None,
        columns: Sequence[str] | None = None,
        ranks: int = 1,
    ) -> None:
        """``on_flush``: also handed each batch of rows written (lrrun.logs.trackers).
        ``columns``: steps.csv's, when there is no log (a rank other than 0)."""
        self.log, self.on_flush, self.ranks = log, on_flush, ranks
        columns = list(log.columns if log is not None else columns or [])
        self.grad_norm = "grad_norm" in columns
        self.names = columns[2 : columns.index("loss")]  # the lr columns [, momentum]
        self._pending: list[tuple[int, int, list[float], list[torch.Tensor]]] = []

    def record(
        self,
        epoch: int,
        step: int,
        lrs: list[float],
        loss: torch.Tensor,
        momentum: float | None = None,
        grad_norm: torch.Tensor | None = None,
    ) -> None:
        values = lrs if momentum is None else [*lrs, momentum]
        tensors = [loss.detach()]
        if self.grad_norm:
            tensors.append(
                grad_norm.detach() if grad_norm is not None else loss.new_tensor(float("nan"))
            )
        self._pending.append((epoch, step, values, tensors))

    def flush(self, reduce: bool = True) -> list[dict[str, Any]]:
        """Write the pending rows; return them (losses as floats). ``reduce=False`` (a run
        that failed or was interrupted mid-epoch): no collective - the other ranks may be
        gone or elsewhere - so a data-parallel run's unfinished epoch keeps rank 0's own
        losses (the lrs are the same on every rank)."""
        if not self._pending:
            return []
        import torch

        from lrrun.world import sum_over_ranks

        stacked = torch.stack([t.float() for p in self._pending for t in p[3]])
        averaged = reduce and self.ranks > 1
        read = (sum_over_ranks(stacked) / self.ranks if averaged else stacked).tolist()
        width = 2 if self.grad_norm else 1
        rows = []
        for i, (epoch, step, values, _) in enumerate(self._pending):
            row = {
                "epoch": epoch,
                "step": step,
                **dict(zip(self.names, values, strict=True)),
                "loss": read[i * width],
            }
            if self.grad_norm:
                row["grad_norm"] = read[i * width + 1]
            rows.append(row)
        self._pending.clear()
        if self.log is not None:
            self.log.write_many(rows)
        if self.on_flush is not None:
            self.on_flush(rows)
        return rows


def write_status(run_dir: Path, status: str, **fields: Any) -> None:
    """status.json: running | ok | stopped_early | diverged | interrupted | failed, for sweeps.
    Written atomically; fields of the previous status (epoch, step) are kept."""
    path = run_dir / "status.json"
    try:
        previous = json.loads(path.read_text())
    except (OSError, ValueError):
        previous = {}
    text = json.dumps({**previous, **fields, "status": status}, indent=1)
    try:
        with atomic_write(path) as f:
            f.write(text)
    except OSError:  # a dir that takes no new file (full, read-only): the file may take it
        if not path.is_file():
            raise
        path.write_text(text)
