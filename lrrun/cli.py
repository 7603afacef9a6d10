"""``lrrun``: the Hydra entry point.

Exit codes: 0 ok; 2 a user error (one line on stderr naming the key, the value and the fix);
3 diverged (non-finite loss); 130 Ctrl-C, 143 SIGTERM (after saving what was done and
printing the command that resumes). In a multirun a failed job does not stop the sweep: its
status.json says why, and the sweep exits 1 at the end (lrrun.callbacks.SweepEnd).
"""

from __future__ import annotations

import shlex
import signal
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from lrrun.config import config_dir, validate
from lrrun.errors import Diverged, LrrunError, Terminated

EXIT_USER_ERROR = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
def _hydra_main(cfg: DictConfig) -> float | None:
    from lrrun.console import print_error

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    sweep = hydra_cfg.mode == RunMode.MULTIRUN
    try:
        with _sigterm_raises():
            validate(cfg)  # fails fast, before torch (seconds to import) is loaded
            from lrrun.runner import run

            job_num = hydra_cfg.job.num if sweep else None
            history = run(cfg, run_dir, dict(hydra_cfg.runtime.choices), job_num)
    except LrrunError as exc:
        fail_job(exc, run_dir)
        return None
    except Diverged as exc:  # the runner has written status "diverged"
        print_error(str(exc))
        if sweep:  # the other jobs go on; SweepEnd reports the failure at the end
            return None
        raise SystemExit(EXIT_DIVERGED) from None
    except KeyboardInterrupt as exc:
        resume = _resume_command(list(hydra_cfg.overrides.task), run_dir, cfg)
        what = "terminated" if isinstance(exc, Terminated) else "interrupted"
        print_error(
            f"{what}; every completed epoch is saved in {run_dir} (checkpoint.pt, CSVs). "
            f"Resume with: {resume}"
        )
        raise SystemExit(
            EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED
        ) from None
    # The return value lets Hydra sweepers (e.g. Optuna) maximise it.
    return max(row["val_acc"] for row in history) if history else None


def fail_job(exc: LrrunError, out: Path) -> None:
    """A user error ends this job (lrrun, lrrun-preview, lrrun-find-lr): one line on stderr
    and status "failed"; exit 2, unless it is one job of a sweep, which goes on."""
    from lrrun.console import print_error
    from lrrun.loggers import write_status

    print_error(str(exc))
    write_status(out, "failed", message=str(exc))
    if HydraConfig.get().mode != RunMode.MULTIRUN:
        raise SystemExit(EXIT_USER_ERROR) from None


def _resume_command(overrides: list[str], run_dir: Path, cfg: DictConfig) -> str:
    resume = cfg.trainer.get("resume") or str(run_dir)
    kept = [o for o in overrides if not o.lstrip("+~").startswith("trainer.resume=")]
    return shlex.join(["lrrun", *kept, f"trainer.resume={resume}"])


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


def precheck(args: list[str], extra_roots: tuple[str, ...] = ()) -> None:
    """Checks that must run before Hydra composes (typos, run dir); exit 2 on failure."""
    from lrrun.overrides import check_output_location, check_overrides

    try:
        check_overrides(args, extra_roots)
        check_output_location(args)
    except LrrunError as exc:
        from lrrun.console import print_error

        print_error(str(exc))
        raise SystemExit(EXIT_USER_ERROR) from None


def main() -> None:
    precheck(sys.argv[1:])
    _hydra_main()
