"""Sweep summaries, plots and lrrun-report, on real (tiny) multiruns."""

from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path

from tests.conftest import TINY, read_csv, run_cli


def report_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_cli(args, cwd, prog="lrrun-report")


def test_sweep_summary_table_plots_and_failed_job(tmp_path: Path) -> None:
    """2 x 2 grid, one job with an invalid gamma: summary.csv has every job, the failure
    marked, the winner first in the table; heatmap and curves are drawn."""
    args = [
        "-m",
        *TINY,
        "trainer.plot=true",
        "scheduler.gamma=0.5,0.9,-1",
        "scheduler.step_size=1,2",
        "hydra.sweep.dir=sw",
    ]
    proc = run_cli(args, tmp_path)
    assert proc.returncode == 1  # two jobs failed (gamma=-1)
    sweep = tmp_path / "sw"
    rows = read_csv(sweep / "summary.csv")
    assert [r["job"] for r in rows] == ["0", "1", "2", "3", "4", "5"]
    assert list(rows[0])[:3] == ["job", "scheduler.gamma", "scheduler.step_size"]
    by_status = {r["job"]: r["status"] for r in rows}
    assert by_status == {"0": "ok", "1": "ok", "2": "ok", "3": "ok", "4": "failed", "5": "failed"}
    for r in rows[:4]:
        metrics = read_csv(sweep / r["job"] / "metrics.csv")
        best = max(metrics, key=lambda m: float(m["val_acc"]))
        assert float(r["best_val_acc"]) == float(best["val_acc"])
        assert r["best_epoch"] == best["epoch"]
        assert float(r["final_val_loss"]) == float(metrics[-1]["val_loss"])
        assert float(r["final_lr"]) == float(read_csv(sweep / r["job"] / "steps.csv")[-1]["lr"])
        assert r["epochs"] == "6"
    assert rows[4]["best_val_acc"] == "" and rows[4]["epochs"] == "0"
    winner = max(rows[:4], key=lambda r: float(r["best_val_acc"]))
    table = proc.stdout[proc.stdout.index("best val_acc first") :]
    assert f"★ {winner['job']}" in table
    assert table.index(f"★ {winner['job']}") < min(table.index(f"│ {j} ") for j in "45")
    for name in ("sweep_curves.png", "heatmap.png"):
        assert (sweep / name).stat().st_size > 10_000, name
    for job in "0123":  # each run drew its own curves
        assert (sweep / job / "curves.png").stat().st_size > 10_000


def test_report_on_a_partial_sweep_and_a_run(tmp_path: Path) -> None:
    """A sweep cut short (a job dir without status or rows; one half-written line) reports
    what is there; lrrun-report also redraws one run's curves."""
    proc = run_cli(
        ["-m", *TINY, "trainer.plot=true", "scheduler.gamma=0.5,0.7", "hydra.sweep.dir=sw"],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    sweep = tmp_path / "sw"
    (sweep / "2" / ".hydra").mkdir(parents=True)  # started, nothing written yet
    shutil.copy(sweep / "1" / ".hydra" / "overrides.yaml", sweep / "2" / ".hydra")
    with (sweep / "1" / "metrics.csv").open("a") as f:
        f.write("7,0.001,2.1")  # a row being written when we look
    for p in sweep.glob("*.png"):
        p.unlink()
    (sweep / "summary.csv").unlink()
    (sweep / "0" / "curves.png").unlink()
    proc = report_cli([str(sweep), str(sweep / "0")], tmp_path)
    assert proc.returncode == 0, proc.stderr
    with (sweep / "summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["status"] for r in rows] == ["ok", "ok", "missing"]
    assert rows[1]["epochs"] == "6"
    assert (sweep / "sweep_curves.png").is_file() and (sweep / "0" / "curves.png").is_file()
    bad = report_cli([str(tmp_path / "nowhere")], tmp_path)
    assert bad.returncode == 2 and "is not a folder" in bad.stderr and "Traceback" not in bad.stderr
