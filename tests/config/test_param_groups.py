"""optimizer.param_groups: each group's lr (and the cycled momentum) as CLI runs log them,
against torch's own schedulers replayed with the same two groups; the groups' members; the
errors a user can cause."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.optim.lr_scheduler as lrs
import yaml
from hydra.utils import instantiate

from lrrun.config import param_groups
from lrrun.config.settings import OWN_OPTIMIZER_KEYS
from lrrun.errors import ConfigError
from lrrun.models import FashionMNISTNet, FeedForward
from tests.conftest import TINY, TINY_STEPS_PER_EPOCH, assert_ok, read_csv, run_cli

HEAD = "+optimizer.param_groups=[{name:head,params:[fc2.*],lr:0.1}]"
EPOCHS = 6


def test_members_and_counts() -> None:
    model = FeedForward()
    groups = param_groups.check([{"name": "head", "params": ["fc2.*"], "lr": 0.1}])
    split = param_groups.split(model, groups, torch.optim.SGD)
    assert [g["name"] for g in split] == ["default", "head"]
    named = dict(model.named_parameters())
    assert [id(p) for p in split[0]["params"]] == [id(named["fc1.weight"]), id(named["fc1.bias"])]
    assert [id(p) for p in split[1]["params"]] == [id(named["fc2.weight"]), id(named["fc2.bias"])]
    assert split[1]["lr"] == 0.1 and "lr" not in split[0]
    optimizer = torch.optim.SGD(split, lr=0.01, momentum=0.9)
    assert param_groups.describe(optimizer, groups) == (
        "default 78,500 params; head 1,010 params, lr=0.1"
    )


def test_several_patterns_and_groups_in_order() -> None:
    model = FashionMNISTNet()
    groups = param_groups.check(
        [
            {"name": "convs", "params": ["conv*.weight", "conv*.bias"], "weight_decay": 0.01},
            {"name": "head", "params": "fc2.*", "lr": 0.1, "betas": [0.8, 0.9]},
        ]
    )
    split = param_groups.split(model, groups, torch.optim.Adam)
    counts = [sum(p.numel() for p in g["params"]) for g in split]
    assert counts == [9216 * 128 + 128, 32 * 9 + 32 + 64 * 32 * 9 + 64, 128 * 10 + 10]
    assert split[2]["betas"] == (0.8, 0.9)  # a tuple, as torch's own defaults


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        ({"name": "head"}, "must be a non-empty list of groups"),
        ([{"params": ["fc2.*"]}], "optimizer.param_groups[0] has no name"),
        ([{"name": "default", "params": ["fc2.*"]}], "is the group of the unmatched"),
        ([{"name": "a", "params": ["fc2.*"]}, {"name": "a", "params": ["fc1.*"]}], "is taken"),
        ([{"name": "head", "params": []}], "optimizer.param_groups[head].params=[]"),
        ([{"name": "head", "params": ["fc2.*"], "lr": -1}], "optimizer.param_groups[head].lr=-1"),
        ([{"name": "head", "params": ["fc2.*"], "momentum": 1.5}], "[head].momentum=1.5"),
    ],
)
def test_config_errors(groups: Any, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        param_groups.check(groups)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        ([{"name": "head", "params": ["fc3.*"]}], "'fc3.*' matches no parameter of FeedForward"),
        (
            [{"name": "a", "params": ["fc2.*"]}, {"name": "b", "params": ["*.bias"]}],
            "parameter 'fc2.bias' is matched by optimizer.param_groups[a] and by "
            "optimizer.param_groups[b]",
        ),
        ([{"name": "head", "params": ["fc2.*"], "betas": [0.9, 0.99]}], "not an argument of SGD"),
    ],
)
def test_model_errors(groups: Any, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        param_groups.split(FeedForward(), param_groups.check(groups), torch.optim.SGD)
    assert message in str(err.value)


# --- CLI runs against a torch replay -------------------------------------------------------


def replay(job: Path, interval: str) -> tuple[list[list[float]], list[float]]:
    """Each group's lr and group 0's momentum at every optimizer step, when torch's own
    class drives two dummy parameters in the run's two groups."""
    cfg = yaml.safe_load((job / ".hydra" / "config.yaml").read_text())
    groups = cfg["optimizer"]["param_groups"]
    node = {k: v for k, v in cfg["optimizer"].items() if k not in OWN_OPTIMIZER_KEYS}
    body, head = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2))
    own = [{k: v for k, v in g.items() if k not in ("name", "params")} for g in groups]
    opt = instantiate(node, _convert_="all")([{"params": [body]}, {"params": [head], **own[0]}])
    c = {k: v for k, v in cfg["scheduler"].items() if not k.startswith("_")}
    name = cfg["scheduler"]["_target_"].rsplit(".", 1)[-1]
    length = EPOCHS * (TINY_STEPS_PER_EPOCH if interval == "step" else 1)
    lr0 = [g["lr"] for g in opt.param_groups]
    if name == "StepLR":
        scheduler = lrs.StepLR(opt, c["step_size"], c["gamma"])
    elif name == "CosineAnnealingLR":
        scheduler = lrs.CosineAnnealingLR(opt, T_max=length, eta_min=c["eta_min"])
    elif name == "OneCycleLR":
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
        max_lr = c["max_lr"] if c["max_lr"] is not None else lr0
        scheduler = lrs.OneCycleLR(opt, max_lr, total_steps=length, **{k: c[k] for k in keys})
    else:
        assert name == "ReduceLROnPlateau"
        keys = ("factor", "patience", "threshold", "threshold_mode", "cooldown", "min_lr", "eps")
        scheduler = lrs.ReduceLROnPlateau(opt, mode="min", **{k: c[k] for k in keys})
    val_loss = [float(r["val_loss"]) for r in read_csv(job / "metrics.csv")]
    seen: list[list[float]] = []
    momenta: list[float] = []
    for epoch in range(EPOCHS):
        for _ in range(TINY_STEPS_PER_EPOCH):
            seen.append([g["lr"] for g in opt.param_groups])
            g0 = opt.param_groups[0]
            momenta.append(g0["betas"][0] if "betas" in g0 else g0["momentum"])
            body.grad, head.grad = torch.ones_like(body), torch.ones_like(head)
            opt.step()
            if interval == "step":
                scheduler.step()
        if isinstance(scheduler, lrs.ReduceLROnPlateau):
            scheduler.step(val_loss[epoch])
        elif interval == "epoch":
            scheduler.step()
    return seen, momenta


