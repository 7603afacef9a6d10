"""The real FashionMNIST as an ImageFolder of PNG files: train/<class>/*.png (60,000) and
test/<class>/*.png (10,000), grey, 28x28, from the IDX files lrrun reads.

    python benchmarks/fashion_png.py [DIR]     (default: data/fashion-png)

Used by benchmarks/image_folder.py and the slow test that checks the folder trains like the
IDX files. Written once: a folder with all 70,000 files is reused.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lrrun.config.dataset import read_dataset
from lrrun.data.idx import CLASSES, load_idx

COUNTS = {"train": 60_000, "test": 10_000}


def export(root: Path, idx_root: Path = Path("data")) -> Path:
    """Write the PNGs under ``root`` (class folders named 0_T-shirt_top, 1_Trouser, ...)."""
    if sum(1 for _ in root.glob("*/*/*.png")) == sum(COUNTS.values()):
        return root
    from PIL import Image

    spec = read_dataset(
        {
            "source": "idx",
            "name": "fashion_mnist",
            "root": str(idx_root),
            "system_dir": "/usr/share/datasets/fashion-mnist",
            "download": False,
        }
    )
    loaded = load_idx(spec)
    names = [
        f"{i}_{n.replace('/', '_').replace(' ', '_')}"
        for i, n in enumerate(CLASSES["fashion_mnist"])
    ]
    for split, data in (("train", loaded.train), ("test", loaded.test)):
        for name in names:
            (root / split / name).mkdir(parents=True, exist_ok=True)

        def write(i: int, split: str = split, data=data) -> None:
            label = int(data.labels[i])
            Image.fromarray(data.images[i, 0].numpy()).save(
                root / split / names[label] / f"{i:05d}.png"
            )

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(write, range(len(data))))
    return root


if __name__ == "__main__":
    out = export(Path(sys.argv[1] if len(sys.argv) > 1 else "data/fashion-png"))
    print(f"wrote {out}")
