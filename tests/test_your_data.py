"""Your model, your data, through the CLI as a user runs it: an image folder and a model
module beside the command, torchvision's architectures, .npz files and a dataset function,
the errors, and what lrrun-preview / lrrun-find-lr make of them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from tests.conftest import assert_ok, read_csv, run_cli
from tests.sources import write_folder, write_npz

FAST = ["trainer.device=cpu", "trainer.progress=false", "trainer.plot=false"]
NET = '''
import torch
from torch import nn


class Net(nn.Module):
    """lrrun passes num_classes and in_channels from the data."""

    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))
'''


@pytest.fixture
def user_dir(tmp_path: Path) -> Path:
    """A user's directory: shapes/ (4 classes x 40 PNGs, 8x8 RGB) and mypkg/net.py."""
    write_folder(tmp_path / "shapes", classes=4, per_class=40, size=8)
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "mypkg" / "net.py").write_text(NET)
    return tmp_path


def step_lr_replay(steps: int, per_epoch: int, lr: float = 0.05, gamma: float = 0.7) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=gamma)
    out = []
    for i in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        if (i + 1) % per_epoch == 0:
            sched.step()
    return out


def check_run(run_dir: Path, train: int, batch: int, epochs: int) -> list[dict[str, str]]:
    """The lr of every step equals torch's StepLR; the metrics are above chance (4 classes)."""
    per_epoch = math.ceil(train / batch)
    steps = read_csv(run_dir / "steps.csv")
    assert len(steps) == epochs * per_epoch
    assert [float(r["lr"]) for r in steps] == pytest.approx(
        step_lr_replay(len(steps), per_epoch), rel=1e-12, abs=0
    )
    metrics = read_csv(run_dir / "metrics.csv")
    assert float(metrics[-1]["val_acc"]) > 0.5  # chance: 0.25
    return metrics


def test_a_user_module_beside_the_command_on_an_image_folder(user_dir: Path) -> None:
    args = [
        "model=custom",
        "model._target_=mypkg.net.Net",
        "+model.width=8",
        "dataset=image_folder",
        "dataset.root=shapes",
        "optimizer.lr=0.05",
        "trainer.epochs=4",
        "trainer.batch_size=16",
        *FAST,
        "hydra.run.dir=run",
    ]
    proc = run_cli(args, user_dir)
    assert_ok(proc)
    out = " ".join(proc.stdout.split())
    assert (
        "144 train / 16 val, no test split, 4 classes (class_0, class_1, class_2, class_3)" in out
    )
    assert "(Net, " in out and "from the data: num_classes=4, in_channels=3" in out
    check_run(user_dir / "run", train=144, batch=16, epochs=4)
    status = json.loads((user_dir / "run" / "status.json").read_text())
    assert status["data"]["classes"] == ["class_0", "class_1", "class_2", "class_3"]
    assert status["data"]["model_args"] == {"num_classes": 4, "in_channels": 3}


def test_a_model_config_in_the_users_own_config_dir(user_dir: Path) -> None:
    (user_dir / "myconf" / "model").mkdir(parents=True)
    (user_dir / "myconf" / "model" / "mynet.yaml").write_text("_target_: mypkg.net.Net\nwidth: 8\n")
    args = [
        "--config-dir",
        "myconf",
        "model=mynet",
        "model.width=12",
        "dataset=image_folder",
        "dataset.root=shapes",
        "trainer.epochs=1",
        *FAST,
        "hydra.run.dir=run",
    ]
    proc = run_cli(args, user_dir)
    assert_ok(proc)
    assert "mynet (Net, " in proc.stdout
    bad = run_cli(["--config-dir", "myconf", "model=mynett", *FAST], user_dir)
    assert bad.returncode == 2 and "model=mynett is not a choice: did you mean mynet?" in bad.stderr


def test_resnet18_by_name_on_the_folder(user_dir: Path) -> None:
    args = [
        "model=resnet18",
        "dataset=image_folder",
        "dataset.root=shapes",
        "optimizer.lr=0.05",
        "trainer.epochs=2",
        "trainer.batch_size=48",
        *FAST,
        "hydra.run.dir=run",
    ]
    proc = run_cli(args, user_dir)
    assert_ok(proc)
    out = " ".join(proc.stdout.split())
    assert (
        "resnet18 (ResNet, 11,170,884 parameters; from the data: num_classes=4, in_channels=3, image_size=8)"
        in out
    )
    check_run(user_dir / "run", train=144, batch=48, epochs=2)


