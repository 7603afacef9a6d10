"""``lrrun -m ... hydra/launcher=fused``: the sweep's jobs that can share a pass
(lrrun.fused.plan) train side by side (lrrun.fused.runner), each into the run dir it would
have alone; the others run one after another, as Hydra's basic launcher runs them.

Every job first goes through Hydra's ``run_job`` with a task that only reads it (its run dir
and ``.hydra/`` are made as for any job, its config read, its sweep state found: a job that
ended before is kept, one that stopped is resumed). Then the passes train, then the jobs that
train alone run through ``run_job`` with lrrun's own task. The plan - which jobs share a
pass, and why the others do not - is printed and written to the sweep dir (fused.json),
which the sweep's summary reports. Hydra finds launchers only in the ``hydra_plugins``
namespace, so this module lives there and imports lrrun when it launches.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn, JobStatus, configure_log, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from hydra_plugins.lrrun_fused.jobs import Job, Remembered, read_job

PLAN_FILE = "fused.json"
# A pass also shares the data, the set-up and the evaluation of its jobs; measured here (2
# cores): 16 feedforward jobs whose pass steps took 1.17x their steps one after another
# finished in 0.88x the basic launcher's time, 16 CNN jobs at 2.3x took 2.5x. Past this
# ratio of step times the shared rest cannot pay for the pass.
PAYS = 1.25


@dataclass
class FusedLauncherConf:
    _target_: str = "hydra_plugins.lrrun_fused.fused_launcher.FusedLauncher"
    max_members: Any = None  # members of one pass at most; null: as many as fit in memory
    # auto: a pass trains unless a few timed steps of it take over PAYS times its members'
    # one after another; always: every pass the plan makes
    fuse: str = "auto"


ConfigStore.instance().store(
    group="hydra/launcher", name="fused", node=FusedLauncherConf, provider="lrrun"
)


class FusedLauncher(Launcher):
    def __init__(self, max_members: Any = None, fuse: str = "auto") -> None:
        self.max_members = int(max_members) if max_members is not None else None
        if self.max_members is not None and self.max_members < 1:
            raise ValueError(f"hydra.launcher.max_members={max_members}: use 1 or more, or null")
        if fuse not in ("auto", "always"):
            raise ValueError(f"hydra.launcher.fuse={fuse!r}: use auto or always")
        self.fuse = fuse
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function
        # the sweeper composes every job to check it, then launch() composes it again
        hydra_context.config_loader = Remembered(hydra_context.config_loader)

    def launch(self, job_overrides: Any, initial_job_idx: int) -> list[JobReturn]:
        from lrrun.fused.plan import plan

        assert self.config is not None and self.hydra_context is not None
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        jobs = [
            read_job(self.hydra_context, self.config, initial_job_idx + n, list(o))
            for n, o in enumerate(job_overrides)
        ]
        passes: list[list[Job]] = []
        alone: dict[int, str] = {}
        starts = _by_start(j for j in jobs if j.settings is not None and j.state != "skip")
        for start, fusable in starts.items():
            made = plan(
                [j.settings.resolved for j in fusable], self._most(fusable), _limits(fusable)
            )
            passes += [[fusable[i] for i in p] for p in made.passes]
            for i, why in made.alone.items():
                if len(starts) > 1 and why.startswith("no other job"):  # the epoch differs
                    why = f"no other job starts from epoch {start + 1} with its model and data"
                alone[fusable[i].num] = why
        for j in jobs:
            if j.settings is None or j.state == "skip":
                alone[j.num] = (
                    "its config could not be read" if j.settings is None else "it ended before"
                )
        _say_plan(sweep_dir, passes, alone)
        returns = {j.num: j.ret for j in jobs}
        for members in passes:
            data = self._pays(members, alone)
            if data is not None:
                self._fused(members, data)
        for j in jobs:
            if j.num in alone:
                returns[j.num] = self._alone(j)
        return [returns[j.num] for j in jobs]

    def _pays(self, members: list[Job], alone: dict[int, str]) -> Any:
        """The pass's data when it trains fused; None (its jobs then alone, with the
        reason) when its members could not train as alone in it, or one pass is measured
        slower than its members one after another."""
        from lrrun.fused.runner import probe, why_apart
        from lrrun.logs.console import print_note

        numbers = ", ".join(str(j.num) for j in members)
        why = why_apart(members[0].settings)  # one architecture, data and precision: alike
        if why is None:
            fused, one_by_one, data = probe([j.settings for j in members])
            ratio = fused / one_by_one
            said = (
                f"one pass of jobs {numbers} takes {ratio:.2f}x the time of its members one "
                "after another on this device"
            )
            if self.fuse == "always" or ratio <= PAYS:
                print_note(said + " (measured on a few steps): fused")
                return data
            print_note(said + ": they train alone (hydra.launcher.fuse=always fuses anyway)")
            why = f"one pass measured {ratio:.2f}x slower than the members alone"
        else:
            print_note(f"jobs {numbers} train alone: {why}")
        alone.update({j.num: why for j in members})
        _record_alone(members[0].run_dir.parent, alone)
        return None

    def _most(self, fusable: list[Job]) -> Any:
        """plan()'s max_members: the launcher's, or (null) how many members of a job's kind
        fit in memory (lrrun.fused.memory), said once per kind."""
        if self.max_members is not None:
            return self.max_members
        from lrrun.fused.runner import capacity
        from lrrun.logs.console import print_note

        def most(i: int) -> int:
            fit = capacity(fusable[i].settings)
            print_note(f"max_members for jobs like job {fusable[i].num}: {fit.said()}")
            return fit.members

        return most

    # --- the jobs --------------------------------------------------------------------------
    def _alone(self, job: Job) -> JobReturn:
        """The job as the basic launcher runs it: lrrun's own task."""
        assert self.hydra_context is not None and self.task_function is not None
        ret = run_job(
            hydra_context=self.hydra_context,
            task_function=self.task_function,
            config=job.config,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )
        assert self.config is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return ret

    def _fused(self, members: list[Job], data: Any) -> None:
        """Train one pass; each job's outcome said and returned as lrrun's task says it."""
        from lrrun.fused.runner import run_members
        from lrrun.logs.console import print_note

        for j in members:
            if j.state == "resume":
                print_note(
                    f"job {j.num} stopped before: resuming it from {j.run_dir}/checkpoint.pt"
                )
        print_note(f"jobs {', '.join(str(j.num) for j in members)}: one fused pass")
        try:
            results = run_members(
                [j.settings for j in members],
                [j.run_dir for j in members],
                [j.log or [] for j in members],
                _epoch_line(members),
                data,
            )
        except KeyboardInterrupt as exc:
            _interrupted(members, exc)
            raise AssertionError("unreachable") from exc
        for job, result in zip(members, results, strict=True):
            job.ret.status = JobStatus.COMPLETED
            job.ret.return_value = _outcome(job, result)


