"""Throughput figures for lrrun on this machine: prints a table, asserts nothing.

    python benchmarks/throughput.py [--steps 300] [--device auto]

1. Data path: one epoch of batches from lrrun's in-memory tensor loader vs the textbook
   torchvision pipeline (ToTensor + Normalize per sample, default collate).
2. Training: optimizer steps per second through lrrun.loop.train_one_epoch (which includes
   the per-step lr/loss logging) for both models, and the seconds one epoch would take.
3. Logging cost: the same steps with the StepRecorder writing steps.csv vs a no-op recorder.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from itertools import islice
from pathlib import Path

import torch

from lrrun.data import load_data, make_loader
from lrrun.loggers import CSVLog, StepRecorder, steps_columns
from lrrun.loop import train_one_epoch
from lrrun.models import FashionMNISTNet, FeedForward
from lrrun.runner import resolve_device
from lrrun.schedulers import Stepping


class _NullRecorder(StepRecorder):
    def __init__(self) -> None:
        pass

    def record(self, *args, **kwargs) -> None:
        pass

    def flush(self) -> None:
        pass


def data_path(root: str, batch_size: int) -> tuple[float, float]:
    import torchvision
    from torchvision import transforms

    data = load_data({"name": "fashion_mnist", "root": root,
                      "system_dir": "/usr/share/datasets/fashion-mnist", "download": False})  # fmt: skip
    start = time.perf_counter()
    for _ in make_loader(data.train, batch_size, True, 0):
        pass
    ours = time.perf_counter() - start
    tf = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((data.mean,), (data.std,))]
    )
    ds = torchvision.datasets.FashionMNIST(root, train=True, transform=tf)
    start = time.perf_counter()
    for _ in torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True):
        pass
    return ours, time.perf_counter() - start


def steps_per_second(model_cls, data, device, steps: int, batch_size: int, log: bool) -> float:
    torch.manual_seed(0)
    model = model_cls().to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.01, total_steps=steps + 20)
    loader = list(islice(iter(make_loader(data.train, batch_size, True, 0)), steps + 20))
    with tempfile.TemporaryDirectory() as tmp:
        rec = (
            StepRecorder(CSVLog(Path(tmp) / "steps.csv", steps_columns(1)))
            if log
            else _NullRecorder()
        )
        stepping = Stepping(sched, "step")
        train_one_epoch(model, loader[:20], opt, stepping, device, 1, 0, rec)  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        train_one_epoch(model, loader[20:], opt, stepping, device, 1, 20, rec)  # ends with .item()
        return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--root", default="data")
    args = parser.parse_args()
    device = resolve_device(args.device)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {device}")  # fmt: skip

    ours, textbook = data_path(args.root, args.batch_size)
    print(f"\n1. one epoch of FashionMNIST batches (batch {args.batch_size}, no model)")
    print(f"   lrrun tensor loader        {ours:8.2f} s")
    print(f"   ToTensor+Normalize loader  {textbook:8.2f} s   ({textbook / ours:.0f}x slower)")

    data = load_data({"name": "fashion_mnist", "root": args.root, "download": False})
    per_epoch = len(make_loader(data.train, args.batch_size, True, 0))
    print(f"\n2./3. training steps/s over {args.steps} steps (batch {args.batch_size}, "
          f"{per_epoch} steps per epoch)")  # fmt: skip
    print(f"   {'model':<18}{'steps/s':>10}{'s/epoch':>10}{'no log steps/s':>16}{'log cost':>10}")
    for cls in (FeedForward, FashionMNISTNet):
        steps = args.steps if cls is FeedForward else max(50, args.steps // 4)
        logged = steps_per_second(cls, data, device, steps, args.batch_size, log=True)
        bare = steps_per_second(cls, data, device, steps, args.batch_size, log=False)
        print(f"   {cls.__name__:<18}{logged:>10.0f}{per_epoch / logged:>10.1f}{bare:>16.0f}"
              f"{(bare / logged - 1) * 100:>9.1f}%")  # fmt: skip


if __name__ == "__main__":
    main()
