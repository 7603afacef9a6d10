"""Members of one pass train as they would alone (lrrun.fused.runner): each run dir's
steps.csv lr string-equal to the job's solo run, losses and metrics equal to float rounding,
the same events and statuses; a diverging member ends alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lrrun.config.settings import Settings, read
from lrrun.errors import Diverged
from lrrun.fused.runner import run_members
from lrrun.train import checkpoint
from lrrun.train.runner import run
from tests.conftest import read_csv

# rtol for losses and metrics: the batched kernels of one pass round differently from a
# member's own (measured on these jobs: at most 7e-7 relative over their 6 epochs)
TOLERANCE = 1e-5
JOBS = [
    ("trainer.seed=1", "optimizer.lr=0.05", "scheduler=step_lr"),
    (
        "trainer.seed=2",
        "optimizer=adam",
        "optimizer.lr=0.003",
        "scheduler=one_cycle_lr",
        "trainer.clip_grad_norm=1.0",
    ),
    (
        "trainer.seed=3",
        "scheduler=reduce_lr_on_plateau",
        "scheduler.patience=0",
        "scheduler.monitor=train_loss",
        "scheduler.threshold=0.05",
        "scheduler.warmup.steps=3",
        "trainer.ema.decay=0.9",
        "mix=mixup",
        "loss.label_smoothing=0.1",
    ),
    (
        "trainer.seed=4",
        "optimizer.no_decay=[bias]",
        "optimizer.weight_decay=0.01",
        "trainer.clip_grad_value=0.5",
        "optimizer.lr=0.1",
    ),
]
SHARED = ("dataset.seed=0",)  # one data set for all (synthetic data follows trainer.seed)


def numbers(rows: list[dict[str, str]], skip: tuple[str, ...]) -> list[float]:
    """Every value of every row, in order (an empty cell as NaN)."""
    return [float(v) if v else float("nan") for r in rows for k, v in r.items() if k not in skip]


def assert_same_run(solo: Path, fused: Path, rel: float = TOLERANCE, atol: float = 1e-4) -> None:
    a, b = read_csv(solo / "steps.csv"), read_csv(fused / "steps.csv")
    assert [r["lr"] for r in a] == [r["lr"] for r in b]  # strings: exact
    assert [(r["epoch"], r["step"]) for r in a] == [(r["epoch"], r["step"]) for r in b]
    assert numbers(b, ("epoch", "step")) == pytest.approx(
        numbers(a, ("epoch", "step")), rel=rel, nan_ok=True
    )
    ma, mb = read_csv(solo / "metrics.csv"), read_csv(fused / "metrics.csv")
    assert list(ma[0]) == list(mb[0])
    assert numbers(mb, ("epoch_time_s",)) == pytest.approx(
        numbers(ma, ("epoch_time_s",)), rel=rel, nan_ok=True
    )
    ea, eb = read_csv(solo / "events.csv"), read_csv(fused / "events.csv")
    assert [(e["step"], e["event"]) for e in ea] == [(e["step"], e["event"]) for e in eb]
    sa, sb = (json.loads((d / "status.json").read_text()) for d in (solo, fused))
    assert sa["status"] == sb["status"] and sa["data"] == sb["data"]
    ca, cb = (checkpoint.load(d / checkpoint.NAME) for d in (solo, fused))
    assert torch.equal(ca["rng"]["torch"], cb["rng"]["torch"])  # its own stream, as alone
    for key, value in ca["model"].items():
        # weights drift a little further apart than the losses: the CNN's grouped convolutions
        # round differently, and Adam divides by small second moments (measured: 1.8e-5 at
        # most after 3 epochs, on weights of about 0.05)
        torch.testing.assert_close(cb["model"][key], value, rtol=0, atol=atol)


def fused_as_alone(settings: list[Settings], tmp_path: Path) -> None:
    """Train the jobs in one pass (run dirs fused<i>), then each alone (solo<i>): each
    member's run is its solo run."""
    results = run_members(settings, [tmp_path / f"fused{i}" for i in range(len(settings))])
    assert all(isinstance(r, list) for r in results), results
    for i, one in enumerate(settings):
        run(one, tmp_path / f"solo{i}")
        assert_same_run(tmp_path / f"solo{i}", tmp_path / f"fused{i}")


