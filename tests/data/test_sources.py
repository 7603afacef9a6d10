"""The dataset sources on data the tests write: image folders, .npz files, torchvision
classes, a user's callable. What they read, the splits they make, and their errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import lrrun.data.load
import lrrun.data.memory
from lrrun.config.dataset import read_dataset
from lrrun.data.load import _CACHE, load_data
from lrrun.errors import DataError
from tests.idx import write_idx_set
from tests.sources import images, write_folder, write_npz


def load(**node):
    _CACHE.clear()
    return load_data(read_dataset(node))


# --- image folders --------------------------------------------------------------------------


def test_one_folder_classes_from_names_and_a_held_out_val_split(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "img", classes=3, per_class=20, size=8)
    data = load(source="image_folder", root=str(root), val_split=0.25)
    assert data.classes == ("class_0", "class_1", "class_2")
    assert (len(data.train), len(data.val), data.test) == (45, 15, None)
    assert torch.bincount(data.val.labels).tolist() == [5, 5, 5]  # stratified
    assert data.input_shape == (3, 8, 8) and data.train.images.dtype == torch.uint8
    # Decoded once: the pixels are the PNG's (PIL, as ImageFolder reads them).
    x, _ = images(60, 3, 8, 3, 0)
    first = torch.from_numpy(np.array(Image.open(root / "class_0" / "00000.png"))).permute(2, 0, 1)
    assert torch.equal(first, x[0])
    assert len(data.mean) == len(data.std) == 3  # per channel, from the train split
    assert data.source == f"{root} (60 images)"  # the header's "from ..."


def test_train_val_test_folders(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "img", classes=2, splits={"train": 10, "val": 3, "test": 4})
    data = load(source="image_folder", root=str(root), val_split=0.5)  # the val/ folder wins
    assert (len(data.train), len(data.val), len(data.test)) == (20, 6, 8)
    assert data.selection == "val" and data.val_from == "the source's val split"
    assert data.source == f"{root} (train/ 20, val/ 6, test/ 8 images)"


def test_decoded_folders_are_cached_and_reused(tmp_path: Path, monkeypatch) -> None:
    root = write_folder(tmp_path / "img", classes=2, per_class=5, size=8)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    first = load(source="image_folder", root=str(root), val_split=2)
    assert len(list((tmp_path / "cache" / "lrrun" / "images").glob("*.pt"))) == 1
    monkeypatch.setattr(
        lrrun.data.memory.FolderItems, "__getitem__", lambda self, i: pytest.fail("decoded again")
    )
    again = load(source="image_folder", root=str(root), val_split=2)
    assert torch.equal(first.train.images, again.train.images)


def test_images_of_different_sizes_need_image_size(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "img", classes=2, per_class=3, size=8)
    Image.new("RGB", (12, 10)).save(root / "class_1" / "odd.png")
    with pytest.raises(DataError, match=r"odd.png is 3x10x12, .* is 3x8x8: .* dataset.image_size"):
        load(source="image_folder", root=str(root), val_split=2)
    data = load(source="image_folder", root=str(root), val_split=2, image_size=16)
    assert data.input_shape == (3, 16, 16)


def test_grey_images_and_channels(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "img", classes=2, per_class=4, size=8, channels=1)
    assert load(source="image_folder", root=str(root), val_split=2).input_shape == (1, 8, 8)
    rgb = load(source="image_folder", root=str(root), val_split=2, channels=3)
    assert rgb.input_shape == (3, 8, 8)


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ("missing", "no such folder"),
        ("empty", "has no class folders"),
        ("empty class", r"class folder b has no images \(.jpg"),
        ("val class not in train", r"val/ has class folders train/ lacks \(c\)"),
        ("val without train", "has val/ but no train/"),
        ("broken image", "could not be decoded as an image"),
    ],
)
def test_folder_errors_name_the_fix(tmp_path: Path, layout: str, message: str) -> None:
    root = tmp_path / "img"
    png = Image.new("RGB", (4, 4))
    if layout != "missing":
        root.mkdir()
    if layout == "empty class":
        (root / "a").mkdir(), (root / "b").mkdir()
        png.save(root / "a" / "1.png")
    elif layout == "val class not in train":
        for split, cls in (("train", "a"), ("train", "b"), ("val", "a"), ("val", "c")):
            (root / split / cls).mkdir(parents=True)
            png.save(root / split / cls / "1.png")
    elif layout == "val without train":
        (root / "val" / "a").mkdir(parents=True)
        png.save(root / "val" / "a" / "1.png")
    elif layout == "broken image":
        write_folder(root, classes=2, per_class=3, size=4)
        (root / "class_0" / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=message):
        load(source="image_folder", root=str(root), val_split=1)


# --- .npz -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("layout", "shape"), [("nchw", (3, 8, 8)), ("nhwc", (3, 8, 8)), ("flat", (192,))]
)
def test_npz_layouts(tmp_path: Path, layout: str, shape: tuple) -> None:
    path = write_npz(tmp_path / "d.npz", n=60, layout=layout)
    data = load(source="tensors", path=str(path), val_split=0.2)
    assert data.input_shape == shape
    assert (len(data.train), len(data.val), len(data.test)) == (48, 12, 30)
    x, _ = images(60, 3, 8, 3, 0)
    if layout != "flat":  # NHWC is stored as NCHW, the pixels unchanged
        assert torch.equal(
            torch.sort(torch.cat([data.train.images, data.val.images]).flatten())[0],
            torch.sort(x.flatten())[0],
        )


def test_npz_with_its_own_val_split_and_class_names(tmp_path: Path) -> None:
    x, y = images(10, 3, 8, 3, 5)
    path = write_npz(
        tmp_path / "d.npz",
        x_val=x.numpy(),
        y_val=y.numpy(),
        classes=np.array(["cat", "dog", "frog"]),
    )
    data = load(source="tensors", path=str(path), val_split=0.5)
    assert len(data.val) == 10 and len(data.train) == 60 and data.classes == ("cat", "dog", "frog")


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x_train": np.zeros((4, 2)), "y_train": np.zeros(3, int)}, "y_train has shape"),
        ({"x_train": np.zeros((4, 2)), "y_train": np.array([0, 1, 2, -1])}, "include -1"),
        (
            {
                "x_train": np.zeros((4, 2)),
                "y_train": np.array([0, 1, 0, 1]),
                "x_test": np.zeros((2, 2)),
                "y_test": np.array([0, 5]),
            },
            r"test labels include 5, outside \[0, 2\)",
        ),
        (
            {"x_train": np.zeros((4, 2)), "y_train": np.array([0.5, 1, 0, 1])},
            "is float64: under task=classification .* use task=regression",
        ),
        (
            {"x_train": np.zeros((4, 2)), "y_train": np.array([2.0, 1, 0, 1])},
            "is float64: under task=classification .* use task=regression",
        ),
        ({"x_train": np.zeros((4, 2))}, "it needs x_train and y_train"),
        (
            {"x_train": np.zeros((4, 2)), "y_train": np.zeros(4, int), "x_val": np.zeros((1, 2))},
            "has x_val but no y_val",
        ),
        (
            {"x_train": np.zeros((4, 2), dtype=np.int32), "y_train": np.zeros(4, int)},
            "uint8 pixels or floats",
        ),
    ],
    ids=[
        "lengths",
        "negative",
        "outside",
        "float-labels",
        "whole-floats",
        "no-y",
        "no-y_val",
        "int32",
    ],
)
def test_npz_errors_name_the_array(tmp_path: Path, arrays: dict, message: str) -> None:
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(DataError, match=message):
        load(source="tensors", path=str(tmp_path / "d.npz"), val_split=1)


# --- torchvision classes and a user's callable ------------------------------------------------


def test_a_torchvision_class_from_its_files_on_disk(tmp_path: Path) -> None:
    written = write_idx_set(tmp_path / "FashionMNIST" / "raw", gz=False)
    data = load(source="torchvision", name="FashionMNIST", root=str(tmp_path), val_split=8)
    assert data.classes[0] == "T-shirt/top" and data.train.in_memory  # its .data array
    assert (len(data.train), len(data.val), len(data.test)) == (32, 8, 20)
    assert torch.equal(data.test.labels, written["t10k-labels-idx1-ubyte"].long())


def test_a_torchvision_class_that_is_not_there(tmp_path: Path) -> None:
    with pytest.raises(
        DataError, match=r"CIFAR10: its train split is not under .* never downloads"
    ):
        load(source="torchvision", name="CIFAR10", root=str(tmp_path), val_split=0.1)
    with pytest.raises(DataError, match="did you mean CIFAR100"):
        load(source="torchvision", name="CIFAR1000", root=str(tmp_path), val_split=0.1)


@pytest.mark.parametrize("with_val", [True, False])
def test_a_users_callable(with_val: bool) -> None:
    data = load(
        source="callable", _target_="tests.sources.build_datasets", with_val=with_val, val_split=0.5
    )
    assert data.train.in_memory and data.input_shape == (3, 8, 8) and data.num_classes == 3
    assert (len(data.train), len(data.val), len(data.test)) == (
        (60, 30, 30) if with_val else (30, 30, 30)
    )
    assert data.val_from == ("the source's val split" if with_val else data.val_from)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("tests.sources.nothing_here", "cannot be imported"),
        ("builtins.len", r"failed: len\(\) takes"),
        ("tests.sources.Samples.__len__", r"failed: .*missing 1 required positional argument"),
        ("builtins.object", "returned object: it must return"),
        ("builtins.dict", "returned no train split"),
    ],
)
def test_a_callable_that_goes_wrong(target: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        load(source="callable", _target_=target, val_split=0.5)


def test_both_paths_normalise_a_folder_alike(tmp_path: Path, monkeypatch) -> None:
    """Per-sample sources are measured on a seeded sample, decoded into memory or not."""
    monkeypatch.setattr(lrrun.data.load, "STATS_SAMPLES", 20)
    root = write_folder(tmp_path / "img", classes=3, per_class=30, size=8)
    spec = read_dataset({"source": "image_folder", "root": str(root), "val_split": 10})
    _CACHE.clear()
    memory, files = load_data(spec, memory=True), load_data(spec, memory=False)
    assert memory.train.in_memory and not files.train.in_memory
    assert (memory.mean, memory.std) == (files.mean, files.std)
    assert torch.equal(memory.val.labels, files.val.labels)  # the same held-out samples


def test_a_one_class_dataset_is_refused(tmp_path: Path) -> None:
    write_folder(tmp_path / "one", classes=1, per_class=12)
    with pytest.raises(DataError, match=r"the train split holds one class \(class_0, 12 samples\)"):
        load(source="image_folder", root=str(tmp_path / "one"), val_split=0.25)
    np.savez(tmp_path / "d.npz", x_train=np.zeros((6, 2), np.float32), y_train=np.zeros(6, int))
    with pytest.raises(DataError, match="a classifier needs at least two"):
        load(source="tensors", path=str(tmp_path / "d.npz"), val_split=1)


def write_wide_folder(root: Path, per_class: int = 16) -> Path:
    """12-bit scans in 16-bit PNGs: class 0 at 1000, class 1 at 3000 (both over 255)."""
    from PIL import Image

    g = np.random.default_rng(0)
    for c, level in enumerate((1000, 3000)):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(per_class):
            pixels = level + g.integers(0, 400, size=(6, 6))
            Image.fromarray(pixels.astype(np.uint16)).save(root / f"c{c}" / f"{i}.png")
    return root


def test_16_bit_images_are_scaled_not_clipped(tmp_path: Path) -> None:
    """Clipped to 8 bits both classes would be white (255) and train at chance."""
    from lrrun.data.folder import decode

    root = write_wide_folder(tmp_path / "scans")
    pixels = decode(str(root / "c1" / "0.png"), 1, None, wide=True)
    assert pixels.dtype == torch.float32 and pixels.shape == (1, 6, 6)
    assert pixels.min() >= 3000 / 65535 and pixels.max() < 3400 / 65535
    data = load(source="image_folder", root=str(root), val_split=0.25)
    levels = [data.train.images[data.train.labels == c].mean().item() for c in (0, 1)]
    assert levels[1] > levels[0] * 2  # the classes stay apart


def test_a_16_bit_image_among_8_bit_ones_is_refused(tmp_path: Path) -> None:
    from PIL import Image

    root = write_folder(tmp_path / "mixed", classes=2, per_class=6)
    wide = next((root / "class_1").iterdir())
    Image.fromarray(np.full((8, 8), 4000, np.uint16)).save(wide)
    with pytest.raises(DataError, match=r"more than 8 bits.*will not clip it to 8 bits"):
        load(source="image_folder", root=str(root), val_split=0.25)


def bomb_png(path: Path, side: int = 20_000) -> Path:
    """A tiny PNG whose header declares side x side pixels (a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )
    return path


def test_a_decompression_bomb_and_empty_arrays_are_one_line(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "f", classes=2, per_class=6)
    bomb_png(root / "class_1" / "99.png")
    with pytest.raises(DataError, match=r"99.png could not be decoded as an image \(Image size"):
        load(source="image_folder", root=str(root), val_split=0.25)
    np.savez(tmp_path / "e.npz", x_train=np.zeros((0, 2), np.float32), y_train=np.zeros(0, int))
    with pytest.raises(DataError, match=r"x_train is empty\. Give samples"):
        load(source="tensors", path=str(tmp_path / "e.npz"), val_split=1)
