"""Evaluating matrix expressions with numpy, independently of the index-form
evaluator (so the two can check each other).

:data:`_VALUE` has one function per node type; values are 2-d arrays (a column
vector is (n, 1), a scalar (1, 1)). Importing this module installs the evaluator in
:data:`einderiv.matrix.nodes.EVALUATORS`, which ``MatrixExpr.evaluate`` calls.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import Any

import numpy as np

from ..core.functions import FUNCTIONS
from ..core.ir import SizeHint
from ..core.structures import check_values
from ..errors import EvaluationError
from .nodes import (EVALUATORS, MATRIX, ONES, SCALAR, Add, Diag, Elementwise, Hadamard, Identity,
                    Inverse, Kron, MatMul, MatrixExpr, Number, Ones, Power, Reduce, Softmax, Symbol,
                    Transpose, Zero)

__all__ = ["softmax_values"]


def softmax_values(name: str, x: np.ndarray, axis: int | None) -> np.ndarray:
    """``name`` (softmax, log_softmax, logsumexp) of ``x`` along ``axis`` (None: all
    entries), max-shifted: finite for any finite input. logsumexp keeps the axis
    (length 1)."""
    x = np.asarray(x, dtype=float)
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    shifted = x - m
    lse = np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
    if name == "logsumexp":
        return lse + m
    if name == "log_softmax":
        return shifted - lse
    return np.exp(shifted - lse)


class _Evaluator:
    """The arrays given by name, and the values of nodes as 2-d arrays."""

    def __init__(self, arrays: Mapping[str, Any]):
        self.arrays = arrays

    def value(self, m: MatrixExpr) -> np.ndarray:
        rule = _VALUE.get(type(m))
        if rule is None:  # pragma: no cover - every node type has a rule
            raise TypeError(m)
        return rule(self, m)

    def array(self, name: str, rank: int) -> np.ndarray:
        if name not in self.arrays:
            raise EvaluationError(f"missing value for {name!r}")
        arr = np.asarray(self.arrays[name])
        if arr.dtype.kind in "biu":
            arr = arr.astype(np.float64)
        elif arr.dtype.kind not in "fc":
            raise EvaluationError(f"{name!r} must be numeric, got an array of dtype {arr.dtype}")
        if arr.ndim != rank:
            what = ("a scalar", "a vector", "a matrix")[rank]
            raise EvaluationError(f"{name!r} is {what} here but was given shape {arr.shape}")
        return arr.reshape(1, 1) if rank == 0 else arr.reshape(-1, 1) if rank == 1 else arr

    def size(self, hint: SizeHint, what: str) -> int:
        if isinstance(hint, int):
            return hint
        if isinstance(hint, tuple):
            name, axis = hint
            shape = np.shape(self.arrays[name]) if name in self.arrays else ()
            if axis < len(shape):
                return int(shape[axis])
        raise EvaluationError(f"cannot tell the size of {what}")


# ================================================================ one rule per node


def _symbol(ev: _Evaluator, m: Symbol) -> np.ndarray:
    if m.assumed is not None:  # S^T was printed as S: only a symmetric array may stand for it
        check_values({m.name: m.assumed}, ev.arrays)
    return ev.array(m.name, m.rank)


def _number(ev: _Evaluator, m: Number) -> np.ndarray:
    return np.full((1, 1), _float(m.value))


def _identity(ev: _Evaluator, m: Identity) -> np.ndarray:
    return np.eye(ev.size(m.size, "I"))


def _ones(ev: _Evaluator, m: Ones) -> np.ndarray:
    return np.ones((ev.size(m.size, "ones"), 1))


def _zero(ev: _Evaluator, m: Zero) -> np.ndarray:
    rows_one, cols_one = ONES[m.shape_kind]
    rows = 1 if rows_one else ev.size(m.rows, "0")
    cols = 1 if cols_one else ev.size(m.cols, "0")
    return np.zeros((rows, cols))


def _transpose(ev: _Evaluator, m: Transpose) -> np.ndarray:
    return ev.value(m.arg).T


def _inverse(ev: _Evaluator, m: Inverse) -> np.ndarray:
    arg = ev.value(m.arg)
    try:
        return np.linalg.inv(arg)
    except np.linalg.LinAlgError:
        raise EvaluationError("inverse of a singular matrix") from None


def _matmul(ev: _Evaluator, m: MatMul) -> np.ndarray:
    acc = np.full((1, 1), _float(m.coeff))
    for f in m.factors:
        acc = _multiply(acc, ev.value(f))
    return acc


def _hadamard(ev: _Evaluator, m: Hadamard) -> np.ndarray:
    acc = np.ones((1, 1))
    for f in m.factors:
        acc = acc * ev.value(f)
    return acc


def _add(ev: _Evaluator, m: Add) -> np.ndarray:
    total: Any = 0.0
    for t in m.terms:
        total = total + ev.value(t)
    return np.asarray(total)


def _diag(ev: _Evaluator, m: Diag) -> np.ndarray:
    arg = ev.value(m.arg)
    if m.arg.kind == MATRIX:
        return np.diagonal(arg).reshape(-1, 1).copy()
    return np.diag(arg.ravel())


#: The scalar functions of a matrix (:class:`Reduce`), by name.
_REDUCTIONS: dict[str, Callable[[np.ndarray], Any]] = {
    "det": np.linalg.det,
    "logdet": lambda a: np.linalg.slogdet(a)[1],
    "tr": np.trace,
    "sum": np.sum,
}


def _reduce(ev: _Evaluator, m: Reduce) -> np.ndarray:
    return np.full((1, 1), _REDUCTIONS[m.name](ev.value(m.arg)))


def _softmax(ev: _Evaluator, m: Softmax) -> np.ndarray:
    axis = {"": None, "rows": 1, "cols": 0}[m.over]
    result = softmax_values(m.name, ev.value(m.arg), axis)
    return result.reshape(1, 1) if m.kind == SCALAR else result


def _elementwise(ev: _Evaluator, m: Elementwise) -> np.ndarray:
    return np.asarray(FUNCTIONS[m.name].numpy(ev.value(m.arg)))


def _power(ev: _Evaluator, m: Power) -> np.ndarray:
    base, exponent = ev.value(m.base), ev.value(m.exponent)
    with np.errstate(divide="ignore", invalid="ignore"):
        return base ** exponent


def _kron(ev: _Evaluator, m: Kron) -> np.ndarray:
    return np.kron(ev.value(m.left), ev.value(m.right))


#: The value (a 2-d array) by node type.
_VALUE: dict[type[MatrixExpr], Callable[[_Evaluator, Any], np.ndarray]] = {
    Symbol: _symbol, Number: _number, Identity: _identity, Ones: _ones, Zero: _zero,
    Transpose: _transpose, Inverse: _inverse, MatMul: _matmul, Hadamard: _hadamard,
    Add: _add, Diag: _diag, Reduce: _reduce, Softmax: _softmax, Elementwise: _elementwise,
    Power: _power, Kron: _kron,
}


def _float(value: Fraction) -> float:
    """``value`` as a float; beyond float64's range, +-inf (as numpy overflows)."""
    try:
        return float(value)
    except OverflowError:
        if abs(value) < 1:
            return 0.0
        return float("inf") if value > 0 else float("-inf")


def _multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.shape == (1, 1) or b.shape == (1, 1):
        return a * b
    if a.shape[1] != b.shape[0]:
        raise EvaluationError(f"cannot multiply a {a.shape[0]}x{a.shape[1]} matrix by a "
                              f"{b.shape[0]}x{b.shape[1]} one; check the shapes of the arrays")
    return a @ b


def _evaluate(m: MatrixExpr, arrays: Mapping[str, Any]) -> np.ndarray:
    return _Evaluator(arrays).value(m)


EVALUATORS["numpy"] = _evaluate
