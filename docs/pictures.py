"""The docs' pictures, made from real runs: ``python docs/pictures.py [NAME ...]`` (``make
pictures``) runs each picture's command - real FashionMNIST, CPU - in a scratch dir and copies
the PNG it writes to docs/img/. A sweep also prints its verdict: the words the guide quotes
beside its pictures come from the same run. Commands that are not given a dir write under
the scratch dir, so nothing lands in outputs/.

docs/img/study_wsd_vs_cosine.png is the language-model study's (docs/guide/tasks.md), made by
the sweep that page shows, on Debian's fortunes (make corpus); it is not remade here.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMG = ROOT / "docs" / "img"
BIN = Path(sys.executable).parent
SWEEP = "scheduler.gamma=0.3,0.6,0.9 scheduler.step_size=1,2,3 'trainer.seed=range(1,4)'"

# picture -> (the command as a user types it, the file it writes in its run or sweep dir)
PICTURES: dict[str, tuple[str, str]] = {
    "preview.png": (
        "lrrun-preview -m scheduler=step_lr,cosine_annealing_lr,one_cycle_lr,sequential_lr "
        "trainer.epochs=10",
        "preview.png",
    ),
    "warmup_plateau.png": (
        "lrrun-preview scheduler=reduce_lr_on_plateau scheduler.monitor=val_acc "
        "scheduler.patience=1 scheduler.warmup.epochs=1 "
        "'preview.metrics=[0.80,0.84,0.85,0.85,0.85,0.86,0.86,0.86,0.86,0.86]'",
        "preview.png",
    ),
    "curves.png": ("lrrun trainer.epochs=5", "curves.png"),
    "curves_param_groups.png": (
        "lrrun trainer.epochs=3 scheduler=one_cycle_lr optimizer.lr=0.02 "
        "'+optimizer.param_groups=[{name:head,params:[fc2.*],lr:0.2}]'",
        "curves.png",
    ),
    "find_lr.png": ("lrrun-find-lr", "find_lr.png"),
    "sweep_curves.png": (f"lrrun -m {SWEEP} trainer.epochs=4", "sweep_curves.png"),
    "heatmap.png": (f"lrrun -m {SWEEP} trainer.epochs=4", "heatmap.png"),
}


def make(names: list[str], scratch: Path) -> None:
    done: dict[str, Path] = {}  # one run per command (the sweep makes two pictures)
    for name in names:
        command, made = PICTURES[name]
        if command not in done:
            out = name.removesuffix(".png")  # relative: the pictures' titles name the dir
            words = shlex.split(command)
            where = "hydra.sweep.dir" if "-m" in words else "hydra.run.dir"
            print("$", command, flush=True)
            run = [str(BIN / words[0]), *words[1:], f"{where}={out}"]
            subprocess.run(run, check=True, cwd=scratch)
            done[command] = scratch / out
        shutil.copyfile(done[command] / made, IMG / name)
        print(f"wrote docs/img/{name}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help=f"default: all ({', '.join(PICTURES)})")
    names = parser.parse_args().names or list(PICTURES)
    unknown = [n for n in names if n not in PICTURES]
    if unknown:
        parser.error(f"no picture {', '.join(unknown)}; pictures: {', '.join(PICTURES)}")
    with tempfile.TemporaryDirectory() as scratch:
        make(names, Path(scratch))


if __name__ == "__main__":
    main()
