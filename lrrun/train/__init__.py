"""Training: the run's story (runner), its parts (model, optimizer, precision, layout,
determinism), the loop with the stepping rule (loop: the only place that calls backward()
and step()), checkpoints and exact resume, the device, the CPU allocator and the header.

Layer 5 of lrrun (docs/design/development.md): may import every package below it (config, data,
models, schedule, logs) and lrrun.errors, lrrun.files.
"""
