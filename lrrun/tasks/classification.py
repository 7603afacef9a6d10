"""Classification: logits (batch, classes) against class indices. Metrics: loss (plain
cross-entropy on val/test, the training loss in training), acc, and top5 past 5 classes."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from lrrun.config.task import TASKS
from lrrun.errors import ConfigError
from lrrun.tasks.base import Criterion, Sums, Task, output_shape


class Classification(Task):
    spec = TASKS["classification"]

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes

    @property
    def top5(self) -> bool:
        return self.num_classes > 5

    def criterion(self, loss: Criterion) -> Criterion:
        return loss  # torch's classification losses take (logits, indices or soft targets)

    def meter(self, train: bool) -> ClassMeter:
        return ClassMeter(top5=self.top5 and not train)

    def check_output(self, out: Any, batch: torch.Tensor, where: str) -> None:
        got, n, c = output_shape(out), len(batch), self.num_classes
        if got != (n, c):
            raise ConfigError(
                f"{where} returns {got} for a batch of {'x'.join(map(str, batch.shape))}; lrrun "
                f"needs logits of shape ({n}, {c}) (batch, classes). Give the model "
                f"num_classes={c} (lrrun passes it when the constructor takes num_classes) or "
                f"make its last layer {c} wide."
            )


class ClassMeter:
    def __init__(self, top5: bool = False) -> None:
        self.sums, self.top5 = Sums(), top5

    def add(
        self, out: torch.Tensor, targets: torch.Tensor, loss: torch.Tensor | None = None
    ) -> None:
        n = targets.shape[0]
        if loss is None:  # evaluation: plain cross-entropy, whatever the training loss
            summed = F.cross_entropy(out.float(), targets, reduction="sum")
        else:
            summed = loss * n
        values = {"loss": summed, "acc": (out.argmax(1) == targets).sum()}
        if self.top5:
            top = out.topk(min(5, out.shape[1]), dim=1).indices
            values["top5"] = (top == targets[:, None]).any(1).sum()
        self.sums.add(n, **values)

    def means(self) -> dict[str, float]:
        sums, seen = self.sums.read()
        return {name: value[0] / seen for name, value in sums.items()}
