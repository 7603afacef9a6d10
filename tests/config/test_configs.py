"""Every config file composes and instantiates; every torch scheduler class has one."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
import torch.optim.lr_scheduler as lrs

from lrrun.config.location import config_dir
from lrrun.config.overrides import GROUPS
from lrrun.config.settings import read
from lrrun.data.batches import make_batches, probe_batch
from lrrun.data.load import load_data
from lrrun.schedule.build import Stepping, build_scheduler
from lrrun.tasks import build_task
from lrrun.train.parts import build_model, build_optimizer
from lrrun.train.recipe import build_recipe
from tests.conftest import TINY_STEPS_PER_EPOCH
from tests.idx import write_idx_set
from tests.sources import (
    facts_of,
    write_folder,
    write_npz,
    write_regression,
    write_text,
    write_tokens,
)

MNIST_FACTS = facts_of(10, (1, 28, 28))

CLASS_DIR = {"fashion_mnist": "FashionMNIST", "mnist": "MNIST"}

CONF = config_dir()
CHOICES = [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]


def test_every_config_group_is_one_the_command_line_knows() -> None:
    """conf/'s groups (Hydra's own aside) are lrrun.config.overrides.GROUPS: the list the
    command line is checked against, and the one this file composes every choice of."""
    assert {d.name for d in CONF.iterdir() if d.is_dir()} - {"hydra"} == set(GROUPS)


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def test_every_torch_scheduler_has_a_config() -> None:
    classes = [
        name
        for name, obj in vars(lrs).items()
        if inspect.isclass(obj)
        and (issubclass(obj, lrs.LRScheduler) or obj is lrs.ReduceLROnPlateau)
        and obj.__module__ == lrs.__name__
        and not name.startswith("_")
        and name != "LRScheduler"
    ]
    assert len(classes) >= 15
    files = {p.stem for p in (CONF / "scheduler").glob("*.yaml")}
    assert {snake(c) for c in classes} <= files
    assert "none" in files


def dataset_overrides(choice: str, tmp_path: Path) -> list[str]:
    """Data on disk for each dataset choice (nothing can be downloaded here)."""
    if choice in CLASS_DIR:  # real layout, generated IDX files
        write_idx_set(tmp_path / CLASS_DIR[choice] / "raw", gz=False)
        return [f"dataset.root={tmp_path}", "dataset.download=false", "dataset.val_split=8"]
    if choice == "torchvision":
        write_idx_set(tmp_path / "FashionMNIST" / "raw", gz=False)
        return ["dataset.name=FashionMNIST", f"dataset.root={tmp_path}"]
    if choice == "image_folder":
        return [f"dataset.root={write_folder(tmp_path / 'images')}"]
    if choice == "tensors":
        return [f"dataset.path={write_npz(tmp_path / 'd.npz')}"]
    if choice == "custom":
        return ["dataset._target_=tests.sources.build_datasets"]
    if choice == "text":
        return [f"dataset.path={write_text(tmp_path / 't.txt')}", *SMALL_WINDOWS]
    if choice == "tokens":
        return [f"dataset.root={write_tokens(tmp_path / 'tok')}", *SMALL_WINDOWS]
    return []


SMALL_WINDOWS = ["dataset.block_size=16", "dataset.steps_per_epoch=4", "dataset.eval_windows=8"]
# What each choice trains on when it is not the default task's data: (task, dataset choice)
TASK_DATA = {
    ("task", "regression"): "tensors_regression",
    ("task", "language_model"): "text",
    ("model", "gpt"): "text",
    ("loss", "mse"): "tensors_regression",
    ("loss", "l1"): "tensors_regression",
    ("loss", "huber"): "tensors_regression",
    ("experiment", "nanogpt_char_cpu"): "tokens",
}


def task_data(kind: str, tmp_path: Path) -> list[str]:
    if kind == "tensors_regression":
        path = write_regression(tmp_path / "r.npz")
        return ["task=regression", "dataset=tensors", f"dataset.path={path}"]
    return [f"dataset={kind}", *dataset_overrides(kind, tmp_path)]


@pytest.mark.parametrize(("group", "choice"), CHOICES, ids=[f"{g}={c}" for g, c in CHOICES])
def test_config_composes_and_instantiates(compose_cfg, group, choice, tmp_path: Path) -> None:
    """Each config with data of its kind: the data loads, the model built for it returns
    (batch, classes) logits, the optimizer and scheduler build on it."""
    if (group, choice) in TASK_DATA:
        data_args = task_data(TASK_DATA[group, choice], tmp_path)
        cfg = compose_cfg(*data_args, f"{group}={choice}", tiny=False)
    elif group == "dataset":
        cfg = compose_cfg(f"dataset={choice}", *dataset_overrides(choice, tmp_path), tiny=False)
    elif group == "augment":  # crop_flip is the 32x32 recipe
        root = write_folder(tmp_path / "images", size=32)
        cfg = compose_cfg(
            f"augment={choice}", "dataset=image_folder", f"dataset.root={root}", tiny=False
        )
    elif choice == "custom":
        cfg = compose_cfg("model=custom", "model._target_=tests.sources.TinyNet")
    elif choice.endswith("schedule_free"):  # they replace the schedule
        cfg = compose_cfg(f"{group}={choice}", "scheduler=none")
    else:
        cfg = compose_cfg(f"{group}={choice}")
    assert cfg[group] is not None if group not in ("augment", "experiment") else True
    settings = read(cfg)
    data = load_data(settings.dataset)
    assert len(data.train) and len(data.val) and data.selection == "val"
    model, given = build_model(settings.model, data.facts)
    batch = probe_batch(data, torch.device("cpu"), torch.contiguous_format)
    task = build_task(settings.task, data, torch.device("cpu"))
    task.check_output(model.eval()(batch), batch, "model")  # what the task needs, or it raises
    assert all(given[k] == v for k, v in data.facts.items() if k in given)
    criterion = build_recipe(settings, 0, torch.device("cpu"), task).criterion
    inputs, targets = next(iter(make_batches(data, torch.device("cpu"), 4, 4, 0)[0]))
    with torch.no_grad():
        assert torch.isfinite(criterion(model(inputs), targets))  # the loss takes what it gets
    optimizer = build_optimizer(settings.optimizer, settings.param_groups, model)
    assert optimizer.param_groups[0]["lr"] > 0
    stepping = build_scheduler(
        settings.scheduler, optimizer, cfg.trainer.epochs, TINY_STEPS_PER_EPOCH
    )
    assert isinstance(stepping, Stepping)
    assert stepping.interval in ("epoch", "step")
    if group == "scheduler" and choice != "none":
        target = cfg.scheduler._target_.rsplit(".", 1)[-1]
        built = stepping.scheduler
        if choice == "swa":  # SWALR after the schedule before it (lrrun.schedule.swa)
            built = built.swalr
        assert type(built).__name__ == target
        cited = choice.startswith(("hf_", "wsd")) or choice in ("noam", "goyal", "nanogpt_cosine")
        assert snake(target) == choice or cited or choice == "swa"
    if group == "dataset" and choice == "synthetic":
        assert data.train.images.shape == (cfg.dataset.train_size, 1, 28, 28)
        assert set(data.train.labels.tolist()) == set(range(10))


def test_policy_keys_never_reach_torch(compose_cfg) -> None:
    s = read(compose_cfg("scheduler=reduce_lr_on_plateau", "scheduler.monitor=val_acc"))
    model, _ = build_model(s.model, MNIST_FACTS)
    stepping = build_scheduler(s.scheduler, build_optimizer(s.optimizer, [], model), 3, 4)
    assert stepping.monitor == "val_acc"
    assert stepping.scheduler.mode == "max"  # mode=auto: accuracy is maximised
    assert "interval" not in stepping.args and "monitor" not in stepping.args
    assert "warmup" not in stepping.args and stepping.warmup.steps == 0


@pytest.mark.parametrize("choice", sorted(p.stem for p in (CONF / "scheduler").glob("*.yaml")))
def test_every_scheduler_config_has_warmup_off(compose_cfg, choice: str) -> None:
    """...but Goyal et al.'s recipe, whose gradual warm-up is lrrun's warm-up."""
    cfg = compose_cfg(f"scheduler={choice}")
    off = {"steps": None, "epochs": None, "start_factor": 0.0}
    assert (dict(cfg.scheduler.warmup) == off) is (choice != "goyal")


def test_derived_lengths(compose_cfg) -> None:
    model, _ = build_model(read(compose_cfg()).model, MNIST_FACTS)

    def build(*overrides: str) -> torch.optim.lr_scheduler.LRScheduler:
        s = read(compose_cfg(*overrides))
        opt = build_optimizer(s.optimizer, [], model)
        return build_scheduler(s.scheduler, opt, 5, 7).scheduler

    assert build("scheduler=one_cycle_lr").total_steps == 35
    assert build("scheduler=one_cycle_lr", "scheduler.interval=epoch").total_steps == 5
    assert build("scheduler=cosine_annealing_lr").T_max == 5
    assert build("scheduler=cosine_annealing_lr", "scheduler.interval=step").T_max == 35
    assert build("scheduler=polynomial_lr").total_iters == 5
    assert build("scheduler=cosine_annealing_lr", "scheduler.T_max=3").T_max == 3
    seq = build("scheduler=sequential_lr")
    assert seq._milestones == [2]
    assert seq._schedulers[1].T_max == 3  # the rest of the run after a 2-epoch warm-up


@pytest.mark.slow
def test_configs_found_from_an_installed_wheel(tmp_path: Path) -> None:
    """Build the wheel, put only it on sys.path, and run lrrun from an unrelated directory."""
    repo = Path(__file__).resolve().parents[2]
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(repo),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(dist),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    (wheel,) = dist.glob("lrrun-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "lrrun/conf/config.yaml" in names
    assert "lrrun/conf/scheduler/one_cycle_lr.yaml" in names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import lrrun.config.location as c, sys; print(c.config_dir()); sys.argv=['lrrun', *sys.argv[1:]]; "
            "from lrrun.cli import main; main()",
            "dataset=synthetic",
            "dataset.train_size=64",
            "dataset.test_size=32",
            "trainer.epochs=1",
            "trainer.progress=false",
            "trainer.device=cpu",
            "hydra.run.dir=run",
        ],
        cwd=work,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == str(site / "lrrun" / "conf")
    assert (work / "run" / "metrics.csv").is_file()
