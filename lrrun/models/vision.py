"""torchvision's classification architectures by name, fitted to the data.

``torchvision_model(arch, num_classes, in_channels, image_size)`` builds
``torchvision.models.get_model(arch, weights=None, num_classes=...)`` (random init: nothing is
downloaded) and replaces its first convolution when the data has other than 3 channels.
``small_input`` (``auto``: images under 64 pixels) makes the stem keep the resolution, as the
CIFAR variants do: the first convolution becomes 3x3 with stride 1 (padding 1) and a ResNet's
max-pool is dropped; a 32x32 image then reaches the last stage at 4x4 instead of 1x1.
"""

from __future__ import annotations

from typing import Any

from torch import nn


def torchvision_model(
    arch: str,
    num_classes: int = 1000,
    in_channels: int = 3,
    image_size: int | tuple[int, int] = 224,
    small_input: bool | str = "auto",
    **kwargs: Any,
) -> nn.Module:
    import torchvision.models as tvm

    names = tvm.list_models(module=tvm)
    if arch not in names:
        import difflib

        close = difflib.get_close_matches(arch, names, n=3)
        raise ValueError(
            f"model.arch={arch!r} is not a torchvision classification model"
            + (f" (did you mean {', '.join(close)}?)" if close else "")
        )
    model = tvm.get_model(arch, weights=None, num_classes=num_classes, **kwargs)
    side = min(image_size) if isinstance(image_size, list | tuple) else image_size
    small = side < 64 if small_input == "auto" else bool(small_input)
    name, conv = next((n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d))
    if small or conv.in_channels != in_channels:
        kernel, stride, padding = (
            (3, 1, 1) if small else (conv.kernel_size, conv.stride, conv.padding)
        )
        _replace(
            model,
            name,
            nn.Conv2d(
                in_channels, conv.out_channels, kernel, stride, padding, bias=conv.bias is not None
            ),
        )
    if small and isinstance(getattr(model, "maxpool", None), nn.MaxPool2d):
        model.maxpool = nn.Identity()
    return model


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


def timm_model(
    name: str, num_classes: int = 1000, in_chans: int = 3, pretrained: bool = False, **kwargs: Any
) -> nn.Module:
    """``model=timm model.name=resnet18``: any of timm's models (``pip install
    'lrrun[timm]'``), with ``num_classes`` and ``in_chans`` from the data. Pretrained weights
    need a download (or timm's cache); other keys go to ``timm.create_model``."""
    try:
        import timm
    except ImportError:
        raise ValueError("model=timm needs timm: pip install 'lrrun[timm]'") from None
    if not timm.is_model(name):
        import difflib

        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        raise ValueError(
            f"model.name={name!r} is not one of timm's models"
            + (f" (did you mean {', '.join(close)}?)" if close else "")
        )
    return timm.create_model(
        name, pretrained=pretrained, num_classes=num_classes, in_chans=in_chans, **kwargs
    )
