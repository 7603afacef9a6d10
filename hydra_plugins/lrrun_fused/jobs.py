"""The fused launcher's jobs: each read once through Hydra's ``run_job`` with a task that
only reads it (its run dir and ``.hydra/`` made as for any job, its config read, its sweep
state found), and the sweep's config loader remembering what it composed."""

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, configure_log, run_job
from hydra.types import HydraContext
from omegaconf import DictConfig, open_dict


@dataclass
class Job:
    """A job read by the set-up task: what fusing it needs."""

    num: int
    ret: JobReturn
    config: DictConfig  # the sweep config (hydra node included), for run_job again
    run_dir: Path
    settings: Any = None  # lrrun Settings, or None when reading failed
    state: str = "run"  # run, resume, skip (lrrun.config.sweep_dirs)
    log: list[logging.Handler] | None = None


class Remembered:
    """A config loader that composes each job's config once: Hydra's sweeper composes every
    job to check it before launching (``validate_batch_is_legal``), then the launcher reads
    it - in one process, the same overrides give the same config (about 0.1 s each).
    Everything else is the loader's own."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader
        self._composed: dict[tuple[int, tuple[str, ...]], DictConfig] = {}

    def load_sweep_config(self, master_config: DictConfig, sweep_overrides: list[str]) -> Any:
        """The first call composes and keeps the config; the next takes it (a copy: the
        launcher sets its job's number), so a sweep keeps no more than a batch of them."""
        key = (id(master_config), tuple(sweep_overrides))
        if key in self._composed:
            return copy.deepcopy(self._composed.pop(key))
        self._composed[key] = self._loader.load_sweep_config(master_config, sweep_overrides)
        return self._composed[key]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


def read_job(
    hydra_context: HydraContext, sweep_config: DictConfig, num: int, overrides: list[str]
) -> Job:
    """run_job with a task that reads the job (config, run dir, state, log files)."""
    config = hydra_context.config_loader.load_sweep_config(sweep_config, overrides)
    with open_dict(config):
        config.hydra.job.id = num
        config.hydra.job.num = num
    found: dict[str, Any] = {}

    def read_only(cfg: DictConfig) -> None:
        from lrrun.config.settings import read
        from lrrun.config.sweep_dirs import job_state

        hydra_cfg = HydraConfig.get()
        found["run_dir"] = Path(hydra_cfg.runtime.output_dir)
        found["log"] = [
            h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)
        ]
        try:  # said by the job's own run when it runs alone, by _fused for a member
            state = job_state(found["run_dir"], list(hydra_cfg.overrides.task))
            found["settings"] = read(cfg, hydra_cfg.runtime.choices)
            found["state"] = state
        except Exception:  # its own run tells what is wrong, in its own words
            found.pop("settings", None)

    ret = run_job(
        hydra_context=hydra_context,
        task_function=read_only,
        config=config,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )
    configure_log(sweep_config.hydra.hydra_logging, sweep_config.hydra.verbose)
    settings = found.get("settings")
    if settings is not None and found.get("state") == "resume":
        settings = settings.resuming(str(found["run_dir"]))
    return Job(
        num,
        ret,
        config,
        found["run_dir"],
        settings,
        found.get("state", "run"),
        found.get("log"),
    )
