"""Data-parallel runs on CPU with gloo, started as users start them: torchrun, and lrrun's own
trainer.devices=N. Two processes with per-rank batch 16 against one process with batch 32."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import assert_ok, read_csv, run_cli

SMALL = [
    "dataset=synthetic",
    "dataset.train_size=128",
    "dataset.val_size=64",
    "dataset.test_size=64",
    "trainer.device=cpu",
    "trainer.progress=false",
    "trainer.plot=false",
    "scheduler=one_cycle_lr",
]
ENV = {"OMP_NUM_THREADS": "1"}


def torchrun(args: list[str], cwd: Path, n: int = 2) -> subprocess.CompletedProcess[str]:
    """``torchrun --nproc_per_node=n -m lrrun ARGS``, as a user types it."""
    import socket

    with socket.socket() as s:  # a free port for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"} | ENV
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            f"--nproc_per_node={n}",
            f"--master_port={port}",
            "-m",
            "lrrun",
            *args,
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoint.pt", weights_only=True)["model"]


PLATEAU = ["scheduler=reduce_lr_on_plateau", "scheduler.patience=0", "scheduler.threshold=0.9"]


@pytest.mark.parametrize(
    "schedule",
    [
        pytest.param([], id="one_cycle_lr"),
        pytest.param(PLATEAU, id="plateau", marks=pytest.mark.slow),
    ],
)
def test_two_processes_follow_one_with_the_same_global_batch(
    tmp_path: Path, schedule: list[str]
) -> None:
    """The lr at every step exactly; losses, metrics and final weights to float rounding
    (the gradient of 2 x 16 averaged by DDP is the gradient of the same 32 samples). With
    ReduceLROnPlateau (cut after epoch 2) every rank steps it on the same val_loss."""
    args = [*SMALL, *schedule, "trainer.epochs=3"]
    one = run_cli([*args, "trainer.batch_size=32", "hydra.run.dir=one"], tmp_path, env=ENV)
    assert_ok(one)
    two = torchrun([*args, "trainer.batch_size=16", "hydra.run.dir=two"], tmp_path)
    assert two.returncode == 0, two.stderr
    a, b = (read_csv(tmp_path / d / "steps.csv") for d in ("one", "two"))
    assert len(a) == len(b) == 12 and [r["lr"] for r in a] == [r["lr"] for r in b]
    assert len({r["lr"] for r in a}) >= 2  # the schedule moved
    torch.testing.assert_close(
        torch.tensor([float(r["loss"]) for r in b]),
        torch.tensor([float(r["loss"]) for r in a]),
        rtol=1e-5,
        atol=1e-6,
    )
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc"):
        ma, mb = (read_csv(tmp_path / d / "metrics.csv") for d in ("one", "two"))
        values = [
            (float(x[key] or "nan"), float(y[key] or "nan")) for x, y in zip(ma, mb, strict=True)
        ]
        assert [v for v, _ in values] == pytest.approx(
            [w for _, w in values], rel=1e-5, abs=1e-6, nan_ok=True
        )
    wa, wb = weights(tmp_path / "one"), weights(tmp_path / "two")
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) < 1e-6
    status = json.loads((tmp_path / "two" / "status.json").read_text())
    assert status["data"]["processes"] == 2 and status["torch_threads"] == 1
    assert "DDP, 2 processes (gloo), this is rank 0" in two.stdout
    assert two.stdout.count("run dir    two") == 1  # rank 0 alone prints the header


@pytest.mark.slow
def test_devices_shortcut_and_resume_are_exact(tmp_path: Path) -> None:
    """trainer.devices=2 runs what torchrun runs; a 2-process run of 2 epochs resumed to 4
    equals 4 epochs straight, bit for bit (every rank restores its own RNG state)."""
    args = [
        *SMALL,
        "trainer.batch_size=16",
        "scheduler.total_steps=16",
        "model=fashion_mnist_net",
        "trainer.devices=2",
    ]
    assert_ok(run_cli([*args, "trainer.epochs=4", "hydra.run.dir=full"], tmp_path, env=ENV))
    assert_ok(run_cli([*args, "trainer.epochs=2", "hydra.run.dir=part"], tmp_path, env=ENV))
    resumed = run_cli(
        [*args, "trainer.epochs=4", "trainer.resume=part", "hydra.run.dir=x"], tmp_path, env=ENV
    )
    assert_ok(resumed)
    full, part = (read_csv(tmp_path / d / "steps.csv") for d in ("full", "part"))
    assert part == full and len(full) == 16
    rng = torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=True)["rng"]
    assert isinstance(rng, list) and len(rng) == 2
    straight = torchrun(
        [a for a in args if a != "trainer.devices=2"]
        + ["trainer.epochs=4", "hydra.run.dir=torchrun"],
        tmp_path,
    )
    assert straight.returncode == 0, straight.stderr
    assert read_csv(tmp_path / "torchrun" / "steps.csv") == full


@pytest.mark.slow
def test_lr_scaling_by_the_global_batch(tmp_path: Path) -> None:
    args = [
        *SMALL,
        "scheduler=none",
        "trainer.epochs=1",
        "trainer.batch_size=16",
        "optimizer.lr_scaling=linear",
        "optimizer.reference_batch=16",
    ]
    proc = run_cli([*args, "trainer.devices=2", "hydra.run.dir=ddp"], tmp_path, env=ENV)
    assert_ok(proc)
    assert "lr 0.01 x 2 (linear, global batch 32 / 16) = 0.02" in proc.stdout
    assert {float(r["lr"]) for r in read_csv(tmp_path / "ddp" / "steps.csv")} == {0.02}
    proc = run_cli(
        [*args, "optimizer.lr_scaling=sqrt", "trainer.accumulate=4", "hydra.run.dir=acc"], tmp_path
    )
    assert_ok(proc)
    assert "lr 0.01 x 2 (sqrt, global batch 64 / 16) = 0.02" in proc.stdout


def test_preview_counts_the_processes(tmp_path: Path) -> None:
    proc = run_cli(
        [
            *SMALL,
            "trainer.epochs=2",
            "trainer.batch_size=16",
            "trainer.devices=2",
            "hydra.run.dir=p",
        ],
        tmp_path,
        prog="lrrun-preview",
    )
    assert_ok(proc)
    assert len(read_csv(tmp_path / "p" / "preview.csv")) == 2 * 4  # 64 samples per rank / 16


def test_a_sweep_under_torchrun_is_refused(tmp_path: Path) -> None:
    proc = torchrun(["-m", *SMALL, "scheduler.max_lr=0.1,0.2"], tmp_path)
    assert proc.returncode != 0
    assert "torchrun starts one lrrun run, not a sweep (-m): use trainer.devices=N" in proc.stderr


@pytest.mark.slow
def test_sigterm_to_one_rank_ends_every_rank_as_one_sigterm_ends_a_run(tmp_path: Path) -> None:
    """The other rank's collective fails; it reads why from the rendezvous store and ends the
    same way: status interrupted, the resume command, exit 143; the run resumes."""
    args = [
        "dataset=synthetic",
        "trainer.epochs=40",
        "trainer.batch_size=16",
        "trainer.devices=2",
        "trainer.device=cpu",
        "trainer.progress=false",
        "trainer.plot=false",
        "hydra.run.dir=run",
    ]
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"} | ENV
    launcher = subprocess.Popen(
        [sys.executable, "-m", "lrrun", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    status = tmp_path / "run" / "status.json"
    deadline = time.monotonic() + 120
    while not (status.is_file() and json.loads(status.read_text()).get("epoch", 0) >= 1):
        assert launcher.poll() is None, launcher.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    ranks = subprocess.run(
        ["ps", "--ppid", str(launcher.pid), "-o", "pid="], capture_output=True, text=True
    ).stdout.split()
    assert len(ranks) == 2
    os.kill(int(ranks[1]), signal.SIGTERM)
    _, err = launcher.communicate(timeout=120)
    assert launcher.returncode == 143, err
    done = json.loads(status.read_text())
    assert (done["status"], done["message"]) == ("interrupted", "rank 1 was terminated")
    assert "Traceback" not in err and "Resume with: lrrun " in err and "trainer.resume=" in err
    epochs = done["epoch"]
    assert len(read_csv(tmp_path / "run" / "metrics.csv")) == epochs
    resumed = run_cli(
        [*args[:-1], f"trainer.epochs={epochs + 1}", "trainer.resume=run", "hydra.run.dir=again"],
        tmp_path,
        env=ENV,
    )
    assert_ok(resumed)
    assert len(read_csv(tmp_path / "run" / "metrics.csv")) == epochs + 1


@pytest.mark.slow
def test_both_batch_paths_shard_alike_with_padding(tmp_path: Path) -> None:
    """The DataLoader path (its distributed sampler) gives each rank the samples the in-memory
    path's index slices give it, also when the train split does not divide by the ranks (121
    samples: the shorter shard is padded from the start of the epoch's order)."""
    args = [
        *SMALL,
        "dataset.train_size=121",
        "trainer.epochs=2",
        "trainer.batch_size=16",
        "model=fashion_mnist_net",
    ]
    for path in ("tensor", "loader"):
        proc = torchrun([*args, f"trainer.data_path={path}", f"hydra.run.dir={path}"], tmp_path)
        assert proc.returncode == 0, proc.stderr
    tensor, loader = (read_csv(tmp_path / d / "steps.csv") for d in ("tensor", "loader"))
    # 121 train samples (synthetic has its own val set): 61 per rank, one padded; 4 steps a rank
    assert len(tensor) == 2 * 4 and tensor == loader


