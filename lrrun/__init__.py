"""lrrun: train PyTorch models from Hydra configs and log exactly what the LR schedule did."""

__version__ = "0.1.0"
