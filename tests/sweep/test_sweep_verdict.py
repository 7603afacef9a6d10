"""Replicate sweeps end to end: real multiruns on the synthetic set through the CLI, then
configs.csv, the verdict and the pictures checked against the jobs' own metrics.csv."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from tests.conftest import TINY, read_csv, run_cli


def multirun(tmp_path: Path, name: str, *overrides: str, code: int = 0) -> tuple[str, Path]:
    proc = run_cli(["-m", *TINY, *overrides, f"hydra.sweep.dir={name}"], tmp_path)
    assert proc.returncode == code, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    return proc.stdout, tmp_path / name


def by(rows: list[dict[str, str]], key: str) -> dict[str, dict[str, str]]:
    return {r[key]: r for r in rows}


def job_metrics(sweep: Path) -> dict[str, list[tuple[int, float, float, float]]]:
    """{lr: [(seed, best val_acc, final val_acc, final val_loss)]} read from each job's files."""
    out: dict[str, list[tuple[int, float, float, float]]] = {}
    for row in read_csv(sweep / "summary.csv"):
        if row["status"] != "ok":
            continue
        metrics = read_csv(sweep / row["job"] / "metrics.csv")
        acc = [float(m["val_acc"]) for m in metrics]
        out.setdefault(row["optimizer.lr"], []).append(
            (int(row["trainer.seed"]), max(acc), acc[-1], float(metrics[-1]["val_loss"]))
        )
    return out


def test_a_plainly_worse_config_is_not_tied(tmp_path: Path) -> None:
    """2 configs x 3 seeds: configs.csv equals what the jobs' metrics.csv give, the paired
    test is scipy's, the worse lr is not tied; lrrun-report writes the same configs.csv."""
    out, sweep = multirun(tmp_path, "sw", "optimizer.lr=0.05,0.0005", "trainer.seed=1,2,3")
    rows = read_csv(sweep / "configs.csv")
    assert [r["optimizer.lr"] for r in rows] == ["0.05", "0.0005"]
    good, bad = rows
    assert (good["rank"], good["tied_with_best"], good["p_vs_best"]) == ("1", "true", "")
    assert (bad["rank"], bad["tied_with_best"], bad["test"]) == ("2", "false", "paired")
    jobs = job_metrics(sweep)
    for r in rows:
        values = sorted(jobs[r["optimizer.lr"]])
        assert r["n"] == "3" and r["seeds"] == "1 2 3" and r["failed"] == "0"
        for i, m in enumerate(("best_val_acc", "final_val_acc", "final_val_loss"), start=1):
            v = [x[i] for x in values]
            assert float(r[f"mean_{m}"]) == pytest.approx(np.mean(v), rel=1e-12)
            assert float(r[f"std_{m}"]) == pytest.approx(np.std(v, ddof=1), rel=1e-9)
            half = sps.t.ppf(0.975, 2) * sps.sem(v)
            assert float(r[f"ci95_{m}"]) == pytest.approx(half, rel=1e-9)
    best, worse = ([x[1] for x in sorted(jobs[lr])] for lr in ("0.05", "0.0005"))
    assert float(bad["p_vs_best"]) == pytest.approx(sps.ttest_rel(best, worse).pvalue, rel=1e-9)
    assert float(bad["diff_vs_best"]) == pytest.approx(np.mean(worse) - np.mean(best))
    # the console: the per-config table and the verdict
    assert "2 configs, 6 jobs; best mean val_acc first" in out
    assert f"best: optimizer.lr=0.05, {np.mean(best):.4f} +- " in out
    assert "no config is tied with it; 1 is worse (p < 0.05)." in out
    assert "noise: best val_acc varies between seeds" in out and "power: with 3 seeds" in out
    for name in ("sweep_curves.png", "configs.csv", "summary.csv"):
        assert (sweep / name).stat().st_size > 100, name
    # lrrun-report reproduces it
    before = (sweep / "configs.csv").read_text()
    for name in ("configs.csv", "sweep_curves.png"):
        (sweep / name).unlink()
    proc = run_cli([str(sweep)], tmp_path, prog="lrrun-report")
    assert proc.returncode == 0, proc.stderr
    assert (sweep / "configs.csv").read_text() == before
    assert (sweep / "sweep_curves.png").stat().st_size > 10_000
    assert "best: optimizer.lr=0.05" in proc.stdout