@pytest.mark.parametrize("accumulate", [1, 3])
def test_members_of_one_pass_train_as_alone(compose_cfg, tmp_path: Path, accumulate: int) -> None:
    """4 jobs: other seeds, optimizers, schedules (per epoch, per step with momentum, plateau
    with a warm-up), clipping, no_decay groups, EMA, mixing and label smoothing; with
    trainer.accumulate=3 every step is a group of batches (the last one shorter)."""
    shared = (*SHARED, f"trainer.accumulate={accumulate}")
    fused_as_alone([read(compose_cfg(*job, *shared)) for job in JOBS], tmp_path)


def test_cnn_members_with_dropout_and_mixing_draw_their_own_masks(
    compose_cfg, tmp_path: Path
) -> None:
    """The CNN's two dropout layers (lrrun.models.Dropout) and CutMix: each member's masks
    come from its own stream in its solo order, so its run is its solo run."""
    jobs = [
        ("trainer.seed=1", "mix=cutmix"),
        ("trainer.seed=2", "optimizer=adam", "optimizer.lr=0.002"),
    ]
    shared = (*SHARED, "model=fashion_mnist_net", "trainer.epochs=3")
    settings = [read(compose_cfg(*job, *shared)) for job in jobs]
    fused_as_alone(settings, tmp_path)


def test_language_model_members_with_a_tied_head_train_as_alone(
    compose_cfg, tmp_path: Path
) -> None:
    """The GPT: its head is tied to the token embedding (one parameter in two places, which
    the pass must keep tied), causal attention, random windows of its own seed; task
    language_model. 2 optimizers x 2 seeds against their solo runs."""
    from tests.sources import write_text
    from tests.tasks.test_language_model import TINY_GPT

    text = write_text(tmp_path / "t.txt", 20_000)
    shared = (
        "dataset=text",
        f"dataset.path={text}",
        *TINY_GPT,
        "model.dropout=0.0",  # torch's nn.Dropout: such a GPT trains alone
        "dataset.steps_per_epoch=10",
        "trainer.epochs=2",
    )
    jobs = [(f"trainer.seed={s}", f"optimizer.lr={lr}") for s in (1, 2) for lr in (1e-3, 3e-3)]
    settings = [read(compose_cfg(*job, *shared, tiny=False)) for job in jobs]
    fused_as_alone(settings, tmp_path)


def test_regression_members_with_several_outputs_train_as_alone(
    compose_cfg, tmp_path: Path
) -> None:
    """task=regression with (N, 2) float targets: one gather gives each member its targets
    (not class ids), each member's standardised loss and metrics in their units as alone."""
    from tests.sources import write_regression

    data = write_regression(tmp_path / "two.npz", n=200, features=3, outputs=2)
    shared = (
        "task=regression",
        "dataset=tensors",
        f"dataset.path={data}",
        "trainer.batch_size=20",
        "trainer.epochs=3",
    )
    jobs = [("trainer.seed=1", "optimizer.lr=0.05"), ("trainer.seed=2", "optimizer=adam")]
    settings = [read(compose_cfg(*job, *shared, tiny=False)) for job in jobs]
    fused_as_alone(settings, tmp_path)
    assert all("val_r2" in read_csv(tmp_path / f"fused{i}/metrics.csv")[0] for i in range(2))


TORCH_DROPOUT = ["model=custom", "model._target_=tests.fused.test_members.TorchDropoutNet"]


