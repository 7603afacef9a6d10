"""trainer.trackers: what TensorBoard and MLflow hold, read back with their own readers
(TensorBoard's EventAccumulator, the MLflow client), equals steps.csv / metrics.csv: for a
run, a run interrupted mid-epoch and resumed, and a 2-job multirun under a parent run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lrrun.config import settings
from lrrun.config.settings import check_trackers
from lrrun.errors import ConfigError
from lrrun.logs import tracker_backends, trackers
from tests.conftest import (
    TINY,
    TINY_STEPS_PER_EPOCH,
    assert_ok,
    interrupt_after_first_epoch,
    read_csv,
    run_cli,
)

pytest.importorskip("tensorboard")
pytest.importorskip("mlflow")

HEAD = "+optimizer.param_groups=[{name:head,params:[fc2.*],lr:0.1}]"
BOTH = "trainer.trackers=[tensorboard,mlflow]"
STEP_KEYS = {"lr": "lr", "lr_1": "lr_head", "momentum": "momentum", "loss": "train/loss"}
EPOCH_KEYS = {
    "train_acc": "train/acc",
    "val_loss": "val/loss",
    "val_acc": "val/acc",
    "val_top5": "val/top5",
    "epoch_time_s": "epoch_time_s",
    "epoch": "epoch",
}


def tensorboard_scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})  # 0: keep every point
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def mlflow_client(cwd: Path):
    """The default store: mlruns/mlflow.db next to outputs/."""
    from mlflow import MlflowClient

    assert (cwd / "mlruns" / "mlflow.db").is_file()
    return MlflowClient(tracking_uri=f"sqlite:///{(cwd / 'mlruns' / 'mlflow.db').resolve()}")


def mlflow_metrics(client, run_id: str) -> dict[str, list[tuple[int, float]]]:
    return {
        key: sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
        for key in client.get_run(run_id).data.metrics
    }


def expected(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """What both trackers must hold, from the run's own CSVs."""
    steps, metrics = read_csv(run_dir / "steps.csv"), read_csv(run_dir / "metrics.csv")
    out = {
        name: [(int(r["step"]), float(r[col])) for r in steps]
        for col, name in STEP_KEYS.items()
        if col in steps[0]
    }
    last = {}
    for r in steps:
        last[int(r["epoch"])] = int(r["step"])
    for col, name in EPOCH_KEYS.items():
        out[name] = [(last[int(r["epoch"])], float(r[col])) for r in metrics]
    for col, name in (
        ("test_loss", "test/loss"),
        ("test_acc", "test/acc"),
        ("test_top5", "test/top5"),
    ):  # the tested epoch
        out[name] = [(last[int(r["epoch"])], float(r[col])) for r in metrics if r[col]]
    return out


def as_float32(points: dict[str, list[tuple[int, float]]]) -> dict[str, list[tuple[int, float]]]:
    """TensorBoard stores scalars as float32."""
    return {k: [(s, float(np.float32(v))) for s, v in pts] for k, pts in points.items()}


def run_id_of(run_dir: Path) -> str:
    import json

    return json.loads((run_dir / "status.json").read_text())["mlflow_run_id"]


# --- config -------------------------------------------------------------------------------


def test_check_names_and_missing_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    assert check_trackers([]) == [] and check_trackers(None) == []
    assert check_trackers(["mlflow", "tensorboard", "mlflow"]) == ["mlflow", "tensorboard"]
    with pytest.raises(ConfigError, match="'wandb' is not a tracker lrrun knows"):
        check_trackers(["wandb"])
    with pytest.raises(ConfigError, match="must be a list"):
        check_trackers("tensorboard")
    monkeypatch.setitem(settings.TRACKER_MODULES, "mlflow", "lrrun_no_such_module")
    with pytest.raises(ConfigError) as err:
        check_trackers(["mlflow"])
    assert "mlflow is not installed. Install it with: pip install 'lrrun[mlflow]'" in str(err.value)


def test_flatten() -> None:
    flat = trackers.flatten(
        {
            "scheduler": {"gamma": 0.7, "milestones": [1, 2], "T_max": None},
            "trainer": {"seed": 1, "plot": True},
        }
    )
    assert flat == {
        "scheduler.gamma": 0.7,
        "scheduler.milestones": "[1, 2]",
        "scheduler.T_max": "null",
        "trainer.seed": 1,
        "trainer.plot": True,
    }


