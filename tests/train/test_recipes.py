"""Recipes: accumulation, clipping, the loss and mixing, top-5, weight decay where it belongs,
schedule-free optimizers - each checked for what the schedule and the logs see."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from lrrun.config.settings import read
from lrrun.tasks.classification import ClassMeter
from lrrun.tools.preview import simulate
from lrrun.train.assembly import assemble
from lrrun.train.runner import run
from tests.conftest import TINY, assert_ok, read_csv, run_cli
from tests.schedule.test_cited import replay

CPU = torch.device("cpu")


def lrs(path: Path) -> list[float]:
    return [float(r["lr"]) for r in read_csv(path / "steps.csv")]


def one_cycle(steps: int, max_lr: float = 0.01) -> list[float]:
    """torch's OneCycleLR over ``steps`` optimizer steps."""
    OneCycleLR = torch.optim.lr_scheduler.OneCycleLR
    return replay(lambda opt: OneCycleLR(opt, max_lr=max_lr, total_steps=steps), steps, max_lr)


# --- accumulation -----------------------------------------------------------------------------


def test_accumulation_halves_the_optimizer_steps_and_the_schedule_counts_them(
    compose_cfg, tmp_path: Path
) -> None:
    """Batch 16 with accumulate=2: 4 optimizer steps per epoch (8 batches), not 8 - the
    per-step OneCycleLR, its derived total_steps and the preview all count optimizer steps."""
    args = ["scheduler=one_cycle_lr", "trainer.batch_size=16", "trainer.epochs=3"]
    run(compose_cfg(*args), tmp_path / "n1")
    run(compose_cfg(*args, "trainer.accumulate=2"), tmp_path / "n2")
    assert len(lrs(tmp_path / "n1")) == 24 and len(lrs(tmp_path / "n2")) == 12
    assert lrs(tmp_path / "n2") == pytest.approx(one_cycle(12), rel=1e-12, abs=0)
    _, rows, spe = simulate(read(compose_cfg(*args, "trainer.accumulate=2")))
    assert spe == 4 and [r["lr"] for r in rows] == lrs(tmp_path / "n2")


def test_accumulating_two_batches_trains_like_one_twice_as_large(compose_cfg, tmp_path) -> None:
    """Each loss over the group's size: 2 x 16 accumulated is the gradient of 32 (the same
    samples in the same order), so the runs agree to float rounding."""
    common = ["model.hidden_dim=16", "trainer.epochs=2", "optimizer.momentum=0"]
    run(compose_cfg(*common, "trainer.batch_size=32"), tmp_path / "b32")
    run(compose_cfg(*common, "trainer.batch_size=16", "trainer.accumulate=2"), tmp_path / "acc")
    big, acc = (read_csv(tmp_path / d / "steps.csv") for d in ("b32", "acc"))
    assert len(big) == len(acc) == 8
    torch.testing.assert_close(
        torch.tensor([float(r["loss"]) for r in acc]),
        torch.tensor([float(r["loss"]) for r in big]),
        rtol=1e-5,
        atol=1e-6,
    )


def test_the_last_partial_group_is_stepped(compose_cfg, tmp_path: Path) -> None:
    """4 batches, accumulate=3: a group of 3 and a group of 1, both stepped."""
    run(compose_cfg("trainer.accumulate=3", "trainer.epochs=2"), tmp_path)
    steps = read_csv(tmp_path / "steps.csv")
    assert [(int(r["epoch"]), int(r["step"])) for r in steps] == [(1, 1), (1, 2), (2, 3), (2, 4)]


def test_find_lr_steps_over_groups(tmp_path: Path) -> None:
    proc = run_cli(
        [
            *TINY,
            "trainer.accumulate=2",
            "find_lr.steps=6",
            "find_lr.plot=false",
            "hydra.run.dir=find",
        ],
        tmp_path,
        prog="lrrun-find-lr",
    )
    assert_ok(proc)
    assert len(read_csv(tmp_path / "find" / "find_lr.csv")) == 6


# --- clipping and grad_norm -------------------------------------------------------------------


