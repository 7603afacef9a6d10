"""Caches can only cost time, never change a result: a cache whose bytes changed, or that
cannot be read, is rebuilt with one warning; a folder's new cache replaces its old one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from lrrun.data import cache
from tests.conftest import assert_ok, read_csv, run_cli
from tests.data.test_sources import load
from tests.idx import write_idx_set
from tests.sources import write_folder


def cached(root: Path) -> list[Path]:
    return sorted((root / "lrrun" / "images").glob("*.pt"))


@pytest.fixture
def folder(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return write_folder(tmp_path / "img", classes=2, per_class=6, size=8)


def flip_pixels(path: Path) -> None:
    """Bit rot that still loads: other pixels, the file's stamp and checksum unchanged."""
    saved = torch.load(path, weights_only=True)
    saved["tensors"]["images"] = 255 - saved["tensors"]["images"]
    torch.save(saved, path)


def test_a_changed_cache_is_rebuilt_with_one_warning(folder: Path, tmp_path: Path, capsys) -> None:
    clean = load(source="image_folder", root=str(folder), val_split=2)
    [path] = cached(tmp_path / "cache")
    flip_pixels(path)
    again = load(source="image_folder", root=str(folder), val_split=2)
    assert torch.equal(again.train.images, clean.train.images)
    err = capsys.readouterr().err
    assert err.count("warning: ") == 1 and "no longer matches its checksum" in err
    assert load(source="image_folder", root=str(folder), val_split=2) is not None
    assert capsys.readouterr().err == ""  # rebuilt: trusted again


def test_an_unreadable_cache_is_rebuilt_with_one_warning(
    folder: Path, tmp_path: Path, capsys
) -> None:
    clean = load(source="image_folder", root=str(folder), val_split=2)
    [path] = cached(tmp_path / "cache")
    path.write_bytes(path.read_bytes()[:100])  # truncated
    again = load(source="image_folder", root=str(folder), val_split=2)
    assert torch.equal(again.train.images, clean.train.images)
    err = capsys.readouterr().err
    assert err.count("warning: ") == 1 and "cannot be read" in err and str(path) in err


def test_a_folder_s_new_cache_replaces_its_old_one(folder: Path, tmp_path: Path) -> None:
    load(source="image_folder", root=str(folder), val_split=2)
    [old] = cached(tmp_path / "cache")
    image = next((folder / "class_0").glob("*.png"))
    os.utime(image, ns=(0, 0))  # a file of the folder changed: the cache no longer fits
    load(source="image_folder", root=str(folder), val_split=2)
    [new] = cached(tmp_path / "cache")
    assert new != old and not old.exists()
    other = write_folder(tmp_path / "other", classes=2, per_class=3, size=8)
    load(source="image_folder", root=str(other), val_split=2)  # another folder: its own
    assert len(cached(tmp_path / "cache")) == 2 and new.exists()


def test_the_idx_cache_is_checked_too(tmp_path: Path, capsys) -> None:
    write_idx_set(tmp_path / "FashionMNIST" / "raw", gz=False)
    node = {
        "source": "idx",
        "name": "fashion_mnist",
        "root": str(tmp_path),
        "system_dir": None,
        "download": False,
        "val_split": 0,
    }
    clean = load(**node)
    path = tmp_path / "FashionMNIST" / "lrrun" / "train.pt"
    flip_pixels(path)
    again = load(**node)
    assert torch.equal(again.train.images, clean.train.images)
    assert "no longer matches its checksum" in capsys.readouterr().err


def test_metrics_after_a_corrupted_cache_equal_a_clean_run(tmp_path: Path) -> None:
    """Through the CLI: a cache file with flipped pixels, then the same run: a warning, and
    the metrics of a clean run (not of the flipped pixels)."""
    write_folder(tmp_path / "img", classes=2, per_class=12, size=8)
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    args = [
        "dataset=image_folder",
        "dataset.root=img",
        "dataset.val_split=4",
        "trainer.epochs=2",
        "trainer.device=cpu",
        "trainer.progress=false",
        "trainer.plot=false",
    ]
    assert_ok(run_cli([*args, "hydra.run.dir=clean"], tmp_path, env=env))
    [path] = cached(tmp_path / "cache")
    flip_pixels(path)
    proc = run_cli([*args, "hydra.run.dir=again"], tmp_path, env=env)
    assert_ok(proc)
    assert "no longer matches its checksum" in proc.stderr
    drop = lambda rows: [{k: v for k, v in r.items() if k != "epoch_time_s"} for r in rows]  # noqa: E731
    assert drop(read_csv(tmp_path / "again" / "metrics.csv")) == drop(
        read_csv(tmp_path / "clean" / "metrics.csv")
    )


def test_checksum_sees_every_byte() -> None:
    x = {"a": torch.arange(10, dtype=torch.float32)}
    before = cache.checksum(x)
    x["a"][3] = 3.0000002
    assert cache.checksum(x) != before
    assert cache.checksum({"a": torch.zeros(0)}) != cache.checksum({"a": torch.zeros(0, 2)})