def logged(job: Path) -> tuple[list[list[float]], list[dict[str, str]]]:
    rows = read_csv(job / "steps.csv")
    return [[float(r["lr"]), float(r["lr_1"])] for r in rows], rows


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """step_lr, cosine_annealing_lr, reduce_lr_on_plateau with a head group at 10x."""
    cwd = tmp_path_factory.mktemp("groups")
    proc = run_cli(
        [
            "-m",
            *TINY,
            "model=feedforward",
            HEAD,
            "scheduler=step_lr,cosine_annealing_lr,reduce_lr_on_plateau",
            "scheduler.interval=epoch",
            "hydra.sweep.dir=multirun",
        ],
        cwd,
    )
    assert_ok(proc)
    jobs = {}
    for job in (cwd / "multirun").iterdir():
        if (job / ".hydra").is_dir():
            hydra = yaml.safe_load((job / ".hydra" / "hydra.yaml").read_text())
            jobs[hydra["hydra"]["runtime"]["choices"]["scheduler"]] = job
    return jobs


@pytest.mark.parametrize("scheduler", ["step_lr", "cosine_annealing_lr", "reduce_lr_on_plateau"])
def test_each_group_follows_torch(sweep: dict[str, Path], scheduler: str) -> None:
    job = sweep[scheduler]
    lrs_logged, rows = logged(job)
    expected, _ = replay(job, "epoch")
    assert lrs_logged == expected
    assert {tuple(x) for x in lrs_logged} != {tuple(lrs_logged[0])} or scheduler.startswith("red")
    assert all(abs(head / body - 10) < 1e-9 for body, head in lrs_logged)  # each from its own
    assert list(rows[0]) == ["epoch", "step", "lr", "lr_1", "loss"]  # no momentum column
    metrics = read_csv(job / "metrics.csv")
    assert list(metrics[0])[:3] == ["epoch", "lr", "lr_1"]
    firsts = lrs_logged[::TINY_STEPS_PER_EPOCH]
    assert [[float(r["lr"]), float(r["lr_1"])] for r in metrics] == firsts


def test_console_and_status_name_the_groups(tmp_path: Path) -> None:
    proc = run_cli(
        [*TINY, "model=feedforward", "trainer.epochs=1", HEAD, "hydra.run.dir=run"], tmp_path
    )
    assert_ok(proc)
    assert "param groups  default 78,500 params; head 1,010 params, lr=0.1" in proc.stdout
    heading = next(line for line in proc.stdout.splitlines() if "val_acc" in line)
    assert heading.split()[:5] == ["epoch", "lr", "default", "lr", "head"]
    status = yaml.safe_load((tmp_path / "run" / "status.json").read_text())
    assert status["param_groups"] == ["default", "head"]


