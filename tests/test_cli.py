"""The CLI as users run it: plateau decisions, multirun, console output, bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import TINY, TINY_STEPS_PER_EPOCH, assert_ok, read_csv, run_cli


@pytest.mark.parametrize(("monitor", "mode"), [("val_acc", "max"), ("val_loss", "min")])
def test_plateau_reproduces_torch_decisions(tmp_path: Path, monitor: str, mode: str) -> None:
    args = [
        *TINY,
        "trainer.epochs=10",
        "scheduler=reduce_lr_on_plateau",
        f"scheduler.monitor={monitor}",
        f"scheduler.mode={mode}",
        "scheduler.patience=0",
        "scheduler.factor=0.5",
        "scheduler.threshold=0.05",
        "optimizer.lr=0.05",
        "hydra.run.dir=run",
    ]
    assert_ok(run_cli(args, tmp_path))
    rows = read_csv(tmp_path / "run" / "metrics.csv")
    logged = [float(r["lr"]) for r in rows]
    # Replay: torch's ReduceLROnPlateau fed the logged metric after each epoch.
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.05, momentum=0.9)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode=mode, factor=0.5, patience=0, threshold=0.05
    )
    expected = []
    for r in rows:
        expected.append(opt.param_groups[0]["lr"])
        plateau.step(float(r[monitor]))
    assert logged == pytest.approx(expected, rel=1e-12, abs=0)
    assert len(set(logged)) > 1, "no reduction happened: the test would not catch a wrong mode"


def test_multirun_four_jobs(tmp_path: Path) -> None:
    args = [
        "-m",
        *TINY,
        "trainer.epochs=4",
        "scheduler=step_lr",
        "scheduler.gamma=0.1,0.5",
        "scheduler.step_size=1,2",
        "hydra.sweep.dir=sweep",
    ]
    proc = run_cli(args, tmp_path)
    assert_ok(proc)
    jobs = sorted(p for p in (tmp_path / "sweep").iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["0", "1", "2", "3"]
    seen = set()
    for job in jobs:
        overrides = (job / ".hydra" / "overrides.yaml").read_text()
        gamma = 0.1 if "scheduler.gamma=0.1" in overrides else 0.5
        step_size = 1 if "scheduler.step_size=1" in overrides else 2
        seen.add((gamma, step_size))
        lrs = [float(r["lr"]) for r in read_csv(job / "metrics.csv")]
        assert lrs == pytest.approx(
            [0.01 * gamma ** ((e - 1) // step_size) for e in range(1, 5)], rel=1e-12
        )
        assert len(read_csv(job / "steps.csv")) == 4 * 4
    assert seen == {(0.1, 1), (0.1, 2), (0.5, 1), (0.5, 2)}


def test_console_plain_output(tmp_path: Path) -> None:
    proc = run_cli([*TINY, "scheduler=exponential_lr", "hydra.run.dir=run"], tmp_path)
    assert_ok(proc)
    out = proc.stdout
    for key in ("dataset", "model", "optimizer", "scheduler", "device", "run dir"):
        assert any(line.startswith(key) for line in out.splitlines()), out
    assert "ExponentialLR gamma=0.9" in out and "interval=epoch" in out
    device = next(line for line in out.splitlines() if line.startswith("device"))
    assert "cpu (data_path=tensor, precision=fp32" in device
    assert "malloc keeps freed memory" in device  # lrrun.train.allocator on glibc's Linux
    header = next(line for line in out.splitlines() if line.strip().startswith("epoch"))
    assert header.split() == [  # top-5 accuracy: the data has more than 5 classes
        "epoch",
        "lr",
        "train_loss",
        "train_acc",
        "val_loss",
        "val_acc",
        "val_top5",
        "epoch_time_s",
    ]
    rows = [line.split() for line in out.splitlines() if line[:5].strip().isdigit()]
    metrics = read_csv(tmp_path / "run" / "metrics.csv")
    assert len(rows) == len(metrics) == 6
    for shown, row in zip(rows, metrics, strict=True):
        assert shown[1] == f"{float(row['lr']):.4e}"  # scientific notation, matches the CSV
        assert shown[5] == f"{float(row['val_acc']):.4f}"
    assert "best val_acc" in out and "run" in out.splitlines()[-1]
    assert "\x1b[" not in out  # no live rendering / escape codes without a TTY


def test_console_live_progress_on_a_terminal(tmp_path: Path) -> None:
    """On an interactive terminal the progress bar renders each epoch, then the rows stay."""
    env = {"TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1", "COLUMNS": "120"}
    args = [*TINY, "trainer.progress=true", "trainer.epochs=3", "hydra.run.dir=run"]
    proc = run_cli(args, tmp_path, env=env)
    assert_ok(proc)
    for epoch in (1, 2, 3):
        assert f"epoch {epoch}/3" in proc.stdout  # the bar, drawn then cleared (transient)
    assert "\x1b[" in proc.stdout  # live rendering happened
    assert len(read_csv(tmp_path / "run" / "metrics.csv")) == 3


@pytest.mark.parametrize("prog", ["lrrun", "lrrun-preview", "lrrun-report", "lrrun-find-lr"])
def test_console_scripts_are_installed(tmp_path: Path, prog: str) -> None:
    """The real scripts, in fresh interpreters (most CLI tests fork a warm one)."""
    script = Path(sys.executable).with_name(prog)
    assert script.is_file(), f"the {prog} console script is not installed"
    proc = subprocess.run(
        [str(script), "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert ("one_cycle_lr" in proc.stdout) or prog == "lrrun-report"


def test_module_entry_runs_a_tiny_run(tmp_path: Path) -> None:
    proc = run_cli([*TINY, "trainer.epochs=1", "hydra.run.dir=run"], tmp_path, fresh=True)
    assert_ok(proc)
    assert len(read_csv(tmp_path / "run" / "steps.csv")) == TINY_STEPS_PER_EPOCH


BAD_INPUTS = [
    (["scheduler=xyz"], "scheduler=xyz is not a choice. Choices: chained_scheduler,"),
    (["trainer.epochs=abc"], "trainer.epochs='abc' is not allowed: it must be an integer >= 1"),
    (["trainer.epochs=0"], "trainer.epochs=0 is not allowed"),
    (["trainer.batch_size=-5"], "trainer.batch_size=-5 is not allowed"),
    (["optimizer.lr=0"], "optimizer.lr=0 is not allowed: it must be a number > 0"),
    (["optimizer=adam", "optimizer.betas=[0.9,1.5]"], "optimizer.betas=[0.9, 1.5] is not allowed"),
    (["scheduler=step_lr", "scheduler.gamma=0"], "scheduler.gamma=0 is not allowed"),
    (["scheduler=step_lr", "scheduler.gamma=-0.5"], "scheduler.gamma=-0.5 is not allowed"),
    (["scheduler=step_lr", "scheduler.step_size=0"], "scheduler.step_size=0 is not allowed"),
    (["scheduler=step_lr", "+scheduler.foo=1"], "scheduler.foo is not an argument of StepLR"),
    (
        ["scheduler=multi_step_lr", "scheduler.milestones=[3,2]"],
        "scheduler.milestones=[3, 2] is not allowed: it must be a non-empty list of strictly increasing",
    ),
    (
        ["scheduler=lambda_lr", "scheduler.lr_lambda='__import__(\"os\").getcwd()'"],
        "is not allowed",
    ),
    (
        ["scheduler=lambda_lr", "scheduler.lr_lambda='epoch.real'"],
        "scheduler.lr_lambda='epoch.real'",
    ),
    (
        ["scheduler=reduce_lr_on_plateau", "scheduler.monitor=val_accuracy"],
        "scheduler.monitor='val_accuracy'",
    ),
    (
        ["scheduler=reduce_lr_on_plateau", "scheduler.monitor=val_acc", "scheduler.mode=min"],
        "use scheduler.mode=max",
    ),
    (
        ["scheduler=reduce_lr_on_plateau", "scheduler.interval=step"],
        "scheduler.interval='step' is not allowed",
    ),
    (
        ["scheduler=step_lr", "scheduler.interval=batch"],
        "scheduler.interval='batch' is not allowed",
    ),
    (
        ["scheduler=one_cycle_lr", "trainer.epochs=5", "scheduler.pct_start=0.05"],
        "scheduler (OneCycleLR) cannot compute its schedule from these arguments",
    ),  # torch divides by zero: the rise ends at step 0 (0.05 x 20 steps - 1)
    (["trainer.device=cuda:99"], "trainer.device='cuda:99' is not available"),
    (["trainer.device=tpu"], "trainer.device='tpu' is not a device"),
    (["model.input_dim=100"], "model.input_dim=100 does not fit the data"),
    (
        ["trainer.precision=16-mixed"],
        "trainer.precision='16-mixed' is not allowed: it must be fp32, bf16 or fp16 "
        "(Lightning's 32, bf16-mixed and 16-mixed",
    ),
    (
        ["trainer.ema.decay=1.5"],
        "trainer.ema.decay=1.5 is not allowed: it must be a number in (0, 1)",
    ),
    (
        ["trainer.ema.rate=0.9"],
        "trainer.ema.rate is not a key of trainer=default. Its keys: decay, every, warmup",
    ),
    (
        ["trainer.select=ema"],
        "trainer.select=ema: this run keeps no ema weights. To select them, set trainer.ema.decay",
    ),
    (["trainer.select=swa"], "To select them, use scheduler=swa"),
    (
        ["trainer.select=last"],
        "trainer.select='last' is not allowed: it must be model, ema (trainer.ema.decay) or swa",
    ),
    (
        ["scheduler=swa", "scheduler.interval=step"],
        "scheduler.interval=step is not allowed for scheduler=swa",
    ),
    (
        ["scheduler=swa", "scheduler.swa_lr=[0.1,0.2]"],
        "scheduler.swa_lr has 2 values, but the optimizer has 1 param groups",
    ),
    (
        [
            "scheduler=swa",
            "+scheduler.before={_target_:torch.optim.lr_scheduler.ReduceLROnPlateau}",
        ],
        "scheduler.before=ReduceLROnPlateau cannot run before SWA",
    ),
    (
        ["trainer.gradient_clip_val=1"],
        "did you mean trainer.clip_grad_norm (lrrun's name for gradient_clip_val)?",
    ),
    (["trainer.max_epochs=3"], "did you mean trainer.epochs (lrrun's name for max_epochs)?"),
    (["trainer.accumulate_grad_batches=2"], "did you mean trainer.accumulate"),
    (["trainer.data_path=gpu"], "trainer.data_path='gpu' is not allowed"),
    (["trainer.channels_last=yes"], "trainer.channels_last='yes' is not allowed"),
    (["trainer.compile=1"], "trainer.compile=1 is not allowed: it must be true or false"),
    (["scheduler=step_lr", "scheduler.gama=0.5"], "did you mean scheduler.gamma?"),
    (["scheduler=step_rl"], "scheduler=step_rl is not a choice: did you mean step_lr?"),
    (["trainr.epochs=3"], "trainr is not a config group: did you mean trainer?"),
    (
        ["scheduler=sequential_lr", "scheduler.schedulers.warmup.total_iter=3"],
        "scheduler.schedulers.warmup.total_iter is not a key of scheduler=sequential_lr: "
        "did you mean scheduler.schedulers.warmup.total_iters?",
    ),
    (
        ["optimizer=adam", "optimizer.momentum=0.9"],
        "optimizer.momentum is not a key of optimizer=adam",
    ),
    (["trainer.resume=nowhere"], "trainer.resume='nowhere': no checkpoint there"),
    (["hydra.run.dir=afile/run"], "hydra.run.dir=afile/run: cannot create the run dir there"),
]


@pytest.mark.parametrize(
    ("overrides", "message"), BAD_INPUTS, ids=[" ".join(o) for o, _ in BAD_INPUTS]
)
def test_bad_input_is_one_clear_message(tmp_path: Path, overrides: list[str], message: str) -> None:
    (tmp_path / "afile").write_text("a file where a folder should be")
    proc = run_cli([*TINY, "hydra.run.dir=run", *overrides], tmp_path, timeout=120)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    assert message in proc.stderr, proc.stderr
    assert proc.stderr.count(message) == 1, proc.stderr  # said once
    # Failing before epoch 1 means no half-written run: no metrics rows at all.
    metrics = tmp_path / "run" / "metrics.csv"
    assert not metrics.exists() or read_csv(metrics) == []


def test_missing_data_names_the_remedies(tmp_path: Path) -> None:
    args = [
        "dataset=fashion_mnist",
        "dataset.root=empty",
        "dataset.system_dir=nowhere",
        "dataset.download=false",
        "trainer.progress=false",
        "hydra.run.dir=run",
    ]
    proc = run_cli(args, tmp_path, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    err = " ".join(proc.stderr.split())
    assert "dataset.name=fashion_mnist: no data under dataset.root='empty'" in err
    assert "(1) put the four IDX files" in err
    assert "(2) install Debian's package: apt-get install -y dataset-fashion-mnist" in err
    assert "(3) allow torchvision's download" in err