def test_clipping_logs_the_norm_before_clipping_and_bounds_the_update(
    compose_cfg, tmp_path
) -> None:
    args = ["optimizer.momentum=0", "trainer.epochs=1", "scheduler=none"]
    run(compose_cfg(*args, "trainer.log_grad_norm=true"), tmp_path / "free")
    run(compose_cfg(*args, "trainer.clip_grad_norm=0.05"), tmp_path / "clip")
    free, clip = (read_csv(tmp_path / d / "steps.csv") for d in ("free", "clip"))
    assert free[0]["grad_norm"] == clip[0]["grad_norm"]  # the same first gradient, before clipping
    assert float(free[0]["grad_norm"]) > 0.05 and free[1]["loss"] != clip[1]["loss"]
    saved = torch.load(tmp_path / "clip" / "checkpoint.pt", weights_only=True)["model"]
    torch.manual_seed(42)  # the same initial weights as the run (trainer.seed)
    settings = read(compose_cfg(*args, "trainer.clip_grad_norm=0.05"))
    initial = assemble(settings, CPU).model.state_dict()
    moved = math.sqrt(sum(((saved[k] - initial[k]) ** 2).sum().item() for k in saved))
    assert moved <= 4 * 0.01 * 0.05 * (1 + 1e-5)  # 4 steps, each at most lr x max_norm
    assert "grad_norm" not in read_csv(tmp_path / "free" / "metrics.csv")[0]


def test_value_clipping_and_no_column_by_default(compose_cfg, tmp_path: Path) -> None:
    run(compose_cfg("trainer.clip_grad_value=0.001", "trainer.epochs=1"), tmp_path / "value")
    assert float(read_csv(tmp_path / "value" / "steps.csv")[0]["grad_norm"]) > 0
    run(compose_cfg("trainer.epochs=1"), tmp_path / "plain")
    assert "grad_norm" not in read_csv(tmp_path / "plain" / "steps.csv")[0]


# --- loss, mixing, top-5 ----------------------------------------------------------------------


def test_label_smoothing_trains_and_evaluation_stays_plain(compose_cfg) -> None:
    settings = read(compose_cfg("loss.label_smoothing=0.1"))
    recipe = assemble(settings, CPU).recipe
    logits, targets = torch.randn(8, 10), torch.arange(8)
    assert recipe.criterion(logits, targets) == F.cross_entropy(
        logits, targets, label_smoothing=0.1
    )


def test_mixing_stops_at_off_epoch_and_accuracy_uses_hard_labels(compose_cfg) -> None:
    settings = read(compose_cfg("mix=mixup", "mix.off_epoch=3", "mix.alpha=0.4"))
    recipe = assemble(settings, CPU).recipe
    images, labels = torch.randn(8, 1, 28, 28), torch.arange(8) % 10
    mixed, soft = recipe.mixed(images, labels, epoch=2)
    assert soft.shape == (8, 10) and not torch.equal(mixed, images)  # num_classes from the data
    assert recipe.mixed(images, labels, epoch=3) == (images, labels)
    meter = ClassMeter()
    meter.add(torch.eye(10)[:8] * 5, labels, torch.tensor(0.0))  # logits right on the hard labels
    assert meter.means()["acc"] == 1.0


@pytest.mark.parametrize("mix", ["mixup", "cutmix", "mixup_cutmix"])
def test_mixed_runs_resume_exactly(compose_cfg, tmp_path: Path, mix: str) -> None:
    """The mixing draws come from torch's generator, which checkpoints hold."""
    args = [f"mix={mix}", "model=fashion_mnist_net", "optimizer.lr=0.05"]
    run(compose_cfg(*args, "trainer.epochs=4"), tmp_path / "full")
    run(compose_cfg(*args, "trainer.epochs=2"), tmp_path / "part")
    run(compose_cfg(*args, "trainer.epochs=4", f"trainer.resume={tmp_path / 'part'}"), tmp_path)
    assert read_csv(tmp_path / "part" / "steps.csv") == read_csv(tmp_path / "full" / "steps.csv")


def test_top5_accuracy() -> None:
    logits = torch.tensor([[9.0, 8, 7, 6, 5, 4], [0, 1, 2, 3, 4, 9], [9, 1, 1, 1, 1, 0]])
    meter = ClassMeter(top5=True)
    meter.add(logits, torch.tensor([4, 0, 5]), torch.tensor(0.0))
    means = meter.means()
    assert (means["acc"], means["top5"]) == (0.0, 1 / 3)  # 4 is in row 0's top five; 0 and 5 last


def test_top5_columns_only_with_more_than_five_classes(tmp_path: Path) -> None:
    from tests.sources import write_npz

    write_npz(tmp_path / "d.npz", n=60, n_classes=4)
    proc = run_cli(
        [
            "dataset=tensors",
            "dataset.path=d.npz",
            "model=custom",
            "model._target_=tests.sources.TinyNet",
            "trainer.epochs=1",
            "trainer.progress=false",
            "hydra.run.dir=four",
        ],
        tmp_path,
    )
    assert_ok(proc)
    assert "val_top5" not in read_csv(tmp_path / "four" / "metrics.csv")[0]
    proc = run_cli([*TINY, "trainer.epochs=1", "hydra.run.dir=ten"], tmp_path)
    assert "val_top5" in read_csv(tmp_path / "ten" / "metrics.csv")[0]


# --- weight decay where it belongs ------------------------------------------------------------


