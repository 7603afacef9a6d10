"""FashionMNIST/MNIST source logic on generated IDX files (no network), and the synthetic set."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision.datasets

from lrrun.config.dataset import DataSpec, read_dataset
from lrrun.data.base import normalise
from lrrun.data.idx import IDX_FILES, ensure_idx_files
from lrrun.data.load import load_data
from lrrun.data.synthetic import synthetic
from lrrun.errors import DataError
from tests.idx import write_idx_set


def fashion(root: Path, system_dir: Path | None = None, download: bool = False) -> DataSpec:
    """FashionMNIST's node with every train image kept for training (val_split=0)."""
    return read_dataset(
        {
            "source": "idx",
            "name": "fashion_mnist",
            "root": str(root),
            "system_dir": None if system_dir is None else str(system_dir),
            "download": download,
            "val_split": 0,
        }
    )


def test_files_already_under_root(tmp_path: Path) -> None:
    written = write_idx_set(tmp_path / "FashionMNIST" / "raw", gz=False)
    data = load_data(fashion(tmp_path))
    assert data.source == str(tmp_path / "FashionMNIST" / "raw")
    # Kept as on disk: uint8 pixels, int64 labels.
    assert data.train.images.shape == (40, 1, 28, 28) and data.train.images.dtype == torch.uint8
    assert torch.equal(data.train.images.squeeze(1), written["train-images-idx3-ubyte"])
    assert torch.equal(data.train.labels, written["train-labels-idx1-ubyte"].long())
    # Normalisation constants are measured from the generated training images...
    raw = written["train-images-idx3-ubyte"].float() / 255
    assert data.mean == pytest.approx((raw.mean().item(),), rel=1e-6)
    assert data.std == pytest.approx((raw.std().item(),), rel=1e-6)
    # ...and normalise() is ToTensor() + Normalize() with them.
    x = normalise(data.train.images, data.mean, data.std)
    torch.testing.assert_close(x.squeeze(1), (raw - data.mean[0]) / data.std[0])
    assert abs(x.mean().item()) < 1e-5 and x.std().item() == pytest.approx(1.0, rel=1e-4)


def test_gz_files_in_system_dir_are_prepared_into_root(tmp_path: Path) -> None:
    system = tmp_path / "usr-share"
    written = write_idx_set(system, gz=True)
    data = load_data(fashion(tmp_path / "data", system_dir=system))
    raw = tmp_path / "data" / "FashionMNIST" / "raw"
    assert data.source == f"{system} (prepared into {raw})"
    assert sorted(p.name for p in raw.iterdir()) == sorted(IDX_FILES)
    assert torch.equal(data.val.labels, written["t10k-labels-idx1-ubyte"].long())  # val_split=0
    # A second run finds the prepared files under root.
    assert ensure_idx_files("fashion_mnist", tmp_path / "data", system, False) == str(raw)


def test_gz_files_copied_into_root_are_unpacked(tmp_path: Path) -> None:
    write_idx_set(tmp_path / "MNIST" / "raw", gz=True)
    data = load_data(read_dataset({"name": "mnist", "root": str(tmp_path), "download": False}))
    assert "unpacked" in data.source and len(data.val) == 20 and data.test is None


def test_broken_gz_leaves_no_partial_file(tmp_path: Path) -> None:
    system = tmp_path / "sys"
    write_idx_set(system, gz=True)
    blob = (system / "train-images-idx3-ubyte.gz").read_bytes()
    (system / "train-images-idx3-ubyte.gz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz could not be unpacked"):
        ensure_idx_files("fashion_mnist", tmp_path / "data", system, False)
    raw = tmp_path / "data" / "FashionMNIST" / "raw"
    assert not (raw / "train-images-idx3-ubyte").exists()
    assert not [p for p in raw.iterdir() if p.name.startswith(".")]


def test_no_source_names_three_remedies(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_data(fashion(tmp_path, system_dir=tmp_path / "none"))
    message = str(info.value)
    assert "dataset.download=false" in message
    for remedy in ("(1) put the four IDX files", "(2) install Debian's package", "(3) allow"):
        assert remedy in message


def test_download_failure_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(self, *args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(torchvision.datasets.FashionMNIST, "download", offline)
    with pytest.raises(DataError, match="download failed: Error downloading"):
        load_data(fashion(tmp_path, download=True))


def test_synthetic_is_deterministic_and_balanced() -> None:
    a, b, c = (
        synthetic(500, 100, 3.0, seed=1),
        synthetic(500, 100, 3.0, seed=1),
        synthetic(500, 100, 3.0, seed=2),
    )
    assert torch.equal(a.train.images, b.train.images)
    assert not torch.equal(a.train.images, c.train.images)
    counts = torch.bincount(a.train.labels, minlength=10)
    assert counts.min() > 20  # every class is present


def test_synthetic_is_learnable(compose_cfg, tmp_path: Path) -> None:
    """Default synthetic settings: well above chance within a few epochs, not solved at once."""
    from lrrun.train.runner import run

    cfg = compose_cfg("dataset=synthetic", "trainer.epochs=4", "trainer.batch_size=64", tiny=False)
    history = run(cfg, tmp_path)
    accs = [r["val_acc"] for r in history]
    assert accs[-1] > 0.6 and accs[-1] > accs[0]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[: len(b) - 100], "the file is truncated"),
        (lambda b: b + b"extra", "the file is too long"),
        (lambda b: b"\x00\x00\x0b\x03" + b[4:], "magic number 00000b03, expected 00000803"),
        (lambda b: b[:10], "truncated inside its header"),
        (lambda b: b"", "magic number missing"),
    ],
    ids=["truncated", "too-long", "bad-magic", "short-header", "empty"],
)
def test_damaged_idx_file_is_named(tmp_path: Path, damage, message: str) -> None:
    raw = tmp_path / "FashionMNIST" / "raw"
    write_idx_set(raw, gz=False)
    path = raw / "train-images-idx3-ubyte"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DataError, match=message) as info:
        load_data(fashion(tmp_path))
    assert str(path) in str(info.value) and "Delete" in str(info.value)


def test_image_and_label_counts_must_agree(tmp_path: Path) -> None:
    raw = tmp_path / "FashionMNIST" / "raw"
    write_idx_set(raw, gz=False)
    other = write_idx_set(tmp_path / "other", gz=False, n_train=41)
    (raw / "train-labels-idx1-ubyte").write_bytes(
        (tmp_path / "other" / "train-labels-idx1-ubyte").read_bytes()
    )
    assert len(other["train-labels-idx1-ubyte"]) == 41
    with pytest.raises(DataError, match="train-images has 40 images but train-labels has 41"):
        load_data(fashion(tmp_path))


@pytest.mark.parametrize(("name", "cls"), [("fashion_mnist", "FashionMNIST"), ("mnist", "MNIST")])
def test_class_names_are_torchvisions(name: str, cls: str) -> None:
    from lrrun.data.idx import CLASSES

    assert list(CLASSES[name]) == getattr(torchvision.datasets, cls).classes
