"""A run or sweep as it is on disk: each job's overrides, status, seed and CSV rows.

Read-only and tolerant: a job still running (a half-written last line), one that failed
before writing anything (status "missing"), or a sweep cut short reads as what is there.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lrrun.config.param_groups import unnamed
from lrrun.config.task import TaskSpec, spec
from lrrun.logs.csv_log import lr_columns, parse_row

SEED = "trainer.seed"


def is_seed(key: str) -> bool:
    """Whether an override key is the seed (``trainer.seed``, ``+trainer.seed``, ...)."""
    return key.lstrip("+~") == SEED


@dataclass
class Job:
    name: str
    path: Path
    overrides: dict[str, str]
    status: str
    metrics: list[dict[str, float]] = field(default_factory=list)
    lrs: list[tuple[int, float]] = field(default_factory=list)  # (step, lr) of group 0
    group_lrs: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # every group
    momentum: list[tuple[int, float]] = field(default_factory=list)  # (step, momentum) if logged
    steps_per_epoch: int = 1
    seed: int | None = None
    events: list[tuple[int, str]] = field(default_factory=list)  # (step, event) of events.csv
    selection: str = "val"  # the split that chose: "test" when dataset.val_split=0
    task: TaskSpec = field(default_factory=lambda: spec(None))  # status.json's data.task

    label: str = ""  # the overrides that tell this job from the others in its sweep

    @property
    def best(self) -> dict[str, float] | None:
        """The metrics row the run chose (its task's best val_acc or val_loss), if any."""
        return self.task.best(self.metrics)

    @property
    def test_column(self) -> str:
        """The test split's counterpart of the selection metric: test_acc, or test_loss."""
        return self.task.test_select

    @property
    def test_value(self) -> float | None:
        """The chosen epoch's test metric (reported only; None if not tested)."""
        return self.best.get(self.test_column) if self.best else None


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


def _status(job_dir: Path) -> dict[str, Any]:
    try:
        status = json.loads((job_dir / "status.json").read_text())
    except (OSError, ValueError):
        status = {}
    return status if isinstance(status, dict) and "status" in status else {"status": "missing"}


def _group_lrs(steps: list[dict[str, float]], names: Any) -> dict[str, list[tuple[int, float]]]:
    """Each param group's lr per step, by the group's name (status.json's param_groups)."""
    columns = lr_columns(sum(1 for k in (steps[0] if steps else {}) if k.split("_")[0] == "lr"))
    if not isinstance(names, list) or len(names) != len(columns):
        names = [unnamed(i) for i in range(len(columns))]
    return {str(n): [(r["step"], r[c]) for r in steps] for n, c in zip(names, columns, strict=True)}


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


def _events(path: Path) -> list[tuple[int, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return [
            (int(r["step"]), r["event"])
            for r in csv.DictReader(f)
            if (r.get("step") or "").isdigit() and r.get("event")
        ]


def load_job(job_dir: Path) -> Job:
    steps = read_rows(job_dir / "steps.csv") or read_rows(job_dir / "preview.csv")
    per_epoch = sum(1 for r in steps if r["epoch"] == 1) or 1
    overrides = _overrides(job_dir)
    status = _status(job_dir)
    data = status.get("data") or {}
    return Job(
        name=job_dir.name,
        path=job_dir,
        overrides=overrides,
        status=status["status"],
        metrics=read_rows(job_dir / "metrics.csv"),
        lrs=[(r["step"], r["lr"]) for r in steps],
        group_lrs=_group_lrs(steps, status.get("param_groups")),
        momentum=[(r["step"], r["momentum"]) for r in steps if "momentum" in r],
        steps_per_epoch=per_epoch,
        seed=_seed(job_dir, overrides),
        events=_events(job_dir / "events.csv"),
        selection=str(data.get("selection", "val")),
        task=spec(data.get("task")).selecting(
            data.get("select", "model"), data.get("averages", ())
        ),
    )


def sweep_jobs(sweep_dir: Path) -> list[Job]:
    dirs = [p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()]
    jobs = [load_job(d) for d in sorted(dirs, key=lambda p: int(p.name))]
    axes = job_axes(jobs)
    for job in jobs:
        job.label = " ".join(f"{k}={job.overrides[k]}" for k in axes if k in job.overrides)
        job.label = job.label or f"job {job.name}"
    return jobs


def sweep_task(jobs: list[Job]) -> TaskSpec:
    """The task a sweep's jobs ran, with the weights they select on (the most common;
    classification for none)."""
    tasks = [j.task for j in jobs if j.status != "missing"] or [spec(None)]
    return max(dict.fromkeys(tasks), key=tasks.count)


def common_overrides(jobs: list[Job]) -> str:
    """The overrides every job shares (for titles)."""
    axes = set(job_axes(jobs))
    shared = {k: v for k, v in jobs[0].overrides.items() if k not in axes} if jobs else {}
    return " ".join(f"{k}={v}" for k, v in shared.items())


def varying(jobs: list[Job]) -> list[str]:
    """Override keys whose value differs between jobs (the sweep's axes, the seed included)."""
    keys = list(dict.fromkeys(k for j in jobs for k in j.overrides))
    return [k for k in keys if len({j.overrides.get(k) for j in jobs}) > 1]


def config_axes(jobs: list[Job]) -> list[str]:
    """The keys that tell configs apart: the varying ones, the seed left out."""
    return [k for k in varying(jobs) if not is_seed(k)]


def job_axes(jobs: list[Job]) -> list[str]:
    """The sweep's axes for labels and summary.csv (all overrides when none varies)."""
    return varying(jobs) or list(dict.fromkeys(k for j in jobs for k in j.overrides))
