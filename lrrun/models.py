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


class FashionMNISTNet(nn.Module):
    """The two-conv CNN of pytorch/examples' mnist, returning logits (no log_softmax)."""

    input_dim = 784
    output_dim = 10

    def __init__(self, dropout1: float = 0.25, dropout2: float = 0.5) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(dropout1)
        self.dropout2 = nn.Dropout(dropout2)
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
