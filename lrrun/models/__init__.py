"""The built-in models (builtin), importable as ``lrrun.models.FeedForward`` and
``lrrun.models.FashionMNISTNet``: the names the configs' ``_target_`` use and checkpoints
record.

Layer 2 of lrrun (docs/design/development.md): may import lrrun.config, lrrun.errors, lrrun.files.
"""

from lrrun.models.builtin import FashionMNISTNet, FeedForward, parameter_count

__all__ = ["FashionMNISTNet", "FeedForward", "parameter_count"]
