"""The schedule: building the configured torch scheduler on an optimizer (build), the lengths
it derives from the run (lengths), composites inside composites (nested), the warm-up in
front of any schedule (warmup), what the schedule did as discrete events (events), and
warnings about a plan before epoch 1 (lint).

Layer 3 of lrrun (docs/design/development.md): may import lrrun.config, lrrun.data, lrrun.models,
lrrun.errors, lrrun.files.
"""