@pytest.mark.slow
def test_identical_runs_are_tied_without_nan(tmp_path: Path) -> None:
    """A step_size that never fires in 6 epochs: two values, the same runs; both tied, p = 1."""
    out, sweep = multirun(tmp_path, "sw", "scheduler.step_size=100,200", "trainer.seed=1,2")
    rows = read_csv(sweep / "configs.csv")
    assert [r["tied_with_best"] for r in rows] == ["true", "true"]
    assert rows[1]["p_vs_best"] == "1.0" and float(rows[1]["diff_vs_best"]) == 0.0
    assert rows[0]["mean_best_val_acc"] == rows[1]["mean_best_val_acc"]
    assert "nan" not in (sweep / "configs.csv").read_text().lower()
    assert "1 config is tied with it" in out and "no number of seeds" in out


def test_one_seed_per_config_says_it_cannot_tell(tmp_path: Path) -> None:
    out, sweep = multirun(
        tmp_path, "sw", "trainer.plot=true", "scheduler.gamma=0.5,0.9", "scheduler.step_size=1,2"
    )
    rows = read_csv(sweep / "configs.csv")
    assert len(rows) == 4 and {r["n"] for r in rows} == {"1"}
    assert {r["std_best_val_acc"] for r in rows} == {""} and {r["p_vs_best"] for r in rows} == {""}
    assert "job(s), best val_acc first" in out  # the per-job table stays
    assert "cannot tell noise from effect" in out
    seeded = [line.strip() for line in out.splitlines() if line.startswith("  lrrun -m")]
    assert seeded and seeded[0].endswith(
        "scheduler.gamma=0.5,0.9 scheduler.step_size=1,2 'trainer.seed=range(1,4)'"
    )
    assert "dataset=synthetic" in seeded[0]  # the sweep's own fixed overrides come along
    assert (sweep / "heatmap.png").stat().st_size > 10_000


def test_failed_jobs_are_named_and_left_out(tmp_path: Path) -> None:
    """seed 'x' fails validation in both configs: n counts the ok jobs, failed the others,
    the statistics use only ok jobs, the verdict names the failures, the sweep exits 1."""
    out, sweep = multirun(
        tmp_path, "sw", "optimizer.lr=0.05,0.0005", "trainer.seed=1,2,3,x", code=1
    )
    rows = by(read_csv(sweep / "configs.csv"), "optimizer.lr")
    jobs = job_metrics(sweep)
    for lr, r in rows.items():
        assert (r["n"], r["seeds"], r["failed"]) == ("3", "1 2 3", "1")
        expected = np.mean([x[1] for x in jobs[lr]])
        assert math.isclose(float(r["mean_best_val_acc"]), expected, rel_tol=1e-12)
    assert rows["0.0005"]["tied_with_best"] == "false"
    assert "not ok: 2 jobs left out of the statistics" in out
    assert "job 3 (optimizer.lr=0.05, seed x): failed" in out
    assert "job 7 (optimizer.lr=0.0005, seed x): failed" in out
    # a job that dies later (its status says so) is left out when the report is redone
    (sweep / "0" / "status.json").write_text('{"status": "diverged"}')
    proc = run_cli([str(sweep)], tmp_path, prog="lrrun-report")
    assert proc.returncode == 0, proc.stderr
    rows = by(read_csv(sweep / "configs.csv"), "optimizer.lr")
    assert (rows["0.05"]["n"], rows["0.05"]["seeds"], rows["0.05"]["failed"]) == ("2", "2 3", "2")
    assert rows["0.0005"]["test"] == "welch"  # seeds {1, 2, 3} vs {2, 3}: no longer paired
    assert "job 0 (optimizer.lr=0.05, seed 1): diverged" in proc.stdout
