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

5. Fused sweeps (``hydra/launcher=fused``, lrrun.fused) against the basic launcher on the
   same 16-job sweep (4 learning rates x 4 seeds, 2 epochs): the feedforward model on
   FashionMNIST, and the CNN (dropout off, as in benchmarks/fused.py) on the
   synthetic set of 4,096 images (a CNN epoch of FashionMNIST takes minutes here). Wall time
   and the peak RSS of the sweep's process; the feedforward sweep's floor (its time outside
   the epochs plus its steps at the cost of the pass and the optimizers alone, ``floor``);
   then the feedforward sweep with hydra.launcher.max_members=1, 2, 4, 8, 16.
   ``--fused-only`` runs this part alone, ``--device cuda`` on a GPU.

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
    return [
        *LRRUN,
        "-m",
        *single,
        "scheduler.gamma=0.5,0.7,0.9",
        "trainer.seed=range(1,6)",
        "hydra.sweep.dir=replicates",
    ]


def peak(args: list[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB) of the command, run as the only child of a fresh
    interpreter (so the peak is that command's)."""
    code = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "sys.exit(p.stderr[-2000:]) if p.returncode else None; "
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout.split()
    return float(out[0]), float(out[1]) / 1024


def floor(sweep: Path, wall: float, basic: float, device: str) -> None:
    """What no fused launcher that keeps each member's own torch optimizer could go below
    here: the sweep's time outside its epochs (start-up, composing, planning, building and
    ending the members, the verdict) plus, for each of its steps, the pass's forward and
    backward and the 16 optimizers' steps and nothing else (no data, metrics, logging or
    evaluation) - against the basic launcher's wall time."""
    sys.path.insert(0, str(ROOT))
    from benchmarks.fused import step_time

    with (sweep / "0" / "steps.csv").open() as f:
        steps = sum(1 for _ in csv.DictReader(f))
    outside = wall - training_seconds(sweep / "0" / "metrics.csv")  # the members' epochs: one
    runs = [step_time("feedforward", 16, 100, True, device, optimizer="sgd") for _ in range(3)]
    per_step = statistics.median(runs) / 100
    least = outside + steps * per_step
    print(
        f"   its floor: {outside:.1f} s outside the epochs + {steps} steps x "
        f"{per_step * 1e3:.1f} ms (the pass's forward, backward and 16 optimizer steps alone) "
        f"= {least:.1f} s = {least / basic:.2f}x the basic launcher's time"
    )


def fused(root: str, cwd: Path, device: str = "cpu") -> None:
    """Section 5: fused vs basic launcher on the same sweeps (on ``device``)."""
    grid = [
        "optimizer.lr=0.01,0.02,0.05,0.1",
        "trainer.seed=range(1,5)",
        "trainer.epochs=2",
        "trainer.progress=false",
        "trainer.plot=false",
        f"trainer.device={device}",
    ]
    sweeps = {
        "feedforward, FashionMNIST": [f"dataset.root={root}", "model=feedforward"],
        "CNN (dropout off), synthetic 4096": [
            "dataset=synthetic",
            "dataset.seed=0",
            "dataset.train_size=4096",
            "model=fashion_mnist_net",
            "model.dropout1=0",
            "model.dropout2=0",
        ],
    }
    print("5. 16-job sweeps (4 lrs x 4 seeds, 2 epochs): fused vs basic launcher")
    for name, data in sweeps.items():
        runs = {}
        for launcher in ("basic", "fused"):
            extra = ["hydra/launcher=fused"] if launcher == "fused" else []
            runs[launcher] = peak(
                [*LRRUN, "-m", *data, *grid, *extra, f"hydra.sweep.dir={launcher}-{len(name)}"], cwd
            )
        (bw, bm), (fw, fm) = runs["basic"], runs["fused"]
        print(
            f"   {name}: basic {bw:.1f} s ({bm:.0f} MiB), fused {fw:.1f} s ({fm:.0f} MiB): "
            f"fused / basic = {fw / bw:.2f}"
        )
        if name.startswith("feedforward"):
            floor(cwd / f"fused-{len(name)}", fw, bw, device)
    data = sweeps["feedforward, FashionMNIST"]
    print("   feedforward, FashionMNIST, by members per pass (hydra.launcher.max_members):")
    for members in (1, 2, 4, 8, 16):
        wall, mib = peak(
            [
                *LRRUN,
                "-m",
                *data,
                *grid,
                "hydra/launcher=fused",
                f"hydra.launcher.max_members={members}",
                f"hydra.sweep.dir=members{members}",
            ],
            cwd,
        )
        print(f"     {members:>2} members: {wall:.1f} s, peak {mib:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--root", default=str(ROOT / "data"))
    parser.add_argument("--fused-only", action="store_true", help="section 5 alone")
    parser.add_argument("--device", default="cpu", help="section 5's device: cpu, or cuda")
    args = parser.parse_args()
    common = [
        f"dataset.root={args.root}",
        "model=feedforward",
        "trainer.progress=false",
        "trainer.device=cpu",
    ]
    if args.fused_only:
        with tempfile.TemporaryDirectory() as tmp:
            fused(args.root, Path(tmp), args.device)
        return
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        help_s = statistics.median(timed([*LRRUN, "--help"], cwd) for _ in range(3))
        print(f"1. lrrun --help                         {help_s:6.2f} s")

        wall = timed([*LRRUN, *common, "trainer.epochs=1", "hydra.run.dir=one"], cwd)
        first = json.loads((cwd / "one" / "status.json").read_text())["startup_s"]
        print(
            f"2. command to first training step       {first:6.2f} s (process start to "
            f"the first epoch; 1-epoch run {wall:.2f} s wall)"
        )

        preview = [
            sys.executable,
            "-c",
            "from lrrun.tools.preview import main; main()",
            "scheduler=one_cycle_lr",
            "preview.plot=false",
        ]
        base = statistics.median(
            timed([*preview, "trainer.epochs=1", "hydra.run.dir=p1"], cwd) for _ in range(3)
        )
        big = statistics.median(
            timed([*preview, "trainer.epochs=107", "hydra.run.dir=p107"], cwd) for _ in range(3)
        )
        print(
            f"   lrrun-preview one_cycle_lr, 100,366 steps: {big:.2f} s wall, {big - base:.2f} s "
            f"more than a 938-step preview ({base:.2f} s)"
        )

        single = [*common, f"trainer.epochs={args.epochs}", "scheduler=step_lr"]
        singles: list[tuple[float, float]] = []  # (wall, training) of each reference run

        def reference() -> None:
            wall = timed([*LRRUN, *single, f"hydra.run.dir=single{len(singles)}"], cwd)
            singles.append((wall, training_seconds(cwd / f"single{len(singles)}" / "metrics.csv")))

        reference()
        sweep = [
            *LRRUN,
            "-m",
            *single,
            "scheduler.gamma=0.1,0.3,0.5,0.7",
            "scheduler.step_size=1,2,3,4",
            "hydra.sweep.dir=sweep",
        ]
        wall_sweep = timed(sweep, cwd)
        jobs = sorted((cwd / "sweep").glob("*/metrics.csv"))
        train_jobs = sum(training_seconds(m) for m in jobs)
        reference()
        wall_rep, out = run(replicate_command(single), cwd)
        reference()
        wall_one = statistics.median(wall for wall, _ in singles)
        train_one = statistics.median(train for _, train in singles)
        print(
            f"3. one job ({args.epochs} epochs), median of 3 runs: {wall_one:.2f} s wall, "
            f"{train_one:.2f} s training (runs: " + ", ".join(f"{t:.2f}" for _, t in singles) + ")"
        )
        print(
            f"   {len(jobs)}-job sweep: {wall_sweep:.2f} s wall, {train_jobs:.2f} s training in all"
        )
        print(f"   sweep wall / (16 x one job's training) = {wall_sweep / (16 * train_one):.2f}")
        print(f"   sweep wall / its own training time     = {wall_sweep / train_jobs:.2f}")
        print(f"   sweep wall / (16 x one job's wall)     = {wall_sweep / (16 * wall_one):.2f}")

        jobs = sorted((cwd / "replicates").glob("*/metrics.csv"))
        train_rep = sum(training_seconds(m) for m in jobs)
        print(
            f"4. 3 configs x 5 seeds ({len(jobs)} jobs, verdict and pictures included): "
            f"{wall_rep:.2f} s wall, {train_rep:.2f} s training in all"
        )
        print(f"   sweep wall / (15 x one job's training) = {wall_rep / (15 * train_one):.2f}")
        print(f"   sweep wall / its own training time     = {wall_rep / train_rep:.2f}")
        verdict = [
            line for line in out.splitlines() if line.startswith(("best:", "noise:", "power:"))
        ]
        print("   " + "\n   ".join(verdict))
        fused(args.root, cwd, args.device)


if __name__ == "__main__":
    main()