@pytest.mark.parametrize(
    "source",
    [
        ["dataset=tensors", "dataset.path=d.npz", "dataset.val_split=20"],
        [
            "dataset=custom",
            "dataset._target_=tests.sources.build_datasets",
            "+dataset.n=120",
            "+dataset.classes=4",
        ],
    ],
    ids=["npz", "callable"],
)
def test_npz_files_and_dataset_functions(tmp_path: Path, source: list[str]) -> None:
    write_npz(tmp_path / "d.npz", n=140, n_classes=4)
    args = [
        *source,
        "model=custom",
        "model._target_=tests.sources.TinyNet",
        "optimizer.lr=0.05",
        "trainer.epochs=4",
        "trainer.batch_size=16",
        *FAST,
        "hydra.run.dir=run",
    ]
    proc = run_cli(args, tmp_path)
    assert_ok(proc)
    train = 120
    metrics = check_run(tmp_path / "run", train=train, batch=16, epochs=4)
    tested = [r for r in metrics if r["test_acc"]]  # reported once, for the best val epoch
    assert len(tested) == 1 and float(tested[0]["test_acc"]) > 0.5


def test_flat_features_and_the_feedforward_model(tmp_path: Path) -> None:
    write_npz(tmp_path / "d.npz", n=140, n_classes=4, layout="flat")
    args = [
        "dataset=tensors",
        "dataset.path=d.npz",
        "dataset.val_split=20",
        "optimizer.lr=0.05",
        "trainer.epochs=4",
        "trainer.batch_size=16",
        *FAST,
        "hydra.run.dir=run",
    ]
    proc = run_cli(args, tmp_path)
    assert_ok(proc)
    assert "from the data: num_classes=4, input_dim=192" in proc.stdout
    check_run(tmp_path / "run", train=120, batch=16, epochs=4)


BAD = [
    (["dataset=image_folder", "dataset.root=nowhere"], "dataset.root=nowhere: no such folder"),
    (["dataset=image_folder"], "dataset.root is missing: dataset.source=image_folder needs it"),
    (["dataset=tensors", "dataset.path=none.npz"], "dataset.path=none.npz: no such file"),
    (
        ["dataset=torchvision", "dataset.name=CIFAR10", "dataset.root=."],
        "dataset.name=CIFAR10: its train split is not under dataset.root=.",
    ),
    (
        ["dataset=custom", "dataset._target_=mypkg.data.build"],
        "dataset._target_=mypkg.data.build cannot be imported",
    ),
    (
        ["dataset=image_folder", "dataset.root=shapes", "dataset.val_split=1.5"],
        "dataset.val_split=1.5 is not allowed",
    ),
    (["model=custom"], "model._target_ is missing"),
    (
        ["model=custom", "model._target_=torch.nn.Flatten"],
        "model._target_=torch.nn.Flatten returns (2, 784) for a batch of 2x1x28x28",
    ),
    (
        ["model=custom", "model._target_=mypkg.net.Net", "+model.num_classes=3"],
        "model.num_classes=3 does not fit the data: it has 10 classes",
    ),
    (
        ["model=custom", "model._target_=mypkg.nett.Net"],
        "model could not be built from 'mypkg.nett.Net'",
    ),
    (
        ["augment=crop_flip"],
        "dataset.transforms.train makes samples 1x32x32 but val samples are 1x28x28",
    ),
]


