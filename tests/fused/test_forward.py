"""The members' one pass (lrrun.fused.forward): every member's output, gradient and
BatchNorm statistics are those of its solo forward and backward, to float rounding."""

from __future__ import annotations

import copy
from typing import ClassVar

import pytest
import torch
from torch import nn

from lrrun.errors import ConfigError
from lrrun.fused.forward import Stacked, measure, precision_differs
from lrrun.models import FashionMNISTNet, FeedForward
from lrrun.train import checkpoint
from lrrun.train.parts import precision_context


def bn_net() -> nn.Module:
    return nn.Sequential(
        nn.Flatten(), nn.Linear(12, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3)
    )


def members(make, n: int) -> list[nn.Module]:
    out = []
    for seed in range(n):
        torch.manual_seed(seed)
        out.append(make())
    return out


@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda: FeedForward(12, 16, 3), (12,)),
        (bn_net, (12,)),
        (lambda: FashionMNISTNet(0.0, 0.0, (1, 12, 12), 3), (1, 12, 12)),
    ],
    ids=["feedforward", "batchnorm", "cnn"],
)
def test_each_member_as_alone(make, shape: tuple[int, ...]) -> None:
    fused = members(make, 4)
    solo = [copy.deepcopy(m) for m in fused]
    x = torch.randn(4, 8, *shape)
    y = torch.randint(0, 3, (4, 8))
    out = Stacked(fused).train()(x)
    loss = sum(nn.functional.cross_entropy(out[i], y[i]) for i in range(4))
    loss.backward()
    for i, alone in enumerate(solo):
        alone.train()
        own = alone(x[i])
        torch.testing.assert_close(out[i], own, rtol=1e-5, atol=1e-6)
        nn.functional.cross_entropy(own, y[i]).backward()
        for (name, p), q in zip(fused[i].named_parameters(), alone.parameters(), strict=True):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-6, msg=name)
        for (name, b), c in zip(fused[i].named_buffers(), alone.buffers(), strict=True):
            torch.testing.assert_close(b, c, rtol=1e-5, atol=1e-6, msg=name)  # BN's statistics


def test_one_batch_for_all_in_eval_mode() -> None:
    fused = members(bn_net, 3)
    for m in fused:  # statistics of their own, as training leaves them
        m.train()(torch.randn(32, 12))
    x = torch.randn(5, 12)
    with torch.no_grad():
        out = Stacked(fused).eval()(x, shared=True)
        for i, m in enumerate(fused):
            torch.testing.assert_close(out[i], m.eval()(x), rtol=1e-5, atol=1e-6)


def test_only_one_architecture_shares_a_pass() -> None:
    with pytest.raises(ConfigError, match="member 2 is not member 1's architecture: parameter"):
        Stacked([FeedForward(12, 16, 3), FeedForward(12, 32, 3)])


def test_a_members_checkpoint_holds_its_own_weights_only(tmp_path) -> None:
    """A member's leaves are slices of the pass's packed tensors: its checkpoint must not
    carry the other members' weights with them (torch.save writes a view's whole storage)."""
    fused = members(lambda: FeedForward(64, 64, 3), 8)
    alone = copy.deepcopy(fused[3])
    Stacked(fused)
    assert fused[3].fc1.weight.untyped_storage().nbytes() == 8 * alone.fc1.weight.nbytes
    for model, name in ((fused[3], "member.pt"), (alone, "alone.pt")):
        checkpoint.save_atomic({"model": model.state_dict()}, tmp_path / name)
    member, solo = (tmp_path / "member.pt").stat().st_size, (tmp_path / "alone.pt").stat().st_size
    assert member == pytest.approx(solo, rel=0.02)
    saved = torch.load(tmp_path / "member.pt", weights_only=True)["model"]
    for key, value in alone.state_dict().items():
        assert torch.equal(saved[key], value)


class Seen(nn.Module):
    """Records (in the class: measure works on copies) the dtype its linear layer computes
    in. No bias: a biased Linear under vmap is not autocast on a CPU (precision_differs)."""

    dtypes: ClassVar[list[torch.dtype]] = []

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(12, 3, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fc(x)
        Seen.dtypes.append(out.dtype)
        return out


@pytest.mark.parametrize("precision, dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_the_probe_times_the_runs_own_precision(precision: str, dtype: torch.dtype) -> None:
    """fuse=auto decides on the pass's time in the job's precision: both the pass and the
    members one after another run their forwards under the run's autocast."""
    Seen.dtypes.clear()
    autocast = precision_context(precision, torch.device("cpu"))
    fused, alone = measure(Seen(), 3, torch.randn(8, 12), autocast, repeats=1)
    assert fused > 0 and alone > 0
    assert len(Seen.dtypes) == 2 * 1 + 2 * 3  # a warm-up and a timed step: the pass, 3 alone
    assert set(Seen.dtypes) == {dtype}


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_a_pass_that_would_compute_in_another_precision_is_refused(precision: str) -> None:
    """Under CPU autocast a batched Linear with a bias and a batched convolution stay
    float32 while the model alone computes in half precision: named, layer by layer; a
    model whose layers the pass computes alike is not refused, nor is fp32."""
    autocast = precision_context(precision, torch.device("cpu"))
    half = "bfloat16" if precision == "bf16" else "float16"
    assert precision_differs(FeedForward(12, 16, 3), torch.randn(2, 12), autocast) == (
        f"the pass would compute fc1 (Linear) in float32, alone in {half}: autocast does not "
        "reach that layer's kernel under vmap here"
    )
    cnn = FashionMNISTNet(0.0, 0.0, (1, 12, 12), 3)
    assert "conv1 (Conv2d) in float32" in str(
        precision_differs(cnn, torch.randn(2, 1, 12, 12), autocast)
    )
    assert precision_differs(Seen(), torch.randn(2, 12), autocast) is None
    fp32 = precision_context("fp32", torch.device("cpu"))
    assert precision_differs(FeedForward(12, 16, 3), torch.randn(2, 12), fp32) is None


def test_the_probe_times_the_cnn_with_its_dropout() -> None:
    """lrrun's Dropout draws its masks outside a pass: timed with a mask of ones both ways,
    not drawn inside the pass (where vmap refused its unbatched draw: every default CNN
    sweep under fuse=auto failed in the probe)."""
    cnn, x = FashionMNISTNet(0.25, 0.5, (1, 12, 12), 3), torch.randn(4, 1, 12, 12)
    state = torch.get_rng_state()
    fused, alone = measure(cnn, 2, x, repeats=2)
    assert fused > 0 and alone > 0
    assert torch.equal(torch.get_rng_state(), state)  # nothing drawn
    assert cnn.dropout1.training and not hasattr(cnn.dropout1, "fused_mask")  # copies timed