def test_unknown_tracker_is_a_cli_error(tmp_path: Path) -> None:
    proc = run_cli([*TINY, "trainer.trackers=[wandb]", "hydra.run.dir=run"], tmp_path)
    assert proc.returncode == 2
    assert "trainer.trackers: 'wandb' is not a tracker lrrun knows" in proc.stderr
    assert "Traceback" not in proc.stderr


# --- a run --------------------------------------------------------------------------------


def test_a_run_reads_back_exactly(tmp_path: Path) -> None:
    args = [*TINY, "model=feedforward", HEAD, "scheduler=one_cycle_lr", "trainer.plot=true"]
    proc = run_cli([*args, BOTH, "hydra.run.dir=run"], tmp_path)
    assert_ok(proc)
    run_dir = tmp_path / "run"
    want = expected(run_dir)
    assert set(want) == {
        "lr",
        "lr_head",
        "momentum",
        "train/loss",
        "test/loss",
        "test/acc",
        "test/top5",
        *EPOCH_KEYS.values(),
    }
    assert len(want["test/acc"]) == 1  # the test split once, for the best val_acc epoch
    assert len(want["lr"]) == 6 * TINY_STEPS_PER_EPOCH
    assert want["val/acc"][0][0] == TINY_STEPS_PER_EPOCH  # epoch 1 at its last step

    assert tensorboard_scalars(run_dir / "tensorboard") == as_float32(want)

    client = mlflow_client(tmp_path)  # the default store: mlruns/ next to outputs
    run = client.get_run(run_id_of(run_dir))
    assert mlflow_metrics(client, run.info.run_id) == want
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "lrrun"
    params = run.data.params
    assert params["scheduler._target_"] == "torch.optim.lr_scheduler.OneCycleLR"
    assert params["trainer.seed"] == "42" and params["dataset.name"] == "synthetic"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert artifacts == {"curves.png", "metrics.csv", "steps.csv"}


