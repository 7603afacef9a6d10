"""The rich console: a header, a live progress bar per epoch, and one fixed-width row per
epoch whose columns are metrics.csv's. Without a TTY or with trainer.progress=false the
same rows print as plain lines and nothing is redrawn.

What the console prints of a run (header, rows, events, the test result, the choice, errors
and warnings) also goes, without colour, to the run's log file (``lrrun.log``: Hydra's job
log, through the logger ``RUN_LOG``; ``log_to_run_dir`` points it at the job's file)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

if TYPE_CHECKING:
    import torch

_FORMATS = {"epoch": ("{:>5d}", 5), "epoch_time_s": ("{:>12.2f}", 12)}
_METRIC_WIDTHS = {"acc": 9, "top5": 9, "r2": 9}  # a fraction; losses, errors, ppl: 10
_LR_FORMAT = ("{:>11.4e}", 11)  # scientific: 1e-4 must never print as 0.000


RUN_LOG = logging.getLogger("lrrun.run")
RUN_LOG.propagate = False  # the console has printed it: only the log file gets it again
RUN_LOG.setLevel(logging.INFO)
# Without a file (before a job starts, lrrun-predict, ...) nothing: not logging's last-resort
# handler, which would print each error and warning on stderr a second time.
RUN_LOG.addHandler(logging.NullHandler())


def log_to_run_dir() -> None:
    """Write RUN_LOG to the file handlers Hydra gave this job (its run dir's lrrun.log):
    called at each job's start, as Hydra replaces them per job."""
    root = logging.getLogger()
    files = [h for h in root.handlers if isinstance(h, logging.FileHandler)]
    RUN_LOG.handlers = files or [logging.NullHandler()]


@contextmanager
def also_to(path: Path) -> Iterator[None]:
    """Everything printed to stdout meanwhile also appended to ``path``, without colour (a
    sweep's tables and verdict in its sweep dir's lrrun.log)."""
    import re
    import sys

    ansi = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

    class Tee:
        def __init__(self, screen: Any, log: Any) -> None:
            self.screen, self.log = screen, log

        def write(self, text: str) -> int:
            self.log.write(ansi.sub("", text))
            return self.screen.write(text)

        def __getattr__(self, name: str) -> Any:  # isatty, flush, encoding: the screen's
            return getattr(self.screen, name)

    with path.open("a") as log:
        screen, sys.stdout = sys.stdout, Tee(sys.stdout, log)
        try:
            yield
        finally:
            sys.stdout = screen


def _fmt(column: str) -> tuple[str, int]:
    """The lr columns (lr, lr_1, ..., momentum) in scientific notation; a metric
    (train_loss, val_acc, test_rmse, ...) with 4 decimals."""
    if column in _FORMATS:
        return _FORMATS[column]
    split, _, metric = column.partition("_")
    if split in ("train", "val", "test") and metric:
        width = _METRIC_WIDTHS.get(metric, 10)
        return f"{{:>{width}.4f}}", width
    return _LR_FORMAT


def _cell(column: str, value: object) -> str:
    return "-" if value is None else _fmt(column)[0].format(value)


class RunConsole:
    def __init__(
        self,
        columns: list[str],
        epochs: int,
        steps_per_epoch: int,
        live: bool,
        labels: dict[str, str] | None = None,
        quiet: bool = False,
        screen: bool = True,
    ) -> None:
        """``labels``: headings for some columns (each param group's lr, by name).
        ``quiet``: print nothing (the ranks of a data-parallel run but rank 0). ``screen``:
        False writes the run's log only (a member of a fused pass: lrrun.fused)."""
        self.console = Console(highlight=False, quiet=quiet or not screen)
        self.logging = not quiet
        self.columns, self.epochs, self.steps_per_epoch = columns, epochs, steps_per_epoch
        self.labels = {c: (labels or {}).get(c, c) for c in columns}
        self.widths = {c: max(_fmt(c)[1], len(self.labels[c])) for c in columns}
        self.live = live and self.console.is_interactive
        self._progress: Progress | None = None
        self._task: Any = None
        self._printed_header = False
        self._next_draw = 0.0

    # --- header -----------------------------------------------------------------------------
    def header(self, items: dict[str, str]) -> None:
        print_items(items, self.console)
        if self.logging:
            width = max(map(len, items)) + 2
            for key, value in items.items():
                RUN_LOG.info(f"{key:<{width}}{value}")

    # --- per epoch --------------------------------------------------------------------------
    def epoch_start(self, epoch: int) -> None:
        if not self.live:
            return
        self._next_draw = 0.0
        if self._progress is None:
            self._progress = Progress(
                TextColumn("[bold]epoch {task.fields[epoch]}/" + str(self.epochs)),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"),
                TextColumn("lr {task.fields[lr]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task(
                "train", total=self.steps_per_epoch, epoch=epoch, loss="-", lr="-"
            )
        else:
            # reset() replaces all fields, so pass every one the columns render
            self._progress.reset(
                self._task, total=self.steps_per_epoch, epoch=epoch, loss="-", lr="-"
            )

    def step_update(self, done: int, lrs: list[float], loss: torch.Tensor) -> None:
        """Redraw at most 4 times a second: reading the loss is a host sync, so it must
        not happen per step (and never happens without a live terminal)."""
        if self._progress is None:
            return
        now = time.monotonic()
        if now < self._next_draw and done < self.steps_per_epoch:
            return
        self._next_draw = now + 0.25
        self._progress.update(
            self._task, completed=done, loss=f"{loss.item():.4f}", lr=f"{lrs[0]:.4e}"
        )

    def epoch_end(self, row: dict[str, Any]) -> None:
        if not self._printed_header:
            heading = " ".join(f"{self.labels[c]:>{self.widths[c]}}" for c in self.columns)
            self.console.print(
                heading, style="bold", markup=False, soft_wrap=True
            )  # a row is one line, however narrow
            self._log(heading)
            self._printed_header = True
        line = " ".join(f"{_cell(c, row.get(c)):>{self.widths[c]}}" for c in self.columns)
        self.console.print(line, markup=False, soft_wrap=True)
        self._log(line)

    def event(self, line: str) -> None:
        """A schedule event (lrrun.schedule.events), one plain line under its epoch's row."""
        self.line(line)

    def line(self, text: str) -> None:
        """One plain line (an event, the test result)."""
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)
        self._log(text)

    def _log(self, text: str) -> None:
        if self.logging:
            RUN_LOG.info(text)

    # --- end --------------------------------------------------------------------------------
    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def finish(self, best: dict[str, Any] | None, select: str, run_dir: str) -> None:
        """The epoch the run chose: ``best`` row by its ``select`` metric (lrrun.config.task)."""
        self.close()
        if best is not None:
            text = f"best {select} {best[select]:.4f} at epoch {best['epoch']} · run dir {run_dir}"
            self.console.print(text, markup=False)
            self._log(text)


def print_items(items: dict[str, str], console: Console | None = None) -> None:
    """Aligned ``key  value`` lines (run header, preview and find-lr facts), one line per
    item even in logs."""
    console = console or Console(highlight=False)
    width = max(map(len, items)) + 2
    for key, value in items.items():
        console.print(Text.assemble((f"{key:<{width}}", "bold cyan"), value), soft_wrap=True)


def print_error(message: str) -> None:
    """One ``error: ...`` line on stderr (no markup: values such as [3, 2] contain brackets)."""
    _print_line("error: ", "bold red", message)
    RUN_LOG.error(message)


def print_warning(message: str) -> None:
    """One ``warning: ...`` line on stderr."""
    _print_line("warning: ", "bold yellow", message)
    RUN_LOG.warning(message)


def print_note(message: str) -> None:
    """One ``note: ...`` line on stdout (what lrrun decided for the user, e.g. to finish a
    sweep rather than redo it)."""
    Console(highlight=False).print(Text.assemble(("note: ", "bold cyan"), message), soft_wrap=True)


def _print_line(label: str, style: str, message: str) -> None:
    Console(stderr=True, highlight=False).print(
        Text.assemble((label, style), message), soft_wrap=True
    )
