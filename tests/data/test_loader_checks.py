"""The DataLoader path (trainer.data_path=loader), which decodes while it trains, checks its
files before epoch 1 as the in-memory path does: every file opens as an image (header
only), sizes agree, bit depths agree. What no header shows (a truncated body) is still one
line, never a worker's traceback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import run_cli
from tests.sources import write_folder

ARGS = [
    "dataset=image_folder",
    "dataset.root=img",
    "trainer.data_path=loader",
    "trainer.num_workers=2",
    "trainer.epochs=2",
    "trainer.device=cpu",
    "trainer.progress=false",
    "hydra.run.dir=run",
]


def odd_size(path: Path) -> None:
    Image.new("RGB", (12, 10)).save(path.with_name("odd.png"))


def not_an_image(path: Path) -> None:
    path.write_bytes(b"not an image at all")


def sixteen_bits(path: Path) -> None:
    Image.fromarray(np.full((8, 8), 40000, dtype=np.uint16)).save(path.with_name("deep.png"))


def bomb(path: Path) -> None:
    Image.new("1", (20000, 20000)).save(path.with_name("bomb.png"))  # 400 Mpx: a few KB


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (odd_size, "odd.png is 12x10 pixels, .* is 8x8: samples of one batch must have one size"),
        (not_an_image, "could not be opened as an image"),
        (sixteen_bits, "deep.png has I;16 pixels .* lrrun will not clip it to 8 bits"),
        (bomb, "bomb.png could not be opened as an image .*decompression bomb"),
    ],
    ids=["sizes", "not-an-image", "bit-depth", "decompression-bomb"],
)
def test_the_loader_path_checks_every_file_before_epoch_1(tmp_path: Path, damage, said) -> None:
    root = write_folder(tmp_path / "img", classes=2, splits={"train": 12, "test": 4}, size=8)
    damage(next((root / "test" / "class_1").glob("*.png")))
    proc = run_cli(ARGS, tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    [line] = [x for x in proc.stderr.splitlines() if x.startswith("error: ")]
    assert line.startswith("error: test split: ")
    import re

    assert re.search(said, line, re.IGNORECASE), line
    assert not (tmp_path / "run" / "steps.csv").exists(), "found before epoch 1"


def test_a_truncated_image_found_while_training_is_one_line(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "img", classes=2, splits={"train": 12, "test": 4}, size=8)
    path = next((root / "test" / "class_0").glob("*.png"))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # the header is whole, the pixels are not
    proc = run_cli(ARGS, tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "DataLoader worker" not in proc.stderr
    [line] = [x for x in proc.stderr.splitlines() if x.startswith("error: ")]
    assert f"{path.relative_to(tmp_path)} could not be decoded as an image" in line
