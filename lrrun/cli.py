"""``lrrun``: the Hydra entry point. Exit codes: lrrun.tools.common."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from lrrun.config.location import config_dir
from lrrun.config.settings import read
from lrrun.errors import Diverged, LrrunError, PeerFailed, Terminated, WriteFailed
from lrrun.tools.common import (
    EXIT_DIVERGED,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    config_flags,
    fail_job,
    precheck,
    rank_args,
    register_resolvers,
    user_code_importable,
)
from lrrun.world import env_world


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
def _hydra_main(cfg: DictConfig) -> float | None:
    from lrrun.logs.console import log_to_run_dir, print_error

    user_code_importable()  # also in a launcher's worker process, which runs only this
    log_to_run_dir()  # what the console prints of this job, also in its lrrun.log
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    sweep = hydra_cfg.mode == RunMode.MULTIRUN
    world = env_world()  # one rank of a data-parallel run (torchrun, trainer.devices=N)
    say = print_error if world.main else (lambda message: None)  # rank 0 speaks for all
    try:
        with _sigterm_raises():
            settings = read(cfg, hydra_cfg.runtime.choices)  # before torch (seconds to import)
            state = _sweep_job_state(run_dir, hydra_cfg) if sweep else "run"
            if state == "resume":
                settings = settings.resuming(str(run_dir))
            if state == "skip":
                from lrrun.logs.runs import read_rows

                history = read_rows(run_dir / "metrics.csv")
            elif settings.trainer.devices > 1 and not world.active:
                from lrrun.logs.runs import read_rows

                code = _launch(
                    settings.trainer.devices, hydra_cfg, run_dir, sweep, resume=state == "resume"
                )
                history = read_rows(run_dir / "metrics.csv") if not code else []
            else:
                from lrrun.train.runner import run

                history = run(settings, run_dir, job_num=hydra_cfg.job.num if sweep else None)
    except LrrunError as exc:
        fail_job(exc, run_dir, quiet=not world.main)
        return None
    except (Diverged, PeerFailed, WriteFailed) as exc:  # the runner wrote status diverged/failed
        go_on = f" {_what_is_kept(hydra_cfg, run_dir, cfg, sweep)}"
        say(str(exc) + (go_on if isinstance(exc, WriteFailed) else ""))
        if sweep:  # the other jobs go on; SweepEnd reports the failure at the end
            return None
        raise SystemExit(EXIT_DIVERGED if isinstance(exc, Diverged) else 1) from None
    except KeyboardInterrupt as exc:
        what = "terminated" if isinstance(exc, Terminated) else "interrupted"
        cause = f" ({exc})" if str(exc) else ""
        say(
            f"{what}{cause}; every completed epoch is saved in {_trained_dir(run_dir, cfg)} (checkpoint.pt, "
            f"CSVs). {_continue_command(hydra_cfg, run_dir, cfg, sweep)}"
        )
        raise SystemExit(
            EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED
        ) from None
    except Exception as exc:  # the user's own code (a model, a dataset function), or a bug
        import traceback

        traceback.print_exc()  # it is theirs to read: kept, on every rank
        say(
            f"the run failed with {type(exc).__name__} (traceback above); once it is fixed: "
            f"{_what_is_kept(hydra_cfg, run_dir, cfg, sweep)}"
        )
        if sweep:
            return None
        raise SystemExit(1) from None
    # The return value lets Hydra sweepers (e.g. Optuna) optimise it: the task's selection
    # metric at the chosen epoch (val_acc: maximise; val_loss: minimise).
    best = settings.task.best(history)
    return best[settings.task.select] if best else None


def _sweep_job_state(run_dir: Path, hydra_cfg: DictConfig) -> str:
    """A sweep's job: "run", "resume" (stopped after a checkpoint) or "skip" (it ended
    before: the same sweep again finishes what is left; lrrun.config.sweep_dirs)."""
    from lrrun.config.sweep_dirs import ended, job_state
    from lrrun.logs.console import print_note

    state = job_state(run_dir, list(hydra_cfg.overrides.task))
    job = f"job {hydra_cfg.job.num}"
    if state == "skip":
        print_note(f"{job} ended before (status {ended(run_dir)}): kept as it is")
    elif state == "resume":
        print_note(f"{job} stopped before: resuming it from {run_dir}/checkpoint.pt")
    return state


def _trained_dir(run_dir: Path, cfg: DictConfig) -> Path:
    """Where the run writes: Hydra's run dir, or with trainer.resume the resumed run's."""
    resume = cfg.trainer.get("resume")
    if not resume:
        return run_dir
    path = Path(str(resume)).expanduser()
    return path if path.is_dir() else path.parent


def _what_is_kept(hydra_cfg: DictConfig, run_dir: Path, cfg: DictConfig, sweep: bool) -> str:
    """After a failure: how to go on from the last saved epoch, or that none was saved."""
    trained = _trained_dir(run_dir, cfg)
    if not (trained / "checkpoint.pt").is_file():
        return "no epoch was saved: run it again."
    return (
        f"every completed epoch is saved in {trained}. "
        f"{_continue_command(hydra_cfg, run_dir, cfg, sweep)}"
    )


def _continue_command(hydra_cfg: DictConfig, run_dir: Path, cfg: DictConfig, sweep: bool) -> str:
    """What to paste to go on after Ctrl-C: the run's resume command, or the command that
    finishes the sweep (its ended jobs kept, this one resumed, the rest run)."""
    flags = config_flags(sys.argv[1:])
    if sweep:
        from lrrun.config.sweep_dirs import finish_command, sweep_record

        record = sweep_record(Path(hydra_cfg.sweep.dir))
        if record is not None:
            return f"Finish the sweep with: {finish_command(record, hydra_cfg.sweep.dir, flags)}"
    return f"Resume with: {_resume_command([*flags, *hydra_cfg.overrides.task], run_dir, cfg)}"


def _launch(
    devices: int, hydra_cfg: DictConfig, run_dir: Path, sweep: bool, resume: bool = False
) -> int:
    """trainer.devices=N: this job as N data-parallel processes (lrrun.tools.launch), in a
    run dir this process holds; the exit code. ``resume``: a sweep's stopped job."""
    from lrrun.config.run_dirs import claim, hydra_value
    from lrrun.files import release
    from lrrun.tools.launch import launch

    claim(run_dir, "run dir", str(run_dir))
    overrides = list(hydra_cfg.overrides.task)
    if resume:
        overrides.append(f"trainer.resume={hydra_value(str(run_dir))}")
    try:
        code = launch(devices, overrides, run_dir, config_flags(sys.argv[1:]))
    finally:
        release(run_dir)
    if code and not sweep:
        raise SystemExit(code)
    return code


def _resume_command(overrides: list[str], run_dir: Path, cfg: DictConfig) -> str:
    from lrrun.config.run_dirs import resume_command

    return resume_command(overrides, str(cfg.trainer.get("resume") or run_dir))


class _sigterm_raises:
    """While training, SIGTERM (e.g. from a scheduler or `kill`) unwinds like Ctrl-C."""

    def __enter__(self) -> None:
        def handler(signum: int, frame: object) -> None:
            raise Terminated

        try:
            self._previous = signal.signal(signal.SIGTERM, handler)
        except ValueError:  # not the main thread (e.g. some launchers): leave it alone
            self._previous = None

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


# A launcher's worker process (joblib, submitit) imports this module to run a job: Hydra
# resolves the job's hydra node there, with lrrun's resolvers.
register_resolvers()


def main() -> None:
    from lrrun.tools.launch import follow_launcher

    follow_launcher()  # a rank of trainer.devices=N dies with its launcher
    precheck(sys.argv[1:])
    sys.argv += rank_args(sys.argv[1:])
    _hydra_main()
