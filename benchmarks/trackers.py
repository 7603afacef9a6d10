"""What trainer.trackers cost a run, measured with the real CLI.

    python benchmarks/trackers.py [--epochs 2] [--rounds 2]

Feedforward on real FashionMNIST (938 steps per epoch), trackers [] vs [tensorboard] vs
[mlflow] vs both, run in alternation (``--rounds`` times each, so a slow minute of a shared
CPU hits every variant alike). Reported per variant: the median epoch time (metrics.csv's
epoch_time_s: training, the epoch's tracker writes and evaluation) and its ratio to no
tracker, and the median wall time of the whole command (MLflow's store set-up included).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = {
    "none": "[]",
    "tensorboard": "[tensorboard]",
    "mlflow": "[mlflow]",
    "both": "[tensorboard,mlflow]",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--root", default=str(ROOT / "data"))
    args = parser.parse_args()
    epochs: dict[str, list[float]] = {v: [] for v in VARIANTS}
    walls: dict[str, list[float]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        for r in range(args.rounds):
            for name, value in VARIANTS.items():
                run_dir = cwd / f"{name}-{r}"
                command = [
                    sys.executable,
                    "-m",
                    "lrrun",
                    f"dataset.root={args.root}",
                    "model=feedforward",
                    f"trainer.epochs={args.epochs}",
                    "trainer.device=cpu",
                    "trainer.progress=false",
                    "trainer.plot=false",
                    f"trainer.trackers={value}",
                    f"hydra.run.dir={run_dir}",
                ]
                start = time.perf_counter()
                proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
                walls[name].append(time.perf_counter() - start)
                if proc.returncode != 0:
                    sys.exit(f"{name} failed:\n{proc.stderr[-2000:]}")
                with (run_dir / "metrics.csv").open() as f:
                    epochs[name] += [float(row["epoch_time_s"]) for row in csv.DictReader(f)]
    base = statistics.median(epochs["none"])
    print(
        f"{'trackers':<12} {'epoch s':>8} {'vs none':>8} {'wall s':>8}  "
        f"({args.rounds} rounds x {args.epochs} epochs, alternating)"
    )
    for name in VARIANTS:
        epoch = statistics.median(epochs[name])
        print(f"{name:<12} {epoch:8.2f} {epoch / base:8.2f} {statistics.median(walls[name]):8.2f}")


if __name__ == "__main__":
    main()
