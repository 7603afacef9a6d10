"""The test split: reported, never used to choose.

By default it is evaluated once, when a run ends ok, for the epoch the val split chose:
best.pt's weights (the task's best val metric: val_acc, or val_loss); with
``trainer.save_best=false`` there is no best.pt and the last epoch is tested, which the
report says. Its metrics go into that epoch's row of metrics.csv (test_loss, test_acc, ...:
every other row's are empty), status.json and the console. With ``trainer.test_every_epoch`` the loop evaluates it after every epoch
instead (still never used to choose) and nothing happens here.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from torch import nn

from lrrun.data.batches import Batches
from lrrun.files import write_rows
from lrrun.tasks import Task
from lrrun.train import checkpoint
from lrrun.train.measure import evaluate
from lrrun.train.recipe import Autocast


def test_selected(
    model: nn.Module,
    batches: Batches,
    autocast: Autocast,
    run_dir: Path,
    last_epoch: int,
    save_best: bool,
    task: Task,
    select: str = "",
) -> dict[str, Any]:
    """Load the selected epoch's weights (the trained model's, or an average's:
    trainer.select) into ``model`` and evaluate it on the test split; without best.pt,
    ``model`` as it is (the selected weights of the last epoch)."""
    best = run_dir / checkpoint.BEST
    if save_best and best.is_file():
        saved = checkpoint.read(best)
        model.load_state_dict(saved.weights())
        epoch, chosen_by = int(saved.epoch), f"best {select or task.spec.select}"
    else:
        epoch, chosen_by = last_epoch, "last epoch (trainer.save_best=false: no best.pt)"
    return {"epoch": epoch, **evaluate(model, batches, task, autocast), "chosen_by": chosen_by}


def write_into_metrics(run_dir: Path, tested: dict[str, Any]) -> None:
    """The test result into its epoch's row of metrics.csv (the file is rewritten whole and
    atomically; a resumed run's earlier test result in another row is cleared)."""
    path = run_dir / "metrics.csv"
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        columns, rows = list(reader.fieldnames or []), list(reader)
    for row in rows:
        mine = row["epoch"] == str(tested["epoch"])
        for column in row:
            if column.startswith("test_"):
                key = column.removeprefix("test_")
                row[column] = repr(tested[key]) if mine and key in tested else ""
    write_rows(path, columns, rows)


NAMES = {"top5": "top-5"}


def line(tested: dict[str, Any]) -> str:
    values = ", ".join(
        f"{NAMES.get(k, k)} {v:.4f}" for k, v in tested.items() if k not in ("epoch", "chosen_by")
    )
    return (
        f"test {values} (epoch {tested['epoch']}, the {tested['chosen_by']}; reported, not "
        "used to choose)"
    )
