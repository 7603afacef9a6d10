"""Hydra callbacks lrrun configures by default (conf/config.yaml, hydra.callbacks)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


def job_statuses(sweep_dir: Path) -> dict[str, dict[str, Any]]:
    """status.json of every job folder under a sweep dir (missing: never started)."""
    out = {}
    for job in sorted(p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()):
        try:
            out[job.name] = json.loads((job / "status.json").read_text())
        except (OSError, ValueError):
            out[job.name] = {"status": "failed", "message": "no status.json (did not start)"}
    return out


class SweepEnd(Callback):
    """After a multirun: summary.csv, the ranked table and the sweep's pictures
    (lrrun.report), then exit 1 if any job did not end ok.

    Jobs that fail (bad values, divergence) do not stop the sweep; this makes the failure
    visible in the exit code once every job has had its turn.
    """

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from lrrun.console import print_error

        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        try:
            from lrrun.report import report

            for path in report(sweep_dir):
                print(f"wrote {path}")
        except Exception as exc:  # a report must never hide the jobs' own outcome
            print_error(f"the sweep report failed ({exc}); run lrrun-report {sweep_dir}")
        failed = {k: v for k, v in job_statuses(sweep_dir).items() if v.get("status") != "ok"}
        if failed:
            lines = [f"job {k}: {v.get('status')}" for k, v in failed.items()]
            print_error(
                f"{len(failed)} job(s) did not finish ok in {sweep_dir}: " + "; ".join(lines)
            )
            raise SystemExit(1)
