"""What a task does with tensors (lrrun.config.task has the plain facts): the training loss
around the configured criterion, the metrics of an epoch kept on the device until its one
host read, and the model output it needs (checked on one batch before epoch 1).

- classification: (logits (batch, classes), class indices)
- regression: (values (batch, k), float targets (batch, k)), standardised for training
- language_model: (logits (batch, time, vocab), next-token ids (batch, time))

The loop calls ``Task.criterion`` and ``Task.meter`` and never asks which task it runs.

Layer 3 of lrrun (docs/design/development.md): may import lrrun.config, lrrun.data, lrrun.models and the
base modules.
"""

from __future__ import annotations

import torch

from lrrun.config.task import CLASSIFICATION, LANGUAGE_MODEL, REGRESSION, TaskSpec
from lrrun.data.base import Data
from lrrun.data.tokens import TokenData
from lrrun.tasks.base import Meter, Task
from lrrun.tasks.classification import Classification
from lrrun.tasks.language_model import LanguageModel
from lrrun.tasks.regression import Regression

__all__ = ["Meter", "Task", "build_task"]


def build_task(spec: TaskSpec, data: Data | TokenData, device: torch.device) -> Task:
    """The run's task, fitted to its data (classes, target statistics, vocabulary)."""
    if spec.name == LANGUAGE_MODEL and isinstance(data, TokenData):
        return LanguageModel(data.vocab_size)
    assert isinstance(data, Data), "token streams are a language model's (read_dataset checks)"
    if spec.name == REGRESSION:
        return Regression(data.target_mean, data.target_std, device)
    assert spec.name == CLASSIFICATION
    return Classification(data.num_classes)
