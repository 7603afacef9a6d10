"""lrrun: train PyTorch models from Hydra configs and log exactly what the LR schedule did.

Packages, lowest layer first (docs/design/development.md): config, data and models, schedule, logs,
train, sweep, tools; lrrun.cli on top. errors and files are the base all may import.
"""

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """``lrrun.load_run``: a trained run, ready to use (lrrun.tools.use); imported on first
    use, so ``import lrrun`` stays light."""
    if name in ("load_run", "TrainedRun", "Predictions"):
        from lrrun.tools import use

        return getattr(use, name)
    raise AttributeError(f"module 'lrrun' has no attribute {name!r}")
