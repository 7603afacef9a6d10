"""Honest validation: the val split chooses (best.pt, the verdict), the test split is
reported only, and dataset.val_split=0 (selecting on test) is said plainly.

The data here makes the two disagree: the test labels are shifted by one class, so the
better the model learns, the worse its "test" accuracy. Anything that chose on test would
pick another epoch, and another config, than the val split does."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import assert_ok, read_csv, run_cli
from tests.sources import images, write_npz

ARGS = [
    "dataset=tensors",
    "dataset.path=d.npz",
    "model=custom",
    "model._target_=tests.sources.TinyNet",
    "optimizer.lr=0.02",
    "trainer.epochs=5",
    "trainer.batch_size=16",
    "trainer.device=cpu",
    "trainer.progress=false",
    "trainer.plot=false",
]


@pytest.fixture
def disagreeing(tmp_path: Path) -> Path:
    x_val, y_val = images(60, 3, 8, 3, 3)
    x_test, y_test = images(60, 3, 8, 3, 4)
    write_npz(
        tmp_path / "d.npz",
        n=120,
        x_val=x_val.numpy(),
        y_val=y_val.numpy(),
        x_test=x_test.numpy(),
        y_test=((y_test + 1) % 3).numpy(),
    )
    return tmp_path


def best(rows: list[dict[str, str]], key: str) -> int:
    return int(max(rows, key=lambda r: float(r[key]))["epoch"])


def test_best_pt_follows_val_never_test(disagreeing: Path) -> None:
    proc = run_cli([*ARGS, "trainer.test_every_epoch=true", "hydra.run.dir=every"], disagreeing)
    assert_ok(proc)
    rows = read_csv(disagreeing / "every" / "metrics.csv")
    assert all(r["test_acc"] for r in rows)  # every epoch, with the flag
    assert best(rows, "val_acc") != best(rows, "test_acc")  # the two splits disagree
    saved = torch.load(disagreeing / "every" / "best.pt", weights_only=True)
    assert saved["epoch"] == best(rows, "val_acc")
    assert "test_acc" in proc.stdout  # the console shows the column with the flag

    # By default: the test split once, for the epoch val chose, in that row only.
    assert_ok(run_cli([*ARGS, "hydra.run.dir=once"], disagreeing))
    once = read_csv(disagreeing / "once" / "metrics.csv")
    tested = [r for r in once if r["test_acc"]]
    assert [int(r["epoch"]) for r in tested] == [best(rows, "val_acc")]
    same = rows[best(rows, "val_acc") - 1]  # the same seed: the same numbers as every-epoch
    assert (tested[0]["test_loss"], tested[0]["test_acc"]) == (same["test_loss"], same["test_acc"])
    status = json.loads((disagreeing / "once" / "status.json").read_text())
    assert status["test"]["epoch"] == best(rows, "val_acc")
    assert status["test"]["chosen_by"] == "best val_acc"


def test_without_best_pt_the_last_epoch_is_tested_and_said(disagreeing: Path) -> None:
    proc = run_cli([*ARGS, "trainer.save_best=false", "hydra.run.dir=run"], disagreeing)
    assert_ok(proc)
    rows = read_csv(disagreeing / "run" / "metrics.csv")
    assert [r["epoch"] for r in rows if r["test_acc"]] == ["5"]
    assert "(epoch 5, the last epoch (trainer.save_best=false: no best.pt)" in proc.stdout


def test_the_verdict_ranks_on_val_and_reports_test(disagreeing: Path) -> None:
    """Two learning rates, two seeds each: the faster learner has the better val accuracy and
    (these test labels being shifted) the worse test accuracy; it still wins."""
    proc = run_cli(
        [
            "-m",
            *ARGS,
            "trainer.epochs=3",
            "optimizer.lr=0.002,0.05",
            "trainer.seed=1,2",
            "hydra.sweep.dir=sweep",
        ],
        disagreeing,
    )
    assert_ok(proc)
    configs = read_csv(disagreeing / "sweep" / "configs.csv")
    assert configs[0]["optimizer.lr"] == "0.05"
    summary = read_csv(disagreeing / "sweep" / "summary.csv")
    test = {
        lr: np.mean([float(r["test_acc"]) for r in summary if r["optimizer.lr"] == lr])
        for lr in ("0.002", "0.05")
    }
    assert test["0.05"] < test["0.002"]  # chosen on val even so
    out = " ".join(proc.stdout.split())
    assert "best: optimizer.lr=0.05" in out
    assert "test: the best config's test accuracy is" in out and "reported only" in out


def test_selecting_on_test_is_said_plainly(tmp_path: Path) -> None:
    write_npz(tmp_path / "d.npz", n=60)
    proc = run_cli(
        [
            "-m",
            *ARGS,
            "dataset.val_split=0",
            "trainer.epochs=2",
            "optimizer.lr=0.01,0.02",
            "hydra.sweep.dir=sweep",
        ],
        tmp_path,
    )
    assert_ok(proc)
    out = " ".join(proc.stdout.split())
    assert "60 train / 30 val, no test split" in out  # the test split plays val
    assert "selection is on the test split, so its numbers are optimistic" in out
    assert "selected on the test split: 2 jobs ran with dataset.val_split=0" in out
    status = json.loads((tmp_path / "sweep" / "0" / "status.json").read_text())
    assert status["data"]["selection"] == "test" and status["test"] is None
    assert not any(r["test_acc"] for r in read_csv(tmp_path / "sweep" / "0" / "metrics.csv"))
