"""Summaries and pictures of runs and sweeps, from what they wrote to disk.

``lrrun-report DIR`` and the end of every multirun (lrrun.callbacks.SweepEnd) call the same
code, so a report can be regenerated at any time: for a sweep that is still running, or one
whose jobs partly failed.

- a run dir (has metrics.csv): curves.png
- a sweep dir (numbered job folders): summary.csv (one row per job); configs.csv (one row per
  config: jobs that differ only in trainer.seed are its replicates, lrrun.replicates); a
  ranked table (per config with replicates, per job otherwise) and the verdict in words
  (lrrun.verdict); sweep_curves.png (per config: mean val_acc with its spread over seeds, and
  the lr), heatmap.png when the configs form a 2-D grid of numeric overrides; for
  lrrun-preview sweeps, preview.png (all lr curves)
"""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lrrun import replicates
from lrrun.loggers import parse_row
from lrrun.replicates import Config, is_seed

SUMMARY_FIELDS = (
    "best_val_acc", "best_epoch", "final_val_acc", "final_val_loss", "final_lr",
    "epochs", "wall_time_s", "status",
)  # fmt: skip


@dataclass
class Job:
    name: str
    path: Path
    overrides: dict[str, str]
    status: str
    metrics: list[dict[str, float]] = field(default_factory=list)
    lrs: list[tuple[int, float]] = field(default_factory=list)  # (step, lr)
    steps_per_epoch: int = 1
    seed: int | None = None

    label: str = ""  # the overrides that tell this job from the others in its sweep


def read_rows(path: Path) -> list[dict[str, float]]:
    """A CSV of numbers (epoch/step as ints); a missing file is empty, a half-written
    last line (a run still writing) is skipped."""
    if not path.is_file():
        return []
    out = []
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            try:
                out.append(parse_row(row))
            except (TypeError, ValueError):
                continue
    return out


def _overrides(job_dir: Path) -> dict[str, str]:
    import yaml

    path = job_dir / ".hydra" / "overrides.yaml"
    try:
        items = yaml.safe_load(path.read_text()) or []
    except (OSError, yaml.YAMLError):
        return {}
    return dict(str(o).split("=", 1) for o in items if "=" in str(o))


def _status(job_dir: Path) -> str:
    try:
        return json.loads((job_dir / "status.json").read_text())["status"]
    except (OSError, ValueError, KeyError):
        return "missing"


def _seed(job_dir: Path, overrides: dict[str, str]) -> int | None:
    """trainer.seed: from the overrides, else from the composed config."""
    import yaml

    value = next((v for k, v in overrides.items() if is_seed(k)), None)
    if value is None:
        try:
            value = yaml.safe_load((job_dir / ".hydra" / "config.yaml").read_text())["trainer"][
                "seed"
            ]
        except (OSError, yaml.YAMLError, KeyError, TypeError):
            return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def load_job(job_dir: Path) -> Job:
    steps = read_rows(job_dir / "steps.csv") or read_rows(job_dir / "preview.csv")
    per_epoch = sum(1 for r in steps if r["epoch"] == 1) or 1
    overrides = _overrides(job_dir)
    return Job(
        name=job_dir.name,
        path=job_dir,
        overrides=overrides,
        status=_status(job_dir),
        metrics=read_rows(job_dir / "metrics.csv"),
        lrs=[(r["step"], r["lr"]) for r in steps],
        steps_per_epoch=per_epoch,
        seed=_seed(job_dir, overrides),
    )


def sweep_jobs(sweep_dir: Path) -> list[Job]:
    dirs = [p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()]
    jobs = [load_job(d) for d in sorted(dirs, key=lambda p: int(p.name))]
    axes = _varying(jobs)
    for job in jobs:
        job.label = " ".join(f"{k}={job.overrides[k]}" for k in axes if k in job.overrides)
        job.label = job.label or f"job {job.name}"
    return jobs


