"""What a task says without torch: metrics.csv's columns, which way is better, what the plateau
may monitor, and the groups that do not fit it - refused before any data is read."""

from __future__ import annotations

import pytest

from lrrun.config.settings import read
from lrrun.config.task import TASKS, higher_is_better
from lrrun.errors import ConfigError


def test_columns_per_task() -> None:
    lrs = ["lr"]
    assert TASKS["classification"].columns(lrs, top5=True) == [
        "epoch",
        "lr",
        "train_loss",
        "train_acc",
        "val_loss",
        "val_acc",
        "val_top5",
        "test_loss",
        "test_acc",
        "test_top5",
        "epoch_time_s",
    ]
    assert TASKS["regression"].columns(lrs) == [
        "epoch",
        "lr",
        "train_loss",
        "val_loss",
        "val_mae",
        "val_rmse",
        "val_r2",
        "test_loss",
        "test_mae",
        "test_rmse",
        "test_r2",
        "epoch_time_s",
    ]
    assert TASKS["language_model"].columns(["lr", "lr_1"]) == [
        "epoch",
        "lr",
        "lr_1",
        "train_loss",
        "val_loss",
        "val_ppl",
        "test_loss",
        "test_ppl",
        "epoch_time_s",
    ]


def test_the_better_direction() -> None:
    assert [higher_is_better(m) for m in ("val_acc", "val_top5", "val_r2")] == [True] * 3
    assert not any(higher_is_better(m) for m in ("val_loss", "val_mae", "val_rmse", "val_ppl"))
    rows = [
        {"epoch": 1, "val_loss": 2.0, "val_acc": 0.5},
        {"epoch": 2, "val_loss": 1.0, "val_acc": 0.4},
        {"epoch": 3, "val_loss": 1.0, "val_acc": 0.5},
    ]
    assert TASKS["classification"].best(rows)["epoch"] == 1  # the earliest of the equals
    assert TASKS["regression"].best(rows)["epoch"] == 2
    assert TASKS["language_model"].best([]) is None
    for task in ("classification", "regression"):  # row by row, as the logbook keeps best.pt's
        best = None
        for row in [{"epoch": 0, "val_acc": None}, *rows]:  # an average before its first update
            best = TASKS[task].best_after(best, row)
        chosen = TASKS[task].best(rows)
        assert best == (chosen[TASKS[task].select], chosen["epoch"])


NPZ = ["task=regression", "dataset=tensors", "dataset.path=x.npz"]  # not read: refused first


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            [*NPZ, "scheduler=reduce_lr_on_plateau", "scheduler.monitor=val_acc"],
            "scheduler.monitor=val_acc is not a metric of task=regression: it measures train_loss, "
            "val_loss, val_mae, val_rmse, val_r2",
        ),
        (
            [
                "dataset=text",
                "dataset.path=x.txt",
                "scheduler=reduce_lr_on_plateau",
                "scheduler.monitor=train_acc",
            ],
            "is not a metric of task=language_model",
        ),
        (
            [*NPZ, "loss=cross_entropy"],
            "loss._target_=torch.nn.CrossEntropyLoss does not fit task=regression: use loss=mse",
        ),
        (["loss=mse"], "does not fit task=classification: use task=regression for float"),
        (["dataset=text", "dataset.path=x.txt", "mix=mixup"], "mix=MixUp mixes class labels"),
        (["task=regression"], "task=regression needs float targets, and dataset.source=idx"),
        (
            ["dataset=text", "dataset.path=x.txt", "task=classification"],
            "dataset=text holds a token stream",
        ),
        (["task=language_model"], "task=language_model trains on token streams"),
        (["+task.kind=x"], "task.kind is not a known key"),
    ],
    ids=[
        "monitor-regression",
        "monitor-lm",
        "ce-regression",
        "mse-classes",
        "mix-lm",
        "regression-idx",
        "text-classes",
        "lm-images",
        "task-key",
    ],
)
def test_groups_that_do_not_fit_the_task_are_refused(compose_cfg, overrides, message) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read(compose_cfg(*overrides, tiny=False))


def test_plateau_mode_follows_the_monitor(compose_cfg, tmp_path) -> None:
    from lrrun.config.scheduler import plateau_mode

    assert plateau_mode("val_r2", "auto") == "max"
    assert plateau_mode("val_ppl", "auto") == "min"
    with pytest.raises(ConfigError, match="val_rmse improves when it falls"):
        plateau_mode("val_rmse", "max")
