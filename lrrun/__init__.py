"""lrrun: train PyTorch models from Hydra configs and log exactly what the LR schedule did.

Packages, lowest layer first (README, "Layout"): config, data and models, schedule, logs,
train, sweep, tools; lrrun.cli on top. errors and files are the base all may import.
"""

__version__ = "0.1.0"
