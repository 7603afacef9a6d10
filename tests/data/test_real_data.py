"""Real FashionMNIST runs (slow: marked, run by `make test-slow` and CI)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.conftest import assert_ok, read_csv, run_cli

SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
REPO_DATA = Path(__file__).resolve().parents[2] / "data"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (SYSTEM_DIR / "train-images-idx3-ubyte.gz").is_file()
        and not (REPO_DATA / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").is_file(),
        reason="real FashionMNIST not installed (make data)",
    ),
]


def test_feedforward_one_cycle_on_real_fashion_mnist(tmp_path: Path) -> None:
    args = [
        "dataset=fashion_mnist",
        f"dataset.root={REPO_DATA}",
        "model=feedforward",
        "optimizer=adam",
        "scheduler=one_cycle_lr",
        "trainer.epochs=2",
        "trainer.device=cpu",
        "trainer.progress=false",
        "hydra.run.dir=run",
    ]
    proc = run_cli(args, tmp_path, timeout=600)
    assert_ok(proc)
    metrics = read_csv(tmp_path / "run" / "metrics.csv")
    steps = read_csv(tmp_path / "run" / "steps.csv")
    assert len(steps) == 2 * 860  # 55,000 train images (5,000 held out for val) / 64
    assert float(metrics[-1]["val_acc"]) > 0.82
    # OneCycleLR over exactly epochs x batches: replay it and compare every logged step.
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=len(steps))
    expected = []
    for _ in steps:
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert [float(r["lr"]) for r in steps] == pytest.approx(expected, rel=1e-12, abs=0)


def test_fashion_mnist_net_one_epoch_on_real_data(tmp_path: Path) -> None:
    args = [
        "dataset=fashion_mnist",
        f"dataset.root={REPO_DATA}",
        "model=fashion_mnist_net",
        "optimizer=sgd",
        "scheduler=step_lr",
        "trainer.epochs=1",
        "trainer.batch_size=128",
        "trainer.device=cpu",
        "trainer.progress=false",
        "hydra.run.dir=run",
    ]
    proc = run_cli(args, tmp_path, timeout=600)
    assert_ok(proc)
    assert "FashionMNISTNet, 1,199,882 parameters" in proc.stdout
    (row,) = read_csv(tmp_path / "run" / "metrics.csv")
    assert float(row["val_acc"]) > 0.8


def test_fashion_mnist_as_png_folders_trains_like_the_idx_files(tmp_path: Path) -> None:
    """The same 70,000 images as PNG class folders (image_folder) and as IDX files, the same
    seed and the same size of held-out val split: the same accuracy to within noise (the
    folder lists the images by class, so the held-out samples and batches differ)."""
    from benchmarks.fashion_png import export

    root = export(REPO_DATA / "fashion-png", REPO_DATA)
    common = [
        "model=feedforward",
        "trainer.epochs=2",
        "trainer.device=cpu",
        "dataset.val_split=5000",
        "trainer.progress=false",
        "trainer.plot=false",
    ]
    sources = {
        "idx": ["dataset=fashion_mnist", f"dataset.root={REPO_DATA}"],
        "png": ["dataset=image_folder", f"dataset.root={root}"],
    }
    acc = {}
    for name, source in sources.items():
        proc = run_cli([*source, *common, f"hydra.run.dir={name}"], tmp_path, timeout=900)
        assert_ok(proc)
        assert "55,000 train / 5,000 val / 10,000 test, 10 classes" in " ".join(proc.stdout.split())
        rows = read_csv(tmp_path / name / "metrics.csv")
        (tested,) = [r for r in rows if r["test_acc"]]
        acc[name] = {"val_acc": float(rows[-1]["val_acc"]), "test_acc": float(tested["test_acc"])}
        assert len(read_csv(tmp_path / name / "steps.csv")) == 2 * 860
    for key in ("val_acc", "test_acc"):
        idx, png = acc["idx"][key], acc["png"][key]
        assert idx > 0.82 and png > 0.82
        assert abs(idx - png) < 0.015, (key, idx, png)
