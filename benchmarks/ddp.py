"""What data parallelism costs and gives on this machine's CPU, measured with the real CLI.

    python benchmarks/ddp.py [--model fashion_mnist_net] [--epochs 2] [--rounds 2]

Real FashionMNIST (55,000 train samples), the same global batch of 64 each way: one process
with batch 64 and every core, against ``trainer.devices=2`` (gloo) with batch 32 per process
and half the cores each. Run in alternation (``--rounds`` times each). Reported: the median
epoch time (metrics.csv's epoch_time_s: training and the sharded evaluation, the first epoch
of each run left out) and its ratio to one process. On a 2-core machine both variants have
the same compute, so the ratio is DDP's overhead (gradient all-reduce, the per-epoch
collectives) against torch's own intra-op threading; on a GPU machine it is the speed-up.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = {"1 process, batch 64": (1, 64), "2 processes, batch 32 each": (2, 32)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fashion_mnist_net")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--root", default=str(ROOT / "data"))
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        for r in range(args.rounds):
            for name, (devices, batch) in VARIANTS.items():
                run_dir = cwd / f"{devices}-{r}"
                command = [
                    sys.executable,
                    "-m",
                    "lrrun",
                    f"dataset.root={args.root}",
                    f"model={args.model}",
                    f"trainer.epochs={args.epochs}",
                    f"trainer.batch_size={batch}",
                    f"trainer.devices={devices}",
                    "trainer.device=cpu",
                    "trainer.progress=false",
                    "trainer.plot=false",
                    f"hydra.run.dir={run_dir}",
                ]
                env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
                proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env)
                if proc.returncode != 0:
                    sys.exit(f"{name} failed:\n{proc.stderr[-2000:]}")
                with (run_dir / "metrics.csv").open() as f:
                    rows = list(csv.DictReader(f))
                times[name] += [float(row["epoch_time_s"]) for row in rows[1:]]
    base = statistics.median(times[next(iter(VARIANTS))])
    print(
        f"{args.model}, real FashionMNIST, global batch 64, {cores} cores, "
        f"{args.rounds} rounds x {args.epochs} epochs (first epoch of each run left out)"
    )
    print(f"{'variant':<28} {'epoch s':>8} {'vs 1 process':>13}")
    for name in VARIANTS:
        epoch = statistics.median(times[name])
        print(f"{name:<28} {epoch:>8.2f} {base / epoch:>12.2f}x")


if __name__ == "__main__":
    main()
