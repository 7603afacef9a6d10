"""dataset.transforms: the train pipeline (augmentation: train split only) and the eval
pipeline (val and test), each a list of ``_target_`` nodes, torchvision ``transforms.v2``
or any callable on one C x H x W sample (uint8 pixels before normalisation).

- Per sample (the DataLoader path): each training sample's random draws are seeded by
  (trainer.seed, epoch, sample index), so the augmentation is the same with any number of
  workers and after a resume.
- Batched (the tensor path): ``RandomCrop`` (with padding) and ``RandomHorizontalFlip``, the
  32x32 recipe, run on the device for the whole batch at once, each sample with its own
  draw, from a generator seeded by (trainer.seed, epoch). Any other train transform runs
  per sample (trainer.data_path=auto then picks the DataLoader path).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from lrrun.errors import ConfigError, root_cause

Transform = Callable[[torch.Tensor], torch.Tensor]


def build(nodes: Sequence[dict[str, Any]], role: str) -> list[Transform]:
    import hydra.utils

    steps = []
    for i, node in enumerate(nodes):
        where = f"dataset.transforms.{role}[{i}] ({node['_target_']})"
        try:
            step = hydra.utils.instantiate(node, _convert_="all")
        except Exception as exc:
            raise ConfigError(f"{where} could not be built: {root_cause(exc)}") from None
        if not callable(step):
            raise ConfigError(f"{where} is not callable: a transform takes a sample, returns one.")
        steps.append(step)
    return steps


def apply(steps: Sequence[Transform], sample: torch.Tensor) -> torch.Tensor:
    for step in steps:
        sample = step(sample)
    return sample


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of one training sample's augmentation in one epoch."""
    return ((seed * 1_000_003 + epoch) * 1_000_033 + index) % 2**63


def seeded(steps: Sequence[Transform], sample: torch.Tensor, seed: int) -> torch.Tensor:
    """``steps`` on ``sample`` with torch's CPU generator seeded, and restored after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return apply(steps, sample)


class Batched:
    """Train transforms the tensor path applies to a whole batch on its device."""

    def __init__(self, steps: Sequence[Any]) -> None:
        self.steps = list(steps)

    @staticmethod
    def of(steps: Sequence[Any]) -> Batched | None:
        """The batched form of ``steps``, or None when one of them runs per sample only."""
        from torchvision.transforms import v2

        for step in steps:
            if type(step) is v2.RandomHorizontalFlip:
                continue
            if (
                type(step) is v2.RandomCrop
                and not step.pad_if_needed
                and isinstance(step.fill, int | float)
                and step.padding_mode in ("constant", "reflect", "edge")
            ):
                continue
            return None
        return Batched(steps)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        for step in self.steps:
            if hasattr(step, "p"):  # RandomHorizontalFlip
                flip = torch.rand(len(images), generator=generator, device=images.device) < step.p
                images = torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)
            else:
                images = _random_crop(images, step, generator)
        return images


def _random_crop(images: torch.Tensor, step: Any, g: torch.Generator) -> torch.Tensor:
    left, top, right, bottom = step.padding or (0, 0, 0, 0)
    mode = {"constant": "constant", "reflect": "reflect", "edge": "replicate"}[step.padding_mode]
    if mode == "constant":
        padded = F.pad(images, (left, right, top, bottom), value=step.fill)
    else:  # torch pads uint8 only with constants: pad as floats (exact for whole numbers)
        padded = F.pad(images.float(), (left, right, top, bottom), mode=mode).to(images.dtype)
    (h, w), (ph, pw), n = step.size, padded.shape[-2:], len(images)
    if h > ph or w > pw:
        raise ConfigError(
            f"RandomCrop size {h}x{w} is larger than the padded images ({ph}x{pw}): use the "
            "images' own size and padding, e.g. size=32, padding=4 for 32x32 data."
        )
    dev = images.device
    dy = torch.randint(0, ph - h + 1, (n,), generator=g, device=dev)
    dx = torch.randint(0, pw - w + 1, (n,), generator=g, device=dev)
    rows = (dy[:, None] + torch.arange(h, device=dev))[:, :, None]
    cols = (dx[:, None] + torch.arange(w, device=dev))[:, None, :]
    nhwc = padded.permute(0, 2, 3, 1)[torch.arange(n, device=dev)[:, None, None], rows, cols]
    return nhwc.permute(0, 3, 1, 2).contiguous()
