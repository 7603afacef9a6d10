"""Averaged weights (trainer.ema, scheduler=swa) and fp16's gradient scaler: the EMA against
timm's rule and a hand-computed average, SWA's lr against torch's SWALR stepped as the recipe
steps it and its average against the mean of the epochs' weights, the trained model's run
untouched by either, resumes bit-exact, trainer.select's weights in best.pt, the test and
load_run, and fp16's skipped step as an event."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from torch import nn

import lrrun
from lrrun.logs.runs import load_job
from lrrun.train import averaging, checkpoint
from lrrun.train.averaging import EMA, SWA
from lrrun.train.runner import run
from tests.conftest import TINY_STEPS_PER_EPOCH, assert_ok, read_csv, run_cli


class BNNet(nn.Module):
    """BatchNorm (statistics an average must recompute) and dropout (an RNG stream)."""

    def __init__(self, num_classes: int, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        width = int(torch.tensor(input_shape).prod())
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(width, 32),
            nn.BatchNorm1d(32),
            nn.ReLU(),
            nn.Dropout(0.2),
            nn.Linear(32, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


BN = ["model=custom", f"model._target_={__name__}.BNNet", "augment=flip"]
SWA_ARGS = [
    "scheduler=swa",
    "scheduler.swa_lr=0.02",
    "scheduler.anneal_epochs=2",
    "optimizer.lr=0.05",
]
EMA_ARGS = ["trainer.ema.decay=0.9", "trainer.ema.every=2"]


def without_time(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in r.items() if k != "epoch_time_s"} for r in rows]


def test_ema_decay_is_timms_model_ema_v3() -> None:
    timm_ema = pytest.importorskip("timm.utils.model_ema")
    model = nn.Linear(2, 2)
    for decay, warmup in ((0.999, True), (0.9, True), (0.99, False)):
        mine = EMA(model, decay, 1, warmup)
        theirs = timm_ema.ModelEmaV3(model, decay=decay, use_warmup=warmup)
        for step in range(1, 300):
            assert mine.decay_at(step) == pytest.approx(theirs.get_decay(step), rel=1e-12)


def test_ema_weights_equal_a_hand_computed_average() -> None:
    """Every 2nd step, each floating tensor (BatchNorm's statistics too) moves as
    ema = d ema + (1 - d) w; the step counter is copied."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    ema = EMA(model, decay=0.95, every=2, warmup=True)
    expected = {k: v.double().clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(1, 12):
        optimizer.zero_grad()
        nn.functional.cross_entropy(
            model(torch.randn(16, 4)), torch.randint(0, 3, (16,))
        ).backward()
        optimizer.step()
        ema.after_step(step)
        if step % 2 == 0:
            d = min(0.95, 1 - step ** (-2 / 3))
            for key, value in model.state_dict().items():
                if value.is_floating_point():
                    expected[key] = d * expected[key] + (1 - d) * value.double()
                else:
                    expected[key] = value.double().clone()
    assert ema.updates == 5
    for key, value in ema.module.state_dict().items():
        torch.testing.assert_close(value.double(), expected[key], rtol=1e-6, atol=1e-7)
    assert not torch.equal(ema.module[0].weight, model[0].weight)


def _swa_replay(
    lr: float, swa_lr: float, start: int, anneal: int, epochs: int, before: bool
) -> list[float]:
    """The lr of each optimizer step, from torch's own objects stepped as SWA's recipe does:
    after epoch e, the schedule before averaging while e < start, SWALR from then on."""
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)
    first = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=start) if before else None
    swalr = torch.optim.swa_utils.SWALR(optimizer, swa_lr=swa_lr, anneal_epochs=anneal)
    out = []
    for epoch in range(1, epochs + 1):
        out += [optimizer.param_groups[0]["lr"]] * TINY_STEPS_PER_EPOCH
        optimizer.step()
        if epoch >= start:
            swalr.step()
        elif first is not None:
            first.step()
    return out


