"""The two trackers behind lrrun.trackers' interface, each with its own writer: torch's
SummaryWriter (TensorBoard event files) and the MLflow client (no global active run, so
jobs of a sweep in one process never mix). Imported only when a tracker is configured."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from lrrun.trackers import Point

MLFLOW_STATUS = {"ok": "FINISHED", "interrupted": "KILLED"}  # anything else: FAILED


class TensorBoard:
    """Event files in ``<run dir>/tensorboard``. A resumed run appends to them and purges
    what was logged after its checkpoint (TensorBoard's own purge_step), so no step is
    there twice."""

    def __init__(self, log_dir: Path, resumed_step: int | None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        purge = None if resumed_step is None else resumed_step + 1
        self.writer = SummaryWriter(str(log_dir), purge_step=purge)
        self.resumed = resumed_step is not None
        self.where = f"tensorboard --logdir {log_dir}"

    def log_config(self, params: Mapping[str, Any]) -> None:
        """The HPARAMS tab's session (as Lightning writes it); once per run."""
        if self.resumed:
            return
        from torch.utils.tensorboard.summary import hparams

        file_writer = self.writer._get_file_writer()  # as Lightning's TensorBoardLogger does
        for summary in hparams(dict(params), {}):
            file_writer.add_summary(summary)

    def log_points(self, points: Sequence[Point]) -> None:
        for step, scalars in points:
            for key, value in scalars.items():
                self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def close(self, status: str, artifacts: Sequence[Path]) -> None:
        self.writer.close()


class MLflow:
    """One MLflow run per lrrun run (per job in a sweep, tagged with the sweep dir and job
    number, under the sweep's parent run). A resumed run continues the same MLflow run and
    skips the steps it already has (a half-done epoch after the checkpoint)."""

    def __init__(
        self,
        resumed_step: int | None,
        *,
        uri: str,
        experiment: str,
        run_id: str | None = None,
        run_name: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        from mlflow import MlflowClient

        self.client = MlflowClient(tracking_uri=uri)
        self.logged: dict[str, int] = {}  # key -> the last step MLflow already has
        if resumed_step is not None and run_id:
            self.run_id, self.resumed = run_id, True
            self.where = f"mlflow run {run_id} (continued), {uri}"
            self.client.update_run(run_id, status="RUNNING")
            for key in self.client.get_run(run_id).data.metrics:
                history = self.client.get_metric_history(run_id, key)
                self.logged[key] = max((m.step for m in history), default=-1)
            return
        experiment_id = experiment_id_for(self.client, experiment)
        run = self.client.create_run(experiment_id, run_name=run_name, tags=dict(tags or {}))
        self.run_id, self.resumed = run.info.run_id, False
        self.where = f"mlflow run {self.run_id}, experiment {experiment!r}, {uri}"

    def log_config(self, params: Mapping[str, Any]) -> None:
        if self.resumed:  # the run has them; MLflow refuses to change a param
            return
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for chunk in _chunks(items, 100):  # MLflow's limit per batch
            self.client.log_batch(self.run_id, params=chunk)

    def log_points(self, points: Sequence[Point]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [
            Metric(key, value, now, step)
            for step, scalars in points
            for key, value in scalars.items()
            if step > self.logged.get(key, -1)
        ]
        for chunk in _chunks(metrics, 1000):
            self.client.log_batch(self.run_id, metrics=chunk)

    def close(self, status: str, artifacts: Sequence[Path]) -> None:
        for path in artifacts:
            self.client.log_artifact(self.run_id, str(path))
        self.client.set_terminated(self.run_id, MLFLOW_STATUS.get(status, "FAILED"))


def experiment_id_for(client: Any, name: str) -> str:
    """The experiment's id, created on first use (parallel jobs may race to create it)."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name)
    except MlflowException:
        return client.get_experiment_by_name(name).experiment_id


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
