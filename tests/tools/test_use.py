"""From a trained run to its use: ``lrrun.load_run``, ``lrrun-predict`` and ``lrrun-export``
give the predictions the run's own evaluation made - checked against the test metrics the
run wrote, on raw samples as the dataset gives them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import lrrun
from lrrun.data.folder import decode
from lrrun.errors import ConfigError
from lrrun.tools.export import run_onnx
from tests.conftest import assert_ok, read_csv, run_cli
from tests.sources import write_folder, write_regression

FAST = ["trainer.device=cpu", "trainer.progress=false", "trainer.plot=false"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A small CNN of 3 epochs on a generated image folder (train/ and test/)."""
    root = tmp_path_factory.mktemp("use")
    write_folder(root / "img", classes=4, splits={"train": 30, "test": 12}, size=8, seed=3)
    args = [
        "dataset=image_folder",
        "dataset.root=img",
        "model=fashion_mnist_net",
        "optimizer.lr=0.02",
        "trainer.epochs=3",
        "trainer.batch_size=16",
        *FAST,
        "hydra.run.dir=run",
    ]
    assert_ok(run_cli(args, root))
    return root


def test_load_run_predicts_the_run_s_own_test_accuracy(trained: Path) -> None:
    run = lrrun.load_run(trained / "run")
    tested = next(r for r in read_csv(trained / "run" / "metrics.csv") if r["test_acc"])
    assert run.epoch == int(tested["epoch"]) and not run.model.training
    files = sorted((trained / "img" / "test").rglob("*.png"))
    out = run.predict(files)
    accuracy = np.mean([n == f.parent.name for n, f in zip(out.names, files, strict=True)])
    assert accuracy == pytest.approx(float(tested["test_acc"]), abs=1e-12)
    assert out.probs.sum(dim=1) == pytest.approx(torch.ones(len(files)), abs=1e-5)
    # raw samples of any kind prepare alike: a file, its uint8 tensor, its H x W x C array
    pixels = decode(str(files[0]), 3, None)
    same = [
        run.prepare(files[0]),
        run.prepare(pixels),
        run.prepare(pixels.permute(1, 2, 0).numpy()),
    ]
    assert all(torch.equal(same[0], s) for s in same)


def test_lrrun_predict_writes_the_same_predictions(trained: Path) -> None:
    proc = run_cli(["run", "img/test", "--out", "p.csv"], trained, prog="lrrun-predict")
    assert_ok(proc)
    rows = read_csv(trained / "p.csv")
    assert list(rows[0]) == ["input", "label", "prediction", "probability"]
    files = [r["input"] for r in rows]
    assert rows and all(Path(trained, f).is_file() for f in files)
    out = lrrun.load_run(trained / "run").predict([trained / f for f in files])
    assert [r["prediction"] for r in rows] == out.names
    tested = next(r for r in read_csv(trained / "run" / "metrics.csv") if r["test_acc"])
    assert f"accuracy {float(tested['test_acc']):.4f} on the 48 inputs" in proc.stdout


@pytest.mark.parametrize("fmt", ["pt2", "onnx"])
def test_the_exported_program_takes_raw_pixels(trained: Path, fmt: str) -> None:
    proc = run_cli(["run", "--format", fmt, "--out", f"m.{fmt}"], trained, prog="lrrun-export")
    assert_ok(proc)
    assert "max |difference|" in proc.stdout
    run = lrrun.load_run(trained / "run")
    files = sorted((trained / "img" / "test").rglob("*.png"))
    raw = torch.stack([decode(str(f), 3, None) for f in files])  # uint8, as the folder gives
    assert raw.dtype == torch.uint8
    with torch.inference_mode():
        expected = run.model(run.prepare(files))
        if fmt == "pt2":
            got = torch.export.load(trained / "m.pt2").module()(raw)
        else:
            got = torch.as_tensor(run_onnx(trained / "m.onnx", raw.numpy()))
    assert torch.allclose(got, expected, rtol=0, atol=1e-5)
    assert torch.equal(got.argmax(1), expected.argmax(1))


def test_regression_predicts_values_in_the_targets_units(tmp_path: Path) -> None:
    """lrrun-predict on the .npz's test split: the values' mean squared error is the
    test_loss the run reported (MSE in the targets' units)."""
    write_regression(tmp_path / "line.npz", n=300, features=3, slope=2.0, seed=2)
    args = [
        "task=regression",
        "dataset=tensors",
        "dataset.path=line.npz",
        "trainer.epochs=3",
        "trainer.batch_size=32",
        *FAST,
        "hydra.run.dir=run",
    ]
    assert_ok(run_cli(args, tmp_path))
    assert_ok(run_cli(["run", "line.npz"], tmp_path, prog="lrrun-predict"))
    rows = read_csv(tmp_path / "predictions.csv")
    assert list(rows[0]) == ["input", "label", "value"]
    with np.load(tmp_path / "line.npz") as arrays:
        y = arrays["y_test"].reshape(-1)
    values = np.array([float(r["value"]) for r in rows])
    tested = next(r for r in read_csv(tmp_path / "run" / "metrics.csv") if r["test_loss"])
    assert np.mean((values - y) ** 2) == pytest.approx(float(tested["test_loss"]), rel=1e-4)


def test_what_cannot_be_used_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no checkpoint there"):
        lrrun.load_run(tmp_path)
    proc = run_cli([str(tmp_path), "nothing.png"], tmp_path, prog="lrrun-predict")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: lrrun-predict: ") and "no checkpoint" in proc.stderr
    assert proc.stderr.count("no checkpoint") == 1, proc.stderr  # said once
