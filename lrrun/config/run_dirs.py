"""Where a run writes, checked before Hydra composes (and so before Hydra writes anything):
a run dir that can be created, that no other process is training in, and that holds no run
a new one would overwrite - only its own resume may continue there. Every run holds its
dir's lock while it runs (lrrun.files.hold), taken here for the run dir the command line
names, by the runner for one Hydra names (a sweep's jobs, the default dated dir)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from lrrun.errors import ConfigError
from lrrun.files import held_elsewhere, hold
from lrrun.world import env_world

# What tells a run dir holds a run: any of these (status.json alone: a job refused at start)
RUN_FILES = ("metrics.csv", "steps.csv", "checkpoint.pt")
# status.json's statuses of a run that ended well (trainer.early_stop: stopped_early)
OK_STATUSES = ("ok", "stopped_early")


def register_unique_resolver() -> None:
    """``${lrrun.unique:}``: 6 random hex digits, the same wherever one config uses it (the
    default run and sweep dirs: the time alone is shared by runs started in one second)."""
    import secrets

    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("lrrun.unique"):
        OmegaConf.register_new_resolver(
            "lrrun.unique", lambda: secrets.token_hex(3), use_cache=True
        )


def check_output_location(args: list[str]) -> None:
    """Hydra creates the run dir before lrrun starts, and fails with a traceback-like
    message if it cannot: check the place it will create it in first. Then claim the run dir
    the command line names - ``trainer.resume``'s, or ``hydra.run.dir`` - for this process:
    refused if another process trains there, or (not resuming it) if it holds a run."""
    key = "hydra.sweep.dir" if {"-m", "--multirun"} & set(args) else "hydra.run.dir"
    given = [parsed_value(a) for a in args if a.startswith(f"{key}=")]
    target = given[-1] if given else "outputs"  # the last override wins, as in Hydra
    if "${" in target:
        return  # interpolated: Hydra resolves it
    path = Path(target).expanduser().absolute()
    _creatable(path, key, target)
    if key == "hydra.sweep.dir":
        return  # lrrun.config.sweep_dirs checks it; the runner claims each job's dir
    resumes = [parsed_value(a) for a in args if a.lstrip("+").startswith("trainer.resume=")]
    if env_world().rank > 0:
        return  # rank 0 claims for its ranks
    if resumes:
        found = Path(resumes[-1]).expanduser().absolute()
        claim(
            found if found.is_dir() or not found.exists() else found.parent,
            "trainer.resume",
            resumes[-1],
            args,
        )
    elif given:  # the default dir is new and dated: the runner claims it
        claim(path, key, target, args)


def claim(path: Path, key: str, target: str, args: list[str] | None = None) -> None:
    """Hold ``path``'s lock for this process, or refuse: another process trains there; or,
    when ``args`` say this is not its resume, the dir holds a run a new one would overwrite
    (finished, failed, interrupted, or killed: status running with no process holding it)."""
    elsewhere = "choose another run dir with hydra.run.dir=... (or leave it out: a new dated one)"
    if held_elsewhere(path):
        raise ConfigError(
            f"{key}={target}: another lrrun process is training in {path} now (it holds "
            f"{path.name}/.lrrun.lock). Wait for it to end, or {elsewhere}."
        )
    resuming = args is None or key == "trainer.resume"
    state = run_state(path)
    if state and not resuming:
        kept = [a for a in (args or []) if not a.startswith("hydra.run.dir=")]
        raise ConfigError(
            f"{key}={target} holds {state}; a new run there would overwrite its files. "
            f"Resume it with: {resume_command(kept, str(path))} - or {elsewhere}."
        )
    if not hold(path):
        raise ConfigError(
            f"{key}={target}: another lrrun process took {path} just now. {elsewhere}."
        )


def run_state(path: Path) -> str | None:
    """What run ``path`` holds, in words ("a finished run (status ok)", "a run that was
    killed ..."); None when it holds none."""
    if not any((path / f).is_file() for f in RUN_FILES):
        return None
    try:
        status = json.loads((path / "status.json").read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        status = None
    if status == "running":
        return "a run that was killed (status running, and no process holds its lock)"
    return f"a finished run (status {status or 'unknown'})"


def _creatable(path: Path, key: str, target: str) -> None:
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    problem = None
    if not existing.is_dir():
        problem = f"{existing} is a file, not a folder"
    elif not os.access(existing, os.W_OK | os.X_OK):
        problem = f"{existing} is not writable"
    if problem:
        raise ConfigError(
            f"{key}={target}: cannot create the run dir there ({problem}). "
            f"Choose another with {key}=..."
        )


def parsed_value(arg: str) -> str:
    """An override's value as Hydra reads it (quotes removed); as typed if it does not parse."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        return str(OverridesParser.create().parse_overrides([arg])[0].value())
    except Exception:
        return arg.split("=", 1)[1]


def hydra_value(value: str) -> str:
    """``value`` as Hydra's override parser reads it back: as it is when plain, else in
    single quotes, a quote inside escaped with a backslash, and so every backslash that runs
    up to a quote or to the closing one (a run dir named ``ü run, 2 [x]=(y)#`` too)."""
    import re

    if re.fullmatch(r"[A-Za-z0-9_./~:@+-]+", value):
        return value
    quoted = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", value)
    quoted = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, quoted)
    return f"'{quoted}'"


def resume_command(overrides: list[str], resume: str) -> str:
    """The command that resumes a run, to paste into a shell: the run's overrides as Hydra
    read them, ``trainer.resume`` quoted for Hydra, all of it quoted for the shell."""
    import shlex

    kept = [o for o in overrides if not o.lstrip("+~").startswith("trainer.resume=")]
    return shlex.join(["lrrun", *kept, f"trainer.resume={hydra_value(resume)}"])


def finished_run(path: Path) -> str | None:
    """The status of the run that ended in ``path`` (None: no run, or one still running)."""
    try:
        status = json.loads((path / "status.json").read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        return None
    return status if status not in (None, "running") and (path / "metrics.csv").is_file() else None
