"""Summaries and pictures of runs and sweeps, from what they wrote to disk.

``lrrun-report DIR`` and the end of every multirun (lrrun.sweep.callbacks.SweepEnd) call the same
code, so a report can be regenerated at any time: for a sweep that is still running, or one
whose jobs partly failed.

- a run dir (has metrics.csv): curves.png
- a sweep dir (numbered job folders): summary.csv (one row per job); configs.csv (one row per
  config: jobs that differ only in trainer.seed are its replicates, lrrun.sweep.replicates); a
  ranked table (per config with replicates, per job otherwise) and the verdict in words
  (lrrun.sweep.verdict); sweep_curves.png (per config: the mean selection metric - val_acc,
  or val_loss for regression and language models - with its spread over seeds, and the lr),
  heatmap.png when the configs form a 2-D grid of numeric overrides; for
  lrrun-preview sweeps, preview.png (all lr curves)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from lrrun.config.task import TaskSpec
from lrrun.files import write_rows
from lrrun.logs.runs import Job, common_overrides, config_axes, job_axes, sweep_jobs, sweep_task
from lrrun.sweep import replicates
from lrrun.sweep.replicates import Config


def summary_fields(task: TaskSpec) -> tuple[str, ...]:
    """summary.csv's columns after the job and its overrides; for classification:
    best_val_acc, best_epoch, test_acc, final_val_acc, final_val_loss, final_lr, epochs,
    wall_time_s, status (a contract); other tasks name their own metrics."""
    test = task.test_select
    return (
        f"best_{task.select}",
        "best_epoch",
        test,
        f"final_{task.select}",
        f"final_{task.other}",
        "final_lr",
        "epochs",
        "wall_time_s",
        "status",
    )


def summary(jobs: list[Job]) -> tuple[list[str], list[dict[str, Any]]]:
    axes, task = job_axes(jobs), sweep_task(jobs)
    fields = summary_fields(task)
    rows = []
    for job in jobs:
        m, best = job.metrics, job.best
        values = (
            best[task.select] if best else "",
            best["epoch"] if best else "",
            "" if job.test_value is None else job.test_value,
            m[-1][task.select] if m else "",
            m[-1].get(task.other, "") if m else "",
            job.lrs[-1][1] if job.lrs else "",
            len(m),
            round(sum(r["epoch_time_s"] for r in m), 3) if m else "",
            job.status,
        )
        rows.append(
            {
                "job": job.name,
                **{k: job.overrides.get(k, "") for k in axes},
                **dict(zip(fields, values, strict=True)),
            }
        )
    return ["job", *axes, *fields], rows


def write_summary(sweep_dir: Path, jobs: list[Job]) -> list[dict[str, Any]]:
    columns, rows = summary(jobs)
    write_rows(sweep_dir / "summary.csv", columns, rows)
    return rows


def sweep_plots(sweep_dir: Path, jobs: list[Job], ranked: list[Config] | None) -> list[Path]:
    from lrrun.logs import plots
    from lrrun.sweep import plots as sweep_plots

    out = []
    with_lr = [j for j in jobs if j.lrs]
    if with_lr and not any(j.metrics for j in jobs):  # a preview sweep: the curves are the result
        out.append(
            plots.plot_lr(
                {j.label: tuple(zip(*j.lrs, strict=True)) for j in with_lr},
                with_lr[0].steps_per_epoch,
                sweep_dir / "preview.png",
                f"{len(with_lr)} schedules: lr per optimizer step"
                + (f"\n{common_overrides(jobs)}" if common_overrides(jobs) else ""),
            )
        )
    if ranked and any(j.metrics for c in ranked for j in c.jobs):
        title = common_overrides(jobs) or str(sweep_dir)
        out.append(sweep_plots.plot_sweep(ranked, sweep_dir / "sweep_curves.png", title))
        grid = _grid(ranked, config_axes(jobs))
        if grid:
            out.append(sweep_plots.plot_heatmap(*grid, sweep_dir / "heatmap.png"))
    return out


def _grid(ranked: list[Config], axes: list[str]) -> tuple[str, str, dict] | None:
    """(x key, y key, {(x, y): config}) when the configs differ in exactly two numeric keys."""
    if len(axes) != 2:
        return None
    cells = {}
    for c in ranked:
        try:
            cells[float(c.overrides[axes[0]]), float(c.overrides[axes[1]])] = c
        except (KeyError, ValueError):
            return None
    return axes[0], axes[1], cells


def report(path: Path, quiet: bool = False) -> list[Path]:
    """Regenerate what a run dir or sweep dir can show; return the files written."""
    if (path / "metrics.csv").is_file() or (path / "steps.csv").is_file():
        from lrrun.logs.plots import plot_run_dir

        return plot_run_dir(path)
    jobs = sweep_jobs(path)
    if not jobs:
        raise FileNotFoundError(
            f"{path} is neither a run dir (metrics.csv) nor a sweep dir (0/, 1/, ...)"
        )
    return report_sweep(path, jobs, quiet)


def report_sweep(path: Path, jobs: list[Job], quiet: bool = False) -> list[Path]:
    """summary.csv, configs.csv, the ranked table and the verdict (for training sweeps), and
    the sweep's pictures."""
    from lrrun.sweep import tables, verdict

    written = []
    tools = ("preview.csv", "find_lr.csv")  # lrrun-preview / lrrun-find-lr sweeps: no training
    training = [j for j in jobs if not any((j.path / t).is_file() for t in tools)]
    ranked = None
    if any(j.metrics or j.status != "missing" for j in training):
        rows = write_summary(path, jobs)
        axes = config_axes(jobs)
        ranked = replicates.rank(replicates.group(jobs, axes))
        replicates.write_configs(path / "configs.csv", ranked, axes)
        written += [path / "summary.csv", path / "configs.csv"]
        if not quiet:
            if any(len(c.jobs) > 1 for c in ranked):
                tables.print_configs(ranked, axes, path)
            else:
                tables.print_jobs(rows, path, sweep_task(jobs))
            verdict.print_verdict(verdict.verdict(ranked, replicates.noise(ranked), jobs, axes))
    written += sweep_plots(path, jobs, ranked)
    return written


def main() -> None:
    """lrrun-report DIR [DIR ...]: regenerate summary and plots of runs or sweeps."""
    import argparse

    from lrrun.logs.console import print_error

    parser = argparse.ArgumentParser(prog="lrrun-report", description=main.__doc__)
    parser.add_argument("dirs", nargs="+", type=Path, metavar="DIR")
    args = parser.parse_args()
    code = 0
    for d in args.dirs:
        try:
            if not d.is_dir():
                raise FileNotFoundError(f"{d} is not a folder")
            for f in report(d):
                print(f"wrote {f}")
        except FileNotFoundError as exc:
            print_error(f"{exc}. Give a run dir or a sweep dir (outputs/multirun/...).")
            code = 2
    sys.exit(code)
