"""``lrrun -m ... hydra/launcher=fused`` as a user types it: the sweep's jobs trained in one
pass equal the same sweep on Hydra's basic launcher job by job (lr string-equal, metrics to
float rounding, the same verdict); jobs that cannot share a pass run alone with the reason;
an interrupted fused sweep is finished by the printed command, resumed fused and exact."""

from __future__ import annotations

import json
import shlex
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import assert_ok, interrupt_after_first_epoch, read_csv, run_cli
from tests.fused.test_members import TOLERANCE, numbers

BASE = [
    "dataset=synthetic",
    "dataset.seed=0",
    "dataset.train_size=256",
    "trainer.epochs=3",
    "trainer.device=cpu",
    "trainer.progress=false",
    "trainer.plot=false",
]
GRID = ["optimizer=sgd,adam", "scheduler=reduce_lr_on_plateau,one_cycle_lr", "trainer.seed=1,2"]
# fused whatever a few timed steps say (hydra.launcher.fuse=auto decides by them: a test below)
FUSED = ["hydra/launcher=fused", "hydra.launcher.fuse=always"]


def verdict(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith(("best:", "noise:"))]


def assert_same_jobs(fused: Path, basic: Path, jobs: int) -> None:
    for j in range(jobs):
        a, b = (read_csv(d / str(j) / "steps.csv") for d in (basic, fused))
        assert [r["lr"] for r in a] == [r["lr"] for r in b], j
        assert numbers(b, ("epoch", "step")) == pytest.approx(
            numbers(a, ("epoch", "step")), rel=TOLERANCE
        )
        ma, mb = (read_csv(d / str(j) / "metrics.csv") for d in (basic, fused))
        assert numbers(mb, ("epoch_time_s",)) == pytest.approx(
            numbers(ma, ("epoch_time_s",)), rel=TOLERANCE, nan_ok=True
        )


def test_a_fused_sweep_equals_the_basic_launchers(tmp_path: Path) -> None:
    """8 jobs (2 optimizers x plateau and one-cycle x 2 seeds) in one pass."""
    fused = run_cli(["-m", *BASE, *GRID, *FUSED, "hydra.sweep.dir=fused"], tmp_path)
    assert_ok(fused)
    basic = run_cli(["-m", *BASE, *GRID, "hydra.sweep.dir=basic"], tmp_path)
    assert_ok(basic)
    out = " ".join(fused.stdout.split())
    assert "fused launcher: jobs 0, 1, 2, 3, 4, 5, 6, 7 share a pass" in out
    assert "the time of its members one after another on this device (measured" in out
    assert "epoch 3/3: job 0 val_acc" in out
    assert "fused: jobs 0, 1, 2, 3, 4, 5, 6, 7 trained in one pass" in out  # the summary
    assert_same_jobs(tmp_path / "fused", tmp_path / "basic", 8)
    assert verdict(fused.stdout) == verdict(basic.stdout) != []
    plan = json.loads((tmp_path / "fused" / "fused.json").read_text())
    assert plan == {"passes": [list(range(8))], "alone": {}}
    for j in range(8):  # what a solo run writes, and what the report reads
        assert (tmp_path / "fused" / str(j) / ".hydra" / "overrides.yaml").is_file()
        assert "best val_acc" in (tmp_path / "fused" / str(j) / "lrrun.log").read_text()


def test_jobs_that_cannot_share_a_pass_run_alone_with_the_reason(tmp_path: Path) -> None:
    proc = run_cli(
        [
            "-m",
            *BASE,
            "trainer.epochs=1",
            "model.hidden_dim=32,64",
            "hydra/launcher=fused",
            "hydra.sweep.dir=s",
        ],
        tmp_path,
    )
    assert_ok(proc)
    out = " ".join(proc.stdout.split())
    assert "job 0 trains alone: no other job shares its model, data and step shape" in out
    assert (
        "job 1 trains alone: differs from job 0 in what a pass shares: "
        "model.hidden_dim: 32 -> 64" in out
    )
    assert [
        json.loads((tmp_path / "s" / str(j) / "status.json").read_text())["status"]
        for j in range(2)
    ] == ["ok", "ok"]


