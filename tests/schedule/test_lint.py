"""Plan lint: each warning fires for the case it names, and not for the defaults."""

from __future__ import annotations

import pytest
import torch

from lrrun.config.settings import read
from lrrun.schedule.build import build_scheduler
from lrrun.schedule.lint import lint
from lrrun.train.parts import build_model, build_optimizer
from tests.conftest import TINY_STEPS_PER_EPOCH
from tests.sources import facts_of

CASES = [
    (["scheduler=cosine_annealing_lr", "scheduler.T_max=3"], "climbs back up the cosine"),
    (["scheduler=cosine_annealing_lr", "scheduler.T_max=12"], "never reaches eta_min"),
    (["scheduler=one_cycle_lr", "scheduler.total_steps=100"], "before the final anneal"),
    (["scheduler=cyclic_lr", "scheduler.step_size_up=20"], "training ends mid-cycle"),
    (["scheduler=multi_step_lr", "scheduler.milestones=[2,6,9]"], "[6, 9] lie at or past the end"),
    (["scheduler=step_lr", "scheduler.step_size=6"], "the lr never changes"),
    (["scheduler=linear_lr", "scheduler.total_iters=12"], "the ramp stops at 50%"),
    (["scheduler=cosine_annealing_warm_restarts", "scheduler.T_0=6"], "there is no restart"),
    (["scheduler=reduce_lr_on_plateau", "scheduler.patience=5"], "can never be reduced"),
    (["scheduler=one_cycle_lr", "scheduler.interval=epoch"], "meant to step per batch"),
    (
        ["scheduler=exponential_lr", "scheduler.gamma=0.5", "scheduler.interval=step"],
        "Did you mean scheduler.interval=epoch?",
    ),
    (["scheduler=step_lr", "scheduler.warmup.epochs=7"], "the lr never reaches the schedule"),
    (  # one_cycle's rise: pct_start 0.3 x 24 steps = 7
        ["scheduler=one_cycle_lr", "scheduler.warmup.steps=8"],
        "longer than OneCycleLR's own rise (7 steps)",
    ),
    (["scheduler=cyclic_lr", "scheduler.warmup.steps=7"], "longer than CyclicLR's own rise (6"),
]


def warnings_for(compose_cfg, *overrides: str) -> list[str]:
    s = read(compose_cfg(*overrides))
    model, _ = build_model(s.model, facts_of(10, (1, 28, 28)))
    optimizer = build_optimizer(s.optimizer, s.param_groups, model)
    stepping = build_scheduler(s.scheduler, optimizer, s.trainer.epochs, TINY_STEPS_PER_EPOCH)
    return lint(stepping, s.trainer.epochs, TINY_STEPS_PER_EPOCH)


@pytest.mark.parametrize(("overrides", "message"), CASES, ids=[" ".join(o) for o, _ in CASES])
def test_warning(compose_cfg, overrides: list[str], message: str) -> None:
    found = warnings_for(compose_cfg, *overrides)
    assert any(message in w for w in found), found


@pytest.mark.parametrize(
    "choice",
    [
        "step_lr",
        "cosine_annealing_lr",
        "one_cycle_lr",
        "cyclic_lr",
        "sequential_lr",
        "exponential_lr",
        "linear_lr",
        "polynomial_lr",
        "cosine_annealing_warm_restarts",
        "reduce_lr_on_plateau",
    ],
)
def test_derived_defaults_are_clean(compose_cfg, choice: str) -> None:
    """With null (derived) lengths and 6 epochs, nothing to warn about."""
    torch.manual_seed(0)
    assert warnings_for(compose_cfg, f"scheduler={choice}") == []
    # a warm-up within the run and within a one_cycle/cyclic rise is fine too
    assert warnings_for(compose_cfg, f"scheduler={choice}", "scheduler.warmup.steps=4") == []
