"""lrrun vs the loop the tutorials write, side by side on real FashionMNIST.

    python benchmarks/peer.py [--models feedforward fashion_mnist_net] [--epochs 5]
                              [--rounds 1] [--devices cpu cuda] [--precision fp32]

For each model: (a) the plain hand-written loop (DataLoader with ToTensor() per sample,
per-epoch StepLR, ``loss.item()`` every step, evaluation every epoch) and (b) lrrun's runner
with the same model, optimizer (SGD lr 0.01, momentum 0.9) and scheduler (StepLR
step_size 1, gamma 0.7). Runs alternate plain/lrrun, each in its own process (so peak RSS
is per variant). Prints seconds per epoch (median over all epochs of all rounds; an epoch
is training plus evaluation), training samples/s, peak RSS / peak CUDA memory, final
val accuracy, and plain/lrrun. Asserts nothing: the figures go in the closing notes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.peak import peak_mib

ROOT = Path(__file__).resolve().parent.parent
BATCH = {"feedforward": 256, "fashion_mnist_net": 64}
SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"


# --- (a) the plain loop, as the tutorials write it -------------------------------------------


class ExamplesNet(nn.Module):
    """pytorch/examples' mnist Net as written there (relu before pool, log_softmax); lrrun's
    fashion_mnist_net computes the same function (tests/models/test_models.py)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = self.dropout1(F.max_pool2d(x, 2))
        x = self.dropout2(F.relu(self.fc1(torch.flatten(x, 1))))
        return F.log_softmax(self.fc2(x), dim=1)


def plain(model_name: str, epochs: int, device: torch.device, data_root: str) -> dict:
    from torchvision import datasets, transforms

    from lrrun.data.load import load_data

    torch.manual_seed(42)
    if model_name == "feedforward":
        model = nn.Sequential(nn.Flatten(), nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 10))
        transform = transforms.ToTensor()
    else:
        model = ExamplesNet()
        data = load_data(_dataset_cfg(data_root))  # the same measured constants lrrun uses
        transform = transforms.Compose(
            [transforms.ToTensor(), transforms.Normalize(data.mean, data.std)]
        )
    model = model.to(device)
    cuda = device.type == "cuda"
    kwargs = {"num_workers": 1, "pin_memory": True} if cuda else {}
    train_set = datasets.FashionMNIST(data_root, train=True, transform=transform)
    test_set = datasets.FashionMNIST(data_root, train=False, transform=transform)
    train_loader = torch.utils.data.DataLoader(
        train_set, batch_size=BATCH[model_name], shuffle=True, **kwargs
    )
    test_loader = torch.utils.data.DataLoader(test_set, batch_size=1000, **kwargs)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    times, accs = [], []
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        running = 0.0
        for data, target in train_loader:
            data, target = data.to(device), target.to(device)
            optimizer.zero_grad()
            output = model(data)
            loss = F.cross_entropy(output, target)
            loss.backward()
            optimizer.step()
            running += loss.item()
        model.eval()
        correct = 0
        with torch.no_grad():
            for data, target in test_loader:
                data, target = data.to(device), target.to(device)
                correct += (model(data).argmax(1) == target).sum().item()
        scheduler.step()
        times.append(time.perf_counter() - start)
        accs.append(correct / len(test_set))
    return {"epoch_s": times, "val_acc": accs}


# --- (b) lrrun's runner ------------------------------------------------------------------------


def lrrun(model_name: str, epochs: int, device: torch.device, data_root: str, precision: str):
    from hydra import compose, initialize_config_dir

    from lrrun.config.location import config_dir
    from lrrun.train.runner import run

    overrides = [
        "dataset=fashion_mnist",
        f"dataset.root={data_root}",
        "dataset.val_split=0",  # the tutorial trains on all 60,000 and evaluates on the test set
        # the plain MLP loop feeds ToTensor() pixels in [0, 1]; the CNN loop normalises
        f"dataset.normalize={model_name != 'feedforward'}",
        f"model={model_name}",
        "optimizer=sgd",
        "optimizer.lr=0.01",
        "optimizer.momentum=0.9",
        "scheduler=step_lr",
        "scheduler.step_size=1",
        "scheduler.gamma=0.7",
        f"trainer.batch_size={BATCH[model_name]}",
        f"trainer.epochs={epochs}",
        f"trainer.device={device}",
        f"trainer.precision={precision}",
        "trainer.progress=false",
    ]
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    with tempfile.TemporaryDirectory() as out, open(os.devnull, "w") as quiet:
        stdout, sys.stdout = sys.stdout, quiet
        try:
            history = run(cfg, Path(out))
        finally:
            sys.stdout = stdout
    return {
        "epoch_s": [r["epoch_time_s"] for r in history],
        "val_acc": [r["val_acc"] for r in history],
    }