NETS = """
import torch.nn.functional as F
from torch import nn

class Net(nn.Sequential):
    def __init__(self, input_dim: int, num_classes: int):
        super().__init__(nn.Flatten(), nn.Dropout(0.2), nn.Linear(input_dim, num_classes))

class Functional(nn.Linear):
    def __init__(self, input_dim: int, num_classes: int):
        super().__init__(input_dim, num_classes)

    def forward(self, x):
        return super().forward(F.dropout(x.flatten(1), 0.3, self.training))
"""


@pytest.mark.parametrize(
    ("job", "why"),
    [
        (
            ["model=custom", "model._target_=net.Net"],
            "the model's 1 (Dropout, p=0.2) draws random numbers in its forward (aten.bernoulli_)",
        ),
        (
            ["model=custom", "model._target_=net.Functional"],
            "the model (Functional) draws random numbers in its forward (aten.bernoulli_)",
        ),
        (
            ["trainer.precision=bf16"],
            "the pass would compute fc1 (Linear) in float32, alone in bfloat16",
        ),
    ],
    ids=["torch-dropout", "functional-dropout", "bf16-linear"],
)
def test_a_pass_whose_members_would_not_train_as_alone_trains_them_alone(
    tmp_path: Path, job: list[str], why: str
) -> None:
    """Found before the pass, said once for its jobs: each then trains alone and ends ok
    (hydra.launcher.fuse=always does not force a pass that would change the runs)."""
    (tmp_path / "net.py").write_text(NETS)
    args = ["-m", *BASE, "trainer.epochs=1", "trainer.seed=1,2", *job, *FUSED, "hydra.sweep.dir=s"]
    proc = run_cli(args, tmp_path)
    assert_ok(proc)
    out = " ".join(proc.stdout.split())
    assert f"jobs 0, 1 train alone: {why}" in out
    assert f"fused: jobs 0, 1 alone ({why}" in out
    statuses = [json.loads((tmp_path / f"s/{j}/status.json").read_text()) for j in (0, 1)]
    assert [s["status"] for s in statuses] == ["ok", "ok"]


@pytest.mark.slow
def test_an_interrupted_fused_sweep_is_finished_fused_and_exact(tmp_path: Path) -> None:
    args = [
        "-m",
        *BASE,
        "dataset.train_size=2048",
        "trainer.epochs=6",
        "optimizer.lr=0.02,0.05",
        "trainer.seed=1,2",
        *FUSED,
        "hydra.sweep.dir=s",
    ]
    proc = interrupt_after_first_epoch(args, tmp_path, tmp_path / "s" / "0", signal.SIGINT)
    assert proc.returncode == 130, proc.stderr
    assert "Traceback" not in proc.stderr
    epochs = set()
    for j in range(4):
        status = json.loads((tmp_path / "s" / str(j) / "status.json").read_text())
        assert status["status"] == "interrupted" and status["epoch"] >= 1
        epochs.add(status["epoch"])
    assert len(epochs) == 1  # Ctrl-C waited for every member's end of epoch: still in step
    line = next(x for x in proc.stderr.splitlines() if "Finish the sweep with: " in x)
    command = shlex.split(line.split("Finish the sweep with: ", 1)[1])
    finished = run_cli(command[1:], tmp_path)
    assert_ok(finished)
    out = " ".join(finished.stdout.split())
    assert "job 0 stopped before: resuming it" in out
    assert "fused launcher: jobs 0, 1, 2, 3 share a pass" in out
    basic = run_cli(
        [a for a in args if a not in FUSED and "sweep.dir" not in a] + ["hydra.sweep.dir=basic"],
        tmp_path,
    )
    assert_ok(basic)
    assert_same_jobs(tmp_path / "s", tmp_path / "basic", 4)


