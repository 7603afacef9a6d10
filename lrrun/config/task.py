"""The task, as plain facts every layer may read without torch: what a run measures, which
metric selects (best.pt, the verdict's ranking) and in which direction, and so which columns
metrics.csv has. ``task=classification|regression|language_model`` (conf/task); what a task
does with tensors (its loss, its metrics on the device, the model output it needs) is
lrrun.tasks.

| task           | train   | val / test                  | selects on          |
|----------------|---------|-----------------------------|---------------------|
| classification | loss acc| loss acc (top5)             | val_acc, higher     |
| regression     | loss    | loss mae rmse r2            | val_loss, lower     |
| language_model | loss    | loss ppl                    | val_loss, lower     |

``loss`` on val/test is always the task's plain loss, comparable across recipes: cross-entropy
(per token for a language model), or the mean squared error in the targets' own units.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from lrrun.errors import ConfigError

CLASSIFICATION, REGRESSION, LANGUAGE_MODEL = "classification", "regression", "language_model"
NAMES = (CLASSIFICATION, REGRESSION, LANGUAGE_MODEL)
# Metrics that improve as they rise; every other metric (losses, errors, perplexity) falls.
HIGHER_IS_BETTER = ("acc", "top5", "r2")


@dataclass(frozen=True)
class TaskSpec:
    name: str
    train_metrics: tuple[str, ...]
    eval_metrics: tuple[str, ...]  # top5 is added for classification with more than 5 classes
    select: str  # the val metric that chooses: best.pt, the plateau default, the verdict
    other: str  # the second val metric a sweep's summary reports
    # averaged weights the run evaluates each epoch (trainer.ema, scheduler=swa: their
    # val metrics again as val_<metric>_<name>), and whose val metric selects (trainer.select)
    averages: tuple[str, ...] = ()
    weights: str = "model"

    def selecting(self, weights: str, averages: Sequence[str] = ()) -> TaskSpec:
        """This task with averaged weights, selecting on ``weights``' val metric (model: the
        trained weights' own)."""
        base = (
            self.select.removesuffix(f"_{self.weights}") if self.weights != "model" else self.select
        )
        select = base if weights == "model" else f"{base}_{weights}"
        return replace(self, select=select, averages=tuple(averages), weights=weights)

    @property
    def test_select(self) -> str:
        """The test split's counterpart of ``select`` (the selected weights are tested)."""
        name = self.select.removeprefix("val_")
        return "test_" + (
            name.removesuffix(f"_{self.weights}") if self.weights != "model" else name
        )

    @property
    def higher(self) -> bool:
        """Whether a larger ``select`` value is better."""
        return higher_is_better(self.select)

    @property
    def monitors(self) -> tuple[str, ...]:
        """What ReduceLROnPlateau may monitor: every train and val metric of the task."""
        return (
            *(f"train_{m}" for m in self.train_metrics),
            *(f"val_{m}" for m in self.eval_metrics),
        )

    def evaluated(self, top5: bool = False) -> tuple[str, ...]:
        """The metrics of an evaluated split (val, test)."""
        return (*self.eval_metrics, *(("top5",) if top5 else ()))

    def columns(
        self, lr_columns: Sequence[str], top5: bool = False, averages: Sequence[str] = ()
    ) -> list[str]:
        """metrics.csv's columns (``averages``: val_<metric>_<name> for each)."""
        split = [f"{s}_{m}" for s in ("val", "test") for m in self.evaluated(top5)]
        averaged = [f"val_{m}_{a}" for a in averages for m in self.evaluated(top5)]
        return [
            "epoch",
            *lr_columns,
            *(f"train_{m}" for m in self.train_metrics),
            *split,
            *averaged,
            "epoch_time_s",
        ]

    def better(self, value: float, than: float | None) -> bool:
        """Whether ``value`` of the select metric beats ``than`` (None: nothing yet)."""
        if than is None:
            return True
        return value > than if self.higher else value < than

    def best_after(
        self, best: tuple[float, int] | None, row: dict[str, Any]
    ) -> tuple[float, int] | None:
        """The run's best (value of ``select``, epoch) once ``row`` is in: best.pt's epoch
        (an average's metric is None before its first update)."""
        value = row.get(self.select)
        if value is not None and self.better(value, best[0] if best else None):
            return value, int(row["epoch"])
        return best

    def best(self, rows: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
        """The row the run chose: the best ``select``, the earliest among equals."""
        chosen = None
        for row in rows:
            if row.get(self.select) is None:
                continue
            if chosen is None or self.better(row[self.select], chosen[self.select]):
                chosen = row
        return chosen


TASKS = {
    CLASSIFICATION: TaskSpec(
        CLASSIFICATION, ("loss", "acc"), ("loss", "acc"), "val_acc", "val_loss"
    ),
    REGRESSION: TaskSpec(
        REGRESSION, ("loss",), ("loss", "mae", "rmse", "r2"), "val_loss", "val_r2"
    ),
    LANGUAGE_MODEL: TaskSpec(LANGUAGE_MODEL, ("loss",), ("loss", "ppl"), "val_loss", "val_ppl"),
}


AVERAGES = ("ema", "swa")  # the suffixes of averaged weights' metrics (val_acc_ema)


def higher_is_better(metric: str) -> bool:
    """acc, top5 and r2 rise as they improve; losses, errors and perplexity fall (and so do
    their averaged weights' counterparts, val_acc_ema)."""
    words = metric.split("_")
    if words[-1] in AVERAGES:
        words.pop()
    return words[-1] in HIGHER_IS_BETTER


def spec(name: str | None) -> TaskSpec:
    """The task called ``name``; runs written before tasks existed are classification."""
    return TASKS.get(name or CLASSIFICATION, TASKS[CLASSIFICATION])


def read_task(node: Any) -> TaskSpec:
    """The task node (``task.name``), checked."""
    name = node.get("name") if isinstance(node, dict) else node
    if name is None:
        return TASKS[CLASSIFICATION]
    if name not in TASKS:
        raise ConfigError(
            f"task.name={name!r} is not a task lrrun knows: use task=" + ", task=".join(NAMES) + "."
        )
    if isinstance(node, dict):
        extra = [k for k in node if k != "name"]
        if extra:
            raise ConfigError(f"task.{extra[0]} is not a known key: a task node has only name.")
    return TASKS[name]


# Losses that take class indices, and losses that take values: a mismatch is a config error.
CLASS_LOSSES = ("CrossEntropyLoss", "NLLLoss", "MultiMarginLoss")
VALUE_LOSSES = ("MSELoss", "L1Loss", "HuberLoss", "SmoothL1Loss")
LOSS_CHOICES = {
    CLASSIFICATION: "loss=cross_entropy",
    REGRESSION: "loss=mse, l1 or huber",
    LANGUAGE_MODEL: "loss=cross_entropy",
}


def check_fit(
    task: TaskSpec, scheduler: dict[str, Any], loss: dict[str, Any], mix: dict[str, Any]
) -> None:
    """The other groups against the task: what the plateau monitors, the loss, mixing."""
    monitor = scheduler.get("monitor")
    if monitor is not None and monitor not in task.monitors:
        raise ConfigError(
            f"scheduler.monitor={monitor} is not a metric of task={task.name}: it measures "
            + ", ".join(task.monitors)
            + f". Use one of those (e.g. scheduler.monitor={task.select})."
        )
    name = str(loss.get("_target_", "")).rsplit(".", 1)[-1]
    wrong = VALUE_LOSSES if task.name != REGRESSION else CLASS_LOSSES
    if name in wrong:
        fix = "use task=regression for float targets, or " if task.name != REGRESSION else "use "
        raise ConfigError(
            f"loss._target_={loss['_target_']} does not fit task={task.name}: "
            f"{fix}{LOSS_CHOICES[task.name]}."
        )
    if mix.get("_target_") and task.name != CLASSIFICATION:
        raise ConfigError(
            f"mix={str(mix['_target_']).rsplit('.', 1)[-1]} mixes class labels; task={task.name} "
            "has none. Use mix=none."
        )
