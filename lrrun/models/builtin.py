"""The built-in models: the tutorial's MLP and CNN, sized from the data (lrrun.models.adapt
passes input_dim / input_shape and num_classes). Both return logits."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class FeedForward(nn.Module):
    """input_dim -> hidden -> num_classes MLP with ReLU (784 -> 100 -> 10 for FashionMNIST)."""

    def __init__(self, input_dim: int = 784, hidden_dim: int = 100, num_classes: int = 10) -> None:
        super().__init__()
        self.fc1 = nn.Linear(input_dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


class Dropout(nn.Dropout):
    """nn.Dropout with a cheaper mask on CPU, where torch's ``bernoulli_`` draws one random
    number per value (7 ms for the CNN's 590k values per batch of 64). Here one 64-bit draw
    gives four 16-bit uniform integers; a value is kept when its integer is at or above
    round(p * 2**16), i.e. with probability 1 - p, exactly for p a multiple of 2**-16 (0.25 and
    0.5, the CNN's) and to within 2**-17 otherwise, and scaled by 1 / (1 - p) as nn.Dropout
    scales. Forward and backward of the layer: 8.5 ms with bernoulli_, 2.4 ms with this
    (batch 64). Same seed, same masks, but not nn.Dropout's masks. On CUDA (a fused kernel),
    in eval mode and for p = 0 or 1: nn.Dropout itself."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = getattr(self, "fused_mask", None)  # a member of a fused pass: drawn for it
        if mask is not None:
            return x * mask
        if not self.training or x.device.type != "cpu" or not 0 < self.p < 1:
            return super().forward(x)
        if not (x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)):
            x = x.contiguous()  # the draws below are laid out as x is: x must be dense
        return x * self.draw(x.shape, x.stride(), x.dtype)

    def draw(self, shape: Sequence[int], stride: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
        """The scaled keep-mask of a dense input of this shape and layout, drawn from the
        global generator as ``forward`` draws it (lrrun.fused draws a member's masks with
        this, from the member's own stream, before one pass)."""
        n = math.prod(shape)
        bits = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-(2**63), None)  # all 64
        draws = bits.view(torch.int16)[:n].as_strided(
            tuple(shape), tuple(stride)
        )  # [-2**15, 2**15)
        keep = draws >= round(self.p * 2**16) - 2**15
        return keep.to(dtype).mul_(1 / (1 - self.p))

    @staticmethod
    def layout(x: torch.Tensor) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The shape and strides ``forward`` draws for, for the input ``x``."""
        if not (x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)):
            x = x.contiguous()
        return tuple(x.shape), tuple(x.stride())


class FashionMNISTNet(nn.Module):
    """The two-conv CNN of pytorch/examples' mnist, returning logits (no log_softmax); for
    C x H x W images (1 x 28 x 28: fc1 takes 64 x 12 x 12 = 9216 values)."""

    def __init__(
        self,
        dropout1: float = 0.25,
        dropout2: float = 0.5,
        input_shape: tuple[int, ...] = (1, 28, 28),
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        if len(input_shape) != 3 or min(input_shape[1:]) < 6:
            raise ValueError(
                f"FashionMNISTNet needs images of at least 6x6 pixels, not samples of shape "
                f"{tuple(input_shape)}; use model=feedforward for feature vectors"
            )
        channels, height, width = input_shape
        self.conv1 = nn.Conv2d(channels, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = Dropout(dropout1)
        self.dropout2 = Dropout(dropout2)
        self.fc1 = nn.Linear(64 * ((height - 4) // 2) * ((width - 4) // 2), 128)
        self.fc2 = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        # max_pool(relu(x)) == relu(max_pool(x)): relu is monotonic. Pooling first runs the
        # relu (and its backward) on a quarter of the values.
        x = F.relu(F.max_pool2d(self.conv2(x), 2))
        x = self.dropout1(x)
        x = self.dropout2(F.relu(self.fc1(x.flatten(1))))
        return self.fc2(x)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
