"""Property-based: for generated valid scheduler configs the runner's logged lr equals torch's
own scheduler replayed on a dummy parameter; generated invalid values are rejected before
any training (hypothesis)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import pytest
import torch
import torch.optim.lr_scheduler as lrs
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from lrrun.config.location import config_dir
from lrrun.errors import ConfigError
from lrrun.train.runner import run
from tests.conftest import TINY, TINY_STEPS_PER_EPOCH, read_csv

EPOCHS = 4
SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@contextmanager
def composer() -> Iterator[Any]:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        yield lambda *o: compose(config_name="config", overrides=[*TINY, *o])
    GlobalHydra.instance().clear()


def floats(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False).map(lambda x: round(x, 6))


# (config choice, torch class, kwargs strategy); lengths explicit so the oracle needs no rules.
SCHEDULES = st.one_of(
    st.tuples(
        st.just("step_lr"),
        st.just(lrs.StepLR),
        st.fixed_dictionaries({"step_size": st.integers(1, 5), "gamma": floats(0.01, 1.5)}),
    ),
    st.tuples(
        st.just("multi_step_lr"),
        st.just(lrs.MultiStepLR),
        st.fixed_dictionaries(
            {
                "milestones": st.lists(st.integers(1, 30), min_size=1, max_size=4, unique=True).map(
                    sorted
                ),
                "gamma": floats(0.01, 1.0),
            }
        ),
    ),
    st.tuples(
        st.just("exponential_lr"),
        st.just(lrs.ExponentialLR),
        st.fixed_dictionaries({"gamma": floats(0.5, 1.0)}),
    ),
    st.tuples(
        st.just("cosine_annealing_lr"),
        st.just(lrs.CosineAnnealingLR),
        st.fixed_dictionaries({"T_max": st.integers(1, 20), "eta_min": floats(0, 1e-3)}),
    ),
    st.tuples(
        st.just("cosine_annealing_warm_restarts"),
        st.just(lrs.CosineAnnealingWarmRestarts),
        st.fixed_dictionaries(
            {
                "T_0": st.integers(1, 6),
                "T_mult": st.integers(1, 3),
                "eta_min": floats(0, 1e-3),
            }
        ),
    ),
    st.tuples(
        st.just("linear_lr"),
        st.just(lrs.LinearLR),
        st.fixed_dictionaries(
            {
                "start_factor": floats(0.01, 1.0),
                "end_factor": floats(0.0, 1.0),
                "total_iters": st.integers(1, 20),
            }
        ),
    ),
    st.tuples(
        st.just("one_cycle_lr"),
        st.just(lrs.OneCycleLR),
        st.fixed_dictionaries(
            {
                "max_lr": floats(0.001, 1.0),
                "pct_start": floats(0.05, 0.95),
                "total_steps": st.integers(EPOCHS * TINY_STEPS_PER_EPOCH, 40),
                "div_factor": floats(1.0, 100.0),
                "anneal_strategy": st.sampled_from(["cos", "linear"]),
            }
        ),
    ),
)


def override(key: str, value: Any) -> str:
    return f"scheduler.{key}={list(value) if isinstance(value, list) else value}"


@SETTINGS
@given(schedule=SCHEDULES, interval=st.sampled_from(["epoch", "step"]))
def test_logged_lr_equals_torch(schedule: tuple[str, type, dict[str, Any]], interval: str) -> None:
    name, cls, kwargs = schedule
    if name == "one_cycle_lr":
        interval = "step"  # total_steps counts optimizer steps
        # torch divides by zero when the rising phase ends at step 0 (lrrun refuses it:
        # tests/test_cli.py); the property holds for the schedules torch can compute
        assume(kwargs["pct_start"] * kwargs["total_steps"] != 1)
    overrides = [f"scheduler={name}", f"scheduler.interval={interval}", f"trainer.epochs={EPOCHS}"]
    overrides += [override(k, v) for k, v in kwargs.items()]
    with composer() as cfg_for, TemporaryDirectory() as tmp:
        run(cfg_for(*overrides), Path(tmp))
        logged = [float(r["lr"]) for r in read_csv(Path(tmp) / "steps.csv")]
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01, momentum=0.9)
    oracle = cls(opt, **kwargs)
    expected = []
    for _ in range(EPOCHS):
        for _ in range(TINY_STEPS_PER_EPOCH):
            expected.append(opt.param_groups[0]["lr"])
            opt.step()
            if interval == "step":
                oracle.step()
        if interval == "epoch":
            oracle.step()
    assert logged == pytest.approx(expected, rel=1e-12, abs=0)


INVALID = st.one_of(
    st.tuples(st.just("optimizer.lr"), st.floats(-10, 0)),
    st.tuples(st.just("optimizer.momentum"), st.one_of(st.floats(-5, -1e-6), st.floats(1, 5))),
    st.tuples(st.just("scheduler.gamma"), st.floats(-5, 0)),
    st.tuples(st.just("scheduler.step_size"), st.integers(-5, 0)),
    st.tuples(st.just("trainer.epochs"), st.integers(-5, 0)),
    st.tuples(st.just("trainer.batch_size"), st.integers(-5, 0)),
    st.tuples(
        st.just("optimizer.betas"),
        st.tuples(floats(0, 0.99), st.one_of(floats(1.0, 2.0), floats(-1.0, -0.01))).map(list),
    ),
    st.tuples(
        st.just("scheduler.milestones"),
        st.lists(st.integers(-3, 10), min_size=2, max_size=4).filter(
            lambda m: any(b <= a for a, b in itertools.pairwise(m)) or min(m) < 1
        ),
    ),
    st.tuples(st.just("scheduler.T_0"), st.integers(-3, 0)),
)
GROUP_FOR = {
    "optimizer.betas": "optimizer=adam",
    "scheduler.milestones": "scheduler=multi_step_lr",
    "scheduler.T_0": "scheduler=cosine_annealing_warm_restarts",
}


@SETTINGS
@given(bad=INVALID)
def test_invalid_values_are_rejected_before_training(bad: tuple[str, Any]) -> None:
    key, value = bad
    choice = GROUP_FOR.get(key, "scheduler=step_lr")
    with composer() as cfg_for, TemporaryDirectory() as tmp:
        cfg = cfg_for(choice, f"{key}={value}")
        with pytest.raises(ConfigError, match=f"{key}=") as info:
            run(cfg, Path(tmp))
        assert list(Path(tmp).iterdir()) == []  # nothing written: rejected before any work
    assert "is not allowed: it must be" in str(info.value)
