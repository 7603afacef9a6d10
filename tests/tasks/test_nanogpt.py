"""experiment=nanogpt_char_cpu: nanoGPT's README CPU run, as lrrun runs it on a nanoGPT data
folder - its lr at every one of the 2000 steps against nanoGPT's get_lr written out, its
optimizer's decay rule, and the run itself."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from lrrun.config.settings import read
from lrrun.tools.preview import simulate
from lrrun.train.assembly import assemble
from tests.conftest import assert_ok, read_csv, run_cli
from tests.sources import write_tokens

FAST = ["trainer.device=cpu", "trainer.progress=false", "trainer.plot=false"]


def get_lr(it: int) -> float:
    """nanoGPT's train.py get_lr with its README CPU run's values."""
    learning_rate, min_lr, warmup_iters, lr_decay_iters = 1e-3, 1e-4, 100, 2000
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it > lr_decay_iters:
        return min_lr
    decay_ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    assert 0 <= decay_ratio <= 1
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))
    return min_lr + coeff * (learning_rate - min_lr)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return write_tokens(tmp_path / "shakespeare_char", 12_000)


@pytest.fixture
def experiment():
    """The experiment composed as the command line composes it (no test shrinking)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from lrrun.config.location import config_dir

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        yield lambda *o: compose("config", overrides=["experiment=nanogpt_char_cpu", *o])
    GlobalHydra.instance().clear()


def test_the_lr_of_every_step_is_nanogpts(experiment, folder: Path) -> None:
    """Step k (1-based) runs nanoGPT's iteration k - 1: 2000 steps, 8 evaluations of 250."""
    cfg = experiment(f"dataset.root={folder}")
    _, rows, per_epoch = simulate(read(cfg))
    assert per_epoch == 250 and len(rows) == 2000
    assert [r["lr"] for r in rows] == pytest.approx(
        [get_lr(i) for i in range(2000)], rel=1e-12, abs=0
    )


def test_the_experiment_is_nanogpts_cpu_run(experiment, folder: Path) -> None:
    cfg = experiment(f"dataset.root={folder}", *FAST)
    settings = read(cfg)
    t = settings.trainer
    assert (t.batch_size, t.epochs, t.clip_grad_norm, settings.dataset.options["block_size"]) == (
        12,
        8,
        1.0,
        64,
    )
    parts = assemble(settings, torch.device("cpu"))
    model, optimizer = parts.model, parts.optimizer
    assert type(model).__name__ == "GPT" and len(model.h) == 4 and model.wte.embedding_dim == 128
    assert type(optimizer).__name__ == "AdamW" and optimizer.defaults["betas"] == (0.9, 0.99)
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"]) and all(
        p.dim() < 2 for p in no_decay["params"]
    )
    # nanoGPT's count: every parameter once (the head is tied to the token embedding)
    assert sum(p.numel() for g in optimizer.param_groups for p in g["params"]) == sum(
        p.numel() for p in model.parameters()
    )


def test_the_experiment_runs_on_a_nanogpt_folder(folder: Path) -> None:
    """As written but shorter (the full run: the slow test below, and benchmarks/nanogpt.py)."""
    proc = run_cli(
        [
            "experiment=nanogpt_char_cpu",
            f"dataset.root={folder}",
            "trainer.epochs=2",
            "dataset.steps_per_epoch=5",
            "dataset.eval_windows=24",
            *FAST,
            "hydra.run.dir=run",
        ],
        folder.parent,
    )
    assert_ok(proc)
    assert len(read_csv(folder.parent / "run" / "steps.csv")) == 10
    out = " ".join(proc.stdout.split())
    assert "gpt (GPT, 799,360 parameters" in out and "nanogpt_cosine (LambdaLR" in out
    assert "tokens: 10,800 train / 1,200 val tokens, no test split, vocabulary 28" in out


@pytest.mark.slow
def test_the_experiment_as_written(folder: Path) -> None:
    """``lrrun experiment=nanogpt_char_cpu dataset.root=DIR``, nothing else: 2000 steps."""
    proc = run_cli(
        [
            "experiment=nanogpt_char_cpu",
            f"dataset.root={folder}",
            "trainer.progress=false",
            "hydra.run.dir=run",
        ],
        folder.parent,
        timeout=1200,
    )
    assert_ok(proc)
    run = folder.parent / "run"
    assert len(read_csv(run / "steps.csv")) == 2000
    metrics = read_csv(run / "metrics.csv")
    assert len(metrics) == 8 and float(metrics[-1]["val_loss"]) < 1.0  # a repeated text
    assert json.loads((run / "status.json").read_text())["status"] == "ok"
