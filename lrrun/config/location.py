"""Where the Hydra configs live."""

from __future__ import annotations

from pathlib import Path


def config_dir() -> Path:
    """The conf/ directory: inside the package when installed from a wheel (lrrun/conf), else
    the repository's (conf/ beside lrrun/)."""
    package = Path(__file__).resolve().parent.parent
    packaged = package / "conf"
    return packaged if packaged.is_dir() else package.parent / "conf"
