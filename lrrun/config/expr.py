"""Safe evaluation of lr_lambda strings such as ``'0.1 ** epoch'`` (never ``eval``).

Allowed: numbers, the name ``epoch`` (plus ``pi``, ``e``, and the scheduler node's ``let``
names: lrrun.schedule.lengths), + - * / // % **, comparisons, ``a if cond else b``, and calls
to min, max, abs, round and math's real functions.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from lrrun.errors import ConfigError

_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.USub: operator.neg, ast.UAdd: operator.pos}
_COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_MATH = [
    "exp",
    "log",
    "log2",
    "log10",
    "log1p",
    "sqrt",
    "sin",
    "cos",
    "tan",
    "asin",
    "acos",
    "atan",
    "tanh",
    "sinh",
    "cosh",
    "floor",
    "ceil",
    "trunc",
    "fabs",
    "pow",
]
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "min": min,
    "max": max,
    "abs": abs,
    "round": round,
    **{name: getattr(math, name) for name in _MATH},
}
CONSTANTS = {"pi": math.pi, "e": math.e}
ALLOWED = "numbers, `epoch`, + - * / // % **, comparisons, `a if c else b`, " + ", ".join(
    sorted(FUNCTIONS)
)


def _power(base: Any, exp: Any) -> Any:
    # Integer powers with huge operands would hang; floats overflow with an error instead.
    if isinstance(base, int) and isinstance(exp, int) and (abs(exp) > 64 or abs(base) > 2**64):
        return float(base) ** exp
    return base**exp


_TREES: dict[str, ast.AST] = {}


class EpochExpression:
    """A config string compiled to ``f(epoch) -> float`` for LambdaLR/MultiplicativeLR.

    ``names``: constants it may use besides ``epoch`` (the node's ``let`` block, derived).
    ``check_only``: check the syntax and names without evaluating (the names' values are not
    known before the run's length is)."""

    def __init__(
        self,
        source: str,
        key: str = "scheduler.lr_lambda",
        names: dict[str, float] | None = None,
        check_only: bool = False,
    ) -> None:
        # Only plain values live in __dict__: LambdaLR's state_dict saves a callable object's
        # __dict__, and a checkpoint must hold plain values (loaded weights_only).
        self.source, self.key, self.names = source, key, dict(names or {})
        if check_only:
            self._tree  # noqa: B018 - parses and checks
            return
        for epoch in (0, 1, 10):  # fail at config time, not mid-training
            self(epoch)

    @property
    def _tree(self) -> ast.AST:
        """The checked expression, parsed once per source string."""
        cache = f"{self.source}\0{sorted(self.names)}"
        tree = _TREES.get(cache)
        if tree is None:
            try:
                tree = ast.parse(str(self.source).strip(), mode="eval").body
            except SyntaxError as exc:
                raise self._error(f"it is not a valid expression ({exc.msg})") from None
            self._check(tree)
            _TREES[cache] = tree
        return tree

    def __call__(self, epoch: int) -> float:
        try:
            value = self._eval(self._tree, epoch)
        except (ArithmeticError, ValueError, TypeError) as exc:
            raise self._error(f"evaluating it at epoch={epoch} failed: {exc}") from None
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise self._error(f"at epoch={epoch} it gives {value!r}, not a finite number")
        return float(value)

    def __repr__(self) -> str:
        names = "".join(f", {k}={v!r}" for k, v in sorted(self.names.items()))
        return f"EpochExpression({self.source!r}{names})"

    def _error(self, why: str) -> ConfigError:
        names = f"; names: {', '.join(sorted(self.names))}" if self.names else ""
        return ConfigError(
            f"{self.key}={self.source!r} is not allowed: {why}. Allowed: {ALLOWED}{names}."
        )

    def _check(self, node: ast.AST) -> None:
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, int | float):
                raise self._error(f"constant {node.value!r} is not a number")
        elif isinstance(node, ast.Name):
            if node.id != "epoch" and node.id not in CONSTANTS and node.id not in self.names:
                raise self._error(f"unknown name {node.id!r}")
        elif isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            self._check(node.left)
            self._check(node.right)
        elif isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            self._check(node.operand)
        elif isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
            for child in (node.left, *node.comparators):
                self._check(child)
        elif isinstance(node, ast.IfExp):
            for child in (node.test, node.body, node.orelse):
                self._check(child)
        elif isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else None
            if name not in FUNCTIONS or node.keywords:
                raise self._error(f"call of {ast.unparse(node.func)!r} is not an allowed function")
            for arg in node.args:
                self._check(arg)
        else:
            raise self._error(f"{ast.unparse(node)!r} uses syntax that is not allowed")

    def _eval(self, node: ast.AST, epoch: int) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id == "epoch":
                return epoch
            return self.names[node.id] if node.id in self.names else CONSTANTS[node.id]
        if isinstance(node, ast.BinOp):
            left, right = self._eval(node.left, epoch), self._eval(node.right, epoch)
            if isinstance(node.op, ast.Pow):
                return _power(left, right)
            return _BINOPS[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp):
            return _UNARY[type(node.op)](self._eval(node.operand, epoch))
        if isinstance(node, ast.Compare):
            left = self._eval(node.left, epoch)
            for op, comparator in zip(node.ops, node.comparators, strict=True):
                right = self._eval(comparator, epoch)
                if not _COMPARE[type(op)](left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.IfExp):
            branch = node.body if self._eval(node.test, epoch) else node.orelse
            return self._eval(branch, epoch)
        assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        return FUNCTIONS[node.func.id](*(self._eval(arg, epoch) for arg in node.args))