@pytest.mark.parametrize(
    ("optimizer", "extra"),
    [("sgd", ["scheduler.max_lr=[0.05,0.5]"]), pytest.param("adam", [], marks=pytest.mark.slow)],
    ids=["sgd-max_lr-list", "adam-beta1"],
)
def test_one_cycle_lr_and_momentum_follow_torch(
    tmp_path: Path, optimizer: str, extra: list[str]
) -> None:
    proc = run_cli(
        [
            *TINY,
            "model=feedforward",
            f"optimizer={optimizer}",
            HEAD,
            "scheduler=one_cycle_lr",
            *extra,
            "hydra.run.dir=run",
        ],
        tmp_path,
    )
    assert_ok(proc)
    job = tmp_path / "run"
    lrs_logged, rows = logged(job)
    expected, momenta = replay(job, "step")
    assert lrs_logged == expected
    assert list(rows[0]) == ["epoch", "step", "lr", "lr_1", "momentum", "loss"]
    assert [float(r["momentum"]) for r in rows] == momenta
    assert len(set(momenta)) > 3  # it really cycles
    if extra:
        assert max(lr for lr, _ in lrs_logged) == pytest.approx(0.05, rel=0.01)  # near the peak
        assert max(head for _, head in lrs_logged) == pytest.approx(0.5, rel=0.01)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([HEAD.replace("fc2.*", "fc9.*")], "optimizer.param_groups[head].params: 'fc9.*' matches"),
        (
            ["+optimizer.param_groups=[{name:a,params:[fc2.*]},{name:b,params:[fc2.bias]}]"],
            "parameter 'fc2.bias' is matched by optimizer.param_groups[a] and by",
        ),
        (
            [HEAD.replace("lr:0.1", "lr:-0.1")],
            "optimizer.param_groups[head].lr=-0.1 is not allowed",
        ),
        (
            [HEAD.replace("lr:0.1", "gamma:0.1")],
            "optimizer.param_groups[head].gamma is not an argument of SGD",
        ),
        (
            [HEAD, "scheduler=one_cycle_lr", "scheduler.max_lr=[0.1]"],
            "scheduler.max_lr=[0.1] has 1 values, the optimizer has 2 param groups (default, head)",
        ),
    ],
    ids=["no-match", "two-groups", "bad-value", "unknown-key", "max_lr-length"],
)
def test_cli_errors(tmp_path: Path, args: list[str], message: str) -> None:
    proc = run_cli([*TINY, "model=feedforward", *args, "hydra.run.dir=run"], tmp_path)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run" / "steps.csv").exists()  # nothing ran


def test_preview_matches_training(tmp_path: Path) -> None:
    """lrrun-preview's lr_1 and momentum columns are the ones training logs."""
    args = [*TINY, "model=feedforward", "optimizer=adam", HEAD, "scheduler=one_cycle_lr"]
    assert_ok(run_cli([*args, "hydra.run.dir=run"], tmp_path))
    assert_ok(
        run_cli(
            [*args, "preview.plot=false", "hydra.run.dir=preview"], tmp_path, prog="lrrun-preview"
        )
    )
    trained = read_csv(tmp_path / "run" / "steps.csv")
    previewed = read_csv(tmp_path / "preview" / "preview.csv")
    assert list(previewed[0]) == ["epoch", "step", "lr", "lr_1", "momentum"]
    assert [{k: r[k] for k in previewed[0]} for r in trained] == previewed


@pytest.mark.slow
def test_resume_and_report_with_groups(tmp_path: Path) -> None:
    """A run stopped after 3 epochs and resumed to 6 logs both groups exactly as a run
    that was never stopped; lrrun-report reads the groups back by name."""
    from lrrun.logs.runs import load_job

    args = [*TINY, "model=feedforward", HEAD, "scheduler=step_lr", "scheduler.step_size=2"]
    assert_ok(run_cli([*args, "hydra.run.dir=straight"], tmp_path))
    assert_ok(run_cli([*args, "trainer.epochs=3", "hydra.run.dir=stopped"], tmp_path))
    assert_ok(run_cli([*args, "trainer.resume=stopped"], tmp_path))
    straight = read_csv(tmp_path / "straight" / "steps.csv")
    assert read_csv(tmp_path / "stopped" / "steps.csv") == straight
    assert len({r["lr_1"] for r in straight}) == 3
    assert_ok(run_cli(["stopped"], tmp_path, prog="lrrun-report"))
    job = load_job(tmp_path / "stopped")
    assert list(job.group_lrs) == ["default", "head"]
    assert [lr for _, lr in job.group_lrs["head"]] == [float(r["lr_1"]) for r in straight]
    assert (tmp_path / "stopped" / "curves.png").stat().st_size > 10_000