@pytest.mark.slow
def test_divergence_on_every_rank_is_one_diverged_run(tmp_path: Path) -> None:
    """The logged losses are averaged over the ranks, so every rank sees the NaN at the same
    epoch end and stops alike: status diverged and exit 3, as one process would."""
    proc = run_cli(
        [
            *SMALL,
            "scheduler=none",
            "optimizer.lr=1e12",
            "trainer.epochs=3",
            "trainer.batch_size=16",
            "trainer.devices=2",
            "hydra.run.dir=d",
        ],
        tmp_path,
        env=ENV,
    )
    assert proc.returncode == 3, proc.stderr
    status = json.loads((tmp_path / "d" / "status.json").read_text())
    assert status["status"] == "diverged" and "Traceback" not in proc.stderr
    assert proc.stderr.count("diverged: loss=") == 1  # rank 0's message alone


@pytest.mark.slow
def test_a_sweep_of_data_parallel_jobs(tmp_path: Path) -> None:
    """Each job of a multirun with trainer.devices=2 runs as two processes in its own dir;
    the sweep's summary sees them as any job."""
    proc = run_cli(
        [
            "-m",
            *SMALL,
            "trainer.epochs=1",
            "trainer.batch_size=16",
            "trainer.devices=2",
            "scheduler.max_lr=0.1,0.2",
            "hydra.sweep.dir=s",
        ],
        tmp_path,
        env=ENV,
    )
    assert_ok(proc)
    rows = read_csv(tmp_path / "s" / "summary.csv")
    assert [r["status"] for r in rows] == ["ok", "ok"]
    for job in ("0", "1"):
        assert (
            json.loads((tmp_path / "s" / job / "status.json").read_text())["data"]["processes"] == 2
        )


