"""Models as they come: forwards that return a dict, a tuple or a Hugging Face ModelOutput
(model.output), lazy modules, timm's models with the data's facts (model=timm, model.facts
for **kwargs), and probe errors whose hint fits the failure. Through the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import assert_ok, read_csv, run_cli
from tests.sources import write_folder

FAST = [
    "trainer.device=cpu",
    "trainer.progress=false",
    "trainer.plot=false",
    "trainer.epochs=2",
    "trainer.batch_size=16",
]
NETS = """
import torch
from torch import nn


class Dict(nn.Module):
    def __init__(self, num_classes, input_dim):
        super().__init__()
        self.fc = nn.Linear(input_dim, num_classes)

    def forward(self, x):
        logits = self.fc(x.flatten(1))
        return {"features": x.flatten(1), "logits": logits}


class Pair(Dict):
    def forward(self, x):
        return self.fc(x.flatten(1)), x.mean()


class Lazy(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.LazyLinear(32), nn.ReLU(), nn.LazyLinear(num_classes))

    def forward(self, x):
        return self.net(x)


class RGBOnly(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.LazyLinear(num_classes)

    def forward(self, x):
        return self.fc(self.conv(x).flatten(1))


class Buggy(Dict):
    def forward(self, x):
        raise ValueError("my own bug")
"""


@pytest.fixture
def user_dir(tmp_path: Path) -> Path:
    write_folder(tmp_path / "img", classes=3, splits={"train": 16, "test": 4}, size=8, channels=1)
    (tmp_path / "nets.py").write_text(NETS)
    return tmp_path


def data() -> list[str]:
    return ["dataset=image_folder", "dataset.root=img", *FAST]


def custom(target: str, *more: str) -> list[str]:
    return [*data(), "model=custom", f"model._target_=nets.{target}", *more]


@pytest.mark.parametrize(("target", "output"), [("Dict", "logits"), ("Pair", "0")])
def test_a_forward_returning_more_is_used_through_model_output(
    user_dir: Path, target: str, output: str, monkeypatch
) -> None:
    refused = run_cli([*custom(target), "hydra.run.dir=refused"], user_dir)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "set model.output" not in refused.stderr  # it names the key itself:
    assert f"name it with model.output=<key, attribute or index> (e.g. model.output={output})" in (
        refused.stderr
    )
    assert "logits (2x3)" in refused.stderr or "0: 2x3" in refused.stderr
    proc = run_cli([*custom(target, f"model.output={output}"), "hydra.run.dir=run"], user_dir)
    assert_ok(proc)
    assert len(read_csv(user_dir / "run" / "metrics.csv")) == 2
    import lrrun

    monkeypatch.syspath_prepend(str(user_dir))  # their nets.py, as from their directory
    run = lrrun.load_run(user_dir / "run")  # the same wrapping when the run is used
    assert run.predict(sorted((user_dir / "img" / "test").rglob("*.png"))).probs.shape[1] == 3


@pytest.mark.slow
def test_a_hugging_face_model_output(user_dir: Path) -> None:
    """transformers.ViTForImageClassification returns an ImageClassifierOutput."""
    vit = [
        "model=custom",
        "model._target_=transformers.ViTForImageClassification",
        "+model.config._target_=transformers.ViTConfig",
        "+model.config.image_size=8",
        "+model.config.patch_size=4",
        "+model.config.num_channels=1",
        "+model.config.hidden_size=16",
        "+model.config.num_hidden_layers=1",
        "+model.config.num_attention_heads=2",
        "+model.config.intermediate_size=32",
        "+model.config.num_labels=3",
    ]
    refused = run_cli([*data(), *vit, "hydra.run.dir=refused"], user_dir)
    assert refused.returncode == 2
    assert "returns a ImageClassifierOutput of logits (2x3)" in refused.stderr
    assert "model.output=logits" in refused.stderr
    assert_ok(run_cli([*data(), *vit, "model.output=logits", "hydra.run.dir=run"], user_dir))


def test_lazy_modules_are_materialised_before_anything_touches_them(user_dir: Path) -> None:
    proc = run_cli([*custom("Lazy"), "trainer.channels_last=true", "hydra.run.dir=run"], user_dir)
    assert_ok(proc)
    assert "(Lazy, 2,179 parameters" in proc.stdout  # 64*32+32 + 32*3+3, materialised


@pytest.mark.slow
def test_timm_models_get_the_data_s_facts(user_dir: Path) -> None:
    pytest.importorskip("timm")
    proc = run_cli([*data(), "model=timm", "model.name=resnet10t", "hydra.run.dir=run"], user_dir)
    assert_ok(proc)
    assert "from the data: num_classes=3, in_chans=1" in proc.stdout
    # timm's own entry point takes them through **kwargs: model.facts names them
    direct = [
        "model=custom",
        "model._target_=timm.create_model",
        "+model.model_name=resnet10t",
        "model.facts=[num_classes,in_chans]",
    ]
    proc = run_cli([*data(), *direct, "hydra.run.dir=direct"], user_dir)
    assert_ok(proc)
    assert "from the data: num_classes=3, in_chans=1" in proc.stdout
    wrong = run_cli([*data(), "model=timm", "model.name=resnet_18", "hydra.run.dir=x"], user_dir)
    assert wrong.returncode == 2 and "did you mean" in wrong.stderr


def test_probe_errors_give_the_hint_that_fits(user_dir: Path) -> None:
    channels = run_cli([*custom("RGBOnly"), "hydra.run.dir=a"], user_dir)
    assert channels.returncode == 2 and "Traceback" not in channels.stderr
    assert "The data has 1 channel(s): give the model in_channels=1" in channels.stderr
    buggy = run_cli([*custom("Buggy"), "hydra.run.dir=b"], user_dir)
    assert buggy.returncode == 2
    assert "ValueError: my own bug" in buggy.stderr and "nets.py:" in buggy.stderr
    assert "in forward)" in buggy.stderr and "fix it there" in buggy.stderr