def test_no_decay_groups_compose_with_param_groups(compose_cfg, tmp_path: Path) -> None:
    args = [
        "optimizer=adamw",
        "optimizer.no_decay=[bias]",
        "+optimizer.param_groups=[{name:head,params:[fc2.*],lr:0.002}]",
    ]
    optimizer = assemble(read(compose_cfg(*args)), CPU).optimizer
    got = [
        (g["name"], g["weight_decay"], g["lr"], sum(p.numel() for p in g["params"]))
        for g in optimizer.param_groups
    ]
    assert got == [
        ("default", 0.01, 0.001, 78_400),
        ("default_no_decay", 0.0, 0.001, 100),
        ("head", 0.01, 0.002, 1_000),
        ("head_no_decay", 0.0, 0.002, 10),
    ]
    run(compose_cfg(*args, "trainer.epochs=1"), tmp_path)
    assert list(read_csv(tmp_path / "steps.csv")[0])[:6] == [
        "epoch",
        "step",
        "lr",
        "lr_1",
        "lr_2",
        "lr_3",
    ]


def test_no_decay_norm_and_1d_rules(compose_cfg) -> None:
    settings = read(
        compose_cfg(
            "model=custom", "model._target_=tests.sources.NormNet", "optimizer.no_decay=[norm]"
        )
    )
    groups = {g["name"]: g for g in assemble(settings, CPU).optimizer.param_groups}
    assert (
        sum(p.numel() for p in groups["default_no_decay"]["params"]) == 2 * 8
    )  # BN's scale, shift
    settings = read(
        compose_cfg(
            "model=custom", "model._target_=tests.sources.NormNet", "optimizer.no_decay=[1d]"
        )
    )
    groups = {g["name"]: g for g in assemble(settings, CPU).optimizer.param_groups}
    assert all(p.dim() <= 1 for p in groups["default_no_decay"]["params"])
    assert all(p.dim() > 1 for p in groups["default"]["params"])


# --- schedule-free ----------------------------------------------------------------------------


def test_schedule_free_logs_the_lr_its_step_used_and_resumes_exactly(compose_cfg, tmp_path) -> None:
    """Its own warm-up: lr x min(1, (k + 1) / warmup_steps) at the k-th step."""
    args = [
        "optimizer=sgd_schedule_free",
        "optimizer.lr=0.5",
        "optimizer.warmup_steps=6",
        "scheduler=none",
    ]
    run(compose_cfg(*args, "trainer.epochs=4"), tmp_path / "full")
    assert lrs(tmp_path / "full") == pytest.approx(
        [0.5 * min(1.0, (k + 1) / 6) for k in range(16)], rel=1e-12, abs=0
    )
    _, rows, _ = simulate(read(compose_cfg(*args, "trainer.epochs=4")))
    assert [r["lr"] for r in rows] == lrs(tmp_path / "full")
    saved = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)
    assert saved["optimizer"]["param_groups"][0]["train_mode"] is False  # eval weights saved
    run(compose_cfg(*args, "trainer.epochs=2"), tmp_path / "part")
    run(compose_cfg(*args, "trainer.epochs=4", f"trainer.resume={tmp_path / 'part'}"), tmp_path)
    assert read_csv(tmp_path / "part" / "steps.csv") == read_csv(tmp_path / "full" / "steps.csv")
    full = read_csv(tmp_path / "full" / "metrics.csv")
    assert [r["val_acc"] for r in read_csv(tmp_path / "part" / "metrics.csv")] == [
        r["val_acc"] for r in full
    ]


def test_schedule_free_refuses_a_schedule_and_names_the_extra(tmp_path: Path, monkeypatch) -> None:
    proc = run_cli(
        [*TINY, "optimizer=adamw_schedule_free", "scheduler=step_lr", "hydra.run.dir=run"], tmp_path
    )
    assert proc.returncode == 2 and "is schedule-free: it replaces the schedule" in proc.stderr
    assert "Use scheduler=none" in proc.stderr and "Traceback" not in proc.stderr
    import importlib.util

    from lrrun.config.settings import read as read_settings
    from lrrun.errors import ConfigError

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "schedulefree" else real(name, *a),
    )
    from hydra import compose, initialize_config_dir

    from lrrun.config.location import config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("config", overrides=["optimizer=sgd_schedule_free", "scheduler=none"])
    with pytest.raises(ConfigError, match=r"pip install 'lrrun\[schedulefree\]'"):
        read_settings(cfg)


# --- bad values -------------------------------------------------------------------------------