def _by_start(jobs: Any) -> dict[int, list[Job]]:
    """The jobs by the epoch they start from (a stopped job resumes after its checkpoint's):
    the members of a pass step together from one epoch."""
    from lrrun.train import checkpoint

    groups: dict[int, list[Job]] = {}
    for job in jobs:
        start = 0
        if job.state == "resume":
            start = checkpoint.read(job.run_dir / checkpoint.NAME).epoch
        groups.setdefault(start, []).append(job)
    return groups


def _limits(jobs: list[Job]) -> Any:
    """plan()'s limits: why a job (by its resolved config) cannot share any pass."""
    from lrrun.fused.runner import why_not_fused

    by_config = {id(j.settings.resolved): j for j in jobs}
    return lambda config: why_not_fused(by_config[id(config)].settings)


def _say_plan(sweep_dir: Path, passes: list[list[Job]], alone: dict[int, str]) -> None:
    from lrrun.logs.console import print_note
    from lrrun.sweep.callbacks import by_reason

    record = {
        "passes": [[j.num for j in p] for p in passes],
        "alone": {str(k): v for k, v in sorted(alone.items())},
    }
    (sweep_dir / PLAN_FILE).write_text(json.dumps(record, indent=1) + "\n")
    said = [f"jobs {', '.join(str(j.num) for j in p)} share a pass" for p in passes]
    for jobs, why in by_reason(alone):
        said.append(f"{jobs} {'train' if jobs.startswith('jobs') else 'trains'} alone: {why}")
    print_note("fused launcher: " + ("; ".join(said) if said else "no jobs"))


def _record_alone(sweep_dir: Path, alone: dict[int, str]) -> None:
    """fused.json after a planned pass did not train (its members could not train as
    alone in it, or it was measured not to pay): its jobs among the alone ones."""
    path = sweep_dir / PLAN_FILE
    record = json.loads(path.read_text())
    gone = {int(n) for n in alone}
    record["passes"] = [p for p in record["passes"] if not gone & set(p)]
    record["alone"] = {str(k): v for k, v in sorted(alone.items())}
    path.write_text(json.dumps(record, indent=1) + "\n")


def _epoch_line(members: list[Job]) -> Any:
    """After each epoch, one line for the pass: each job's selection metric."""
    from lrrun.logs.console import print_note

    def line(epoch: int, fused: list[Any]) -> None:
        parts = []
        for job, m in zip(members, fused, strict=True):
            task = m.run.settings.task
            if m.ended is not None:
                parts.append(f"job {job.num} {type(m.ended).__name__.lower()}")
            elif m.history and m.history[-1]["epoch"] == epoch:
                parts.append(f"job {job.num} {task.select} {m.history[-1][task.select]:.4f}")
        total = members[0].settings.trainer.epochs
        print_note(f"epoch {epoch}/{total}: " + " · ".join(parts))

    return line


def _outcome(job: Job, result: Any) -> Any:
    """What lrrun's task returns for the job (its best select value, None after a failure),
    with the failure said as lrrun's task says it."""
    from lrrun.errors import Diverged, LrrunError
    from lrrun.logs.console import print_error
    from lrrun.logs.csv_log import write_status

    if isinstance(result, list):
        best = job.settings.task.best(result)
        return best[job.settings.task.select] if best else None
    if isinstance(result, LrrunError) and not isinstance(result, Diverged):
        print_error(f"job {job.num}: {result}")
        write_status(job.run_dir, "failed", message=str(result))
    elif isinstance(result, Diverged):
        print_error(f"job {job.num}: {result}")
    else:
        print_error(f"job {job.num} failed with {type(result).__name__}: {result}")
    return None


def _interrupted(members: list[Job], exc: KeyboardInterrupt) -> None:
    """Ctrl-C in a pass: every member ended interrupted (checkpoints and steps kept); how to
    finish the sweep."""
    from lrrun.cli import _continue_command
    from lrrun.errors import Terminated
    from lrrun.logs.console import print_error
    from lrrun.tools.common import EXIT_INTERRUPTED, EXIT_TERMINATED

    job = members[0]
    what = "terminated" if isinstance(exc, Terminated) else "interrupted"
    hydra_cfg = job.ret.hydra_cfg.hydra if job.ret.hydra_cfg is not None else None
    go_on = _continue_command(hydra_cfg, job.run_dir, job.ret.cfg, True) if hydra_cfg else ""
    print_error(
        f"{what}: jobs {', '.join(str(j.num) for j in members)} keep every completed "
        f"epoch (checkpoint.pt, CSVs). {go_on}"
    )
    raise SystemExit(EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED)
