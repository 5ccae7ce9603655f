"""Matrix notation: the :class:`MatrixExpr` node types (immutable, compared
structurally), their kinds (scalar, column, row, matrix) and walks over them.

A node prints and evaluates through the functions :mod:`einderiv.matrix.printing` and
:mod:`einderiv.matrix.evaluate` install in :data:`PRINTERS` and :data:`EVALUATORS`
when the package loads: those modules build on the node types, so the nodes cannot
import them. :func:`einderiv.matrix.to_matrix` (also ``Expr.to_matrix()``) makes
these nodes from an index expression, in denominator layout (docs/matrix.md; notes
001_*, A.1):

* a scalar prints as a scalar, a gradient by a vector as a column vector, a
  derivative by a scalar of a vector as a row vector (``wrt_rank=0``);
* a two-axis result is a matrix whose rows are the first free axis: a Jacobian
  ``d y / d x`` has rows = x, so ``d(A x)/dx`` prints ``A^T`` (001_*, A.4).

ASCII spellings (what ``str()`` prints; :func:`einderiv.parse_matrix` reads them
back): juxtaposition for products, ``^T`` transpose, ``^-1`` inverse, ``^-T``
inverse transpose, ``.*`` Hadamard product, ``^k`` element-wise power of a scalar or
vector (``.^k`` of a matrix), ``diag()``, ``tr()``, ``det()``, ``logdet()``,
``sum()``, ``I`` identity, ``ones`` a vector of ones, ``kron(B, A)`` Kronecker.
The Unicode variant (:meth:`MatrixExpr.to_unicode`) uses ``ᵀ ⁻¹ ⁻ᵀ ⊙ ⊗ 𝟏`` and Greek
letters (``θ`` for ``theta``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from fractions import Fraction
from typing import Any

import numpy as np

from ..core.ir import SizeHint

__all__ = [
    "MatrixExpr", "Symbol", "Number", "Identity", "Ones", "Zero", "Transpose", "Inverse",
    "MatMul", "Hadamard", "Add", "Diag", "Reduce", "Elementwise", "Softmax", "Power", "Kron",
    "SCALAR", "COLUMN", "ROW", "MATRIX", "ONES", "children", "walk", "const_number",
    "PRINTERS", "EVALUATORS",
]

SCALAR, COLUMN, ROW, MATRIX = "scalar", "column", "row", "matrix"
#: kind -> (rows are 1, columns are 1)
ONES = {SCALAR: (True, True), COLUMN: (False, True), ROW: (True, False), MATRIX: (False, False)}
_KIND = {v: k for k, v in ONES.items()}

#: The printers by style, ``"ascii"``, ``"unicode"`` and ``"latex"``: node -> text
#: (installed by :mod:`einderiv.matrix.printing`).
PRINTERS: dict[str, Callable[[MatrixExpr], str]] = {}
#: ``"numpy"``: (node, arrays) -> its value as a 2-d array (a column vector is (n, 1),
#: a scalar (1, 1); installed by :mod:`einderiv.matrix.evaluate`).
EVALUATORS: dict[str, Callable[[MatrixExpr, Mapping[str, Any]], np.ndarray]] = {}


class MatrixExpr:
    """A matrix-notation expression (scalar, column vector, row vector or matrix).

    ``str()`` is ASCII matrix notation that :func:`einderiv.parse_matrix` reads back;
    :meth:`to_unicode` and :meth:`to_latex` are for display; :meth:`evaluate`
    computes it with numpy.

    >>> import numpy as np, einderiv
    >>> m = einderiv.diff("x[i]*A[i,j]*x[j]", "x").to_matrix()
    >>> print(m); print(m.to_unicode()); print(m.to_latex())
    (A + A^T) x
    (A + Aᵀ) x
    \\left(A + A^{\\top}\\right) x
    >>> m.kind
    'column'
    >>> A, x = np.arange(9.0).reshape(3, 3), np.ones(3)
    >>> m.evaluate(A=A, x=x)
    array([12., 24., 36.])
    """

    __slots__ = ()

    @property
    def kind(self) -> str:
        """``'scalar'``, ``'column'`` (a vector), ``'row'`` or ``'matrix'``."""
        raise NotImplementedError

    def __str__(self) -> str:
        return PRINTERS["ascii"](self)

    def __repr__(self) -> str:
        return f"MatrixExpr({str(self)!r})"

    def to_unicode(self) -> str:
        """The expression with Unicode symbols: ``Xᵀ``, ``X⁻¹``, ``⊙``, ``θ``."""
        return PRINTERS["unicode"](self)

    def to_latex(self) -> str:
        """The expression as LaTeX (``X^{\\top}``, ``\\odot``, ``\\frac{2}{n}``)."""
        return PRINTERS["latex"](self)

    def _repr_latex_(self) -> str:
        return f"$\\displaystyle {self.to_latex()}$"

    def evaluate(self, **arrays: Any) -> np.ndarray:
        """Compute the value with numpy. Scalars come back as 0-d arrays, row and
        column vectors as 1-d arrays (as ``Expr.evaluate`` gives them), matrices as
        2-d arrays; a Kronecker form gives the flattened matrix."""
        value = EVALUATORS["numpy"](self, arrays)
        kind = self.kind
        if kind == SCALAR:
            return np.asarray(value.reshape(()))
        if kind == COLUMN:
            return value[:, 0]
        if kind == ROW:
            return value[0, :]
        return value

    @property
    def transposes(self) -> int:
        """How many transpose marks (``^T``, ``^-T``) the printed form has."""
        return sum(1 for n in walk(self) if isinstance(n, Transpose) and n.arg.kind != SCALAR)


def _times(a: str, b: str) -> str:
    """The kind of a product of kinds ``a`` and ``b`` (a scalar multiplies anything)."""
    if a == SCALAR:
        return b
    if b == SCALAR:
        return a
    return _KIND[(ONES[a][0], ONES[b][1])]


@dataclass(frozen=True, repr=False)
class Symbol(MatrixExpr):
    """A variable: ``rank`` 0 (scalar), 1 (column vector) or 2 (matrix); ``assumed``:
    the kind of a structured matrix (:mod:`einderiv.core.structures`; symmetric and
    diagonal ones are symmetric, so ``S^T`` is ``S``), None for none."""

    name: str
    rank: int
    assumed: str | None = None

    @property
    def symmetric(self) -> bool:
        return self.assumed is not None

    @property
    def kind(self) -> str:
        return (SCALAR, COLUMN, MATRIX)[self.rank]


@dataclass(frozen=True, repr=False)
class Number(MatrixExpr):
    value: Fraction

    @property
    def kind(self) -> str:
        return SCALAR


@dataclass(frozen=True, repr=False)
class Identity(MatrixExpr):
    """``I``; ``size`` is a size hint (an int or ``(variable, axis)``) for evaluation.
    Two identities are equal only with equal hints, so a common factor ``I`` is
    never pulled out of terms whose sizes may differ."""

    size: SizeHint = None

    @property
    def kind(self) -> str:
        return MATRIX


@dataclass(frozen=True, repr=False)
class Ones(MatrixExpr):
    """``ones``: a column vector of ones (``1`` in the notes), ``size`` a hint."""

    size: SizeHint = None

    @property
    def kind(self) -> str:
        return COLUMN


@dataclass(frozen=True, repr=False)
class Zero(MatrixExpr):
    """``0`` of the given kind; ``rows`` / ``cols`` are size hints for evaluation."""

    shape_kind: str
    rows: SizeHint = None
    cols: SizeHint = None

    @property
    def kind(self) -> str:
        return self.shape_kind


@dataclass(frozen=True, repr=False)
class Transpose(MatrixExpr):
    arg: MatrixExpr

    @property
    def kind(self) -> str:
        return {COLUMN: ROW, ROW: COLUMN}.get(self.arg.kind, self.arg.kind)


@dataclass(frozen=True, repr=False)
class Inverse(MatrixExpr):
    """The matrix inverse (the reciprocal of a scalar)."""

    arg: MatrixExpr

    @property
    def kind(self) -> str:
        return self.arg.kind


@dataclass(frozen=True, repr=False)
class MatMul(MatrixExpr):
    """``coeff`` times the matrix product of ``factors``, left to right; a factor of
    kind scalar multiplies (the notes' ``b^T x C^T``). Scalar factors come first."""

    coeff: Fraction
    factors: tuple[MatrixExpr, ...]

    @cached_property  # a pure function of the node: nested products ask it often
    def kind(self) -> str:
        kind = SCALAR
        for f in self.factors:
            kind = _times(kind, f.kind)
        return kind


@dataclass(frozen=True, repr=False)
class Hadamard(MatrixExpr):
    """The element-wise product (``.*`` / ``⊙``) of operands of one shape (or scalars)."""

    factors: tuple[MatrixExpr, ...]

    @cached_property  # a pure function of the node: nested products ask it often
    def kind(self) -> str:
        return _widest(self.factors)


@dataclass(frozen=True, repr=False)
class Add(MatrixExpr):
    """A sum; a scalar term is added to every entry (``1 - tanh(z)^2``)."""

    terms: tuple[MatrixExpr, ...]

    @cached_property  # a pure function of the node: nested products ask it often
    def kind(self) -> str:
        return _widest(self.terms)


def _widest(items: tuple[MatrixExpr, ...]) -> str:
    return next((k for k in (i.kind for i in items) if k != SCALAR), SCALAR)


@dataclass(frozen=True, repr=False)
class Diag(MatrixExpr):
    """``diag(v)``: the diagonal matrix of a vector; ``diag(M)``: the diagonal of a
    matrix as a column vector (as numpy.diag)."""

    arg: MatrixExpr

    @property
    def kind(self) -> str:
        return {MATRIX: COLUMN, SCALAR: SCALAR}.get(self.arg.kind, MATRIX)


@dataclass(frozen=True, repr=False)
class Reduce(MatrixExpr):
    """A scalar function of a matrix: ``det``, ``logdet`` (log |det|), ``tr``, or
    ``sum`` (of all entries)."""

    name: str
    arg: MatrixExpr

    @property
    def kind(self) -> str:
        return SCALAR


@dataclass(frozen=True, repr=False)
class Elementwise(MatrixExpr):
    """An element-wise function (:mod:`einderiv.core.functions`) of ``arg``."""

    name: str
    arg: MatrixExpr

    @property
    def kind(self) -> str:
        return self.arg.kind


@dataclass(frozen=True, repr=False)
class Softmax(Elementwise):
    """``softmax``, ``log_softmax`` or ``logsumexp`` (``name``) of a vector (``over``
    empty), or of each row (``over == "rows"``: the sum runs along the row, over the
    column index) or each column (``"cols"``) of a matrix. ``logsumexp`` of a vector
    is a scalar, of the rows a column vector, of the columns a row vector; the other
    two keep the argument's shape (docs/matrix.md)."""

    over: str = ""

    @property
    def word(self) -> str:
        """The printed name: ``softmax``, ``softmax_rows``, ``logsumexp_cols``, ..."""
        return f"{self.name}_{self.over}" if self.over else self.name

    @property
    def kind(self) -> str:
        if self.name != "logsumexp":
            return self.arg.kind
        return {"": SCALAR, "rows": COLUMN, "cols": ROW}[self.over]


@dataclass(frozen=True, repr=False)
class Power(MatrixExpr):
    """``base`` to a scalar ``exponent``, element-wise."""

    base: MatrixExpr
    exponent: MatrixExpr

    @property
    def kind(self) -> str:
        return self.base.kind


@dataclass(frozen=True, repr=False)
class Kron(MatrixExpr):
    """The Kronecker product ``left ⊗ right`` standing for a derivative flattened
    by ``einderiv.flatten(..., order)``; ``order`` is ``"F"`` or ``"C"``."""

    left: MatrixExpr
    right: MatrixExpr
    order: str = "F"

    @property
    def kind(self) -> str:
        return MATRIX


def _no_children(m: Any) -> tuple[MatrixExpr, ...]:
    return ()


def _arg_child(m: Any) -> tuple[MatrixExpr, ...]:
    return (m.arg,)


def _factor_children(m: Any) -> tuple[MatrixExpr, ...]:
    return tuple(m.factors)


def _term_children(m: Add) -> tuple[MatrixExpr, ...]:
    return m.terms


def _power_children(m: Power) -> tuple[MatrixExpr, ...]:
    return (m.base, m.exponent)


def _kron_children(m: Kron) -> tuple[MatrixExpr, ...]:
    return (m.left, m.right)


#: :func:`children` by node type.
_CHILDREN: dict[type[MatrixExpr], Callable[[Any], tuple[MatrixExpr, ...]]] = {
    Symbol: _no_children, Number: _no_children, Identity: _no_children, Ones: _no_children,
    Zero: _no_children,
    Transpose: _arg_child, Inverse: _arg_child, Diag: _arg_child, Reduce: _arg_child,
    Elementwise: _arg_child, Softmax: _arg_child,
    MatMul: _factor_children, Hadamard: _factor_children, Add: _term_children,
    Power: _power_children, Kron: _kron_children,
}


def children(m: MatrixExpr) -> tuple[MatrixExpr, ...]:
    """The direct subexpressions of ``m``, in order (none for an atom)."""
    return _CHILDREN[type(m)](m)


def walk(m: MatrixExpr) -> Iterator[MatrixExpr]:
    """All nodes of ``m``, parents before children (iterative: no recursion limit)."""
    stack = [m]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(children(n))


def const_number(m: MatrixExpr) -> Fraction | None:
    """The value of a plain number node, else None."""
    if isinstance(m, Number):
        return m.value
    if isinstance(m, MatMul) and not m.factors:
        return m.coeff
    return None
