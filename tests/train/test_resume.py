"""Checkpoints and resume: a resumed run is the run that was never interrupted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import lrrun.train.checkpoint
import lrrun.train.run_dir
import lrrun.train.runner
from lrrun.errors import ConfigError
from lrrun.train.runner import run
from tests.conftest import TINY_STEPS_PER_EPOCH, read_csv
from tests.schedule.test_nested import TWO_LEVELS

TOTAL_STEPS = 6 * TINY_STEPS_PER_EPOCH

# Schedules whose lengths are fixed in the config, so a 3-epoch run and a 6-epoch run follow
# the same curve (lengths derived from trainer.epochs would differ: see the test below).
SCHEDULES = {
    "step_lr": ["scheduler=step_lr"],
    "one_cycle_lr": ["scheduler=one_cycle_lr", f"scheduler.total_steps={TOTAL_STEPS}"],
    "cosine_annealing_warm_restarts": [
        "scheduler=cosine_annealing_warm_restarts",
        "scheduler.T_0=2",
        "scheduler.T_mult=2",
    ],
    "sequential_lr": ["scheduler=sequential_lr", "scheduler.schedulers.cosine.T_max=4"],
    # warm-up: resumed inside it (16 steps > the 12 done) and after it (6 steps)
    "warmup_inside": ["scheduler=exponential_lr", "scheduler.warmup.steps=16"],
    "warmup_after": [
        "scheduler=step_lr",
        "scheduler.warmup.steps=6",
        "scheduler.warmup.start_factor=0.5",
    ],
    # resumed after epoch 3, inside the nested ChainedScheduler (its StepLR fires at epoch 5)
    "nested_composites": TWO_LEVELS,
    "reduce_lr_on_plateau": [
        "scheduler=reduce_lr_on_plateau",
        "scheduler.patience=0",
        "scheduler.factor=0.5",
        "scheduler.monitor=train_loss",
        "scheduler.threshold=0.05",
    ],
}
COMMON = ["model=fashion_mnist_net", "trainer.deterministic=true", "optimizer.lr=0.05"]


def without_time(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in r.items() if k != "epoch_time_s"} for r in rows]


# The default run keeps one per kind (per epoch, per step, metric-driven); CI runs them all.
QUICK = ("step_lr", "one_cycle_lr", "reduce_lr_on_plateau")


@pytest.mark.parametrize(
    "schedule",
    [s if s in QUICK else pytest.param(s, marks=pytest.mark.slow) for s in SCHEDULES],
)
def test_three_epochs_resumed_to_six_equal_six(compose_cfg, tmp_path: Path, schedule) -> None:
    """steps.csv (lr and loss) and metrics.csv are identical, bit for bit (the CNN, so
    dropout's RNG has to be restored too)."""
    args = [*COMMON, *SCHEDULES[schedule]]
    run(compose_cfg(*args, "trainer.epochs=6"), tmp_path / "full")
    run(compose_cfg(*args, "trainer.epochs=3"), tmp_path / "part")
    resumed = run(
        compose_cfg(*args, "trainer.epochs=6", f"trainer.resume={tmp_path / 'part'}"),
        tmp_path / "elsewhere",  # a resume continues in the checkpoint's run dir
    )
    assert [r["epoch"] for r in resumed] == [1, 2, 3, 4, 5, 6]
    assert not (tmp_path / "elsewhere" / "metrics.csv").exists()
    full_steps, part_steps = (read_csv(tmp_path / d / "steps.csv") for d in ("full", "part"))
    assert len(part_steps) == TOTAL_STEPS
    assert part_steps == full_steps  # strings: exact floats
    lrs = {r["lr"] for r in full_steps}
    assert len(lrs) > 1, "the schedule must move in 6 epochs for this test to mean anything"
    full, part = (read_csv(tmp_path / d / "metrics.csv") for d in ("full", "part"))
    assert without_time(part) == without_time(full)
    # schedule events: those before the checkpoint kept, the rest logged after the resume
    full_events, part_events = (read_csv(tmp_path / d / "events.csv") for d in ("full", "part"))
    assert part_events == full_events
    status = json.loads((tmp_path / "part" / "status.json").read_text())
    assert (status["status"], status["epoch"], status["step"]) == ("ok", 6, TOTAL_STEPS)


def test_half_done_epoch_rows_are_dropped_and_redone(compose_cfg, tmp_path: Path) -> None:
    """A crash after epoch 3's checkpoint, in epoch 4: its rows go, epochs 1-3 stay."""
    args = [*COMMON, "scheduler=exponential_lr"]
    run(compose_cfg(*args, "trainer.epochs=5"), tmp_path / "full")
    run(compose_cfg(*args, "trainer.epochs=3"), tmp_path / "part")
    part = tmp_path / "part"
    with (part / "steps.csv").open("a") as f:
        f.write("4,13,0.5,nan\n4,14,0.5,nan\n")
    with (part / "metrics.csv").open("a") as f:
        f.write("4,0.5,1,1,1,1,1\n")
    run(compose_cfg(*args, "trainer.epochs=5", f"trainer.resume={part / 'checkpoint.pt'}"), part)
    assert read_csv(part / "steps.csv") == read_csv(tmp_path / "full" / "steps.csv")
    assert without_time(read_csv(part / "metrics.csv")) == without_time(
        read_csv(tmp_path / "full" / "metrics.csv")
    )


def test_checkpoint_contents(compose_cfg, tmp_path: Path) -> None:
    run(compose_cfg("scheduler=step_lr", "trainer.epochs=2"), tmp_path)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)  # plain values only
    assert state["epoch"] == 2 and state["step"] == 2 * TINY_STEPS_PER_EPOCH
    assert set(state) >= {"model", "optimizer", "scheduler", "rng", "best", "plan"}
    assert set(state["rng"]) == {"torch", "cuda", "numpy", "python"}
    assert state["scheduler"]["last_epoch"] == 2
    assert state["plan"]["scheduler"]["gamma"] == 0.7
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert best["epoch"] == state["best"][1]
    hidden = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert hidden == [".lrrun.lock"]  # no temp files left; the run dir's lock stays (empty)
    assert (tmp_path / ".lrrun.lock").stat().st_size == 0


