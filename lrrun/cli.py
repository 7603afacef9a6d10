"""``lrrun``: the Hydra entry point. User mistakes end in one line on stderr and exit 2."""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from lrrun.config import config_dir, validate
from lrrun.errors import LrrunError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
def _hydra_main(cfg: DictConfig) -> float | None:
    from lrrun.console import print_error

    runtime = HydraConfig.get().runtime
    run_dir = Path(runtime.output_dir)
    try:
        validate(cfg)  # fails fast, before torch (seconds to import) is loaded
        from lrrun.runner import run

        history = run(cfg, run_dir, dict(runtime.choices))
    except LrrunError as exc:
        print_error(str(exc))
        raise SystemExit(EXIT_USER_ERROR) from None
    except KeyboardInterrupt:
        print_error(f"interrupted; the rows logged so far are in {run_dir}")
        raise SystemExit(EXIT_INTERRUPTED) from None
    # The return value lets Hydra sweepers (e.g. Optuna) maximise it.
    return max(row["val_acc"] for row in history) if history else None


def main() -> None:
    _hydra_main()