@pytest.mark.parametrize("before", [False, True], ids=["constant", "cosine_before"])
def test_swa_lr_is_torchs_swalr_and_its_average_the_mean_of_the_epochs(
    compose_cfg, tmp_path: Path, monkeypatch, before: bool
) -> None:
    cosine = (
        [
            "scheduler.before={_target_:torch.optim.lr_scheduler.CosineAnnealingLR,"
            "_partial_:true,T_max:null}"
        ]
        if before
        else []
    )
    seen: list[dict[str, torch.Tensor]] = []
    original = SWA.after_epoch

    def recording(self: SWA, epoch: int) -> None:
        if epoch >= self.start:
            seen.append(copy.deepcopy(self.model.state_dict()))
        original(self, epoch)

    monkeypatch.setattr(SWA, "after_epoch", recording)
    cfg = compose_cfg(*SWA_ARGS, "scheduler.swa_start=3", *cosine, "trainer.select=swa")
    history = run(cfg, tmp_path)
    steps = read_csv(tmp_path / "steps.csv")
    assert [float(r["lr"]) for r in steps] == _swa_replay(0.05, 0.02, 3, 2, 6, before)
    assert len({r["lr"] for r in steps}) > 2
    # averaged after epochs 3..6: the parameters' mean (the feedforward model has no BN)
    saved = checkpoint.load(tmp_path / checkpoint.NAME)
    average = saved["averages"]["swa"]
    assert average["updates"] == 4 == len(seen)
    for key, value in average["module"].items():
        mean = torch.stack([s[key] for s in seen]).mean(dim=0)
        torch.testing.assert_close(value, mean, rtol=1e-5, atol=1e-7)
    assert [r["val_acc_swa"] is None for r in history] == [True, True, False, False, False, False]
    events = read_csv(tmp_path / "events.csv")
    assert [(e["epoch"], e["step"], e["event"]) for e in events][-1] == ("3", "13", "switch")


def test_averages_leave_the_run_as_it_was_and_resume_bit_exact(
    compose_cfg, tmp_path: Path, monkeypatch
) -> None:
    """With BatchNorm, dropout and augmentation: EMA and SWA (update_bn walks the training
    batches) change no step of the trained model; 3 epochs resumed to 6 equal 6, averages
    included."""
    args = [*BN, *SWA_ARGS, "scheduler.swa_start=2", *EMA_ARGS, "trainer.deterministic=true"]
    run(compose_cfg(*args, "trainer.epochs=6"), tmp_path / "full")
    run(compose_cfg(*args, "trainer.epochs=3"), tmp_path / "part")
    run(
        compose_cfg(*args, "trainer.epochs=6", f"trainer.resume={tmp_path / 'part'}"),
        tmp_path / "elsewhere",
    )
    full, part = (read_csv(tmp_path / d / "metrics.csv") for d in ("full", "part"))
    assert without_time(part) == without_time(full)
    assert full[-1]["val_loss_swa"] and full[-1]["val_loss_ema"]
    assert read_csv(tmp_path / "part" / "steps.csv") == read_csv(tmp_path / "full" / "steps.csv")
    one, two = (checkpoint.load(tmp_path / d / checkpoint.NAME) for d in ("full", "part"))
    for name in ("ema", "swa"):
        for key, value in one["averages"][name]["module"].items():
            assert torch.equal(value, two["averages"][name]["module"][key]), (name, key)
    # the same run with the averages doing nothing: every step and model metric the same
    monkeypatch.setattr(SWA, "after_epoch", lambda self, epoch: None)
    monkeypatch.setattr(EMA, "after_step", lambda self, step: None)
    run(compose_cfg(*args, "trainer.epochs=6"), tmp_path / "bare")
    assert read_csv(tmp_path / "bare" / "steps.csv") == read_csv(tmp_path / "full" / "steps.csv")
    bare = read_csv(tmp_path / "bare" / "metrics.csv")
    model_columns = [c for c in full[0] if not c.endswith(("_ema", "_swa", "_time_s"))]
    assert [[r[c] for c in model_columns] for r in bare] == [
        [r[c] for c in model_columns] for r in full
    ]


