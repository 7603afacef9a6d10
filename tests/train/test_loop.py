"""Loop guarantees that no CLI run shows directly: an interrupted run keeps every row."""

from __future__ import annotations

from pathlib import Path

import pytest
from torch import nn

import lrrun.train.assembly
import lrrun.train.runner
from tests.conftest import TINY_STEPS_PER_EPOCH, read_csv


def test_interrupt_keeps_every_logged_row(compose_cfg, tmp_path: Path, monkeypatch) -> None:
    """Ctrl-C in epoch 2, step 3: epoch 1's metrics row and all 6 taken steps are on disk."""
    build = lrrun.train.assembly.build_model
    stop_at = TINY_STEPS_PER_EPOCH + 3  # the 3rd training forward pass of epoch 2

    def interrupting(node, facts) -> tuple[nn.Module, dict]:
        model, given = build(node, facts)
        calls = {"train": 0}

        def hook(module: nn.Module, args) -> None:
            if module.training:
                calls["train"] += 1
                if calls["train"] == stop_at:
                    raise KeyboardInterrupt

        model.register_forward_pre_hook(hook)
        return model, given

    monkeypatch.setattr(lrrun.train.assembly, "build_model", interrupting)
    with pytest.raises(KeyboardInterrupt):
        lrrun.train.runner.run(compose_cfg("scheduler=exponential_lr"), tmp_path)
    metrics = read_csv(tmp_path / "metrics.csv")
    steps = read_csv(tmp_path / "steps.csv")
    assert [r["epoch"] for r in metrics] == ["1"]
    assert [int(r["step"]) for r in steps] == list(range(1, stop_at))
    assert float(steps[-1]["lr"]) == pytest.approx(0.01 * 0.9)  # epoch 2's lr


def test_multiple_param_groups_get_their_own_lr_columns(compose_cfg, tmp_path, monkeypatch) -> None:
    """lr is group 0; other groups add lr_1, ... (both CSVs)."""
    import torch

    def two_groups(node, groups, model, no_decay):
        return torch.optim.SGD(
            [{"params": model.fc1.parameters()}, {"params": model.fc2.parameters(), "lr": 0.5}],
            lr=0.1,
        )

    monkeypatch.setattr(lrrun.train.assembly, "build_optimizer", two_groups)
    lrrun.train.runner.run(compose_cfg("scheduler=step_lr", "trainer.epochs=2"), tmp_path)
    metrics = read_csv(tmp_path / "metrics.csv")
    assert [(float(r["lr"]), float(r["lr_1"])) for r in metrics] == [
        (0.1, 0.5),
        (0.1 * 0.7, 0.5 * 0.7),
    ]
    assert "lr_1" in read_csv(tmp_path / "steps.csv")[0]
