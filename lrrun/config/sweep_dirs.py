"""A sweep dir is finished, never redone: the same ``lrrun -m ...`` command again into the
same ``hydra.sweep.dir`` skips the jobs that ended (their files untouched), resumes the
stopped ones from their checkpoints, and runs the missing ones; a sweep of other overrides
into it is refused before Hydra writes anything.

Before Hydra composes, ``check_sweep_dir`` compares the command's overrides with the sweep
recorded in ``multirun.yaml`` and holds the sweep dir's lock. In each job, ``job_state`` says
what to do with its dir, and the resolver ``${lrrun.hydra_files:...}`` (conf/config.yaml's
``hydra.output_subdir``) keeps Hydra from rewriting an ended job's ``.hydra/`` files."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lrrun.config.run_dirs import (
    OK_STATUSES,
    RUN_FILES,
    finished_run,
    hydra_value,
    parsed_value,
)
from lrrun.errors import ConfigError
from lrrun.files import held_elsewhere, hold

RECORD = "multirun.yaml"  # Hydra's record of the sweep: its overrides as typed
ENDED = (*OK_STATUSES, "diverged")  # a job that ended so is kept: training it again: the same
FLAGS_WITH_VALUE = ("--config-dir", "--config-path", "--config-name", "-cd", "-cp", "-cn")


def register_hydra_files_resolver() -> None:
    """``${lrrun.hydra_files:DIR}``: ``.hydra`` (where Hydra writes a job's config), or null
    for a job dir that holds an ended run - Hydra then leaves its files as they are."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("lrrun.hydra_files"):
        OmegaConf.register_new_resolver(
            "lrrun.hydra_files", lambda job_dir: None if ended(Path(str(job_dir))) else ".hydra"
        )


def ended(job_dir: Path) -> str | None:
    """The status of the run that ended in ``job_dir`` (ok, stopped_early or diverged), else
    None (a failed or stopped job is finished by running or resuming it)."""
    status = finished_run(job_dir)
    return status if status in ENDED else None


def job_state(job_dir: Path, overrides: list[str]) -> str:
    """What a sweep's job does with its dir: "skip" (its run ended: kept as it is), "resume"
    (stopped after a checkpoint), or "run". A dir that ended with other overrides (a sweep
    whose jobs are numbered otherwise) is refused."""
    if ended(job_dir):
        before = recorded_job_overrides(job_dir)
        if before is not None and before != overrides:
            raise ConfigError(
                f"{job_dir} holds a run of {' '.join(before) or 'no overrides'}, not of this "
                f"job's {' '.join(overrides) or 'no overrides'}; choose another hydra.sweep.dir."
            )
        return "skip"
    return "resume" if (job_dir / "checkpoint.pt").is_file() else "run"


def recorded_job_overrides(job_dir: Path) -> list[str] | None:
    import yaml

    try:
        return [str(o) for o in yaml.safe_load((job_dir / ".hydra" / "overrides.yaml").read_text())]
    except (OSError, ValueError, TypeError, yaml.YAMLError):
        return None


def check_sweep_location(args: list[str]) -> str | None:
    """``check_sweep_dir`` for the sweep dir a ``-m`` command line names (a new dated one
    needs no check); None for a single run."""
    if not {"-m", "--multirun"} & set(args):
        return None
    given = [parsed_value(a) for a in args if a.startswith("hydra.sweep.dir=")]
    if not given or "${" in given[-1]:
        return None
    path = Path(given[-1]).expanduser().absolute()
    return check_sweep_dir(path, given[-1], args) if path.is_dir() else None


def check_sweep_dir(path: Path, target: str, args: list[str]) -> str | None:
    """Before Hydra writes: a sweep dir that holds a sweep takes only that sweep again (to
    finish it); one that holds a single run takes none. Then this process holds its lock.
    Returns what finishing a sweep will do, for the console (None for a new sweep)."""
    key = f"hydra.sweep.dir={target}"
    if held_elsewhere(path):
        raise ConfigError(
            f"{key}: another lrrun process is sweeping in {path} now (it holds "
            f"{path.name}/.lrrun.lock). Wait for it to end, or choose another hydra.sweep.dir."
        )
    if any((path / f).is_file() for f in RUN_FILES):
        raise ConfigError(
            f"{key} holds a single run, not a sweep; choose another hydra.sweep.dir "
            f"(or leave it out: a new dated one)."
        )
    record = _record(path)
    if record is None and any(any((d / f).is_file() for f in RUN_FILES) for d in _jobs(path)):
        raise ConfigError(
            f"{key} holds runs but no {RECORD} (not a sweep lrrun can finish); choose another "
            "hydra.sweep.dir."
        )
    if record is not None:
        before, now = _parsed(record["task"]), _parsed(task_overrides(args))
        if [b[:2] for b in before] != [n[:2] for n in now]:
            raise ConfigError(
                f"{key} holds another sweep ({_differences(before, now)}); its files would be "
                f"mixed with this one's. Finish that sweep with: "
                f"{finish_command(record, target)} - or choose another hydra.sweep.dir."
            )
    if not hold(path):
        raise ConfigError(f"{key}: another lrrun process took {path} just now.")
    if record is None:
        return None
    jobs = _jobs(path)
    done = sum(1 for d in jobs if ended(d))
    stopped = sum(1 for d in jobs if not ended(d) and (d / "checkpoint.pt").is_file())
    return (
        f"finishing the sweep in {target}: {done} job(s) ended and are kept as they are, "
        f"{stopped} resume from their checkpoints, the others run"
    )


def task_overrides(args: list[str]) -> list[str]:
    """The overrides of a command line that are the config's (not Hydra's, not flags)."""
    out, skip_next = [], False
    for arg in args:
        if skip_next:
            skip_next = False
        elif arg.startswith("-"):
            skip_next = arg in FLAGS_WITH_VALUE
        elif not arg.lstrip("+~").startswith(("hydra.", "hydra/")):
            out.append(arg)
    return out


def finish_command(record: dict[str, Any], sweep_dir: str, flags: Sequence[str] = ()) -> str:
    """The command that finishes the sweep ``record`` describes, to paste into a shell."""
    hydra = [o for o in record["hydra"] if not o.startswith(("hydra.mode=", "hydra.sweep.dir="))]
    return shlex.join(
        [
            "lrrun",
            "-m",
            *flags,
            *record["task"],
            *hydra,
            f"hydra.sweep.dir={hydra_value(sweep_dir)}",
        ]
    )


def sweep_record(sweep_dir: Path) -> dict[str, Any] | None:
    """The sweep's overrides as Hydra recorded them: {"task": [...], "hydra": [...]}."""
    return _record(sweep_dir)


def _record(path: Path) -> dict[str, Any] | None:
    import yaml

    try:
        overrides = yaml.safe_load((path / RECORD).read_text())["hydra"]["overrides"]
        return {
            "task": [str(o) for o in overrides.get("task") or []],
            "hydra": [str(o) for o in overrides.get("hydra") or []],
        }
    except (OSError, KeyError, TypeError, AttributeError, yaml.YAMLError):
        return None


def _jobs(path: Path) -> list[Path]:
    return sorted(d for d in path.iterdir() if d.is_dir()) if path.is_dir() else []


def _parsed(overrides: list[str]) -> list[tuple[str, str, str]]:
    """(key, value) of each override as Hydra reads it (``lr=0.1,0.2`` and ``lr=0.1, 0.2``
    are the same sweep), the value shown as typed."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    out = []
    for text in overrides:
        try:
            o = parser.parse_overrides([text])[0]
            read = repr(o.value()) if o.is_sweep_override() else o.get_value_element_as_str()
            out.append((o.get_key_element(), read, text.split("=", 1)[-1]))
        except Exception:  # Hydra refuses it itself, with its own message
            out.append((text, text, ""))
    return out


def _differences(before: list[tuple[str, str, str]], now: list[tuple[str, str, str]]) -> str:
    def read(parsed: list[tuple[str, str, str]]) -> list[tuple[str, str]]:
        return [(key, value) for key, value, _ in parsed]

    if sorted(read(before)) == sorted(read(now)):
        return "the same overrides in another order, which numbers the jobs otherwise: " + " ".join(
            f"{k}={shown}" for k, _, shown in before
        )
    there = {key: (value, shown) for key, value, shown in before}
    here = {key: (value, shown) for key, value, shown in now}
    said = []
    for key in dict.fromkeys([*there, *here]):
        if key not in here:
            said.append(f"{key}={there[key][1]} there, not here")
        elif key not in there:
            said.append(f"{key}={here[key][1]} here, not there")
        elif there[key][0] != here[key][0]:
            said.append(f"{key}: {there[key][1]} there, {here[key][1]} here")
    return "; ".join(said)
