"""What every command-line entry (lrrun, lrrun-preview, lrrun-find-lr, ...) shares: the exit
codes, the checks that run before Hydra composes, and how a user error ends a job.

Exit codes
----------
- 0: the run ended ok (early stopping included); a sweep: every job did.
- 1: the run failed on something other than its config (the model raised, the run dir
  stopped taking writes): its traceback or reason, then the resume command when an epoch was
  saved. A sweep whose job failed, diverged or was refused: the other jobs go on, each job's
  status.json says why, and the sweep exits 1 at the end (lrrun.sweep.callbacks.SweepEnd).
- 2: a user error - a bad config value, an unknown name, missing data, no such device: one
  line on stderr naming the key, the value and the fix, no traceback.
- 3: diverged: a non-finite training loss (trainer.stop_on_nonfinite).
- 130: Ctrl-C, 143: SIGTERM - after saving what was done (checkpoint.pt, every CSV row)
  and printing the command that resumes.
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from lrrun.errors import LrrunError

EXIT_USER_ERROR = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


def fail_job(exc: LrrunError, out: Path, quiet: bool = False) -> None:
    """A user error ends this job: one line on stderr and status "failed" (never over the
    status of a run that finished there before); exit 2, unless it is one job of a sweep,
    which goes on. ``quiet``: a rank of a data-parallel run other than 0 (rank 0 says it)."""
    from lrrun.config.run_dirs import finished_run
    from lrrun.logs.console import print_error
    from lrrun.logs.csv_log import write_status

    message = str(exc)
    if "Original Traceback" in message:  # raised in a DataLoader worker: torch adds its frames
        message = message.strip().splitlines()[-1].split(": ", 1)[-1]
    if not quiet:
        print_error(message)
        if not finished_run(out):
            write_status(out, "failed", message=message)
    if HydraConfig.get().mode != RunMode.MULTIRUN:
        raise SystemExit(EXIT_USER_ERROR) from None


def precheck(args: list[str], extra_roots: tuple[str, ...] = ()) -> None:
    """Checks that must run before Hydra composes (typos, run dir); exit 2 on failure. Also
    makes the current directory importable, so a ``_target_`` in the user's own package
    beside their configs (mypkg/net.py) works without installing it, as torchtune does."""
    from lrrun.config.overrides import check_overrides
    from lrrun.config.run_dirs import check_output_location
    from lrrun.config.sweep_dirs import check_sweep_location

    user_code_importable()
    register_resolvers()
    try:
        check_overrides(args, extra_roots)
        check_output_location(args)
        finishing = check_sweep_location(args)
    except LrrunError as exc:
        from lrrun.logs.console import print_error

        print_error(str(exc))
        raise SystemExit(EXIT_USER_ERROR) from None
    if finishing:
        from lrrun.logs.console import print_note

        print_note(finishing)


def register_resolvers() -> None:
    """lrrun's resolvers in conf/config.yaml's hydra node: the default run dirs' names, and
    whether Hydra writes a job's ``.hydra/`` (not into an ended job of a sweep it finishes).
    Also called where a launcher's worker process imports lrrun.cli to run a job."""
    from lrrun.config.run_dirs import register_unique_resolver
    from lrrun.config.sweep_dirs import register_hydra_files_resolver

    register_unique_resolver()
    register_hydra_files_resolver()


USER_DIR = "LRRUN_USER_DIR"  # the directory lrrun was started in, for the processes it starts


def user_code_importable() -> None:
    """The directory lrrun was started in importable (a user's ``mypkg/`` beside the command,
    as in torchtune) - but last on the import path, after the installed packages, so a
    ``matplotlib.py`` or ``torchvision.py`` lying there never shadows them. ``python -m`` and
    ``-c`` put it first: it is moved to the end. The processes a launcher or
    ``trainer.devices`` starts call this too (lrrun.cli), with the directory in
    LRRUN_USER_DIR, and PYTHONSAFEPATH keeps their own ``python -m`` from putting theirs
    first."""
    import os
    import sys

    where = os.environ.setdefault(USER_DIR, os.getcwd())
    while sys.path and sys.path[0] in ("", os.getcwd(), where):
        sys.path.pop(0)
    if where not in sys.path:
        sys.path.append(where)
    os.environ["PYTHONSAFEPATH"] = "1"


def rank_args(args: list[str]) -> list[str]:
    """What a rank other than 0 of a data-parallel run adds to its command line: Hydra writes
    nothing for it (rank 0 writes the run dir), and Ctrl-C is left to rank 0, which the others
    follow (lrrun.train.distributed), and its C++ warnings are left to rank 0. A sweep is one job
    per launch: refused under torchrun."""
    import atexit
    import os
    import shutil
    import signal
    import tempfile

    from lrrun.world import env_world

    world = env_world()
    if not world.active:
        return []
    if {"-m", "--multirun"} & set(args):
        from lrrun.logs.console import print_error

        print_error(
            "torchrun starts one lrrun run, not a sweep (-m): use trainer.devices=N in the "
            "sweep instead, and each job starts its own processes."
        )
        raise SystemExit(EXIT_USER_ERROR)
    if world.main:
        return []
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # When rank 0 ends first (Ctrl-C), torch's C++ side warns here of the lost connection
    # with 60 lines of frames; rank 0 says what happened, in one line. Read at torch import.
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
    quiet_dir = os.path.join(tempfile.gettempdir(), f"lrrun-rank{world.rank}-{os.getpid()}")
    atexit.register(shutil.rmtree, quiet_dir, True)  # Hydra makes it; nothing is written
    return [
        "hydra.output_subdir=null",
        "hydra/job_logging=disabled",
        "hydra/hydra_logging=disabled",
        f"hydra.run.dir={quiet_dir}",
    ]


def config_flags(argv: list[str]) -> list[str]:
    """Hydra's flags that choose the config (``--config-dir d``, ``-cn=name``, ...): the ranks
    must compose the config this process composed, and a printed command must name them."""
    names = ("--config-dir", "--config-path", "--config-name", "-cd", "-cp", "-cn")
    out: list[str] = []
    for i, arg in enumerate(argv):
        flag = arg.split("=", 1)[0]
        if flag in names:
            out += [arg] if "=" in arg or i + 1 == len(argv) else [arg, argv[i + 1]]
    return out
