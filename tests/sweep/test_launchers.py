"""Other Hydra launchers and sweepers give the same sweep results as the basic launcher."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from tests.conftest import TINY, read_csv, run_cli

GRID = ["scheduler.gamma=0.5,0.8", "scheduler.step_size=1,2"]
FLOATS = ("best_val_acc", "final_val_acc", "final_val_loss", "final_lr")


def sweep(tmp_path: Path, name: str, *launcher: str, fresh: bool = False) -> list[dict[str, str]]:
    """The sweep's summary.csv rows (its console output in ``name``.out)."""
    proc = run_cli(
        ["-m", *TINY, *GRID, *launcher, f"hydra.sweep.dir={name}"], tmp_path, fresh=fresh
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    (tmp_path / f"{name}.out").write_text(proc.stdout)
    return read_csv(tmp_path / name / "summary.csv")


@pytest.mark.slow
def test_joblib_and_submitit_local_match_the_basic_launcher(tmp_path: Path) -> None:
    basic = sweep(tmp_path, "basic")
    assert len(basic) == 4 and {r["status"] for r in basic} == {"ok"}
    for name, launcher in (
        ("joblib", ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]),
        ("submitit", ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10"]),
    ):
        other = sweep(tmp_path, name, *launcher)
        assert len(other) == len(basic), name
        if name == "joblib":
            assert_threads_shared(tmp_path / name, n_jobs=2)
        for a, b in zip(basic, other, strict=True):
            exact = {k: v for k, v in a.items() if k not in (*FLOATS, "wall_time_s")}
            assert exact == {k: b[k] for k in exact}, name
            for key in FLOATS:  # other processes may use other thread counts
                assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-5), (name, key)


@pytest.mark.slow
def test_optuna_sweeper_maximises_best_val_acc(tmp_path: Path) -> None:
    args = [
        "-m",
        *TINY,
        "hydra/sweeper=lr_search",
        "hydra.sweeper.n_trials=3",
        "hydra.sweep.dir=opt",
    ]
    proc = run_cli(args, tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = read_csv(tmp_path / "opt" / "summary.csv")
    assert len(rows) == 3 and {"optimizer.lr", "scheduler.gamma"} <= set(rows[0])
    result = yaml.safe_load((tmp_path / "opt" / "optimization_results.yaml").read_text())
    assert result["best_value"] == max(float(r["best_val_acc"]) for r in rows)


def assert_threads_shared(sweep_dir: Path, n_jobs: int) -> None:
    """joblib's loky workers limit torch to their share of the cores (OMP_NUM_THREADS =
    cores // n_jobs unless set already); lrrun must not undo it (status.json records
    torch.get_num_threads() as each job starts)."""
    from joblib import cpu_count

    share = int(os.environ.get("OMP_NUM_THREADS", max(cpu_count() // n_jobs, 1)))
    for status in sorted(sweep_dir.glob("*/status.json")):
        assert json.loads(status.read_text())["torch_threads"] == share, status


@pytest.mark.slow
def test_ray_local_matches_the_basic_launcher_without_oversubscribing(tmp_path: Path) -> None:
    """Hydra's Ray launcher on a local Ray instance (a fresh interpreter: Ray starts its own
    processes): every job's results as the basic launcher's, the sweep's summary and
    verdict at the end, and each job's torch threads = the CPUs Ray gave its task."""
    basic = sweep(tmp_path, "basic")
    ray = sweep(
        tmp_path, "ray", "hydra/launcher=ray", "+hydra.launcher.ray.remote.num_cpus=1", fresh=True
    )
    assert len(ray) == len(basic) == 4 and {r["status"] for r in ray} == {"ok"}
    for a, b in zip(basic, ray, strict=True):
        assert a["scheduler.gamma"] == b["scheduler.gamma"] and a["best_epoch"] == b["best_epoch"]
        for key in FLOATS:
            assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-5), key
    assert (tmp_path / "ray" / "configs.csv").is_file() and (
        tmp_path / "ray" / "sweep_curves.png"
    ).is_file()
    best = max(basic, key=lambda r: float(r["best_val_acc"]))
    verdict = (
        f"best: scheduler.gamma={best['scheduler.gamma']} "
        f"scheduler.step_size={best['scheduler.step_size']}, {float(best['best_val_acc']):.4f}"
    )
    assert verdict in (tmp_path / "ray.out").read_text()
    for status in sorted((tmp_path / "ray").glob("*/status.json")):
        assert json.loads(status.read_text())["torch_threads"] == 1, status  # Ray's OMP_NUM_THREADS
    two = sweep(
        tmp_path,
        "ray2",
        "hydra/launcher=ray",
        "+hydra.launcher.ray.remote.num_cpus=2",
        "scheduler.step_size=1",
        fresh=True,
    )
    assert len(two) == 2
    for status in sorted((tmp_path / "ray2").glob("*/status.json")):
        assert json.loads(status.read_text())["torch_threads"] == 2, status


USER_NET = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, input_dim: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(input_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "how",
    [
        ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "optimizer.lr=0.1,0.01"],
        [
            "-m",
            "hydra/launcher=submitit_local",
            "hydra.launcher.timeout_min=10",
            "optimizer.lr=0.1",
        ],
        ["trainer.devices=2"],
    ],
    ids=["joblib", "submitit", "devices=2"],
)
def test_the_users_module_is_found_in_every_process(tmp_path: Path, how: list[str]) -> None:
    """A model in mynet.py beside the command, in the processes a launcher or
    trainer.devices starts; a matplotlib.py there shadows nothing in them either."""
    (tmp_path / "mynet.py").write_text(USER_NET)
    (tmp_path / "matplotlib.py").write_text("raise ImportError('shadowed')\n")
    args = [
        *how[:1],
        *TINY,
        "model=custom",
        "model._target_=mynet.Net",
        "trainer.epochs=2",
        "trainer.plot=true",
        "hydra.sweep.dir=sweep",
        "hydra.run.dir=run",
        *how[1:],
    ]
    proc = run_cli(args, tmp_path, fresh=True, env={"OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    runs = sorted((tmp_path / "sweep").glob("[0-9]")) if "-m" in how else [tmp_path / "run"]
    for run in runs:
        assert json.loads((run / "status.json").read_text())["status"] == "ok"
        assert (run / "curves.png").is_file()
