"""Any model: the data's facts by parameter name, the one-batch probe, the built-ins and
torchvision's architectures fitted to the data."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lrrun.errors import ConfigError
from lrrun.models.adapt import fill, probe
from lrrun.models.builtin import FashionMNISTNet, FeedForward
from lrrun.models.vision import torchvision_model
from lrrun.tasks.classification import Classification
from lrrun.train.parts import build_model
from tests.sources import facts_of

RGB32 = facts_of(5, (3, 32, 32))


def test_facts() -> None:
    assert RGB32 == {
        "num_classes": 5,
        "num_outputs": 5,
        "input_shape": (3, 32, 32),
        "input_dim": 3072,
        "in_channels": 3,
        "in_chans": 3,
        "image_size": 32,
    }
    assert facts_of(2, (3, 16, 24))["image_size"] == (16, 24)
    assert facts_of(4, (7,)) == {
        "num_classes": 4,
        "num_outputs": 4,
        "input_shape": (7,),
        "input_dim": 7,
    }


def test_only_the_parameters_a_target_takes_are_filled() -> None:
    assert fill({"_target_": "tests.sources.TinyNet"}, RGB32) == {
        "num_classes": 5,
        "in_channels": 3,
    }
    assert fill({"_target_": "torch.nn.Flatten"}, RGB32) == {}
    given = fill({"_target_": "lrrun.models.FeedForward", "input_dim": None}, RGB32)
    assert given == {"input_dim": 3072, "num_classes": 5}
    assert fill({"_target_": "tests.sources.TinyNet", "num_classes": 5}, RGB32) == {
        "in_channels": 3
    }


def test_an_explicit_value_must_fit_the_data() -> None:
    with pytest.raises(
        ConfigError, match=r"model.num_classes=7 does not fit the data: it has 5 classes"
    ):
        fill({"_target_": "tests.sources.TinyNet", "num_classes": 7}, RGB32)
    with pytest.raises(
        ConfigError, match=r"model.input_dim=784 .* 3072 values per sample \(3x32x32\)"
    ):
        fill({"_target_": "lrrun.models.FeedForward", "input_dim": 784}, RGB32)


def test_the_probe_refuses_with_the_fix() -> None:
    batch, check = torch.zeros(2, 3, 32, 32), Classification(5).check_output
    with pytest.raises(ConfigError, match=r"returns \(2, 3072\) .* needs logits of shape \(2, 5\)"):
        probe(nn.Flatten(), batch, "torch.nn.Flatten", check)
    with pytest.raises(
        ConfigError, match=r"fails on one batch of the data \(input 2x3x32x32, float32\)"
    ):
        probe(nn.Linear(10, 5), batch, "torch.nn.Linear", check)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3072, 5), nn.BatchNorm1d(5))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    probe(model, torch.randn(2, 3, 32, 32), "x", check)
    assert model.training  # mode restored, no statistic moved
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_builtins_size_themselves_from_the_data() -> None:
    model, given = build_model(
        {"_target_": "lrrun.models.FashionMNISTNet", "input_shape": None, "num_classes": None},
        RGB32,
    )
    assert given == {"input_shape": (3, 32, 32), "num_classes": 5}
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 5)
    # the tutorial's sizes are the defaults: 784 -> 100 -> 10 and the 1,199,882-parameter CNN
    assert sum(p.numel() for p in FeedForward().parameters()) == 79_510
    assert sum(p.numel() for p in FashionMNISTNet().parameters()) == 1_199_882
    with pytest.raises(ValueError, match="needs images"):
        FashionMNISTNet(input_shape=(20,))


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v3_small"])
def test_torchvision_models_fit_small_grey_images(arch: str) -> None:
    model = torchvision_model(arch, num_classes=3, in_channels=1, image_size=16)
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert (first.in_channels, first.stride) == (1, (1, 1))  # grey, and the small-image stem
    assert model.eval()(torch.zeros(2, 1, 16, 16)).shape == (2, 3)
    big = torchvision_model(arch, num_classes=3, image_size=224)
    assert next(m for m in big.modules() if isinstance(m, nn.Conv2d)).stride == (2, 2)
    if arch == "resnet18":
        assert isinstance(model.maxpool, nn.Identity) and isinstance(big.maxpool, nn.MaxPool2d)


def test_an_unknown_architecture_names_close_ones() -> None:
    with pytest.raises(ValueError, match="did you mean resnet18"):
        torchvision_model("resnet17", num_classes=3)


def test_a_target_that_is_not_a_module_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"returned a dict, not an nn\.Module"):
        build_model({"_target_": "builtins.dict"}, RGB32)
