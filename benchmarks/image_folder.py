"""lrrun on an ImageFolder of PNG files vs the loop people write by hand.

The real FashionMNIST as PNGs (benchmarks/fashion_png.py: 60,000 train / 10,000 test), the
feedforward model (784-100-10), SGD (lr 0.01, momentum 0.9), batch 64, StepLR per epoch; the
same work per epoch in each: train on the 60,000, evaluate on the 10,000 (lrrun with
dataset.val_split=0, so its selection split is the test folder, as the hand loop's is).

- hand: pytorch/examples' mnist loop on torchvision's ImageFolder (Grayscale, ToTensor,
  Normalize) through a DataLoader with W workers (shuffle, no persistent workers), the loss
  read every 10 batches for the log, the test loss and accuracy summed per batch;
- lrrun loader: trainer.data_path=loader trainer.num_workers=W (every PNG decoded per sample,
  every epoch, as in the hand loop);
- lrrun tensor: trainer.data_path=tensor (decoded once into memory, cached on disk).

Each runs E epochs in a fresh process, in rounds that alternate the order; an epoch's time
is its training and evaluation (lrrun: metrics.csv's epoch_time_s); the first epoch of each
run is left out (worker start-up, caches), the rest give the median. Figures are ratios
measured in this one run; the machine's speed cancels out.

    python benchmarks/image_folder.py [--workers 2] [--epochs 3] [--rounds 2] [--root DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MEAN, STD = 0.2860, 0.3530  # FashionMNIST's train pixels (lrrun measures the same)


def hand_loop(root: Path, workers: int, epochs: int) -> list[float]:
    """pytorch/examples' mnist main loop on an ImageFolder; the epoch times."""
    import torch
    import torch.nn.functional as F
    from torchvision import datasets, transforms

    from lrrun.models import FeedForward

    torch.manual_seed(42)
    tf = transforms.Compose(
        [transforms.Grayscale(), transforms.ToTensor(), transforms.Normalize((MEAN,), (STD,))]
    )
    train = datasets.ImageFolder(str(root / "train"), transform=tf)
    test = datasets.ImageFolder(str(root / "test"), transform=tf)
    kwargs = {"num_workers": workers, "pin_memory": False}
    train_loader = torch.utils.data.DataLoader(train, batch_size=64, shuffle=True, **kwargs)
    test_loader = torch.utils.data.DataLoader(test, batch_size=128, **kwargs)
    model = FeedForward()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        for batch_idx, (data, target) in enumerate(train_loader):
            optimizer.zero_grad()
            loss = F.cross_entropy(model(data), target)
            loss.backward()
            optimizer.step()
            if batch_idx % 10 == 0:
                loss.item()  # the log line
        model.eval()
        test_loss = correct = 0
        with torch.no_grad():
            for data, target in test_loader:
                output = model(data)
                test_loss += F.cross_entropy(output, target, reduction="sum").item()
                correct += output.argmax(1).eq(target).sum().item()
        scheduler.step()
        times.append(time.perf_counter() - start)
    return times


def lrrun_epochs(
    root: Path, path: str, workers: int, epochs: int, cache: Path
) -> tuple[list[float], float]:
    """lrrun as a user runs it; (epoch times, start-up seconds)."""
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "lrrun",
                "dataset=image_folder",
                f"dataset.root={root}",
                "dataset.val_split=0",
                f"trainer.data_path={path}",
                f"trainer.num_workers={workers}",
                f"trainer.epochs={epochs}",
                "trainer.progress=false",
                "trainer.plot=false",
                "trainer.save_best=false",
                "trainer.device=cpu",
                f"hydra.run.dir={run_dir}",
            ],
            check=True,
            capture_output=True,
            text=True,
            env=os.environ | {"XDG_CACHE_HOME": str(cache)},
        )
        with (run_dir / "metrics.csv").open() as f:
            times = [float(r["epoch_time_s"]) for r in csv.DictReader(f)]
        startup = json.loads((run_dir / "status.json").read_text())["startup_s"]
    return times, startup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--root", type=Path, default=Path("data/fashion-png"))
    parser.add_argument("--hand", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hand:  # the hand loop in its own process, as the lrrun runs are
        print(json.dumps(hand_loop(args.root, args.workers, args.epochs)))
        return
    sys.path.insert(0, str(HERE))
    from fashion_png import export

    root = export(args.root).resolve()
    cache = Path(tempfile.mkdtemp(prefix="lrrun-bench-cache-"))
    cold = lrrun_epochs(root, "tensor", 0, 1, cache)[1]  # decodes the 70,000 PNGs once
    epochs: dict[str, list[float]] = {"hand": [], "lrrun loader": [], "lrrun tensor": []}
    startups = []
    order = list(epochs)
    for r in range(args.rounds):
        for name in order if r % 2 == 0 else order[::-1]:
            if name == "hand":
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--hand",
                        "--root",
                        str(root),
                        "--workers",
                        str(args.workers),
                        "--epochs",
                        str(args.epochs),
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                times = json.loads(out.stdout)
            else:
                path = name.split()[1]
                times, startup = lrrun_epochs(
                    root, path, args.workers if path == "loader" else 0, args.epochs, cache
                )
                if path == "tensor":
                    startups.append(startup)
            epochs[name] += times[1:]
            print(
                f"round {r + 1} {name:13s} epochs {' '.join(f'{t:.2f}' for t in times)} s",
                flush=True,
            )
    shutil.rmtree(cache, ignore_errors=True)
    median = {k: statistics.median(v) for k, v in epochs.items()}
    print(
        f"\nFashionMNIST as 70,000 PNGs, feedforward, batch 64, {args.workers} workers, "
        f"{os.cpu_count()} CPUs; median epoch (train 60,000 + evaluate 10,000):"
    )
    for name, t in median.items():
        print(f"  {name:13s} {t:7.2f} s")
    print(f"lrrun loader / hand : {median['lrrun loader'] / median['hand']:.2f}x  (target <= 1.0)")
    print(
        f"hand / lrrun tensor : {median['hand'] / median['lrrun tensor']:.2f}x faster  (target >= 3)"
    )
    warm = statistics.median(startups)
    print(
        f"decoding once       : start-up {cold:.1f} s with the 70,000 PNGs decoded, "
        f"{warm:.1f} s from the cache"
    )


if __name__ == "__main__":
    main()
