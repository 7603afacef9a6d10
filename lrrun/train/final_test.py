"""The test split: reported, never used to choose.

By default it is evaluated once, when a run ends ok, for the epoch the val split chose:
best.pt's weights (the best val_acc); with ``trainer.save_best=false`` there is no best.pt
and the last epoch is tested, which the report says. Its loss and accuracy go into that
epoch's row of metrics.csv (test_loss, test_acc: every other row's are empty), status.json
and the console. With ``trainer.test_every_epoch`` the loop evaluates it after every epoch
instead (still never used to choose) and nothing happens here.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from torch import nn

from lrrun.data.batches import Batches
from lrrun.files import write_rows
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
    top5: bool = False,
) -> dict[str, Any]:
    """Load the selected epoch's weights into ``model`` and evaluate it on the test split."""
    best = run_dir / checkpoint.BEST
    if save_best and best.is_file():
        state = checkpoint.load(best)
        model.load_state_dict(state["model"])
        epoch, chosen_by = int(state["epoch"]), "best val_acc"
    else:
        epoch, chosen_by = last_epoch, "last epoch (trainer.save_best=false: no best.pt)"
    loss, acc, *top = evaluate(model, batches, autocast, top5)
    return {"epoch": epoch, "loss": loss, "acc": acc, **({"top5": top[0]} if top else {}),
            "chosen_by": chosen_by}  # fmt: skip


def write_into_metrics(run_dir: Path, tested: dict[str, Any]) -> None:
    """The test result into its epoch's row of metrics.csv (the file is rewritten whole and
    atomically; a resumed run's earlier test result in another row is cleared)."""
    path = run_dir / "metrics.csv"
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        columns, rows = list(reader.fieldnames or []), list(reader)
    for row in rows:
        mine = row["epoch"] == str(tested["epoch"])
        for key in ("loss", "acc", "top5"):
            if f"test_{key}" in row:
                row[f"test_{key}"] = repr(tested[key]) if mine and key in tested else ""
    write_rows(path, columns, rows)


def line(tested: dict[str, Any]) -> str:
    top5 = f", top-5 {tested['top5']:.4f}" if "top5" in tested else ""
    return (
        f"test loss {tested['loss']:.4f}, acc {tested['acc']:.4f}{top5} (epoch "
        f"{tested['epoch']}, the {tested['chosen_by']}; reported, not used to choose)"
    )
