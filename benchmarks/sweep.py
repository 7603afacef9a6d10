"""Start-up time and the cost of a sweep, measured with the real CLI.

    python benchmarks/sweep.py [--epochs 5]

1. ``lrrun --help`` wall time (median of 3).
2. Command to first training step: status.json's startup_s (seconds from process start
   until the first epoch begins) of a 1-epoch run.
   Also lrrun-preview: 100k steps of one_cycle_lr vs a 1-epoch preview (the difference is
   the cost of the steps beyond start-up).
3. A 16-job sweep (scheduler.gamma x scheduler.step_size, feedforward, real FashionMNIST)
   in one process (Hydra's basic launcher): its wall time vs 16 x one job's training time
   (the sum of its epoch_time_s). The issue's target is a ratio under 1.3.
4. A replicate sweep: 3 configs x 5 seeds (scheduler.gamma x trainer.seed, same set-up) with
   its verdict (configs.csv, pictures): wall time vs 15 x one job's training time (target:
   within 1.3x, as for single-seed sweeps).

"One job's training" is the median of three single runs, one before step 3, one between
steps 3 and 4 and one after step 4: on a shared CPU the same job trains 10-20% slower or
faster from one minute to the next, and one reference run taken at a lucky moment made the
ratio swing by 0.2. All three are printed.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LRRUN = [sys.executable, "-m", "lrrun"]


def timed(args: list[str], cwd: Path) -> float:
    return run(args, cwd)[0]


def run(args: list[str], cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return wall, proc.stdout


def training_seconds(metrics: Path) -> float:
    with metrics.open() as f:
        return sum(float(r["epoch_time_s"]) for r in csv.DictReader(f))


def replicate_command(single: list[str]) -> list[str]:
    return [*LRRUN, "-m", *single, "scheduler.gamma=0.5,0.7,0.9", "trainer.seed=range(1,6)",
            "hydra.sweep.dir=replicates"]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--root", default=str(ROOT / "data"))
    args = parser.parse_args()
    common = [f"dataset.root={args.root}", "model=feedforward", "trainer.progress=false",
              "trainer.device=cpu"]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        help_s = statistics.median(timed([*LRRUN, "--help"], cwd) for _ in range(3))
        print(f"1. lrrun --help                         {help_s:6.2f} s")

        wall = timed([*LRRUN, *common, "trainer.epochs=1", "hydra.run.dir=one"], cwd)
        first = json.loads((cwd / "one" / "status.json").read_text())["startup_s"]
        print(f"2. command to first training step       {first:6.2f} s (process start to "
              f"the first epoch; 1-epoch run {wall:.2f} s wall)")  # fmt: skip

        preview = [sys.executable, "-c", "from lrrun.tools.preview import main; main()",
                   "scheduler=one_cycle_lr", "preview.plot=false"]  # fmt: skip
        base = statistics.median(
            timed([*preview, "trainer.epochs=1", "hydra.run.dir=p1"], cwd) for _ in range(3)
        )
        big = statistics.median(
            timed([*preview, "trainer.epochs=107", "hydra.run.dir=p107"], cwd) for _ in range(3)
        )
        print(f"   lrrun-preview one_cycle_lr, 100,366 steps: {big:.2f} s wall, {big - base:.2f} s "
              f"more than a 938-step preview ({base:.2f} s)")  # fmt: skip

        single = [*common, f"trainer.epochs={args.epochs}", "scheduler=step_lr"]
        singles: list[tuple[float, float]] = []  # (wall, training) of each reference run

        def reference() -> None:
            wall = timed([*LRRUN, *single, f"hydra.run.dir=single{len(singles)}"], cwd)
            singles.append((wall, training_seconds(cwd / f"single{len(singles)}" / "metrics.csv")))

        reference()
        sweep = [*LRRUN, "-m", *single, "scheduler.gamma=0.1,0.3,0.5,0.7",
                 "scheduler.step_size=1,2,3,4", "hydra.sweep.dir=sweep"]  # fmt: skip
        wall_sweep = timed(sweep, cwd)
        jobs = sorted((cwd / "sweep").glob("*/metrics.csv"))
        train_jobs = sum(training_seconds(m) for m in jobs)
        reference()
        wall_rep, out = run(replicate_command(single), cwd)
        reference()
        wall_one = statistics.median(wall for wall, _ in singles)
        train_one = statistics.median(train for _, train in singles)
        print(f"3. one job ({args.epochs} epochs), median of 3 runs: {wall_one:.2f} s wall, "
              f"{train_one:.2f} s training (runs: "
              + ", ".join(f"{t:.2f}" for _, t in singles) + ")")  # fmt: skip
        print(
            f"   {len(jobs)}-job sweep: {wall_sweep:.2f} s wall, {train_jobs:.2f} s training in all"
        )
        print(f"   sweep wall / (16 x one job's training) = {wall_sweep / (16 * train_one):.2f}")
        print(f"   sweep wall / its own training time     = {wall_sweep / train_jobs:.2f}")
        print(f"   sweep wall / (16 x one job's wall)     = {wall_sweep / (16 * wall_one):.2f}")

        jobs = sorted((cwd / "replicates").glob("*/metrics.csv"))
        train_rep = sum(training_seconds(m) for m in jobs)
        print(f"4. 3 configs x 5 seeds ({len(jobs)} jobs, verdict and pictures included): "
              f"{wall_rep:.2f} s wall, {train_rep:.2f} s training in all")  # fmt: skip
        print(f"   sweep wall / (15 x one job's training) = {wall_rep / (15 * train_one):.2f}")
        print(f"   sweep wall / its own training time     = {wall_rep / train_rep:.2f}")
        verdict = [
            line for line in out.splitlines() if line.startswith(("best:", "noise:", "power:"))
        ]
        print("   " + "\n   ".join(verdict))


if __name__ == "__main__":
    main()
