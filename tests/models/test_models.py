"""The models compute what their references compute; lrrun's Dropout is dropout."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.peer import ExamplesNet  # the plain loop's CNN in the peer benchmark
from lrrun.models.builtin import Dropout, FashionMNISTNet


def test_fashion_mnist_net_is_the_examples_net() -> None:
    """Same parameters, same function: pooling before the relu changes nothing in eval, and
    the logits differ from the reference's log-probabilities only by log_softmax."""
    torch.manual_seed(0)
    ours, ref = FashionMNISTNet().eval(), ExamplesNet().eval()
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(16, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(F.log_softmax(ours(x), dim=1), ref(x), rtol=1e-5, atol=1e-6)
    # with dropout off, training mode (and its gradients) agree as well
    ours, ref = ours.train(), ref.train()
    ours.dropout1.p = ours.dropout2.p = ref.dropout1.p = ref.dropout2.p = 0.0
    target = torch.randint(0, 10, (16,))
    F.cross_entropy(ours(x), target).backward()
    F.nll_loss(ref(x), target).backward()
    for (name, a), b in zip(ours.named_parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("p", [0.1, 0.25, 0.5, 0.9])
def test_dropout_keeps_each_value_with_probability_one_minus_p(p: float) -> None:
    torch.manual_seed(1)
    n = 1_000_000
    out = Dropout(p).train()(torch.ones(n))
    kept = out != 0
    # binomial: 5 standard deviations is < 0.0025 for n = 1e6
    assert kept.float().mean().item() == pytest.approx(1 - p, abs=0.0025)
    assert torch.all(out[kept] == torch.tensor(1 / (1 - p)))  # scaled as nn.Dropout scales
    assert out.mean().item() == pytest.approx(1.0, abs=0.01)


def test_dropout_uses_all_16_bits_of_each_lane() -> None:
    """Four masks come from one 64-bit draw: each lane must be uniform (a lane with a constant
    sign bit, as random_() without a range gives, would keep 5/8 at p = 0.5), including odd
    sizes that use part of the last draw."""
    torch.manual_seed(4)
    kept = Dropout(0.5).train()(torch.ones(400_000)) != 0
    for lane in kept.view(-1, 4).float().mean(dim=0).tolist():  # 100k per lane: 5 sd < 0.008
        assert lane == pytest.approx(0.5, abs=0.008)
    for shape in [(1,), (3, 5, 7), (2, 3, 1, 1)]:
        out = Dropout(0.5).train()(torch.ones(shape))
        assert out.shape == shape and set(out.unique().tolist()) <= {0.0, 2.0}


def test_dropout_gradient_is_the_mask_and_eval_is_identity() -> None:
    torch.manual_seed(2)
    drop = Dropout(0.25).train()
    x = torch.randn(64, 64, 12, 12, requires_grad=True)
    out = drop(x)
    out.sum().backward()
    mask = (out.detach() / x.detach()).nan_to_num()
    torch.testing.assert_close(x.grad, mask)
    assert x.grad.unique().tolist() == [0.0, pytest.approx(1 / 0.75)]
    drop.eval()
    assert torch.equal(drop(x), x)


def test_dropout_same_seed_same_mask_and_keeps_layout_and_dtype() -> None:
    x = torch.randn(8, 64, 12, 12).contiguous(memory_format=torch.channels_last)
    torch.manual_seed(3)
    a = Dropout(0.5).train()(x)
    torch.manual_seed(3)
    b = Dropout(0.5).train()(x)
    assert torch.equal(a, b)
    assert a.is_contiguous(memory_format=torch.channels_last)
    assert Dropout(0.5).train()(x.bfloat16()).dtype == torch.bfloat16


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_dropout_edges_are_nn_dropouts(p: float) -> None:
    x = torch.randn(100)
    torch.testing.assert_close(Dropout(p).train()(x), nn.Dropout(p).train()(x))