@pytest.mark.parametrize(("overrides", "message"), BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_data_and_model_input_is_one_clear_message(
    user_dir: Path, overrides: list[str], message: str
) -> None:
    small = [
        "dataset=synthetic",
        "dataset.train_size=64",
        "dataset.val_size=32",
        "dataset.test_size=32",
    ]
    if any(o.startswith("dataset=") for o in overrides):
        small = []
    proc = run_cli([*small, *overrides, *FAST, "hydra.run.dir=run"], user_dir)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert message in " ".join(proc.stderr.split()), proc.stderr
    assert not (user_dir / "run" / "metrics.csv").exists()


def test_an_existing_run_dir_is_left_as_it_is(user_dir: Path) -> None:
    """A finished run's dir: a new run there is refused, and a resume whose data fails
    changes none of its files."""
    args = ["dataset=image_folder", "dataset.root=shapes", "trainer.epochs=1", *FAST]
    assert_ok(run_cli([*args, "hydra.run.dir=run"], user_dir))
    run_dir = user_dir / "run"
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    again = run_cli([*args, "hydra.run.dir=run"], user_dir)
    assert again.returncode == 2 and "holds a finished run (status ok)" in again.stderr
    broken = run_cli(
        [
            *args,
            "dataset.root=gone",
            "trainer.epochs=2",
            "trainer.resume=run",
            "hydra.run.dir=other",
        ],
        user_dir,
    )
    assert broken.returncode == 2 and "dataset.root=gone: no such folder" in broken.stderr
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before


def test_preview_and_find_lr_know_the_folders_size(user_dir: Path) -> None:
    data = ["dataset=image_folder", "dataset.root=shapes", "trainer.batch_size=16"]
    train = run_cli(
        [
            "model=custom",
            "model._target_=mypkg.net.Net",
            *data,
            "scheduler=one_cycle_lr",
            "trainer.epochs=2",
            *FAST,
            "hydra.run.dir=run",
        ],
        user_dir,
    )
    assert_ok(train)
    preview = run_cli(
        [
            "model=custom",
            "model._target_=mypkg.net.Net",
            *data,
            "scheduler=one_cycle_lr",
            "trainer.epochs=2",
            "hydra.run.dir=preview",
        ],
        user_dir,
        prog="lrrun-preview",
    )
    assert_ok(preview)
    trained = [r["lr"] for r in read_csv(user_dir / "run" / "steps.csv")]
    assert [r["lr"] for r in read_csv(user_dir / "preview" / "preview.csv")] == trained
    assert len(trained) == 2 * 9  # 144 train images / 16
    found = run_cli(
        [
            "model=custom",
            "model._target_=mypkg.net.Net",
            *data,
            "find_lr.steps=30",
            "find_lr.plot=false",
            "trainer.device=cpu",
            "hydra.run.dir=find",
        ],
        user_dir,
        prog="lrrun-find-lr",
    )
    assert_ok(found)
    cycle = next(line for line in found.stdout.splitlines() if line.startswith("one_cycle_lr"))
    assert "lrrun model=custom model._target_=mypkg.net.Net dataset=image_folder" in cycle
    assert "scheduler=one_cycle_lr scheduler.max_lr=" in cycle and "find_lr." not in cycle


def test_param_groups_over_the_users_parameter_names(user_dir: Path) -> None:
    args = [
        "model=custom",
        "model._target_=mypkg.net.Net",
        "dataset=image_folder",
        "dataset.root=shapes",
        "+optimizer.param_groups=[{name:head,params:[head.*],lr:0.1}]",
        "trainer.epochs=2",
        *FAST,
        "hydra.run.dir=run",
    ]
    proc = run_cli(args, user_dir)
    assert_ok(proc)
    assert "head 68 params, lr=0.1" in proc.stdout
    steps = read_csv(user_dir / "run" / "steps.csv")
    assert {round(float(r["lr_1"]) / float(r["lr"]), 9) for r in steps} == {10.0}


SHADOW = 'raise ImportError("the user\'s own file was imported instead of the package")\n'


@pytest.mark.slow
def test_the_users_directory_is_importable_but_never_shadows(user_dir: Path) -> None:
    """mypkg/ beside the command is found; matplotlib.py and torchvision.py there are not
    imported in place of the installed packages (python -m puts the directory first: lrrun
    moves it last)."""
    for name in ("matplotlib.py", "torchvision.py"):
        (user_dir / name).write_text(SHADOW)
    args = [
        "model=custom",
        "model._target_=mypkg.net.Net",
        "+model.width=8",
        "dataset=image_folder",
        "dataset.root=shapes",
        "trainer.epochs=1",
        "trainer.device=cpu",
        "trainer.progress=false",
        "hydra.run.dir=run",
    ]
    proc = run_cli(args, user_dir, fresh=True)
    assert_ok(proc)
    assert (user_dir / "run" / "curves.png").is_file()  # matplotlib: the installed one