def test_tensorboard_hparams_hold_the_config(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    args = [*TINY, "trainer.epochs=1", "trainer.trackers=[tensorboard]", "hydra.run.dir=run"]
    assert_ok(run_cli(args, tmp_path))
    assert not (tmp_path / "mlruns").exists()
    acc = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    acc.Reload()
    content = acc.SummaryMetadata("_hparams_/session_start_info").plugin_data.content
    hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    assert hparams["scheduler.gamma"].number_value == pytest.approx(0.7)
    assert hparams["optimizer._target_"].string_value == "torch.optim.SGD"


# --- a run interrupted mid-epoch and resumed ----------------------------------------------

LONG = [
    "dataset=synthetic",
    "dataset.train_size=4096",
    "dataset.test_size=256",
    "trainer.batch_size=32",
    "trainer.epochs=8",
    "trainer.device=cpu",
    "trainer.plot=false",
    "trainer.progress=false",
    "scheduler=exponential_lr",
    "scheduler.gamma=0.8",
    BOTH,
]


@pytest.mark.slow  # a real interrupt / a multirun: run by make test-slow in CI
def test_resumed_run_continues_without_duplicate_steps(tmp_path: Path) -> None:
    for attempt in range(3):  # a stall on a loaded machine can put the signal on a boundary
        cwd = tmp_path / f"try{attempt}"
        cwd.mkdir()
        run_dir = cwd / "run"
        proc = interrupt_after_first_epoch([*LONG, "hydra.run.dir=run"], cwd, run_dir)
        assert proc.returncode == 130, proc.stderr
        stopped = read_csv(run_dir / "steps.csv")
        done = len(read_csv(run_dir / "metrics.csv"))
        if 1 <= done < 8 and len(stopped) > done * 128:
            break
    else:
        pytest.fail("the signal never landed mid-epoch in 3 tries")
    run_id = run_id_of(run_dir)
    client = mlflow_client(cwd)
    assert client.get_run(run_id).info.status == "KILLED"
    # the half-done epoch's steps are in steps.csv and in both trackers; resume redoes them
    assert len(tensorboard_scalars(run_dir / "tensorboard")["lr"]) == len(stopped)

    assert_ok(run_cli([*LONG, f"trainer.resume={run_dir}"], cwd))
    want = expected(run_dir)
    assert len(want["lr"]) == 8 * 128
    assert tensorboard_scalars(run_dir / "tensorboard") == as_float32(want)  # purged, no twins
    assert run_id_of(run_dir) == run_id
    assert mlflow_metrics(client, run_id) == want  # one value per step
    assert client.get_run(run_id).info.status == "FINISHED"


def test_a_resume_that_fails_to_start_does_not_leave_its_run_running(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert_ok(
        run_cli(
            [*TINY, "trainer.epochs=2", "trainer.trackers=[mlflow]", "hydra.run.dir=run"], tmp_path
        )
    )
    steps = run_dir / "steps.csv"
    steps.write_text(steps.read_text().replace("epoch,step,lr,loss", "epoch,step,lr,loss2", 1))
    proc = run_cli([*TINY, "trainer.trackers=[mlflow]", f"trainer.resume={run_dir}"], tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "has columns ['epoch', 'step', 'lr', 'loss2']" in proc.stderr
    run = mlflow_client(tmp_path).get_run(run_id_of(run_dir))
    assert run.info.status == "FAILED"  # the attempt failed; not RUNNING forever
    assert len(read_csv(run_dir / "metrics.csv")) == 2  # nothing written was lost


# --- a multirun ---------------------------------------------------------------------------


@pytest.mark.slow  # a real interrupt / a multirun: run by make test-slow in CI
def test_multirun_jobs_are_children_of_the_sweep_run(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path.resolve() / 'store.db'}"
    proc = run_cli(
        [
            "-m",
            *TINY,
            "trainer.epochs=2",
            BOTH,
            f"trainer.mlflow_uri={uri}",
            "scheduler.gamma=0.5,0.9",
            "hydra.sweep.dir=sweep",
        ],
        tmp_path,
    )
    assert_ok(proc)
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    sweep = (tmp_path / "sweep").resolve()
    parent_id = (sweep / tracker_backends.PARENT_FILE).read_text().split()[0]
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["lrrun.sweep_dir"] == str(sweep)
    assert {a.path for a in client.list_artifacts(parent_id)} >= {"summary.csv", "configs.csv"}
    for job in ("0", "1"):
        run_dir = sweep / job
        run = client.get_run(run_id_of(run_dir))
        assert run.data.tags["mlflow.parentRunId"] == parent_id
        assert run.data.tags["lrrun.job_num"] == job
        assert run.data.tags["lrrun.sweep_dir"] == str(sweep)
        assert run.data.params["scheduler.gamma"] == ("0.5" if job == "0" else "0.9")
        assert mlflow_metrics(client, run.info.run_id) == expected(run_dir)
        assert tensorboard_scalars(run_dir / "tensorboard") == as_float32(expected(run_dir))


class _Recorder:
    """A tracker that keeps what it gets, or fails on its first write."""

    def __init__(self, fail: bool = False) -> None:
        self.fail, self.points, self.closed = fail, [], None
        self.where = "memory"

    def log_config(self, params) -> None:
        pass

    def log_points(self, points) -> None:
        if self.fail:
            raise OSError("disk full")
        self.points += points

    def close(self, status, artifacts) -> None:
        self.closed = status


def test_writes_run_in_order_and_a_failing_tracker_is_dropped(capsys) -> None:
    good, bad = _Recorder(), _Recorder(fail=True)
    fan = trackers.Trackers([good, bad], ["default", "head"])
    rows = [{"epoch": 1, "step": s, "lr": 0.1, "lr_1": 1.0, "loss": 2.0 / s} for s in (1, 2)]
    fan.steps(rows)
    fan.epoch(
        {
            "epoch": 1,
            "train_acc": 0.5,
            "val_loss": 1.0,
            "val_acc": 0.6,
            "epoch_time_s": 0.1,
            "lr": 0.1,
        },
        2,
    )
    fan.close("ok", [])
    assert good.points == [
        (1, {"lr": 0.1, "lr_head": 1.0, "train/loss": 2.0}),
        (2, {"lr": 0.1, "lr_head": 1.0, "train/loss": 1.0}),
        (2, {"train/acc": 0.5, "val/loss": 1.0, "val/acc": 0.6, "epoch_time_s": 0.1, "epoch": 1.0}),
    ]
    assert good.closed == "ok" and bad.closed is None
    err = capsys.readouterr().err
    assert err.count("_Recorder stopped logging (disk full)") == 1