def test_the_checkpoint_is_what_saved_defines(compose_cfg, tmp_path: Path) -> None:
    """checkpoint.Saved is the content's one definition: the file holds its fields (and the
    format), and a checkpoint from before a field existed reads with that field's default."""
    import dataclasses

    from lrrun.train import checkpoint

    run(compose_cfg("trainer.epochs=1"), tmp_path)
    state = checkpoint.load(tmp_path / checkpoint.NAME)
    assert set(state) == {"format"} | {f.name for f in dataclasses.fields(checkpoint.Saved)}
    saved = checkpoint.read(tmp_path / checkpoint.NAME)
    assert (
        saved.epoch == 1 and saved.weights() is saved.model and saved.state().keys() == state.keys()
    )
    old = {k: v for k, v in state.items() if k not in ("inputs", "averages", "selected", "scaler")}
    before = checkpoint.Saved.of(old)
    assert (before.inputs, before.averages, before.selected, before.scaler) == (
        None,
        {},
        "model",
        None,
    )


def test_derived_length_that_would_change_is_refused(compose_cfg, tmp_path: Path) -> None:
    """one_cycle_lr's total_steps derived for 3 epochs cannot silently become 6 epochs'."""
    run(compose_cfg("scheduler=one_cycle_lr", "trainer.epochs=3"), tmp_path)
    cfg = compose_cfg("scheduler=one_cycle_lr", "trainer.epochs=6", f"trainer.resume={tmp_path}")
    with pytest.raises(ConfigError, match=r"scheduler \(derived\)\.total_steps: 12 -> 24"):
        run(cfg, tmp_path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("scheduler=exponential_lr", r"scheduler._target_: 'torch.optim.lr_scheduler.StepLR'"),
        ("model=fashion_mnist_net", r"model._target_"),
        ("optimizer.lr=0.1", r"optimizer.lr: 0.01 -> 0.1"),
        ("trainer.batch_size=16", r"trainer.batch_size: 32 -> 16"),
    ],
)
def test_resume_with_another_config_is_an_error(compose_cfg, tmp_path: Path, change, message):
    run(compose_cfg("scheduler=step_lr", "trainer.epochs=2"), tmp_path)
    cfg = compose_cfg(change, "trainer.epochs=4", f"trainer.resume={tmp_path}")
    with pytest.raises(ConfigError, match=message) as info:
        run(cfg, tmp_path)
    assert "trainer.allow_config_change=true" in str(info.value)


def test_allowed_scheduler_change_starts_the_new_schedule(compose_cfg, tmp_path: Path) -> None:
    run(compose_cfg("scheduler=step_lr", "trainer.epochs=2"), tmp_path)
    cfg = compose_cfg(
        "scheduler=exponential_lr",
        "scheduler.gamma=0.5",
        "trainer.epochs=4",
        f"trainer.resume={tmp_path}",
        "trainer.allow_config_change=true",
    )
    history = run(cfg, tmp_path)
    assert [r["lr"] for r in history] == pytest.approx([0.01, 0.007, 0.01, 0.005])


def test_nothing_left_to_train_and_missing_checkpoint(compose_cfg, tmp_path: Path) -> None:
    run(compose_cfg("trainer.epochs=2"), tmp_path)
    with pytest.raises(ConfigError, match="nothing left to train"):
        run(compose_cfg("trainer.epochs=2", f"trainer.resume={tmp_path}"), tmp_path)
    with pytest.raises(ConfigError, match="no checkpoint there"):
        run(compose_cfg(f"trainer.resume={tmp_path / 'nope'}"), tmp_path)


