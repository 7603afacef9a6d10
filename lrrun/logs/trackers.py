"""trainer.trackers: TensorBoard and MLflow receive what the CSVs receive.

The CSVs stay the source of truth and are always written; a tracker is a copy for people who
keep their runs there. Both get, behind one small interface (like torchtune's MetricLogger):

- the resolved config, flattened (``scheduler.gamma``), as params / hparams;
- per optimizer step, at the global step: ``lr`` (group 0), ``lr_<name>`` (each other param
  group), ``momentum`` and ``grad_norm`` (when steps.csv has them) and ``train/loss``;
- per epoch, at the epoch's last step (Lightning's convention): every metric of the task as
  ``split/metric`` - ``train/acc``, ``val/loss``, ``val/acc`` (``val/top5``); for regression
  ``val/mae``, ``val/rmse``, ``val/r2``; for a language model ``val/ppl`` - ``epoch_time_s``
  and ``epoch`` (and ``test/*``: at the chosen epoch's step when the run ends, or every
  epoch with trainer.test_every_epoch).

They are written when an epoch's rows are (steps.csv's values, no extra host sync). A resumed
run continues where it stopped: TensorBoard purges the steps after the checkpoint (events of a
half-done epoch), MLflow continues the same run (its id is in status.json) and skips steps it
already has. The backends (and where MLflow runs go): lrrun.tracker_backends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

Point = tuple[int, dict[str, float]]  # (global step, {key: value})


class Tracker(Protocol):
    where: str  # for the run header: where to look

    def log_config(self, params: Mapping[str, Any]) -> None: ...

    def log_points(self, points: Sequence[Point]) -> None: ...

    def close(self, status: str, artifacts: Sequence[Path]) -> None: ...


def flatten(node: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"scheduler": {"gamma": 0.7}}`` -> ``{"scheduler.gamma": 0.7}``; lists and nulls as
    text (what both trackers accept)."""
    flat: dict[str, Any] = {}
    for key, value in node.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat |= flatten(value, name + ".")
        elif isinstance(value, bool | int | float | str):
            flat[name] = value
        else:
            flat[name] = "null" if value is None else str(value)
    return flat


def step_points(rows: Sequence[dict[str, Any]], group_names: Sequence[str]) -> list[Point]:
    """steps.csv rows as tracker points: lr, lr_<group name>, momentum, train/loss."""
    keys = {"lr": "lr", "momentum": "momentum", "loss": "train/loss", "grad_norm": "grad_norm"}
    keys |= {f"lr_{i}": f"lr_{name}" for i, name in enumerate(group_names) if i > 0}
    return [(r["step"], {keys[k]: v for k, v in r.items() if k in keys}) for r in rows]


def epoch_point(row: dict[str, Any], step: int) -> Point:
    """A metrics.csv row at its epoch's last global step: each metric as ``split/metric``
    (val/acc, val/rmse, test/ppl, ...; test/* when it has them; train/loss comes per step)."""
    values = {"epoch": row["epoch"], "epoch_time_s": row.get("epoch_time_s")}
    for column, value in row.items():
        split, _, metric = column.partition("_")
        if split in ("train", "val", "test") and metric and column != "train_loss":
            values[f"{split}/{metric}"] = value
    return step, {name: float(v) for name, v in values.items() if v is not None}


class Trackers:
    """Every configured tracker, fed from the runner's rows (the fan-out).

    Writes run on one background thread, in order: serialising ~2,000 scalars per epoch
    into event files or an SQLite store would otherwise stop training for a sizeable part
    of an epoch (benchmarks/trackers.py). ``close`` waits for them. A tracker that fails
    mid-run is reported once and dropped; the CSVs, the source of truth, go on. (MLflow's
    writes in a child process, free of this process's lock, measured slower on 2 cores:
    MLflow 1.82x an epoch without trackers vs 1.23x on this thread, as the child takes a
    core from torch's threads.)
    """

    def __init__(self, trackers: Sequence[Tracker], group_names: Sequence[str]) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.trackers, self.group_names = list(trackers), list(group_names)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="lrrun-trackers")
        self._pending: list[tuple[Tracker, Any]] = []  # (tracker, its write's future)

    def log_config(self, params: Mapping[str, Any]) -> None:
        for t in self.trackers:
            t.log_config(params)

    def steps(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows and self.trackers:
            self._submit(step_points(rows, self.group_names))

    def epoch(self, row: dict[str, Any], step: int) -> None:
        if self.trackers:
            self._submit([epoch_point(row, step)])

    def test(self, tested: dict[str, Any], step: int) -> None:
        """The chosen epoch's test result (lrrun.train.final_test), at that epoch's step."""
        if self.trackers:
            metrics = {f"test/{k}": v for k, v in tested.items() if k not in ("epoch", "chosen_by")}
            self._submit([(step, metrics)])

    def _submit(self, points: list[Point]) -> None:
        self._settle(wait=False)
        self._pending += [(t, self._pool.submit(t.log_points, points)) for t in self.trackers]

    def _settle(self, wait: bool) -> None:
        """Forget finished writes; a failed one drops its tracker, with one warning."""
        from lrrun.logs.console import print_warning

        running = []
        for tracker, future in self._pending:
            if not wait and not future.done():
                running.append((tracker, future))
            elif future.exception() is not None and tracker in self.trackers:
                self.trackers.remove(tracker)
                print_warning(
                    f"{type(tracker).__name__} stopped logging "
                    f"({future.exception()}); the CSVs have everything"
                )
        self._pending = running

    def close(self, status: str, artifacts: Sequence[Path]) -> None:
        self._settle(wait=True)
        self._pool.shutdown(wait=True)
        for t in self.trackers:
            t.close(status, [p for p in artifacts if p.is_file()])
        self.trackers = []  # closed once, whichever exit path gets here first

    def header(self) -> dict[str, str]:
        return {"trackers": "; ".join(t.where for t in self.trackers)} if self.trackers else {}

    def ids(self) -> dict[str, str]:
        """What a resumed run needs to continue its tracker runs (kept in status.json)."""
        ids = [t.run_id for t in self.trackers if hasattr(t, "run_id")]
        return {"mlflow_run_id": ids[0]} if ids else {}
