"""Datasets and how their batches reach the model: the sources (IDX files, the synthetic
set), the splits they produce (base), ``load.load_data``, and the tensor and DataLoader
batch paths with their documented epoch order (batches).

Layer 2 of lrrun (docs/design/development.md): may import lrrun.config, lrrun.errors, lrrun.files.
"""
