"""The two trackers behind lrrun.logs.trackers' interface, each with its own writer: torch's
SummaryWriter (TensorBoard event files) and the MLflow client (no global active run, so
jobs of a sweep in one process never mix), and ``open_trackers``, which starts the configured
ones. The backends import their packages only when a tracker is configured."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from lrrun.config.trainer import TrainerSettings
from lrrun.errors import ConfigError
from lrrun.logs.trackers import Point, Tracker, Trackers

MLFLOW_STATUS = {
    "ok": "FINISHED",
    "stopped_early": "FINISHED",
    "interrupted": "KILLED",
}  # else FAILED


def open_trackers(
    trainer: TrainerSettings, run_dir: Path, group_names: Sequence[str], resumed_step: int | None
) -> Trackers:
    """Start each of trainer.trackers (checked by lrrun.config.settings) for a run
    (``resumed_step``: the checkpoint's step)."""
    opened: list[Tracker] = []
    for name in trainer.trackers:
        if name == "tensorboard":
            opened.append(TensorBoard(run_dir / "tensorboard", resumed_step))
        else:
            options = mlflow_options(trainer.mlflow_uri, run_dir)
            try:
                opened.append(MLflow(resumed_step, **options))
            except Exception as exc:
                raise mlflow_error(exc, options["uri"]) from None
    return Trackers(opened, group_names)


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
        """One event per step holding all its scalars (add_scalar would write one event per
        scalar, at twice the cost); the same simple_value summaries add_scalar writes."""
        from tensorboard.compat.proto.summary_pb2 import Summary

        file_writer = self.writer._get_file_writer()
        for step, scalars in points:
            values = [Summary.Value(tag=k, simple_value=v) for k, v in scalars.items()]
            file_writer.add_summary(Summary(value=values), step)
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


# --- where MLflow runs go: the store, the run's options, a sweep's parent run ----------------


def mlflow_uri(setting: str | None) -> str:
    """trainer.mlflow_uri, or (null) a local store in the mlruns folder next to outputs/: an
    SQLite file, mlruns/mlflow.db (MLflow 3 refuses its plain-file store unless told
    otherwise), with the artifacts beside it in mlruns/<experiment id>/."""
    if setting:
        return str(setting)
    folder = (Path.cwd() / "mlruns").resolve()
    folder.mkdir(exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}"


def mlflow_error(exc: BaseException, uri: str) -> ConfigError:
    """MLflow could not use the store: one line naming trainer.mlflow_uri and the way out."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ConfigError(
        f"trainer.mlflow_uri={uri}: MLflow cannot use this store ({first[:300]}). Use "
        "trainer.mlflow_uri=null (mlruns/mlflow.db next to outputs/), an sqlite:/// file or "
        "a tracking server's http(s):// address."
    )


PARENT_FILE = ".mlflow_parent_run"  # in a sweep dir: the parent run's id (lrrun.sweep.callbacks)


def mlflow_options(uri: str | None, run_dir: Path) -> dict[str, Any]:
    """Where the run goes: the experiment named after the Hydra job, the run's id to
    continue on resume (status.json), and in a multirun the sweep's tags and parent run."""
    import json

    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra = HydraConfig.get() if HydraConfig.initialized() else None
    try:
        run_id = json.loads((run_dir / "status.json").read_text()).get("mlflow_run_id")
    except (OSError, ValueError):
        run_id = None
    tags = {"lrrun.run_dir": str(run_dir.resolve())}
    name = run_dir.name
    if hydra is not None and hydra.mode == RunMode.MULTIRUN:
        sweep_dir = Path(hydra.sweep.dir).resolve()
        tags |= {"lrrun.sweep_dir": str(sweep_dir), "lrrun.job_num": str(hydra.job.num)}
        name = f"{hydra.job.num}: {hydra.job.override_dirname}"
        parent = sweep_dir / PARENT_FILE
        if parent.is_file():
            tags["mlflow.parentRunId"] = parent.read_text().split()[0]
    return {
        "uri": mlflow_uri(uri),
        "experiment": hydra.job.name if hydra is not None else "lrrun",
        "run_id": run_id,
        "run_name": name,
        "tags": tags,
    }


def start_parent(uri_setting: str | None, sweep_dir: Path, experiment: str) -> None:
    """A multirun's MLflow parent run; its id in ``<sweep dir>/.mlflow_parent_run`` for the
    jobs (which may run in other processes) and for end_parent."""
    from mlflow import MlflowClient

    uri = mlflow_uri(uri_setting)
    try:
        client = MlflowClient(tracking_uri=uri)
        run = client.create_run(
            experiment_id_for(client, experiment),
            run_name=f"sweep {sweep_dir.name}",
            tags={"lrrun.sweep_dir": str(sweep_dir.resolve()), "lrrun.role": "sweep"},
        )
    except Exception as exc:
        raise mlflow_error(exc, uri) from None
    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / PARENT_FILE).write_text(f"{run.info.run_id}\n{uri}\n")


def end_parent(sweep_dir: Path, files: Sequence[Path], status: str) -> None:
    """Give the parent run the sweep's files (summary.csv, configs.csv, pictures); end it."""
    path = sweep_dir / PARENT_FILE
    if not path.is_file():
        return
    from mlflow import MlflowClient

    run_id, uri = path.read_text().split()[:2]
    client = MlflowClient(tracking_uri=uri)
    for file in files:
        if file.is_file():
            client.log_artifact(run_id, str(file))
    client.set_terminated(run_id, MLFLOW_STATUS.get(status, "FAILED"))
