"""The schedules papers and libraries cite, as named configs, against an independent replay of
their published formula at every optimizer step (1e-12 relative): transformers' own
get_*_schedule functions for Hugging Face's family and WSD, the Annotated Transformer's rate()
for Noam, the paper's rule for Goyal et al.'s warm-up."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from lrrun.config.settings import read
from lrrun.tools.preview import simulate
from lrrun.train.runner import run
from tests.conftest import TINY_STEPS_PER_EPOCH, read_csv

EPOCHS = 6
TOTAL = EPOCHS * TINY_STEPS_PER_EPOCH  # 24 optimizer steps
LR = 0.01


def replay(make, steps: int = TOTAL, lr: float = LR) -> list[float]:
    """The lr a torch LambdaLR built by ``make(optimizer)`` gives at each step."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = make(opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def hf(name: str, **kwargs):
    import transformers

    return lambda opt: getattr(transformers, name)(opt, **kwargs)


def preview(compose_cfg, *overrides: str) -> list[float]:
    _, rows, _ = simulate(read(compose_cfg(*overrides, f"trainer.epochs={EPOCHS}")))
    return [r["lr"] for r in rows]


W = 5
CASES = {
    "hf_linear": (
        [f"scheduler.let.warmup_steps={W}"],
        hf("get_linear_schedule_with_warmup", num_warmup_steps=W, num_training_steps=TOTAL),
    ),
    "hf_linear-ratio": (
        ["scheduler.let.warmup_ratio=0.3"],  # ceil(0.3 x 24) = 8
        hf("get_linear_schedule_with_warmup", num_warmup_steps=8, num_training_steps=TOTAL),
    ),
    "hf_cosine": (
        [f"scheduler.let.warmup_steps={W}"],
        hf("get_cosine_schedule_with_warmup", num_warmup_steps=W, num_training_steps=TOTAL),
    ),
    "hf_cosine_with_restarts": (
        [f"scheduler.let.warmup_steps={W}", "scheduler.let.cycles=3"],
        hf(
            "get_cosine_with_hard_restarts_schedule_with_warmup",
            num_warmup_steps=W,
            num_training_steps=TOTAL,
            num_cycles=3,
        ),
    ),
    "hf_polynomial": (
        [
            f"scheduler.let.warmup_steps={W}",
            "scheduler.let.power=2.0",
            "scheduler.let.lr_end=0.001",
        ],
        hf(
            "get_polynomial_decay_schedule_with_warmup",
            num_warmup_steps=W,
            num_training_steps=TOTAL,
            lr_end=0.001,
            power=2.0,
        ),
    ),
    "hf_constant_with_warmup": (
        [f"scheduler.let.warmup_steps={W}"],
        hf("get_constant_schedule_with_warmup", num_warmup_steps=W),
    ),
    "hf_inverse_sqrt": (
        [f"scheduler.let.warmup_steps={W}"],
        hf("get_inverse_sqrt_schedule", num_warmup_steps=W),
    ),
    **{
        f"wsd-{shape}": (
            [
                f"scheduler.let.warmup_steps={W}",
                "scheduler.let.cooldown_ratio=0.25",
                f"scheduler.let.decay={shape}",
                "scheduler.let.min_ratio=0.1",
            ],
            hf(
                "get_wsd_schedule",
                num_warmup_steps=W,
                num_decay_steps=6,
                num_training_steps=TOTAL,
                decay_type=shape,
                min_lr_ratio=0.1,
            ),
        )
        for shape in ("linear", "cosine", "1-sqrt")
    },
}


@pytest.mark.parametrize("case", list(CASES))
def test_cited_schedule_follows_its_source(compose_cfg, case: str) -> None:
    overrides, oracle = CASES[case]
    logged = preview(compose_cfg, f"scheduler={case.split('-')[0]}", *overrides)
    assert logged == pytest.approx(replay(oracle), rel=1e-12, abs=0)
    assert len(set(logged)) > 3  # the schedule moves in this run


def test_noam_is_the_transformers_rate(compose_cfg) -> None:
    def rate(step: int, model_size: int, factor: float, warmup: int) -> float:
        """The Annotated Transformer's learning-rate function, verbatim."""
        if step == 0:
            step = 1
        return factor * (model_size ** (-0.5) * min(step ** (-0.5), step * warmup ** (-1.5)))

    logged = preview(
        compose_cfg,
        "scheduler=noam",
        "scheduler.let.warmup_steps=10",
        "scheduler.let.d_model=64",
        "optimizer.lr=1.0",
    )
    assert logged == pytest.approx([rate(t, 64, 1.0, 10) for t in range(TOTAL)], rel=1e-12)
    assert max(logged) == logged[10]  # the peak: at the end of the warm-up


def test_goyal_gradual_warmup_and_step_decay(compose_cfg) -> None:
    """Five epochs rising linearly per step from lr x start_factor (256 / batch) to lr, then
    x0.1 at the milestones."""
    logged = preview(
        compose_cfg,
        "scheduler=goyal",
        "scheduler.warmup.epochs=2",
        "scheduler.milestones=[3,5]",
        "scheduler.warmup.start_factor=0.25",
    )
    warm = 2 * TINY_STEPS_PER_EPOCH
    expected = []
    for k in range(1, TOTAL + 1):
        epoch = (k - 1) // TINY_STEPS_PER_EPOCH + 1
        w = 0.25 + 0.75 * (k - 1) / warm if k <= warm else 1.0
        expected.append(LR * 0.1 ** sum(epoch > m for m in (3, 5)) * w)
    assert logged == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("name", ["hf_cosine", "wsd", "noam"])
def test_preview_equals_training(compose_cfg, tmp_path: Path, name: str) -> None:
    args = [f"scheduler={name}", f"trainer.epochs={EPOCHS}", "scheduler.let.warmup_steps=5"]
    run(compose_cfg(*args), tmp_path)
    trained = [float(r["lr"]) for r in read_csv(tmp_path / "steps.csv")]
    assert trained == preview(compose_cfg, *args[:1], *args[2:])


def test_the_derived_names_are_shown_and_refused_when_wrong(compose_cfg) -> None:
    from lrrun.errors import ConfigError

    with pytest.raises(ConfigError, match=r"scheduler.let.warmup_ratio=1.5 is not allowed"):
        read(compose_cfg("scheduler=hf_linear", "scheduler.let.warmup_ratio=1.5"))
    with pytest.raises(ConfigError, match=r"unknown name 'wramup'.*names: .*warmup"):
        read(compose_cfg("scheduler=hf_linear", "scheduler.lr_lambda='epoch / wramup'"))
    with pytest.raises(ConfigError, match=r"^scheduler: .*quadratic"):
        read(compose_cfg("scheduler=wsd", "scheduler.let.decay=quadratic"))
    assert math.isfinite(preview(compose_cfg, "scheduler=hf_linear")[-1])