BAD = [
    (["trainer.accumulate=0"], "trainer.accumulate=0 is not allowed: it must be an integer >= 1"),
    (
        ["trainer.clip_grad_norm=-1"],
        "trainer.clip_grad_norm=-1 is not allowed: it must be a number > 0, or null (off)",
    ),
    (["trainer.clip_grad_norm=1", "trainer.clip_grad_value=1"], "are both set: clip one way"),
    (["trainer.log_grad_norm=yes"], "trainer.log_grad_norm='yes' is not allowed"),
    (
        ["loss.label_smoothing=1.5"],
        "loss.label_smoothing=1.5 is not allowed: it must be a number in [0, 1)",
    ),
    (["loss._target_=torch.nn.NoSuchLoss"], "loss could not be built from 'torch.nn.NoSuchLoss'"),
    (["mix=mixup", "mix.off_epoch=0"], "mix.off_epoch=0 is not allowed"),
    (["mix=cutmix", "mix.alpha=-1"], "mix.alpha=-1 is not allowed: it must be a number > 0"),
    (["optimizer.no_decay=bias"], "optimizer.no_decay='bias' must be a list of rules"),
    (
        ["optimizer.no_decay=[zzz*]"],
        "optimizer.no_decay: 'zzz*' matches no parameter of FeedForward",
    ),
    (
        ["scheduler=hf_cosine", "scheduler.let.warmup_ratio=2"],
        "scheduler.let.warmup_ratio=2 is not allowed",
    ),
    (
        ["scheduler=hf_linear", "scheduler.let.warmup_steps=-3"],
        "scheduler.let.warmup_steps=-3 is not allowed",
    ),
]


@pytest.mark.parametrize(("overrides", "message"), BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_recipe_values_are_one_clear_message(tmp_path: Path, overrides, message) -> None:
    proc = run_cli([*TINY, *overrides, "hydra.run.dir=run"], tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert message in " ".join(proc.stderr.split()), proc.stderr
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["status"] == "failed" and not (tmp_path / "run" / "metrics.csv").exists()


# --- together, through the CLI ----------------------------------------------------------------


def test_resume_is_exact_with_accumulation_and_clipping(compose_cfg, tmp_path: Path) -> None:
    """3 batches per step (groups of 3 and 1 per epoch), clipped, a per-step schedule: 2
    epochs resumed to 4 equal 4, steps.csv (lr, loss, grad_norm) to the bit."""
    args = [
        "model=fashion_mnist_net",
        "scheduler=one_cycle_lr",
        "scheduler.total_steps=8",
        "trainer.accumulate=3",
        "trainer.clip_grad_norm=0.5",
        "optimizer.lr=0.05",
    ]
    run(compose_cfg(*args, "trainer.epochs=4"), tmp_path / "full")
    run(compose_cfg(*args, "trainer.epochs=2"), tmp_path / "part")
    run(compose_cfg(*args, "trainer.epochs=4", f"trainer.resume={tmp_path / 'part'}"), tmp_path)
    full = read_csv(tmp_path / "full" / "steps.csv")
    assert read_csv(tmp_path / "part" / "steps.csv") == full and len(full) == 8
    assert lrs(tmp_path / "full") == pytest.approx(one_cycle(8, 0.05), rel=1e-12, abs=0)


def test_a_whole_recipe_through_the_cli(tmp_path: Path) -> None:
    """Accumulation, clipping, label smoothing, MixUp, no decay on biases and a cited
    schedule at once: the lr of every optimizer step is transformers' cosine with warm-up over
    the run's optimizer steps (not its batches)."""
    import transformers

    args = [
        *TINY,
        "trainer.epochs=5",
        "trainer.batch_size=16",
        "trainer.accumulate=3",
        "trainer.clip_grad_norm=1.0",
        "loss.label_smoothing=0.1",
        "mix=mixup",
        "mix.off_epoch=4",
        "optimizer=adamw",
        "optimizer.no_decay=[bias]",
        "scheduler=hf_cosine",
        "scheduler.let.warmup_steps=3",
        "hydra.run.dir=run",
    ]
    proc = run_cli(args, tmp_path)
    assert_ok(proc)
    out = " ".join(proc.stdout.split())
    assert (
        "recipe accumulate 3 batches per optimizer step (batch 48); clip_grad_norm 1.0; "
        "loss CrossEntropyLoss label_smoothing=0.1; mix MixUp until epoch 3"
    ) in out
    steps = read_csv(tmp_path / "run" / "steps.csv")
    assert len(steps) == 5 * 3  # 8 batches per epoch -> groups of 3, 3, 2
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=0.001)
    sched = transformers.get_cosine_schedule_with_warmup(opt, 3, 15)
    expected = []
    for _ in steps:
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    for column in ("lr", "lr_1"):  # default and default_no_decay follow the same schedule
        assert [float(r[column]) for r in steps] == pytest.approx(expected, rel=1e-12, abs=0)
    assert all(float(r["grad_norm"]) > 0 for r in steps)
