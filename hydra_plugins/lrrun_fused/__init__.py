"""lrrun's fused launcher for Hydra (``hydra/launcher=fused``): lrrun.fused trains the jobs
of a sweep that share an architecture and data in one pass."""