def _dataset_cfg(root: str):
    """FashionMNIST as both loops train on it: all 60,000 (no val split held out)."""
    from lrrun.config.dataset import read_dataset

    return read_dataset(
        {
            "source": "idx",
            "name": "fashion_mnist",
            "root": root,
            "system_dir": str(SYSTEM_DIR),
            "download": False,
            "val_split": 0,
        }
    )


def worker(args: argparse.Namespace) -> None:
    device = torch.device(args.device)
    if args.variant == "plain":
        result = plain(args.models[0], args.epochs, device, args.root)
    else:
        result = lrrun(args.models[0], args.epochs, device, args.root, args.precision)
    result["peak_rss_mb"] = peak_mib()
    if device.type == "cuda":
        result["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print("RESULT " + json.dumps(result))


def spawn(variant: str, model: str, args: argparse.Namespace) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        variant,
        "--models",
        model,
        "--epochs",
        str(args.epochs),
        "--device",
        args.device,
        "--root",
        args.root,
        "--precision",
        args.precision,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        sys.exit(f"{variant} {model} failed:\n{proc.stderr[-3000:]}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(BATCH), choices=list(BATCH))
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=1, help="plain/lrrun pairs per model")
    parser.add_argument(
        "--devices",
        nargs="+",
        default=["cpu", *(["cuda"] if torch.cuda.is_available() else [])],
        help="each device in turn (default: cpu, and cuda when there is one)",
    )
    parser.add_argument("--device", help=argparse.SUPPRESS)  # a worker's one device
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--root", default="data")
    parser.add_argument("--worker", choices=["plain", "lrrun"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(argparse.Namespace(**{**vars(args), "variant": args.worker}))

    from lrrun.data.load import load_data

    load_data(_dataset_cfg(args.root))  # prepare data/FashionMNIST/raw once, outside timings
    for device in args.devices:
        compare(argparse.Namespace(**{**vars(args), "device": device}))


def compare(args: argparse.Namespace) -> None:
    """Both loops, alternating, for every model on ``args.device``; print the table."""
    gpu = torch.cuda.get_device_name() if args.device.startswith("cuda") else "-"
    print(
        f"\nmachine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device} "
        f"({gpu}), lrrun precision {args.precision}, {args.epochs} epochs x {args.rounds} round(s)"
    )
    header = (
        f"{'model':<18}{'loop':<7}{'batch':>6}{'s/epoch':>9}{'samples/s':>11}{'peak RSS MB':>13}"
    )
    header += f"{'peak CUDA MB':>14}{'val_acc':>9}"
    print(header)
    for model in args.models:
        results: dict[str, list[dict]] = {"plain": [], "lrrun": []}
        for _ in range(args.rounds):
            for variant in ("plain", "lrrun"):
                results[variant].append(spawn(variant, model, args))
        medians = {}
        for variant, rs in results.items():
            epoch_s = statistics.median(t for r in rs for t in r["epoch_s"])
            medians[variant] = epoch_s
            cuda_mb = max(r.get("peak_cuda_mb", float("nan")) for r in rs)
            print(
                f"{model:<18}{variant:<7}{BATCH[model]:>6}{epoch_s:>9.3f}{60000 / epoch_s:>11.0f}"
                f"{max(r['peak_rss_mb'] for r in rs):>13.0f}{cuda_mb:>14.0f}"
                f"{statistics.mean(r['val_acc'][-1] for r in rs):>9.4f}"
            )
        print(f"{model:<18}plain/lrrun = {medians['plain'] / medians['lrrun']:.2f}x per epoch")


if __name__ == "__main__":
    main()
