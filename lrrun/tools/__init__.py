"""The other command-line tools: lrrun-preview (the schedule without training), lrrun-find-lr
(the LR range test), and what every entry point shares (common: exit codes, pre-compose
checks, ending a job on a user error).

Layer 7 of lrrun (docs/design/development.md): may import every package below it. Only lrrun.cli (the
``lrrun`` entry point) sits above it.
"""
