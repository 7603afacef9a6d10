"""task=regression through the CLI as a user runs it: float targets trained on standardised
values and reported in their own units, the metrics against their formulas, the lr against
torch, float targets refused under classification (never cast), and a sweep ranked lower
val_loss first."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from lrrun.tasks.regression import Regression
from tests.conftest import assert_ok, read_csv, run_cli
from tests.sources import write_regression
from tests.test_your_data import step_lr_replay

FAST = ["trainer.device=cpu", "trainer.progress=false", "trainer.plot=false"]
LINEAR = [
    "model=custom",
    "model._target_=torch.nn.Linear",
    "+model.in_features=1",
    "+model.out_features=1",
]


def test_a_linear_problem_recovers_its_slope(tmp_path: Path) -> None:
    """y = 100 + 3 x + noise (x raw: dataset.normalize=false): the model learns 3 in the
    targets' units (its weight x the train targets' std), R^2 > 0.95, and every step's lr is
    torch's StepLR replayed."""
    write_regression(tmp_path / "line.npz", n=400, features=1, slope=3.0, seed=1)
    args = [
        "task=regression",
        "dataset=tensors",
        "dataset.path=line.npz",
        "dataset.normalize=false",
        *LINEAR,
        "optimizer.lr=0.05",
        "scheduler.gamma=0.7",
        "trainer.epochs=6",
        "trainer.batch_size=32",
        *FAST,
        "hydra.run.dir=run",
    ]
    proc = run_cli(args, tmp_path)
    assert_ok(proc)
    run = tmp_path / "run"
    steps = read_csv(run / "steps.csv")
    assert len(steps) == 6 * math.ceil(360 / 32)  # 40 of 400 held out for val
    assert [float(r["lr"]) for r in steps] == pytest.approx(
        step_lr_replay(len(steps), math.ceil(360 / 32)), rel=1e-12, abs=0
    )
    metrics = read_csv(run / "metrics.csv")
    assert list(metrics[0]) == [
        "epoch",
        "lr",
        "train_loss",
        "val_loss",
        "val_mae",
        "val_rmse",
        "val_r2",
        "test_loss",
        "test_mae",
        "test_rmse",
        "test_r2",
        "epoch_time_s",
    ]
    assert float(metrics[-1]["val_r2"]) > 0.95
    tested = [r for r in metrics if r["test_r2"]]
    assert len(tested) == 1 and float(tested[0]["test_r2"]) > 0.95
    status = json.loads((run / "status.json").read_text())
    assert status["data"]["task"] == "regression" and status["test"]["r2"] > 0.95
    std = status["data"]["targets"]["std"][0]
    w = np.random.default_rng(1).normal(size=(1, 1))[0, 0]  # write_regression's weight
    slope = torch.load(run / "best.pt", weights_only=True)["model"]["weight"].item() * std
    assert slope == pytest.approx(3.0 * w, rel=0.03)
    out = " ".join(proc.stdout.split())
    assert "selects on val_loss (lower is better)" in out
    assert "standardised for training, reported in their units" in out
    assert f"best val_loss {min(float(r['val_loss']) for r in metrics):.4f}" in out


def test_the_metrics_are_in_the_targets_units() -> None:
    """Two outputs of very different scales: loss (MSE), mae, rmse (mean over outputs) and
    r2 (mean of each output's R^2) as scikit-learn's uniform_average computes them."""
    g = np.random.default_rng(0)
    y = np.stack([1000 + 50 * g.normal(size=64), 0.01 * g.normal(size=64)], 1)
    pred = y + np.stack([20 * g.normal(size=64), 0.005 * g.normal(size=64)], 1)
    mean, std = (1000.0, 0.0), (50.0, 0.01)
    task = Regression(mean, std, torch.device("cpu"))
    out = (torch.tensor(pred) - torch.tensor(mean)) / torch.tensor(std)  # what the model says
    meter = task.meter(train=False)
    for i in range(0, 64, 16):  # in batches, as evaluation adds them
        meter.add(out[i : i + 16].float(), torch.tensor(y[i : i + 16], dtype=torch.float32))
    got = meter.means()
    err = pred - y
    r2 = 1 - (err**2).sum(0) / ((y - y.mean(0)) ** 2).sum(0)
    assert got["loss"] == pytest.approx((err**2).mean(), rel=1e-5)
    assert got["mae"] == pytest.approx(np.abs(err).mean(), rel=1e-5)
    assert got["rmse"] == pytest.approx(np.sqrt((err**2).mean(0)).mean(), rel=1e-5)
    assert got["r2"] == pytest.approx(r2.mean(), rel=1e-4)


