"""Hydra callbacks lrrun configures by default (conf/config.yaml, hydra.callbacks)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class SweepEnd(Callback):
    """After a multirun: summary.csv, the ranked table and the sweep's pictures
    (lrrun.sweep.report), then exit 1 if any job did not end ok.

    Jobs that fail (bad values, divergence) do not stop the sweep; this makes the failure
    visible in the exit code once every job has had its turn.

    With trainer.trackers=[mlflow], the sweep is also an MLflow parent run: started before
    the first job (each job's run is its child), given summary.csv, configs.csv and the
    pictures at the end.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from lrrun.config.checks import resolved
        from lrrun.config.settings import check_trackers
        from lrrun.logs.tracker_backends import start_parent

        # Only the trainer group: the jobs' overrides are not applied yet, and each job
        # reads (and checks) its whole config itself.
        trainer = resolved(config.trainer, "trainer")
        if "mlflow" in check_trackers(trainer.get("trackers")):
            start_parent(
                trainer.get("mlflow_uri"), Path(config.hydra.sweep.dir), config.hydra.job.name
            )

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from lrrun.config.run_dirs import OK_STATUSES
        from lrrun.logs.console import also_to, print_error
        from lrrun.logs.runs import sweep_jobs
        from lrrun.sweep.report import report_sweep

        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        jobs = sweep_jobs(sweep_dir)  # a job without status.json has status "missing"
        written: list[Path] = []
        try:  # the table and the verdict also in the sweep dir's lrrun.log
            with also_to(sweep_dir / "lrrun.log"):
                fused = _fused_line(sweep_dir)
                if fused:
                    print(fused)
                for path in report_sweep(sweep_dir, jobs):
                    print(f"wrote {path}")
                    written.append(path)
        except Exception as exc:  # a report must never hide the jobs' own outcome
            print_error(f"the sweep report failed ({exc}); run lrrun-report {sweep_dir}")
        failed = [j for j in jobs if j.status not in OK_STATUSES]
        from lrrun.logs.tracker_backends import end_parent

        end_parent(sweep_dir, written, "failed" if failed else "ok")
        if failed:
            lines = [f"job {j.name}: {j.status}" for j in failed]
            print_error(
                f"{len(failed)} job(s) did not finish ok in {sweep_dir}: " + "; ".join(lines)
            )
            raise SystemExit(1)


def _fused_line(sweep_dir: Path) -> str:
    """What hydra/launcher=fused did (its fused.json): which jobs shared a pass, which ran
    alone and why; "" for other launchers."""
    import json

    try:
        plan = json.loads((sweep_dir / "fused.json").read_text())
    except (OSError, ValueError):
        return ""
    said = [f"jobs {', '.join(map(str, p))} trained in one pass" for p in plan["passes"]]
    said += [f"{jobs} alone ({why})" for jobs, why in by_reason(plan["alone"])]
    return "fused: " + "; ".join(said)


def by_reason(alone: Mapping[Any, str]) -> list[tuple[str, str]]:
    """The jobs that run alone, grouped by their reason in job order: ("job 3", why) or
    ("jobs 0, 1", why) - a pass refused as a whole is said once."""
    groups: dict[str, list[int]] = {}
    for number, why in sorted((int(n), why) for n, why in alone.items()):
        groups.setdefault(why, []).append(number)
    return [
        (("jobs " if len(ns) > 1 else "job ") + ", ".join(map(str, ns)), why)
        for why, ns in sorted(groups.items(), key=lambda item: item[1][0])
    ]
