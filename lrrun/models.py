"""The two models the configs name. Both take (N, 1, 28, 28) images and return logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FeedForward(nn.Module):
    """784 -> hidden -> 10 MLP with ReLU."""

    def __init__(self, input_dim: int = 784, hidden_dim: int = 100, output_dim: int = 10) -> None:
        super().__init__()
        self.input_dim, self.output_dim = input_dim, output_dim
        self.fc1 = nn.Linear(input_dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


class Dropout(nn.Dropout):
    """nn.Dropout with a cheaper mask on CPU: each value is kept when a uniform 31-bit integer
    is >= round(p * 2**31), i.e. with probability 1 - p (to within 2**-32, finer than a float32
    uniform), and scaled by 1 / (1 - p), as nn.Dropout does. torch's CPU ``bernoulli_`` takes
    7 ms for the CNN's 590k values per batch of 64, the integers 2 ms: forward and backward of
    the layer go from 8.7 to 3.8 ms, 13% of a training step (benchmarks/peer.py). Same seed,
    same masks, but not nn.Dropout's masks. On CUDA (a fused kernel), in eval mode and for
    p = 0 or 1: nn.Dropout itself."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or x.device.type != "cpu" or not 0 < self.p < 1:
            return super().forward(x)
        draws = torch.empty_like(x, dtype=torch.int32).random_()  # uniform on [0, 2**31)
        keep = draws >= round(self.p * 2**31)
        return x * keep.to(x.dtype).mul_(1 / (1 - self.p))


class FashionMNISTNet(nn.Module):
    """The two-conv CNN of pytorch/examples' mnist, returning logits (no log_softmax)."""

    input_dim = 784
    output_dim = 10

    def __init__(self, dropout1: float = 0.25, dropout2: float = 0.5) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = Dropout(dropout1)
        self.dropout2 = Dropout(dropout2)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

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
