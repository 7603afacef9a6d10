"""The lr logged by real CLI runs equals torch's own scheduler replayed on a dummy parameter.

Three multiruns (one process each) cover every scheduler in its default interval and, where
it makes sense, in the other one. The oracle below builds each torch class directly, with
the derived lengths computed here, independently of lrrun's builder.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.optim.lr_scheduler as lrs
import yaml
from hydra.utils import instantiate

from lrrun.config.settings import OWN_OPTIMIZER_KEYS
from tests.conftest import TINY, TINY_STEPS_PER_EPOCH, assert_ok, read_csv, run_cli

EPOCH_DEFAULT = [
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
    "sequential_lr",
    "chained_scheduler",
]
STEP_DEFAULT = ["cyclic_lr", "one_cycle_lr"]
SWEEPS = {
    "default": [f"scheduler={','.join([*EPOCH_DEFAULT, *STEP_DEFAULT, 'none'])}"],
    "step": [f"scheduler={','.join(EPOCH_DEFAULT)}", "scheduler.interval=step"],
    "epoch": [f"scheduler={','.join(STEP_DEFAULT)}", "scheduler.interval=epoch"],
}
CASES = (
    [(n, "default") for n in [*EPOCH_DEFAULT, *STEP_DEFAULT, "none"]]
    + [(n, "step") for n in EPOCH_DEFAULT]
    + [(n, "epoch") for n in STEP_DEFAULT]
)
EPOCHS = 6


@pytest.fixture(scope="session")
def sweeps(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    """Run the three multiruns once; map (scheduler, sweep) -> job dir."""
    jobs: dict[tuple[str, str], Path] = {}
    for sweep, args in SWEEPS.items():
        cwd = tmp_path_factory.mktemp(f"sweep-{sweep}")
        proc = run_cli(["-m", *TINY, *args, "hydra.sweep.dir=multirun"], cwd)
        assert_ok(proc)
        for job in sorted((cwd / "multirun").iterdir()):
            if job.is_dir() and (job / ".hydra").is_dir():
                choices = yaml.safe_load((job / ".hydra" / "hydra.yaml").read_text())
                jobs[(choices["hydra"]["runtime"]["choices"]["scheduler"], sweep)] = job
    return jobs


def oracle(name: str, c: dict[str, Any], opt: torch.optim.Optimizer, length: int) -> Any:
    """torch's own scheduler for config ``c``, with lengths derived here from ``length``."""
    lr = opt.param_groups[0]["lr"]

    def child(node: dict[str, Any], n: int) -> Any:
        kw = {k: v for k, v in node.items() if not k.startswith("_")}
        cls = getattr(lrs, node["_target_"].rsplit(".", 1)[-1])
        if cls is lrs.CosineAnnealingLR and kw.get("T_max") is None:
            kw["T_max"] = n
        return cls(opt, **kw)

    if name == "lambda_lr":
        return lrs.LambdaLR(opt, lambda epoch: eval(c["lr_lambda"], {}, {"epoch": epoch}))
    if name == "multiplicative_lr":
        return lrs.MultiplicativeLR(opt, lambda epoch: eval(c["lr_lambda"], {}, {"epoch": epoch}))
    if name == "step_lr":
        return lrs.StepLR(opt, step_size=c["step_size"], gamma=c["gamma"])
    if name == "multi_step_lr":
        return lrs.MultiStepLR(opt, milestones=c["milestones"], gamma=c["gamma"])
    if name == "constant_lr":
        return lrs.ConstantLR(opt, factor=c["factor"], total_iters=c["total_iters"])
    if name == "linear_lr":
        return lrs.LinearLR(opt, c["start_factor"], c["end_factor"], c["total_iters"])
    if name == "exponential_lr":
        return lrs.ExponentialLR(opt, gamma=c["gamma"])
    if name == "polynomial_lr":
        return lrs.PolynomialLR(opt, total_iters=length, power=c["power"])
    if name == "cosine_annealing_lr":
        return lrs.CosineAnnealingLR(opt, T_max=length, eta_min=c["eta_min"])
    if name == "cosine_annealing_warm_restarts":
        return lrs.CosineAnnealingWarmRestarts(opt, c["T_0"], c["T_mult"], c["eta_min"])
    if name == "cyclic_lr":
        return lrs.CyclicLR(
            opt,
            base_lr=lr,
            max_lr=10 * lr,
            step_size_up=max(1, length // 4),
            mode=c["mode"],
            gamma=c["gamma"],
            cycle_momentum=c["cycle_momentum"],
            base_momentum=c["base_momentum"],
            max_momentum=c["max_momentum"],
        )
    if name == "one_cycle_lr":
        keys = (
            "pct_start",
            "anneal_strategy",
            "cycle_momentum",
            "base_momentum",
            "max_momentum",
            "div_factor",
            "final_div_factor",
            "three_phase",
        )
        return lrs.OneCycleLR(opt, max_lr=lr, total_steps=length, **{k: c[k] for k in keys})
    if name == "sequential_lr":
        warmup, cosine = c["schedulers"]["warmup"], c["schedulers"]["cosine"]
        milestone = warmup["total_iters"]
        return lrs.SequentialLR(
            opt, [child(warmup, milestone), child(cosine, length - milestone)], [milestone]
        )
    if name == "chained_scheduler":
        return lrs.ChainedScheduler(
            [child(node, length) for node in c["schedulers"].values()], optimizer=opt
        )
    assert name == "none"
    return None


def replay(job: Path, name: str, interval: str, epochs: int, steps_per_epoch: int) -> list[float]:
    """The lr of every optimizer step when torch's class drives a dummy parameter."""
    cfg = yaml.safe_load((job / ".hydra" / "config.yaml").read_text())
    param = torch.nn.Parameter(torch.zeros(3))
    node = {k: v for k, v in cfg["optimizer"].items() if k not in OWN_OPTIMIZER_KEYS}
    opt = instantiate(node, _convert_="all")([param])
    length = epochs if interval == "epoch" else epochs * steps_per_epoch
    scheduler = oracle(name, cfg["scheduler"], opt, length)
    lrs_seen = []
    for _ in range(epochs):
        for _ in range(steps_per_epoch):
            lrs_seen.append(opt.param_groups[0]["lr"])
            param.grad = torch.ones_like(param)
            opt.step()
            if scheduler is not None and interval == "step":
                scheduler.step()
        if scheduler is not None and interval == "epoch":
            scheduler.step()
    return lrs_seen


@pytest.mark.parametrize(("name", "sweep"), CASES, ids=[f"{n}-{s}" for n, s in CASES])
def test_logged_lr_equals_torch_replay(sweeps, name: str, sweep: str) -> None:
    job = sweeps[(name, sweep)]
    cfg = yaml.safe_load((job / ".hydra" / "config.yaml").read_text())
    interval = cfg["scheduler"]["interval"]
    if sweep != "default":
        assert interval == sweep
    steps = read_csv(job / "steps.csv")
    assert [int(r["step"]) for r in steps] == list(range(1, EPOCHS * TINY_STEPS_PER_EPOCH + 1))
    assert [int(r["epoch"]) for r in steps] == [
        e for e in range(1, EPOCHS + 1) for _ in range(TINY_STEPS_PER_EPOCH)
    ]
    logged = [float(r["lr"]) for r in steps]
    expected = replay(job, name, interval, EPOCHS, TINY_STEPS_PER_EPOCH)
    torch.testing.assert_close(
        torch.tensor(logged, dtype=torch.float64),
        torch.tensor(expected, dtype=torch.float64),
        rtol=1e-12,
        atol=0.0,
    )
    if name != "none":  # a schedule that never moves would make this test unable to fail
        assert len(set(logged)) > 1
    # metrics.csv's lr is the lr of the epoch's first step.
    metrics = read_csv(job / "metrics.csv")
    assert [int(r["epoch"]) for r in metrics] == list(range(1, EPOCHS + 1))
    firsts = [logged[(e - 1) * TINY_STEPS_PER_EPOCH] for e in range(1, EPOCHS + 1)]
    assert [float(r["lr"]) for r in metrics] == firsts
    for r in metrics:
        assert 0.0 <= float(r["train_acc"]) <= 1.0 and 0.0 <= float(r["val_acc"]) <= 1.0
        assert math.isfinite(float(r["val_loss"])) and float(r["epoch_time_s"]) > 0