def test_full_disk_is_refused_at_start(compose_cfg, tmp_path: Path, monkeypatch) -> None:
    import shutil

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(
        lrrun.train.run_dir.shutil, "disk_usage", lambda p: usage._replace(free=100_000)
    )
    with pytest.raises(ConfigError, match=r"has 0.1 MiB free; this run needs about"):
        run(compose_cfg(), tmp_path)
    assert not (tmp_path / "metrics.csv").exists()


# Every scheduler's state (LambdaLR's lr_lambda included), in plain values.
ALL_SCHEDULERS = [
    "lambda_lr",
    "multiplicative_lr",
    "step_lr",
    "multi_step_lr",
    "constant_lr",
    "linear_lr",
    "exponential_lr",
    "polynomial_lr",
    "cosine_annealing_lr",
    "cosine_annealing_warm_restarts",
    "chained_scheduler",
    "cyclic_lr",
    "one_cycle_lr",
    "reduce_lr_on_plateau",
    "none",
]


DEFAULT_RUN = ("lambda_lr", "multi_step_lr", "cyclic_lr", "reduce_lr_on_plateau", "nested")


@pytest.mark.parametrize(
    "schedule",
    [
        s if s in DEFAULT_RUN else pytest.param(s, marks=pytest.mark.slow)
        for s in [*ALL_SCHEDULERS, "nested"]
    ],
)
def test_every_checkpoint_loads_weights_only(compose_cfg, tmp_path: Path, schedule) -> None:
    args = TWO_LEVELS if schedule == "nested" else [f"scheduler={schedule}"]
    run(compose_cfg(*args, "trainer.epochs=3", "optimizer=adam"), tmp_path)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 3 and state["format"] == lrrun.train.checkpoint.FORMAT


class _Creates:
    """Unpickled unsafely, this creates a file: what a hostile checkpoint could do."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path: Path) -> None:
    from tests.conftest import TINY, run_cli

    marker = tmp_path / "pwned"
    run_dir = tmp_path / "run"
    assert run_cli([*TINY, "trainer.epochs=2", "hydra.run.dir=run"], tmp_path).returncode == 0
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    state["best"] = _Creates(marker)
    torch.save(state, run_dir / "checkpoint.pt")
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    proc = run_cli([*TINY, "trainer.epochs=4", "trainer.resume=run"], tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "checkpoint.pt holds more than tensors and plain values" in proc.stderr
    assert "weights_only=True" in proc.stderr
    assert not marker.exists()  # nothing ran
    after = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    assert after == before  # nothing overwritten


CROP_FLIP = [
    "augment=crop_flip",
    "dataset.transforms.train.0.size=8",
    "dataset.transforms.train.0.padding=2",
]
JITTER = [
    "dataset.transforms.train=[{_target_:torchvision.transforms.v2.ColorJitter,brightness:0.4}]"
]


@pytest.mark.parametrize(
    ("augment", "path"), [(CROP_FLIP, "tensor"), (JITTER, "loader")], ids=["batched", "per-sample"]
)
def test_resume_is_exact_with_your_data_and_augmentation(
    compose_cfg, tmp_path: Path, augment: list[str], path: str
) -> None:
    """An image folder, a user's model, and augmentation drawn on the device (tensor path) or
    per sample (loader path): 2 epochs resumed to 4 equal 4."""
    from tests.sources import write_folder

    root = write_folder(tmp_path / "img", classes=3, per_class=16, size=8)
    args = [
        "dataset=image_folder",
        f"dataset.root={root}",
        "dataset.val_split=6",
        "model=custom",
        "model._target_=tests.sources.TinyNet",
        "optimizer.lr=0.05",
        "trainer.batch_size=8",
        f"trainer.data_path={path}",
        *augment,
    ]
    run(compose_cfg(*args, "trainer.epochs=4", tiny=False), tmp_path / "full")
    run(compose_cfg(*args, "trainer.epochs=2", tiny=False), tmp_path / "part")
    status = json.loads((tmp_path / "part" / "status.json").read_text())
    run(
        compose_cfg(*args, "trainer.epochs=4", f"trainer.resume={tmp_path / 'part'}", tiny=False),
        tmp_path / "elsewhere",
    )
    assert read_csv(tmp_path / "part" / "steps.csv") == read_csv(tmp_path / "full" / "steps.csv")
    full, part = (read_csv(tmp_path / d / "metrics.csv") for d in ("full", "part"))
    assert without_time(part) == without_time(full)
    assert status["data"]["train"] == 42 and len(read_csv(tmp_path / "full" / "steps.csv")) == 4 * 6
    header = (tmp_path / "full" / "status.json").read_text()
    assert json.loads(header)["data"]["model_args"] == {"num_classes": 3, "in_channels": 3}
