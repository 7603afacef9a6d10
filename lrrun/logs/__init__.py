"""What a run writes and how it is read back: the CSVs and status.json (csv_log), the rich
console, the trackers (TensorBoard, MLflow: trackers, tracker_backends), one run's pictures
(plots), and a run or sweep as it is on disk (runs).

Layer 4 of lrrun (docs/design/development.md): may import lrrun.config, lrrun.data, lrrun.models,
lrrun.schedule, lrrun.errors, lrrun.files.
"""