@pytest.mark.parametrize("loss", ["mse", "l1", "huber"])
def test_every_loss_trains_several_targets(tmp_path: Path, loss: str) -> None:
    """(N, 2) targets: the built-in feedforward sizes its output from them (num_classes=2)."""
    write_regression(tmp_path / "two.npz", n=200, features=3, outputs=2)
    args = [
        "task=regression",
        f"loss={loss}",
        "dataset=tensors",
        "dataset.path=two.npz",
        "optimizer=adam",
        "optimizer.lr=0.01",
        "scheduler=none",
        "trainer.epochs=8",
        "trainer.batch_size=20",
        *FAST,
        "hydra.run.dir=run",
    ]
    proc = run_cli(args, tmp_path)
    assert_ok(proc)
    metrics = read_csv(tmp_path / "run" / "metrics.csv")
    assert float(metrics[-1]["val_r2"]) > 0.8
    assert float(metrics[-1]["val_loss"]) < float(metrics[0]["val_loss"])
    assert "from the data: num_classes=2, input_dim=3" in " ".join(proc.stdout.split())


def float_targets(tmp_path: Path, whole: bool) -> Path:
    """scikit-learn's diabetes as a user saves it: float targets 25.0 ... 346.0."""
    g = np.random.default_rng(0)
    y = np.round(g.uniform(25, 346, 80)) if whole else g.uniform(0.25, 3.46, 80)
    np.savez(
        tmp_path / "diabetes.npz", x_train=g.normal(size=(80, 10)).astype(np.float32), y_train=y
    )
    return tmp_path / "diabetes.npz"


BUILD = """
import torch
from torch.utils.data import TensorDataset


def build():
    x = torch.randn(40, 4)
    return TensorDataset(x, 0.25 + 3.2 * torch.rand(40)), None
"""


@pytest.mark.parametrize("whole", [True, False], ids=["integer-valued", "fractional"])
def test_float_targets_are_refused_under_classification(tmp_path: Path, whole: bool) -> None:
    float_targets(tmp_path, whole)
    proc = run_cli(
        ["dataset=tensors", "dataset.path=diabetes.npz", *FAST, "hydra.run.dir=run"], tmp_path
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "y_train is float64: under task=classification targets must be integer class" in (
        " ".join(proc.stderr.split())
    )
    assert "use task=regression" in proc.stderr
    assert not (tmp_path / "run" / "metrics.csv").exists()


def test_a_callables_float_targets_are_refused_not_truncated(tmp_path: Path) -> None:
    (tmp_path / "mydata.py").write_text(BUILD)
    proc = run_cli(
        ["dataset=custom", "dataset._target_=mydata.build", *FAST, "hydra.run.dir=run"], tmp_path
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "float32: under task=classification" in proc.stderr and "task=regression" in proc.stderr
    proc = run_cli(
        [
            "task=regression",
            "dataset=custom",
            "dataset._target_=mydata.build",
            "trainer.epochs=1",
            *FAST,
            "hydra.run.dir=reg",
        ],
        tmp_path,
    )
    assert_ok(proc)  # the same data, as what it is
    assert "val_r2" in read_csv(tmp_path / "reg" / "metrics.csv")[0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"y_train": np.array([1.0, np.nan] * 20)}, "y_train holds NaN or infinite values"),
        ({"y_train": np.zeros((40, 2, 2))}, "has shape (40, 2, 2): regression targets are (N,)"),
        ({"y_train": np.zeros(39)}, "y_train has shape (39,) but there are 40 samples"),
    ],
    ids=["nan", "3-d", "length"],
)
def test_bad_regression_targets(tmp_path: Path, change: dict, message: str) -> None:
    arrays = {"x_train": np.zeros((40, 3), np.float32), "y_train": np.zeros(40)} | change
    np.savez(tmp_path / "d.npz", **arrays)
    proc = run_cli(
        ["task=regression", "dataset=tensors", "dataset.path=d.npz", *FAST, "hydra.run.dir=run"],
        tmp_path,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert message in " ".join(proc.stderr.split())


def test_a_model_of_the_wrong_width_is_refused(tmp_path: Path) -> None:
    write_regression(tmp_path / "two.npz", n=60, features=3, outputs=2)
    proc = run_cli(
        [
            "task=regression",
            "dataset=tensors",
            "dataset.path=two.npz",
            "model.num_classes=3",
            *FAST,
        ],
        tmp_path,
    )
    assert proc.returncode == 2
    assert "model.num_classes=3 does not fit the data: it has 2 classes" in proc.stderr
    proc = run_cli(
        [
            "task=regression",
            "dataset=tensors",
            "dataset.path=two.npz",
            *LINEAR[:2],
            "+model.in_features=3",
            "+model.out_features=1",
            *FAST,
        ],
        tmp_path,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "returns (2, 1) for a batch of 2x3; lrrun needs values of shape (2, 2)" in proc.stderr
