"""The members' one pass (lrrun.fused.forward) against the same members stepped one after
another: the training step of a fused sweep, without data loading or logging.

    python benchmarks/fused.py [--steps 30] [--members 1 2 4 8 16] [--device cuda]

Each member has its own torch Adam and StepLR (stepped per optimizer step), as fused jobs
keep theirs. For the feedforward model (784-100-10) and the CNN (pytorch/examples' mnist
Net, dropout off: in a real pass its masks come from lrrun.fused.dropout, drawn per member
before the pass; this measures the pass alone) at batch 64 on 1x28x28 inputs: the wall time of ``--steps`` training
steps of N members fused vs N members one after another (the median of 3 repeats each), and
the ratio fused / sequential - issue 27's targets are at most 0.4 (feedforward) and 0.7 (CNN)
for a 16-job sweep. Peak memory: the peak RSS of a fresh process training the N fused members. Figures are ratios measured in one run on this machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.peak import peak_mib

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def build(kind: str, n: int, device: str, optimizer: str = "adam") -> tuple[list, list, list]:
    """``n`` members with their own optimizer (Adam lr 1e-3, or lrrun's default SGD: lr
    0.01, momentum 0.9) and StepLR."""
    import torch

    from lrrun.models import FashionMNISTNet, FeedForward

    models, optimizers, schedulers = [], [], []
    for seed in range(n):
        torch.manual_seed(seed)
        model = (
            FeedForward(784, 100, 10)
            if kind == "feedforward"
            else FashionMNISTNet(0.0, 0.0, (1, 28, 28), 10)
        )
        model = model.to(device)
        if optimizer == "sgd":
            own = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        else:
            own = torch.optim.Adam(model.parameters(), lr=1e-3)
        models.append(model)
        optimizers.append(own)
        schedulers.append(torch.optim.lr_scheduler.StepLR(own, 10, 0.5))
    return models, optimizers, schedulers


def step_time(
    kind: str, n: int, steps: int, fused: bool, device: str = "cpu", optimizer: str = "adam"
) -> float:
    """Seconds for ``steps`` training steps of ``n`` members, fused or one after another
    (on a GPU: synchronised before the clock is read)."""
    import torch
    import torch.nn.functional as F

    from lrrun.fused.forward import Stacked
    from lrrun.train.allocator import keep_freed_memory

    keep_freed_memory(torch.device(device).type)  # malloc as a run of lrrun has it
    models, optimizers, schedulers = build(kind, n, device, optimizer)
    x = torch.randn(n, 64, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (n, 64), device=device)
    stacked = Stacked(models).train() if fused else None  # packing re-points the members
    for m in models:
        m.train()

    def one_step() -> None:
        for o in optimizers:
            o.zero_grad(set_to_none=True)
        if stacked is not None:
            out = stacked(x)
            sum(F.cross_entropy(out[i], y[i]) for i in range(n)).backward()
        else:
            for i, m in enumerate(models):
                F.cross_entropy(m(x[i]), y[i]).backward()
        for o, s in zip(optimizers, schedulers, strict=True):
            o.step()
            s.step()

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    for _ in range(3):  # warm-up: allocator, kernels
        one_step()
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        one_step()
    sync()
    return time.perf_counter() - start


def peak_rss_mb(kind: str, n: int, steps: int) -> float:
    """Peak RSS (MiB) of a fresh process training ``n`` fused members (torch's own ~300
    MiB included: compare the rows)."""
    cmd = [sys.executable, __file__, "--rss", kind, str(n), "--steps", str(steps)]
    return float(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--members", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--device", default="cpu", help="cpu, or cuda where a GPU is lent")
    parser.add_argument("--rss", nargs=2, help=argparse.SUPPRESS)  # one measurement, alone
    args = parser.parse_args()
    import torch

    if args.rss:
        step_time(args.rss[0], int(args.rss[1]), args.steps, True)
        print(peak_mib())
        return

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.steps} steps, "
        "batch 64 per member, Adam + StepLR per member; median of 3"
    )
    results = []
    for kind in ("feedforward", "cnn"):
        print(f"\n{kind}: members | fused s | sequential s | fused/sequential | peak RSS MiB")
        for n in args.members:
            timed = [
                statistics.median(step_time(kind, n, args.steps, f, args.device) for _ in range(3))
                for f in (True, False)
            ]
            fused, alone = timed
            rss = peak_rss_mb(kind, n, args.steps) if args.device == "cpu" else float("nan")
            print(f"  {n:>7} | {fused:7.3f} | {alone:12.3f} | {fused / alone:16.2f} | {rss:12.0f}")
            results.append(
                {
                    "model": kind,
                    "members": n,
                    "fused_s": fused,
                    "sequential_s": alone,
                    "ratio": fused / alone,
                    "peak_rss_mib": rss,
                }
            )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
