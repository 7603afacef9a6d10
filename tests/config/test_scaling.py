"""optimizer.lr_scaling scales the whole schedule: for a factor of 2 the lr at every step is
exactly twice the unscaled run's (a power of two scales every float operation exactly), for
every scheduler config, warm-up and param groups included; the factor of each rule."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from lrrun.config.location import config_dir
from lrrun.config.scaling import LrScaling
from lrrun.config.settings import read
from lrrun.tools.preview import simulate

SCHEDULERS = sorted(p.stem for p in (Path(config_dir()) / "scheduler").glob("*.yaml"))
# what a scheduler needs to show its absolute lrs being scaled
EXTRA = {
    "reduce_lr_on_plateau": [
        "+preview.metrics=[1,1,1,1]",
        "scheduler.patience=0",
        "scheduler.min_lr=0.002",
    ],
    "cosine_annealing_lr": ["scheduler.eta_min=0.001"],
    "hf_polynomial": ["scheduler.let.lr_end=0.001"],
}


def lrs(compose_cfg, *overrides: str) -> list[list[float]]:
    _, rows, _ = simulate(read(compose_cfg(*overrides, "trainer.epochs=4")))
    return [[v for k, v in r.items() if k.startswith("lr")] for r in rows]


@pytest.mark.parametrize("name", SCHEDULERS)
def test_the_whole_schedule_doubles(compose_cfg, name: str) -> None:
    args = [
        f"scheduler={name}",
        "trainer.batch_size=16",
        "optimizer.reference_batch=8",
        "+optimizer.param_groups=[{name:head,params:[fc2.*],lr:0.03}]",
        *EXTRA.get(name, []),
    ]
    plain = lrs(compose_cfg, *args)
    doubled = lrs(compose_cfg, *args, "optimizer.lr_scaling=linear")
    assert len(plain) == len(doubled) > 0
    assert doubled == [[2 * v for v in row] for row in plain]
    assert len(set(map(tuple, plain))) > 1 or name in ("none", "constant_lr")


def test_warm_up_and_the_processes_count(compose_cfg) -> None:
    args = [
        "scheduler=cosine_annealing_lr",
        "scheduler.warmup.steps=5",
        "scheduler.eta_min=0.001",
        "scheduler.interval=step",
        "trainer.batch_size=8",
    ]
    plain = lrs(compose_cfg, *args)
    scaled = lrs(
        compose_cfg,
        *args,
        "optimizer.lr_scaling=sqrt",
        "optimizer.reference_batch=8",
        "trainer.devices=4",
    )
    # 4 processes: each rank's shard is a quarter, so a quarter of the steps, each x sqrt(4)
    assert len(scaled) == len(plain) // 4
    assert scaled[0][0] == 2 * plain[0][0] and scaled[-1][0] > 2 * 0.001


def test_the_account_names_what_was_scaled(compose_cfg) -> None:
    settings = read(
        compose_cfg(
            "scheduler=cyclic_lr",
            "scheduler.base_lr=0.001",
            "scheduler.max_lr=0.1",
            "optimizer.lr_scaling=linear",
            "trainer.batch_size=64",
            "trainer.accumulate=2",
        )
    )
    scaled, said = settings.scaled(processes=4)
    assert said == (
        "lr 0.01 x 2 (linear, global batch 512 / 256) = 0.02; "
        "also scheduler.base_lr, scheduler.max_lr"
    )
    assert scaled.optimizer["lr"] == 0.02 and scaled.scheduler["max_lr"] == 0.2
    assert scaled.resolved == settings.resolved  # the checkpoint's plan: the config as written
    plain = read(compose_cfg())
    assert plain.scaled(processes=4) == (plain, "")


@pytest.mark.parametrize(("rule", "factor"), [("none", 1.0), ("linear", 4.0), ("sqrt", 2.0)])
def test_factors(rule: str, factor: float) -> None:
    assert LrScaling(rule, 64).factor(256) == factor
    assert math.isclose(LrScaling(rule, 256).factor(64), factor**-1)


def test_bad_values_name_the_key(compose_cfg) -> None:
    from lrrun.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        read(compose_cfg("optimizer.lr_scaling=cubic"))
    assert "optimizer.lr_scaling='cubic' is not allowed: it must be one of none, linear" in str(
        err.value
    )
    with pytest.raises(ConfigError) as err:
        read(compose_cfg("optimizer.reference_batch=0"))
    assert "optimizer.reference_batch=0" in str(err.value)
