"""Which random draws keep a model out of a pass (lrrun.fused.dropout.why_alone): any
generator-seeded operation of its training forward, wherever it is, except lrrun's Dropout
on a CPU (its masks are drawn per member before the pass); and the pass itself refuses a
random draw, so none slips through unseen."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lrrun.fused.dropout import why_alone
from lrrun.fused.forward import Stacked
from lrrun.models import FashionMNISTNet, FeedForward


class Functional(nn.Module):
    """Dropout as a function call in its own forward: no Dropout module to find."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(12, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.dropout(x, 0.3, self.training))


class DropPath(nn.Module):
    """Stochastic depth as timm writes it: a Bernoulli draw per sample."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keep = x.new_empty(x.shape[0], 1).bernoulli_(0.9)
        return x * keep / 0.9 if self.training else x


CASES = {
    "functional": (Functional(), "the model (Functional) draws random numbers in its forward"),
    "torch-dropout": (
        nn.Sequential(nn.Dropout(0.2), nn.Linear(12, 3)),
        "the model's 0 (Dropout, p=0.2) draws random numbers in its forward",
    ),
    "drop-path": (
        nn.Sequential(nn.Linear(12, 12), DropPath(), nn.Linear(12, 3)),
        "the model's 1 (DropPath) draws random numbers in its forward",
    ),
    "attention": (
        nn.TransformerEncoderLayer(12, 2, 24, dropout=0.1, batch_first=True),
        "draws random numbers in its forward",
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_a_draw_anywhere_in_the_training_forward_is_found(name: str) -> None:
    model, said = CASES[name]
    x = torch.randn(2, 4, 12) if name == "attention" else torch.randn(2, 12)
    state = torch.get_rng_state()
    why = why_alone(model, x)
    assert why is not None and said in why and "(aten.bernoulli_)" in why
    assert torch.equal(torch.get_rng_state(), state)  # the members' streams untouched
    assert model.training  # a copy was run


def test_lrruns_dropout_on_a_cpu_and_models_without_draws_share_a_pass() -> None:
    assert why_alone(FashionMNISTNet(0.25, 0.5, (1, 12, 12), 3), torch.randn(2, 1, 12, 12)) is None
    assert why_alone(FeedForward(12, 16, 3), torch.randn(2, 12)) is None
    assert why_alone(nn.Sequential(nn.Dropout(0.0), nn.Linear(12, 3)), torch.randn(2, 12)) is None


def test_the_pass_refuses_a_draw_it_could_not_give_each_member() -> None:
    with pytest.raises(RuntimeError, match="randomness"):
        Stacked([Functional(), Functional()]).train()(torch.randn(2, 5, 12))


class Attention(nn.Module):
    """Attention dropout inside torch's fused attention, as the GPT calls it."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = x.view(x.shape[0], 1, 2, 6)
        p = self.p if self.training else 0.0
        return F.scaled_dot_product_attention(q, q, q, dropout_p=p).flatten(1)


def test_attention_draws_only_where_its_dropout_is_on() -> None:
    """torch marks fused attention as drawing whatever its dropout_p; at 0 it does not (the
    GPT at model.dropout=0 shares a pass)."""
    why = why_alone(Attention(0.1), torch.randn(3, 12))
    assert why is not None and "the model (Attention, p=0.1) draws random numbers" in why
    assert why_alone(Attention(0.0), torch.randn(3, 12)) is None


class NoisyEval(nn.Linear):
    """Draws only when evaluating (as Monte Carlo dropout or test-time noise would)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        return out if self.training else out + 0.01 * torch.randn_like(out)


def test_a_draw_when_evaluating_is_found_too() -> None:
    why = why_alone(NoisyEval(12, 3), torch.randn(2, 12))
    assert why is not None and "the model (NoisyEval) draws random numbers" in why
    assert "(aten.randn_like)" in why


def test_lrruns_dropout_off_a_cpu_is_torchs_kernel_and_trains_alone() -> None:
    """Off a CPU lrrun's Dropout is nn.Dropout (a fused kernel): said without running it
    (a meta tensor stands for a GPU's here)."""
    cnn = FashionMNISTNet(0.25, 0.5, (1, 12, 12), 3)
    why = why_alone(cnn, torch.empty(2, 1, 12, 12, device="meta"))
    assert why is not None
    assert why.startswith("the model's dropout1 (Dropout, p=0.25) draws in its forward on meta")
