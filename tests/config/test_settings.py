"""settings.read: the one entry from a composed config to plain values, read once per run."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml
from omegaconf import DictConfig, ListConfig

import lrrun.config.settings
import lrrun.tools.preview
import lrrun.train.runner
from lrrun.config.location import config_dir
from lrrun.config.reference import markdown, yaml_text
from lrrun.config.settings import Settings, read
from lrrun.config.trainer import RESUME_FREE, RULES, TrainerSettings
from lrrun.errors import ConfigError
from tests.conftest import read_csv


def walk(value: Any) -> list[Any]:
    if dataclasses.is_dataclass(value):
        return [
            value,
            *(x for f in dataclasses.fields(value) for x in walk(getattr(value, f.name))),
        ]
    if isinstance(value, dict):
        return [value, *(x for v in value.values() for x in walk(v))]
    if isinstance(value, list | tuple):
        return [value, *(x for v in value for x in walk(v))]
    return [value]


def test_settings_hold_plain_values_only(compose_cfg) -> None:
    cfg = compose_cfg(
        "scheduler=sequential_lr", "+optimizer.param_groups=[{name:head,params:[fc2.*],lr:0.1}]"
    )
    settings = read(cfg, {"scheduler": "sequential_lr"})
    assert not [v for v in walk(settings) if isinstance(v, DictConfig | ListConfig)]
    assert settings.trainer.epochs == 6 and settings.trainer.trackers == ()
    assert settings.param_groups == [{"name": "head", "params": ["fc2.*"], "lr": 0.1}]
    assert "param_groups" not in settings.optimizer  # split off: the groups are their own value
    assert (
        settings.resolved["optimizer"]["param_groups"] == settings.param_groups
    )  # the plan keeps it
    assert settings.dataset.options["seed"] == 42  # ${trainer.seed} resolved
    assert settings.dataset.source == "synthetic" and settings.dataset.train_transforms == ()
    assert settings.choices == {"scheduler": "sequential_lr"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.trainer.epochs = 3  # type: ignore[misc]


def test_the_shipped_trainer_yaml_is_the_declaration() -> None:
    """conf/trainer/default.yaml is what lrrun.config.trainer declares (``make generated``
    writes it), and the settings' defaults are the YAML's as read."""
    path = config_dir() / "trainer" / "default.yaml"
    assert path.read_text() == yaml_text(), "conf/trainer/default.yaml is stale: make generated"
    shipped = yaml.safe_load(path.read_text())
    fields = {f.name for f in dataclasses.fields(TrainerSettings)}
    assert fields == set(RULES) == set(shipped)
    defaults = TrainerSettings()
    # checked into (monitor, higher, patience, min_delta) and (decay, every, warmup); off
    read_as = {"early_stop": None, "ema": None}
    assert shipped["early_stop"] == {"patience": None, "min_delta": 0.0, "monitor": None}
    assert shipped["ema"] == {"decay": None, "every": 1, "warmup": True}
    for key, value in shipped.items():
        expected = read_as.get(key, value)
        assert getattr(defaults, key) == (
            tuple(expected) if isinstance(expected, list) else expected
        ), key


def test_what_a_resume_may_change() -> None:
    """How fast and where a run runs, how long, and what it writes besides the CSVs - never
    what it computes."""
    assert set(RESUME_FREE) == {
        "epochs",
        "plot",
        "device",
        "progress",
        "data_path",
        "num_workers",
        "compile",
        "channels_last",
        "eval_batch_size",
        "resume",
        "allow_config_change",
        "save_best",
        "stop_on_nonfinite",
        "trackers",
        "mlflow_uri",
        "pin_memory",
        "persistent_workers",
        "test_every_epoch",
        "early_stop",
    }


def test_the_reference_table_has_every_key() -> None:
    table = markdown()
    for key in [*RULES, "early_stop.patience", "ema.warmup"]:
        if key not in ("early_stop", "ema"):
            assert f"| `{key}` |" in table, key
    assert (
        "| `epochs` | int | `10` | epochs to train; a resume may raise it<br>*accepts* an "
        "integer >= 1 | yes |" in table
    )
    assert "| `clip_grad_norm` | float or null | `null` |" in table
    assert table.count("### ") == 5 and table.count(" | no |") > 5


def test_an_interpolation_error_names_its_group(compose_cfg) -> None:
    with pytest.raises(ConfigError, match=r"^dataset: .*no_such_key"):
        read(compose_cfg("dataset.seed=${trainer.no_such_key}"))


def test_below_the_entry_nothing_reads_the_config_again(
    compose_cfg, tmp_path: Path, monkeypatch
) -> None:
    """Given Settings, the runner and lrrun-preview train and plan without reading or
    checking the config again."""
    settings = read(compose_cfg("scheduler=one_cycle_lr", "trainer.epochs=2"))

    def again(*args: Any, **kwargs: Any) -> Settings:
        raise AssertionError("the config was read again")

    for module in (lrrun.config.settings, lrrun.train.runner, lrrun.tools.preview):
        monkeypatch.setattr(module, "read", again)
    lrrun.train.runner.run(settings, tmp_path)
    _, rows, _ = lrrun.tools.preview.simulate(settings)
    trained = [float(r["lr"]) for r in read_csv(tmp_path / "steps.csv")]
    assert trained == [r["lr"] for r in rows] and len(trained) == 8


@pytest.mark.parametrize(
    "path",
    [
        "outputs/2026-12-05/10-00-00",
        "ü run, 2 [x]=(y)#",
        "it's",
        'say "hi"',
        "back\\slash",
        "end\\",
        "a\\'b",
    ],
)
def test_the_printed_resume_command_reads_back(path: str) -> None:
    """Pasted into a shell, then parsed by Hydra, the resume command names the same dir."""
    import shlex

    from hydra.core.override_parser.overrides_parser import OverridesParser

    from lrrun.config.run_dirs import resume_command

    command = resume_command(["optimizer.lr=0.1", "trainer.resume=old"], path)
    argv = shlex.split(command)
    assert argv[:2] == ["lrrun", "optimizer.lr=0.1"] and len(argv) == 3
    (override,) = OverridesParser.create().parse_overrides([argv[2]])
    assert override.key_or_group == "trainer.resume" and override.value() == path


CHECK_ALONE = """
import sys
from hydra import compose, initialize_config_dir
from lrrun.config.location import config_dir
from lrrun.config.settings import read
from lrrun.errors import ConfigError
with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
    cfg = compose("config", overrides=sys.argv[1:])
try:
    read(cfg)
except ConfigError as exc:
    print(exc)
print("torch imported" if "torch" in sys.modules else "torch not imported")
"""


@pytest.mark.parametrize(
    ("overrides", "said"),
    [
        (
            ["scheduler=step_lr", "+scheduler.monitor=val_acc"],
            "scheduler.monitor='val_acc' is only used by reduce_lr_on_plateau; StepLR ignores "
            "metrics. Remove scheduler.monitor.",
        ),
        (
            ["optimizer=sgd_schedule_free", "scheduler=cosine_annealing_lr"],
            "optimizer SGDScheduleFree is schedule-free: it replaces the schedule, and "
            "scheduler._target_=torch.optim.lr_scheduler.CosineAnnealingLR would fight it.",
        ),
    ],
)
def test_checks_of_the_config_alone_run_before_torch_is_imported(overrides, said) -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", CHECK_ALONE, *overrides], capture_output=True, text=True, check=True
    ).stdout
    assert said in out and out.rstrip().endswith("torch not imported")