def test_the_ranks_compose_the_config_the_launcher_composed() -> None:
    from lrrun.tools.common import config_flags

    argv = ["--config-dir", "my/conf", "-cn=exp", "trainer.devices=2", "--config-path=x", "-cn"]
    assert config_flags(argv) == ["--config-dir", "my/conf", "-cn=exp", "--config-path=x", "-cn"]


def _accumulate_on_two_ranks(rank: int, port: int, out: str) -> None:
    """One rank of a gloo pair: 3 optimizer steps of 4 accumulated batches through the
    loop's step_group, counting DDP's all-reduces with a comm hook."""
    import torch.distributed as dist
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
    from torch.nn.parallel import DistributedDataParallel

    from lrrun.train.loop import step_group
    from lrrun.train.recipe import Recipe, no_autocast

    os.environ |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    ddp = DistributedDataParallel(model)
    calls: list[int] = []

    def counting(state, bucket):  # type: ignore[no-untyped-def]
        calls.append(1)
        return default_hooks.allreduce_hook(state, bucket)

    ddp.register_comm_hook(None, counting)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    data = torch.Generator().manual_seed(1)
    batches = [
        (torch.randn(2, 4, 8, generator=data), torch.randint(0, 4, (2, 4), generator=data))
        for _ in range(12)
    ]
    for step in range(3):
        group = [(x[rank], y[rank]) for x, y in batches[4 * step : 4 * step + 4]]
        step_group(ddp, group, optimizer, Recipe(accumulate=4), no_autocast, epoch=1)
        optimizer.step()
    if rank == 0:
        torch.save({"calls": len(calls), "weights": model.state_dict(), "batches": batches}, out)
    # both ranks leave together: a rank whose peer has gone mid-teardown can abort in gloo
    # ("terminate called without an active exception", seen once under a loaded machine)
    dist.barrier()
    dist.destroy_process_group()


def test_accumulation_all_reduces_once_per_optimizer_step(tmp_path: Path) -> None:
    """trainer.accumulate=4 under DDP: the batches before a group's last run in no_sync(), so
    one all-reduce per optimizer step (not four), and the weights are one process's on both
    ranks' batches (the mean gradient of the 8 batches) to float rounding."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = str(tmp_path / "rank0.pt")
    mp.start_processes(_accumulate_on_two_ranks, args=(port, out), nprocs=2, start_method="spawn")
    got = torch.load(out, weights_only=True)
    assert got["calls"] == 3  # one bucket per step, 3 steps
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(3):
        optimizer.zero_grad()
        for x, y in got["batches"][4 * step : 4 * step + 4]:
            for rank in range(2):  # each batch's loss over the 8 the step averages
                (torch.nn.functional.cross_entropy(model(x[rank]), y[rank]) / 8).backward()
        optimizer.step()
    for key, value in model.state_dict().items():
        torch.testing.assert_close(got["weights"][key], value, rtol=1e-5, atol=1e-6)