def test_select_ema_is_what_best_pt_the_test_and_load_run_use(tmp_path: Path) -> None:
    """Through the CLI: metrics.csv gains val_*_ema, the best epoch is the EMA's, best.pt
    holds its weights, the test evaluates them, and lrrun.load_run returns them."""
    proc = run_cli(
        [
            "dataset=synthetic",
            "dataset.train_size=128",
            "dataset.val_size=64",
            "dataset.test_size=64",
            "trainer.batch_size=16",
            "trainer.epochs=5",
            "trainer.progress=false",
            "trainer.plot=false",
            "trainer.device=cpu",
            "trainer.ema.decay=0.8",
            "trainer.select=ema",
            "optimizer.lr=0.05",
            "hydra.run.dir=run",
        ],
        tmp_path,
    )
    assert_ok(proc)
    rows = read_csv(tmp_path / "run" / "metrics.csv")
    assert {"val_loss_ema", "val_acc_ema", "val_top5_ema"} <= set(rows[0])
    scores = [float(r["val_acc_ema"]) for r in rows]
    chosen = scores.index(max(scores)) + 1
    tested = [r for r in rows if r["test_acc"]]
    assert [int(r["epoch"]) for r in tested] == [chosen]
    out = " ".join(proc.stdout.split())
    assert f"(epoch {chosen}, the best val_acc_ema;" in out
    assert f"best val_acc_ema {max(scores):.4f} at epoch {chosen}" in out
    best = checkpoint.load(tmp_path / "run" / checkpoint.BEST)
    assert best["epoch"] == chosen and best["selected"] == "ema"
    used = lrrun.load_run(tmp_path / "run")
    for key, value in used.model.state_dict().items():
        assert torch.equal(value, best["averages"]["ema"]["module"][key])
        assert not torch.equal(value, best["model"][key]) or not value.is_floating_point()
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["data"]["select"] == "ema"
    job = load_job(tmp_path / "run")  # what sweeps and reports rank on
    assert job.task.select == "val_acc_ema" and job.test_column == "test_acc"
    assert job.best is not None and job.best["epoch"] == chosen


def test_averaging_builds_only_what_the_config_asks() -> None:
    model = nn.Linear(2, 2)
    assert averaging.build(None, None, "model", model, []) == []
    made = averaging.build((0.9, 1, True), 3, "swa", model, [])
    assert [a.name for a in made] == ["ema", "swa"]
    assert averaging.selected(made) is made[1]


INF_ONCE = '''
import torch
from torch import nn


class Spike(torch.autograd.Function):
    """Identity forward; the first backward returns inf gradients."""

    calls = 0

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        Spike.calls += 1
        return grad * float("inf") if Spike.calls == 1 else grad


class InfOnce(nn.Module):
    def __init__(self, num_classes, input_shape):
        super().__init__()
        width = 1
        for n in input_shape:
            width *= n
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(width, 16), nn.ReLU())
        self.head = nn.Linear(16, num_classes)

    def forward(self, x):
        return self.head(Spike.apply(self.body(x)))
'''


def test_fp16_skips_a_step_with_inf_gradients_as_an_event(tmp_path: Path) -> None:
    """trainer.precision=fp16 on the CPU: the gradient scaler skips the step whose gradients
    are inf (the weights stay), halves its scale, and the step is an event; the schedule
    steps after it as after any other, so every lr is torch's ExponentialLR at its step."""
    (tmp_path / "spiky.py").write_text(INF_ONCE)
    proc = run_cli(
        [
            "dataset=synthetic",
            "dataset.train_size=128",
            "dataset.val_size=64",
            "dataset.test_size=64",
            "trainer.batch_size=32",
            "trainer.epochs=2",
            "trainer.progress=false",
            "trainer.plot=false",
            "trainer.device=cpu",
            "model=custom",
            "model._target_=spiky.InfOnce",
            "trainer.precision=fp16",
            "scheduler=exponential_lr",
            "scheduler.gamma=0.9",
            "scheduler.interval=step",
            "hydra.run.dir=run",
        ],
        tmp_path,
    )
    assert_ok(proc)  # no traceback, and torch does not warn about the scheduler's order
    events = read_csv(tmp_path / "run" / "events.csv")
    skipped = [e for e in events if e["event"] == "skipped_step"]
    assert [(e["epoch"], e["step"]) for e in skipped] == [("1", "1")]
    assert "scale 65536 -> 32768" in skipped[0]["message"]
    assert "skipped_step - inf/NaN gradients" in " ".join(proc.stdout.split())
    steps = read_csv(tmp_path / "run" / "steps.csv")
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.01)
    exponential = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.9)
    replay = []
    for _ in steps:
        replay.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        exponential.step()
    assert [float(r["lr"]) for r in steps] == replay
    saved = checkpoint.load(tmp_path / "run" / checkpoint.NAME)
    assert saved["scaler"]["scale"] == 32768.0  # resumed with the scale it reached
    metrics = read_csv(tmp_path / "run" / "metrics.csv")
    assert float(metrics[-1]["train_loss"]) < 2.4  # it trains after the skip