def common_overrides(jobs: list[Job]) -> str:
    """The overrides every job shares (for titles)."""
    axes = set(_varying(jobs))
    shared = {k: v for k, v in jobs[0].overrides.items() if k not in axes} if jobs else {}
    return " ".join(f"{k}={v}" for k, v in shared.items())


def varying(jobs: list[Job]) -> list[str]:
    """Override keys whose value differs between jobs (the sweep's axes, the seed included)."""
    keys = list(dict.fromkeys(k for j in jobs for k in j.overrides))
    return [k for k in keys if len({j.overrides.get(k) for j in jobs}) > 1]


def config_axes(jobs: list[Job]) -> list[str]:
    """The keys that tell configs apart: the varying ones, the seed left out."""
    return [k for k in varying(jobs) if not is_seed(k)]


def _varying(jobs: list[Job]) -> list[str]:
    """The sweep's axes for labels and summary.csv (all overrides when none varies)."""
    return varying(jobs) or list(dict.fromkeys(k for j in jobs for k in j.overrides))


def summary(jobs: list[Job]) -> tuple[list[str], list[dict[str, Any]]]:
    axes = _varying(jobs)
    rows = []
    for job in jobs:
        m = job.metrics
        best = max(m, key=lambda r: r["val_acc"]) if m else None
        rows.append({
            "job": job.name,
            **{k: job.overrides.get(k, "") for k in axes},
            "best_val_acc": best["val_acc"] if best else "",
            "best_epoch": best["epoch"] if best else "",
            "final_val_acc": m[-1]["val_acc"] if m else "",
            "final_val_loss": m[-1]["val_loss"] if m else "",
            "final_lr": job.lrs[-1][1] if job.lrs else "",
            "epochs": len(m),
            "wall_time_s": round(sum(r["epoch_time_s"] for r in m), 3) if m else "",
            "status": job.status,
        })  # fmt: skip
    return ["job", *axes, *SUMMARY_FIELDS], rows


def write_summary(sweep_dir: Path, jobs: list[Job]) -> list[dict[str, Any]]:
    columns, rows = summary(jobs)
    with (sweep_dir / "summary.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return rows


def sweep_plots(sweep_dir: Path, jobs: list[Job], ranked: list[Config] | None) -> list[Path]:
    from lrrun import plots, sweep_plots

    out = []
    with_lr = [j for j in jobs if j.lrs]
    if with_lr and not any(j.metrics for j in jobs):  # a preview sweep: the curves are the result
        out.append(plots.plot_lr(
            {j.label: tuple(zip(*j.lrs, strict=True)) for j in with_lr},
            with_lr[0].steps_per_epoch, sweep_dir / "preview.png",
            f"{len(with_lr)} schedules: lr per optimizer step"
            + (f"\n{common_overrides(jobs)}" if common_overrides(jobs) else ""),
        ))  # fmt: skip
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
    from lrrun import plots

    if (path / "metrics.csv").is_file() or (path / "steps.csv").is_file():
        job = load_job(path)
        if not job.metrics:
            return []
        return [
            plots.plot_run(
                job.metrics, job.lrs, job.steps_per_epoch, path / "curves.png", str(path)
            )
        ]
    jobs = sweep_jobs(path)
    if not jobs:
        raise FileNotFoundError(
            f"{path} is neither a run dir (metrics.csv) nor a sweep dir (0/, 1/, ...)"
        )
    return report_sweep(path, jobs, quiet)


def report_sweep(path: Path, jobs: list[Job], quiet: bool = False) -> list[Path]:
    """summary.csv, configs.csv, the ranked table and the verdict (for training sweeps), and
    the sweep's pictures."""
    from lrrun import verdict

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
                verdict.print_configs(ranked, axes, path)
            else:
                verdict.print_jobs(rows, path)
            verdict.print_verdict(verdict.verdict(ranked, replicates.noise(ranked), jobs, axes))
    written += sweep_plots(path, jobs, ranked)
    return written


def main() -> None:
    """lrrun-report DIR [DIR ...]: regenerate summary and plots of runs or sweeps."""
    import argparse

    from lrrun.console import print_error

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
