"""trainer.trackers: TensorBoard and MLflow receive what the CSVs receive.

The CSVs stay the source of truth and are always written; a tracker is a copy for people who
keep their runs there. Both get, behind one small interface (like torchtune's MetricLogger):

- the resolved config, flattened (``scheduler.gamma``), as params / hparams;
- per optimizer step, at the global step: ``lr`` (group 0), ``lr_<name>`` (each other param
  group), ``momentum`` (when steps.csv has it) and ``train/loss``;
- per epoch, at the epoch's last step (Lightning's convention): ``train/acc``, ``val/loss``,
  ``val/acc``, ``epoch_time_s`` and ``epoch``.

They are written when an epoch's rows are (steps.csv's values, no extra host sync). A resumed
run continues where it stopped: TensorBoard purges the steps after the checkpoint (events of a
half-done epoch), MLflow continues the same run (its id is in status.json) and skips steps it
already has. The backends: lrrun.tracker_backends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from lrrun.errors import ConfigError

NAMES = ("tensorboard", "mlflow")
INSTALL = {
    "tensorboard": "pip install 'lrrun[tensorboard]'",
    "mlflow": "pip install 'lrrun[mlflow]'",
}
_MODULES = {"tensorboard": "tensorboard", "mlflow": "mlflow"}

Point = tuple[int, dict[str, float]]  # (global step, {key: value})


class Tracker(Protocol):
    where: str  # for the run header: where to look

    def log_config(self, params: Mapping[str, Any]) -> None: ...

    def log_points(self, points: Sequence[Point]) -> None: ...

    def close(self, status: str, artifacts: Sequence[Path]) -> None: ...


def check(value: Any) -> list[str]:
    """trainer.trackers: a list of known names whose packages are installed."""
    import importlib.util

    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(
            f"trainer.trackers={value!r} must be a list, e.g. trainer.trackers=[tensorboard] "
            "or [tensorboard,mlflow] ([] for none)."
        )
    for name in value:
        if name not in NAMES:
            raise ConfigError(
                f"trainer.trackers: {name!r} is not a tracker lrrun knows. Use "
                + " or ".join(NAMES)
                + "."
            )
        if importlib.util.find_spec(_MODULES[name]) is None:
            raise ConfigError(
                f"trainer.trackers: {name} is not installed. Install it with: {INSTALL[name]}"
            )
    return list(dict.fromkeys(value))


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
    keys = {"lr": "lr", "momentum": "momentum", "loss": "train/loss"}
    keys |= {f"lr_{i}": f"lr_{name}" for i, name in enumerate(group_names) if i > 0}
    return [(r["step"], {keys[k]: v for k, v in r.items() if k in keys}) for r in rows]


def epoch_point(row: dict[str, Any], step: int) -> Point:
    """A metrics.csv row at its epoch's last global step."""
    keys = {"train_acc": "train/acc", "val_loss": "val/loss", "val_acc": "val/acc",
            "epoch_time_s": "epoch_time_s", "epoch": "epoch"}  # fmt: skip
    return step, {name: float(row[k]) for k, name in keys.items()}


class Trackers:
    """Every configured tracker, fed from the runner's rows (the fan-out)."""

    def __init__(self, trackers: Sequence[Tracker], group_names: Sequence[str]) -> None:
        self.trackers, self.group_names = list(trackers), list(group_names)

    def log_config(self, params: Mapping[str, Any]) -> None:
        for t in self.trackers:
            t.log_config(params)

    def steps(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows and self.trackers:
            points = step_points(rows, self.group_names)
            for t in self.trackers:
                t.log_points(points)

    def epoch(self, row: dict[str, Any], step: int) -> None:
        for t in self.trackers:
            t.log_points([epoch_point(row, step)])

    def close(self, status: str, artifacts: Sequence[Path]) -> None:
        for t in self.trackers:
            t.close(status, [p for p in artifacts if p.is_file()])
        self.trackers = []  # closed once, whichever exit path gets here first

    def header(self) -> dict[str, str]:
        return {"trackers": "; ".join(t.where for t in self.trackers)} if self.trackers else {}

    def ids(self) -> dict[str, str]:
        """What a resumed run needs to continue its tracker runs (kept in status.json)."""
        ids = [t.run_id for t in self.trackers if hasattr(t, "run_id")]
        return {"mlflow_run_id": ids[0]} if ids else {}


def open_trackers(
    trainer: Mapping[str, Any], run_dir: Path, group_names: Sequence[str], resumed_step: int | None
) -> Trackers:
    """Start each of trainer.trackers for a run (``resumed_step``: the checkpoint's step)."""
    from lrrun import tracker_backends as backends

    opened: list[Tracker] = []
    for name in check(trainer.get("trackers")):
        if name == "tensorboard":
            opened.append(backends.TensorBoard(run_dir / "tensorboard", resumed_step))
        else:
            options = mlflow_options(trainer, run_dir)
            try:
                opened.append(backends.MLflow(resumed_step, **options))
            except Exception as exc:
                raise mlflow_error(exc, options["uri"]) from None
    return Trackers(opened, group_names)


def mlflow_uri(trainer: Mapping[str, Any]) -> str:
    """trainer.mlflow_uri, or a local store in the mlruns folder next to outputs/: an SQLite
    file, mlruns/mlflow.db (MLflow 3 refuses its plain-file store unless told otherwise),
    with the artifacts beside it in mlruns/<experiment id>/."""
    if trainer.get("mlflow_uri"):
        return str(trainer["mlflow_uri"])
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


PARENT_FILE = ".mlflow_parent_run"  # in a sweep dir: the parent run's id (lrrun.callbacks)


def mlflow_options(trainer: Mapping[str, Any], run_dir: Path) -> dict[str, Any]:
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
        "uri": mlflow_uri(trainer),
        "experiment": hydra.job.name if hydra is not None else "lrrun",
        "run_id": run_id,
        "run_name": name,
        "tags": tags,
    }


def start_parent(trainer: Mapping[str, Any], sweep_dir: Path, experiment: str) -> None:
    """A multirun's MLflow parent run; its id in ``<sweep dir>/.mlflow_parent_run`` for the
    jobs (which may run in other processes) and for end_parent."""
    from mlflow import MlflowClient

    from lrrun.tracker_backends import experiment_id_for

    uri = mlflow_uri(trainer)
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

    from lrrun.tracker_backends import MLFLOW_STATUS

    run_id, uri = path.read_text().split()[:2]
    client = MlflowClient(tracking_uri=uri)
    for file in files:
        if file.is_file():
            client.log_artifact(run_id, str(file))
    client.set_terminated(run_id, MLFLOW_STATUS.get(status, "FAILED"))
