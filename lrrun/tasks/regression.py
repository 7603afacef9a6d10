"""Regression: values (batch, k) against float targets (batch, k) (a model may return (batch,)
when k = 1). The targets are standardised with the train split's mean and std for training,
so one lr suits any scale; every reported metric is in the targets' own units, averaged over
the k outputs as scikit-learn's ``uniform_average`` does:

    loss = mean squared error (on val/test, whatever the training loss; train_loss in
           metrics.csv too, over the epoch's training batches, so the curves compare; the
           training objective - the configured loss on the standardised targets - is what
           steps.csv's loss logs per step)
    mae, rmse (the mean over outputs of each output's RMSE), r2 (mean of each output's R^2;
    an output with constant targets scores 1 if predicted exactly, else 0, as scikit-learn)
"""

from __future__ import annotations

import math
from statistics import fmean
from typing import Any

import torch

from lrrun.config.task import TASKS
from lrrun.errors import ConfigError
from lrrun.tasks.base import Criterion, Sums, Task, output_shape


class Regression(Task):
    spec = TASKS["regression"]

    def __init__(
        self, mean: tuple[float, ...], std: tuple[float, ...], device: torch.device
    ) -> None:
        self.k = len(mean)
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device)
        self.std = torch.tensor(std, dtype=torch.float32, device=device)

    def values(self, out: torch.Tensor) -> torch.Tensor:
        """The model's output as (batch, k) float32 (in standardised units)."""
        return out.float().reshape(out.shape[0], self.k)

    def criterion(self, loss: Criterion) -> Criterion:
        def standardised(out: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            return loss(self.values(out), (targets - self.mean) / self.std)

        return standardised

    def predict(self, out: torch.Tensor) -> torch.Tensor:
        """The output in the targets' units."""
        return self.values(out) * self.std + self.mean

    def meter(self, train: bool) -> ValueMeter:
        return ValueMeter(self, train)

    def check_output(self, out: Any, batch: torch.Tensor, where: str) -> None:
        got, n, k = output_shape(out), len(batch), self.k
        if got != (n, k) and not (k == 1 and got == (n,)):
            raise ConfigError(
                f"{where} returns {got} for a batch of {'x'.join(map(str, batch.shape))}; lrrun "
                f"needs values of shape ({n}, {k}) (batch, targets per sample). Give the model "
                f"num_outputs={k} or num_classes={k} (lrrun passes both when the constructor "
                f"takes them) or make its last layer {k} wide."
            )


class ValueMeter:
    def __init__(self, task: Regression, train: bool) -> None:
        self.task, self.train, self.sums = task, train, Sums()

    def add(
        self, out: torch.Tensor, targets: torch.Tensor, loss: torch.Tensor | None = None
    ) -> None:
        n = targets.shape[0]
        if loss is not None:  # training: the squared error in the targets' units
            error = self.task.predict(out) - targets
            self.sums.add(n, sq=(error * error).sum(0))
            return
        dtype = torch.float32 if targets.device.type == "mps" else torch.float64  # exact sums
        y = targets.to(dtype)
        error = self.task.predict(out).to(dtype) - y
        y = y - self.task.mean.to(dtype)  # R^2's sum of squares without cancellation
        self.sums.add(
            n, sq=(error * error).sum(0), abs=error.abs().sum(0), y=y.sum(0), y2=(y * y).sum(0)
        )

    def means(self) -> dict[str, float]:
        sums, n = self.sums.read()
        if self.train:
            return {"loss": fmean(sq / n for sq in sums["sq"])}
        per_output = zip(sums["sq"], sums["abs"], sums["y"], sums["y2"], strict=True)
        mse, mae, r2 = [], [], []
        for sq, ab, y, y2 in per_output:
            total = y2 - y * y / n  # the output's sum of squares about its mean
            mse.append(sq / n)
            mae.append(ab / n)
            r2.append(1 - sq / total if total > 0 else float(sq == 0))
        return {
            "loss": fmean(mse),
            "mae": fmean(mae),
            "rmse": fmean(map(math.sqrt, mse)),
            "r2": fmean(r2),
        }
