"""A sweep's analysis: seeds as replicates, their statistics, the verdict in words, the ranked
tables, the sweep's pictures, lrrun-report, and the Hydra callback that reports a multirun
when it ends.

Layer 6 of lrrun (docs/design/development.md): may import every package below it (config, data,
models, schedule, logs, train) and lrrun.errors, lrrun.files.
"""
