"""The config, read once: where the Hydra configs live (location), what each key accepts
(rules, checks, scheduler), the command line checked before Hydra composes (overrides), the
safe ``lr_lambda`` evaluator (expr), optimizer.param_groups specs (param_groups), and
``settings.read``, the one entry from a composed config to the plain values a run uses.

Layer 1 of lrrun (docs/design/development.md): may import lrrun.errors and lrrun.files, and no other
package of lrrun. Imports no torch, so a bad value fails before torch loads.
"""