class TorchDropoutNet(torch.nn.Module):
    """torch's own nn.Dropout: its masks are drawn inside the forward."""

    def __init__(self, num_classes: int, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Flatten(),
            torch.nn.Dropout(0.2),
            torch.nn.Linear(int(torch.tensor(input_shape).prod()), num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_a_diverging_member_ends_alone_and_torchs_dropout_trains_alone(
    compose_cfg, tmp_path: Path
) -> None:
    """lr 1e4 sends one member's loss to NaN in epoch 1: it ends diverged (status, steps.csv
    up to the NaN), the others finish as alone; a model with torch's nn.Dropout is refused
    the pass."""
    jobs = [
        JOBS[0],
        ("trainer.seed=9", "optimizer.lr=1e4", "optimizer.momentum=0.99"),
        JOBS[1],
        tuple(TORCH_DROPOUT),
    ]
    settings = [read(compose_cfg(*job, *SHARED)) for job in jobs]
    results = run_members(settings, [tmp_path / f"fused{i}" for i in range(4)])
    assert isinstance(results[1], Diverged)
    assert "net.1 (Dropout, p=0.2) draws random numbers in its forward" in str(results[3])
    with pytest.raises(Diverged):
        run(settings[1], tmp_path / "solo1")
    for name in ("status.json", "steps.csv", "metrics.csv"):  # where and how it diverged
        solo, fused = (tmp_path / d / name for d in ("solo1", "fused1"))
        if name == "status.json":
            a, b = json.loads(solo.read_text()), json.loads(fused.read_text())
            assert a["status"] == b["status"] == "diverged" and a["epoch"] == b["epoch"]
        else:
            assert len(read_csv(solo)) == len(read_csv(fused)) > 0
    for i in (0, 2):
        run(settings[i], tmp_path / f"solo{i}")
        assert_same_run(tmp_path / f"solo{i}", tmp_path / f"fused{i}")


HALF_NET = ["model=custom", "model._target_=tests.fused.test_members.BiasFreeNet"]


class BiasFreeNet(torch.nn.Module):
    """Linear layers without a bias: CPU autocast reaches their batched kernels in a pass
    (a biased Linear's does not: lrrun.fused.forward.precision_differs)."""

    def __init__(self, num_classes: int, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Flatten(),
            torch.nn.Linear(int(torch.tensor(input_shape).prod()), 64, bias=False),
            torch.nn.ReLU(),
            torch.nn.Linear(64, num_classes, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_fp16_members_scale_their_own_losses(compose_cfg, tmp_path: Path) -> None:
    """trainer.precision=fp16: each member's loss is scaled by its own GradScaler, so its
    scaler's state and its skipped steps (events.csv) are its solo run's; the numbers agree
    within TOLERANCE (measured: bit-equal over 3 epochs). A model the pass would compute in float32 (a biased Linear under
    CPU autocast) is refused the pass, with the layer named."""
    shared = (*SHARED, "trainer.precision=fp16", "trainer.epochs=3")
    settings = [read(compose_cfg(*job, *shared, *HALF_NET)) for job in JOBS[:2]]
    results = run_members(settings, [tmp_path / f"fused{i}" for i in range(2)])
    assert all(isinstance(r, list) for r in results), results
    for i, one in enumerate(settings):
        run(one, tmp_path / f"solo{i}")
        ca, cb = (
            checkpoint.load(tmp_path / d / checkpoint.NAME) for d in (f"solo{i}", f"fused{i}")
        )
        assert ca["scaler"] is not None and ca["scaler"] == cb["scaler"]  # its own scaler's path
        assert_same_run(tmp_path / f"solo{i}", tmp_path / f"fused{i}")  # measured: equal
    biased = [read(compose_cfg(*job, *shared)) for job in JOBS[:2]]
    refused = run_members(biased, [tmp_path / f"biased{i}" for i in range(2)])
    assert [str(r) for r in refused] == [
        "the pass would compute fc1 (Linear) in float32, alone in float16: autocast does not "
        "reach that layer's kernel under vmap here, so this job cannot share a pass"
    ] * 2


def test_members_on_the_loader_path_read_their_own_batches(
    compose_cfg, tmp_path: Path, capfd
) -> None:
    """trainer.data_path=loader with a per-sample augmentation (crop and flip, seeded per
    sample by seed and epoch, no global draws) and 2 workers: each member's DataLoader gives
    its batches, the pass trains them as alone."""
    shared = (
        *SHARED,
        "trainer.data_path=loader",
        "augment=crop_flip",
        "dataset.transforms.train.0.size=28",
        "trainer.num_workers=2",
    )
    settings = [read(compose_cfg(*job, *shared)) for job in JOBS[:2]]
    results = run_members(settings, [tmp_path / f"fused{i}" for i in range(2)])
    assert all(isinstance(r, list) for r in results), results
    assert capfd.readouterr().out.count("data_path=loader") == 2  # each member's header
    for i, one in enumerate(settings):
        run(one, tmp_path / f"solo{i}")
        assert_same_run(tmp_path / f"solo{i}", tmp_path / f"fused{i}")
