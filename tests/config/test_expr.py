"""The lr_lambda evaluator: same numbers as Python for what it allows, refuses the rest."""

from __future__ import annotations

import math
import time

import pytest

from lrrun.config.expr import EpochExpression
from lrrun.errors import ConfigError

ALLOWED = [
    "0.1 ** epoch",
    "0.95",
    "1 / (epoch + 1)",
    "min(1.0, (epoch + 1) / 5)",
    "max(0.01, 1 - epoch / 20)",
    "0.5 * (1 + cos(pi * epoch / 10))",
    "exp(-0.1 * epoch)",
    "1.0 if epoch < 3 else 0.1",
    "abs(-2) ** -epoch",
    "sqrt(epoch + 1) % 3 // 1 + 1",
    "2 ** epoch",
]


@pytest.mark.parametrize("source", ALLOWED)
def test_matches_python(source: str) -> None:
    f = EpochExpression(source)
    env = {"epoch": 0, "pi": math.pi, **{n: getattr(math, n) for n in ("cos", "exp", "sqrt")}}
    for epoch in range(12):
        env["epoch"] = epoch
        expected = float(eval(source, {"__builtins__": {"min": min, "max": max, "abs": abs}}, env))
        assert f(epoch) == pytest.approx(expected, rel=1e-15, abs=0)


@pytest.mark.parametrize(
    "source",
    [
        "__import__('os').system('echo hi')",
        "epoch.__class__",
        "open('/etc/passwd')",
        "(lambda: 1)()",
        "'abc'",
        "[1, 2][0]",
        "x * 2",
        "eval('1')",
        "getattr(epoch, 'real')",
        "math.cos(epoch)",
        "1 +",
        "epoch if True else 1",  # True is a constant of the wrong kind
    ],
)
def test_rejects_unsafe_or_invalid(source: str) -> None:
    with pytest.raises(ConfigError, match=r"scheduler\.lr_lambda=.* is not allowed"):
        EpochExpression(source)


def test_rejects_non_finite_results_at_config_time() -> None:
    with pytest.raises(ConfigError, match=r"evaluating it at epoch=0 failed"):
        EpochExpression("1 / epoch")  # division by zero at epoch 0


def test_huge_power_does_not_hang() -> None:
    start = time.perf_counter()
    with pytest.raises(ConfigError):
        EpochExpression("9 ** 9 ** 9 ** epoch")
    assert time.perf_counter() - start < 1.0
