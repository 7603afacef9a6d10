"""The fast path computes what the DataLoader path computes, in the documented order, with
no host sync per step."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import lrrun.data.batches
import lrrun.data.idx
import lrrun.data.load
import lrrun.train.runner
from lrrun.config.dataset import read_dataset
from lrrun.data.batches import (
    LoaderBatches,
    SampleDataset,
    TensorBatches,
    epoch_order,
    make_batches,
)
from lrrun.data.load import load_data
from lrrun.train.runner import run
from tests.conftest import read_csv
from tests.idx import write_idx_set

CPU = torch.device("cpu")


@pytest.fixture
def idx_root(tmp_path: Path) -> Path:
    """A FashionMNIST root with 200 train / 50 test generated images."""
    write_idx_set(tmp_path / "FashionMNIST" / "raw", gz=False, n_train=200, n_test=50)
    return tmp_path


def idx_overrides(root: Path) -> list[str]:
    return [
        "dataset=fashion_mnist",
        f"dataset.root={root}",
        "dataset.system_dir=null",
        "dataset.download=false",
        "dataset.val_split=40",  # 160 train samples
    ]


def idx_data(root: Path, **keys):
    node = {
        "source": "idx",
        "name": "fashion_mnist",
        "root": str(root),
        "system_dir": None,
        "download": False,
        "val_split": 0,
    } | keys
    return load_data(read_dataset(node))


def test_epoch_order_is_the_documented_randperm() -> None:
    expected = torch.randperm(
        1000, generator=torch.Generator().manual_seed((42 * 1_000_003 + 3) % 2**63)
    )
    assert torch.equal(epoch_order(1000, 42, 3), expected)
    assert not torch.equal(epoch_order(1000, 42, 3), epoch_order(1000, 42, 4))
    assert not torch.equal(epoch_order(1000, 42, 3), epoch_order(1000, 43, 3))
    assert torch.equal(epoch_order(10, -7, 1).sort().values, torch.arange(10))


def test_both_paths_yield_identical_batches(idx_root: Path) -> None:
    """Same order, same pixels: index_select + normalise == ToTensor + Normalize per sample."""
    data = idx_data(idx_root)
    fast = TensorBatches(data.train, 64, CPU, data.mean, data.std, shuffle_seed=7)
    slow = LoaderBatches(SampleDataset(data, data.train, True, 7), 64, CPU, 7, num_workers=0)
    assert len(fast) == len(slow) == 4  # 200 = 3 x 64 + 8
    for epoch in (1, 2):
        fast.set_epoch(epoch)
        slow.set_epoch(epoch)
        pairs = list(zip(fast, slow, strict=True))
        order = epoch_order(200, 7, epoch)
        assert torch.equal(torch.cat([f[1] for f, _ in pairs]), data.train.labels[order])
        for (fx, fy), (sx, sy) in pairs:
            assert fx.dtype == sx.dtype == torch.float32
            assert torch.equal(fx, sx) and torch.equal(fy, sy)
    # Evaluation batches: in order, nothing dropped (val_split=0: the test split selects).
    val = make_batches(data, CPU, 64, 16, 7, "tensor")[1]
    assert data.test is None and data.selection == "test"
    assert torch.equal(torch.cat([y for _, y in val]), data.val.labels)


@pytest.mark.parametrize("model", ["feedforward", "fashion_mnist_net"])
def test_fast_and_loader_paths_train_to_the_same_losses(
    compose_cfg, idx_root: Path, tmp_path: Path, model: str
) -> None:
    """Whole runs on real IDX files (per-sample normalisation on the loader path, with 2
    workers): steps.csv and metrics.csv agree."""
    runs = {}
    for path, workers in (("tensor", 0), ("loader", 2)):
        out = tmp_path / path
        cfg = compose_cfg(
            *idx_overrides(idx_root),
            f"model={model}",
            f"trainer.data_path={path}",
            f"trainer.num_workers={workers}",
            "trainer.epochs=3",
            tiny=False,
        )
        run(cfg, out)
        runs[path] = (read_csv(out / "steps.csv"), read_csv(out / "metrics.csv"))
    (fast_steps, fast_metrics), (slow_steps, slow_metrics) = runs["tensor"], runs["loader"]
    assert len(fast_steps) == len(slow_steps) == 3 * 5  # 160 / 32 -> 5 steps per epoch
    assert [r["lr"] for r in fast_steps] == [r["lr"] for r in slow_steps]
    fast_loss = torch.tensor([float(r["loss"]) for r in fast_steps])
    slow_loss = torch.tensor([float(r["loss"]) for r in slow_steps])
    torch.testing.assert_close(fast_loss, slow_loss, rtol=1e-5, atol=1e-6)
    for key in ("train_loss", "val_loss", "val_acc", "test_loss", "test_acc"):
        fast_v = [float(r[key] or "nan") for r in fast_metrics]
        slow_v = [float(r[key] or "nan") for r in slow_metrics]
        assert fast_v == pytest.approx(slow_v, rel=1e-5, abs=1e-6, nan_ok=True), key


def test_auto_keeps_files_on_disk_when_they_do_not_fit(idx_root: Path, monkeypatch) -> None:
    """Per-sample sources are decoded into memory only when they fit; then auto picks the
    tensor path, else the DataLoader reads the files."""
    from tests.sources import write_folder

    root = write_folder(idx_root / "images", classes=2, per_class=6, size=8)
    spec = read_dataset({"source": "image_folder", "root": str(root), "val_split": 2})
    data = load_data(spec, memory=None, device=CPU)
    assert data.train.in_memory and make_batches(data, CPU, 32, 32, 0, "auto")[3] == "tensor"
    monkeypatch.setattr(lrrun.data.load, "fits_on", lambda device, nbytes: False)
    data = load_data(spec, memory=None, device=CPU)
    assert not data.train.in_memory
    train, _, _, path = make_batches(data, CPU, 32, 32, 0, "auto")
    assert path == "loader" and isinstance(train, LoaderBatches)


SYNC_METHODS = ("item", "tolist", "__float__", "__int__", "__bool__", "cpu", "numpy")


def count_syncs(monkeypatch, compose_cfg, tmp_path: Path, train_size: int, *extra: str) -> int:
    """Host reads of tensor values during a 3-epoch run with ``train_size / 32`` steps each."""
    cfg = compose_cfg("dataset.train_size=" + str(train_size), "trainer.epochs=3", *extra)
    calls = {"n": 0}
    import lrrun.train.loop

    def counting(name):
        original = getattr(torch.Tensor, name)

        def wrapper(self, *args, **kwargs):
            calls["n"] += 1
            return original(self, *args, **kwargs)

        return wrapper

    fit = lrrun.train.loop.fit

    def fit_counted(*args, **kwargs):
        with monkeypatch.context() as m:
            for name in SYNC_METHODS:
                m.setattr(torch.Tensor, name, counting(name))
            return fit(*args, **kwargs)

    monkeypatch.setattr(lrrun.train.runner, "fit", fit_counted)
    run(cfg, tmp_path / str(train_size))
    return calls["n"]


@pytest.mark.parametrize(
    "recipe",
    [[], ["trainer.accumulate=2", "trainer.clip_grad_norm=0.5"]],
    ids=["plain", "accumulate-clip"],
)
def test_no_host_sync_per_step(monkeypatch, compose_cfg, tmp_path: Path, recipe) -> None:
    """4x the steps per epoch, the same number of host reads: they are per epoch, not per
    step (also with the gradient norm logged from clipping). torchvision's MixUp / CutMix
    read host-side random scalars per batch (their Beta draw, the box's corners: CPU
    tensors), never the batch, so they cost no device sync; this CPU count cannot tell those
    reads apart, so mixing is left out here."""
    few = count_syncs(monkeypatch, compose_cfg, tmp_path / "few", 128, *recipe)  # 4 batches/epoch
    many = count_syncs(monkeypatch, compose_cfg, tmp_path / "many", 512, *recipe)  # 16
    assert few == many
    assert few <= 3 * 3  # at most three reads per epoch (steps.csv, train means, val means)


def test_dataset_is_loaded_once_per_process(
    compose_cfg, idx_root: Path, tmp_path: Path, monkeypatch
) -> None:
    """Sweep jobs in one process (Hydra's basic launcher) share the prepared dataset."""
    reads = []
    original = lrrun.data.idx.read_idx_split
    monkeypatch.setattr(
        lrrun.data.idx, "read_idx_split", lambda *a, **k: reads.append(a) or original(*a, **k)
    )
    lrrun.data.load._CACHE.clear()
    for gamma in (0.5, 0.9):
        cfg = compose_cfg(*idx_overrides(idx_root), f"scheduler.gamma={gamma}", tiny=False)
        cfg.trainer.epochs = 1
        run(cfg, tmp_path / str(gamma))
    assert len(reads) == 2  # train and test split, once


@pytest.mark.parametrize(
    "model", ["feedforward", pytest.param("fashion_mnist_net", marks=pytest.mark.slow)]
)
def test_bf16_autocast_on_cpu_trains_with_the_same_schedule(
    compose_cfg, tmp_path: Path, model
) -> None:
    histories = {
        p: run(compose_cfg(f"model={model}", f"trainer.precision={p}"), tmp_path / p)
        for p in ("fp32", "bf16")
    }
    fp32, bf16 = histories["fp32"], histories["bf16"]
    assert [r["lr"] for r in fp32] == [r["lr"] for r in bf16]
    assert all(torch.isfinite(torch.tensor(r["train_loss"])) for r in bf16)
    # bf16 has an 8-bit mantissa: close to fp32, not equal.
    assert bf16[0]["train_loss"] == pytest.approx(fp32[0]["train_loss"], rel=0.05)
    assert bf16[-1]["train_loss"] != fp32[-1]["train_loss"]


def test_channels_last_changes_layout_not_results(compose_cfg, tmp_path: Path) -> None:
    """Without dropout the CNN computes the same in NHWC and NCHW. (With dropout the masks
    differ: the RNG fills them in memory order.)"""
    runs = {
        cl: run(
            compose_cfg(
                "model=fashion_mnist_net",
                "model.dropout1=0",
                "model.dropout2=0",
                f"trainer.channels_last={cl}",
            ),
            tmp_path / str(cl),
        )
        for cl in ("true", "false")
    }
    for a, b in zip(runs["true"], runs["false"], strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-4)


@pytest.mark.slow
def test_compile_gives_the_same_losses(compose_cfg, tmp_path: Path) -> None:
    """torch.compile (inductor, needs a C compiler) changes speed, not numbers."""
    eager = run(compose_cfg("trainer.epochs=2"), tmp_path / "eager")
    compiled = run(compose_cfg("trainer.epochs=2", "trainer.compile=true"), tmp_path / "compiled")
    for a, b in zip(eager, compiled, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
        assert a["lr"] == b["lr"]


def test_an_image_folder_trains_alike_on_both_paths(compose_cfg, tmp_path: Path) -> None:
    """Decoded once into memory (tensor path) or read from the files in 2 workers (loader
    path): the same samples, in the same order, normalised alike, train to the same losses."""
    from tests.sources import write_folder

    root = write_folder(tmp_path / "img", classes=3, per_class=24, size=8)
    runs = {}
    for path, workers in (("tensor", 0), ("loader", 2)):
        cfg = compose_cfg(
            "dataset=image_folder",
            f"dataset.root={root}",
            "dataset.val_split=12",
            "model=custom",
            "model._target_=tests.sources.TinyNet",
            f"trainer.data_path={path}",
            f"trainer.num_workers={workers}",
            "trainer.epochs=2",
            "trainer.batch_size=16",
            tiny=False,
        )
        run(cfg, tmp_path / path)
        runs[path] = read_csv(tmp_path / path / "steps.csv")
    assert [r["lr"] for r in runs["tensor"]] == [r["lr"] for r in runs["loader"]]
    torch.testing.assert_close(
        torch.tensor([float(r["loss"]) for r in runs["tensor"]]),
        torch.tensor([float(r["loss"]) for r in runs["loader"]]),
        rtol=1e-5,
        atol=1e-6,
    )