@pytest.mark.parametrize(("seconds", "fused"), [((1.2, 1.0), True), ((2.5, 1.0), False)])
def test_auto_fuses_where_a_pass_pays(
    compose_cfg, tmp_path: Path, monkeypatch, seconds: tuple[float, float], fused: bool
) -> None:
    """hydra.launcher.fuse=auto: the pass trains when its timed steps take at most PAYS
    times its members' one after another; else its jobs train alone, the ratio said."""
    import lrrun.fused.runner
    from hydra_plugins.lrrun_fused.fused_launcher import PLAN_FILE, FusedLauncher, Job
    from lrrun.config.settings import read

    monkeypatch.setattr(lrrun.fused.runner, "probe", lambda settings: (*seconds, "data"))
    (tmp_path / PLAN_FILE).write_text(json.dumps({"passes": [[0, 1]], "alone": {}}))
    settings = read(compose_cfg())
    members = [Job(n, None, None, tmp_path / str(n), settings) for n in range(2)]  # type: ignore[arg-type]
    alone: dict[int, str] = {}
    got = FusedLauncher()._pays(members, alone)
    assert (got == "data") is fused
    if not fused:
        assert alone == {n: "one pass measured 2.50x slower than the members alone" for n in (0, 1)}
        assert json.loads((tmp_path / PLAN_FILE).read_text())["passes"] == []


@pytest.mark.slow
def test_a_basic_sweep_cut_short_is_finished_by_the_fused_launcher(tmp_path: Path) -> None:
    """Job 0 ended, job 1 stopped after its first epochs, jobs 2 and 3 never ran: the fused
    launcher keeps job 0, resumes job 1 alone (no other job starts from its epoch) and
    trains jobs 2 and 3 in one pass."""
    sweep = [
        "-m",
        *BASE,
        "dataset.train_size=2048",
        "trainer.epochs=4",
        "optimizer.lr=0.01,0.02,0.05,0.1",
        "hydra.sweep.dir=s",
    ]
    cut = interrupt_after_first_epoch(sweep, tmp_path, tmp_path / "s" / "1", signal.SIGINT)
    assert cut.returncode == 130, cut.stderr
    finished = run_cli([*sweep, *FUSED], tmp_path)
    assert_ok(finished)
    out = " ".join(finished.stdout.split())
    assert "job 0 trains alone: it ended before" in out
    assert "job 1 trains alone: no other job starts from epoch" in out
    assert "jobs 2, 3 share a pass" in out
    assert out.count("job 1 stopped before: resuming it") == 1
    statuses = [
        json.loads((tmp_path / "s" / str(j) / "status.json").read_text())["status"]
        for j in range(4)
    ]
    assert statuses == ["ok"] * 4
    assert len(read_csv(tmp_path / "s" / "summary.csv")) == 4


def test_each_job_is_composed_once_for_the_sweeper_and_the_launcher() -> None:
    """Hydra's sweeper composes every job to check it, then the launcher reads it: the
    loader composes once, and the launcher gets its own copy to number."""
    from omegaconf import OmegaConf

    from hydra_plugins.lrrun_fused.jobs import Remembered

    calls: list[list[str]] = []

    class Loader:
        name = "the loader's own"

        def load_sweep_config(self, master: Any, overrides: list[str]) -> Any:
            calls.append(overrides)
            return OmegaConf.create({"o": list(overrides)})

    master = OmegaConf.create({})
    loader = Remembered(Loader())
    checked = [loader.load_sweep_config(master, [f"x={i}"]) for i in range(3)]  # the sweeper
    read = [loader.load_sweep_config(master, [f"x={i}"]) for i in range(3)]  # the launcher
    assert calls == [["x=0"], ["x=1"], ["x=2"]]
    assert read == checked and all(r is not c for r, c in zip(read, checked, strict=True))
    loader.load_sweep_config(master, ["x=0"])  # taken already: composed again
    assert len(calls) == 4 and loader.name == "the loader's own"
