"""Matrix notation: the :class:`MatrixExpr` nodes, their printers and evaluation.

:func:`to_matrix` (also ``Expr.to_matrix()``) turns an index expression into a
:class:`MatrixExpr` in denominator layout (docs/matrix.md; notes 001_*, A.1):

* a scalar prints as a scalar, a gradient by a vector as a column vector, a
  derivative by a scalar of a vector as a row vector (``wrt_rank=0``);
* a two-axis result is a matrix whose rows are the first free axis: a Jacobian
  ``d y / d x`` has rows = x, so ``d(A x)/dx`` prints ``A^T`` (001_*, A.4).

The conversion itself lives in :mod:`einderiv.matrix.from_index`; this module holds
the node types (immutable, compared structurally), the ASCII / Unicode / LaTeX
printers and a numpy evaluator that is independent of the index-form evaluator, so
the two can check each other.

ASCII spellings (what ``str()`` prints; :func:`einderiv.parse_matrix` reads them
back): juxtaposition for products, ``^T`` transpose, ``^-1`` inverse, ``^-T``
inverse transpose, ``.*`` Hadamard product, ``^k`` element-wise power of a scalar or
vector (``.^k`` of a matrix), ``diag()``, ``tr()``, ``det()``, ``logdet()``,
``sum()``, ``I`` identity, ``ones`` a vector of ones, ``kron(B, A)`` Kronecker.
The Unicode variant (:meth:`MatrixExpr.to_unicode`) uses ``ᵀ ⁻¹ ⁻ᵀ ⊙ ⊗ 𝟏`` and Greek
letters (``θ`` for ``theta``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from ..core.functions import FUNCTIONS
from ..core.ir import SizeHint
from ..errors import EvaluationError

__all__ = [
    "MatrixExpr", "Symbol", "Number", "Identity", "Ones", "Zero", "Transpose", "Inverse",
    "MatMul", "Hadamard", "Add", "Diag", "Reduce", "Elementwise", "Softmax", "Power", "Kron",
    "to_matrix",
]

SCALAR, COLUMN, ROW, MATRIX = "scalar", "column", "row", "matrix"
# kind -> (rows are 1, columns are 1)
_ONES = {SCALAR: (True, True), COLUMN: (False, True), ROW: (True, False), MATRIX: (False, False)}
_KIND = {v: k for k, v in _ONES.items()}


def to_matrix(expr: Any, *, wrt_rank: int | None = None,
              flatten: str | None = None) -> MatrixExpr:
    """``expr`` in denominator-layout matrix notation.

    ``wrt_rank`` is the number of leading free axes that belong to the variable of a
    derivative (``einderiv.diff`` puts them first). It matters in two places: a
    one-axis derivative by a scalar (``wrt_rank=0``) is a row vector (001_*, A.1),
    and ``flatten`` needs it to split rows from columns. Without it a one-axis
    result is a column vector and a two-axis result has rows = its first axis.

    ``flatten="F"`` (column-major ``vec``) or ``"C"`` (row-major) gives a three- or
    four-axis derivative as the Kronecker product that equals
    ``einderiv.flatten(expr.evaluate(...), wrt_rank, flatten)``, where one exists.

    Raises :class:`~einderiv.NotMatrixExpressible` where no matrix form exists.

    >>> import einderiv
    >>> g = einderiv.diff("(X[a,b]*theta[b] - Y[a])*(X[a,c]*theta[c] - Y[a])/n", "theta")
    >>> print(g.to_matrix())
    2/n X^T (X theta - Y)
    >>> print(einderiv.diff("s*a[i]", "s").to_matrix(wrt_rank=0))
    a^T
    >>> d = einderiv.diff("A[i,k]*X[k,l]*B[l,j]", "X")
    >>> print(d.to_matrix(wrt_rank=2, flatten="F"))
    kron(B, A^T)
    """
    from .from_index import convert
    return convert(expr, wrt_rank=wrt_rank, flatten=flatten)


# ============================================================================= nodes


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
        return _Printer(_ASCII).text(self)

    def __repr__(self) -> str:
        return f"MatrixExpr({str(self)!r})"

    def to_unicode(self) -> str:
        """The expression with Unicode symbols: ``Xᵀ``, ``X⁻¹``, ``⊙``, ``θ``."""
        return _Printer(_UNICODE).text(self)

    def to_latex(self) -> str:
        """The expression as LaTeX (``X^{\\top}``, ``\\odot``, ``\\frac{2}{n}``)."""
        return _Printer(_LATEX).text(self)

    def _repr_latex_(self) -> str:
        return f"$\\displaystyle {self.to_latex()}$"

    def evaluate(self, **arrays: Any) -> np.ndarray:
        """Compute the value with numpy. Scalars come back as 0-d arrays, row and
        column vectors as 1-d arrays (as ``Expr.evaluate`` gives them), matrices as
        2-d arrays; a Kronecker form gives the flattened matrix."""
        value = _Evaluator(arrays).value(self)
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
        return sum(_own_transposes(n) for n in _walk(self))


def _times(a: str, b: str) -> str:
    """The kind of a product of kinds ``a`` and ``b`` (a scalar multiplies anything)."""
    if a == SCALAR:
        return b
    if b == SCALAR:
        return a
    return _KIND[(_ONES[a][0], _ONES[b][1])]


@dataclass(frozen=True, repr=False)
class Symbol(MatrixExpr):
    """A variable: ``rank`` 0 (scalar), 1 (column vector) or 2 (matrix)."""

    name: str
    rank: int

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

    @property
    def kind(self) -> str:
        kind = SCALAR
        for f in self.factors:
            kind = _times(kind, f.kind)
        return kind


@dataclass(frozen=True, repr=False)
class Hadamard(MatrixExpr):
    """The element-wise product (``.*`` / ``⊙``) of operands of one shape (or scalars)."""

    factors: tuple[MatrixExpr, ...]

    @property
    def kind(self) -> str:
        return _widest(self.factors)


@dataclass(frozen=True, repr=False)
class Add(MatrixExpr):
    """A sum; a scalar term is added to every entry (``1 - tanh(z)^2``)."""

    terms: tuple[MatrixExpr, ...]

    @property
    def kind(self) -> str:
        return _widest(self.terms)


def _widest(items: tuple[MatrixExpr, ...]) -> str:
    kinds = [i.kind for i in items if i.kind != SCALAR]
    return kinds[0] if kinds else SCALAR


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


def _children(m: MatrixExpr) -> tuple[MatrixExpr, ...]:
    if isinstance(m, (Transpose, Inverse, Diag, Reduce, Elementwise)):
        return (m.arg,)
    if isinstance(m, (MatMul, Hadamard)):
        return m.factors
    if isinstance(m, Add):
        return m.terms
    if isinstance(m, Power):
        return (m.base, m.exponent)
    if isinstance(m, Kron):
        return (m.left, m.right)
    return ()


def _walk(m: MatrixExpr):
    stack = [m]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(_children(n))


def _own_transposes(m: MatrixExpr) -> int:
    return int(isinstance(m, Transpose) and m.arg.kind != SCALAR)


def const_number(m: MatrixExpr) -> Fraction | None:
    """The value of a plain number node, else None."""
    if isinstance(m, Number):
        return m.value
    if isinstance(m, MatMul) and not m.factors:
        return m.coeff
    return None


# =========================================================================== printing


@dataclass(frozen=True)
class _Style:
    name: str
    transpose: str
    inverse: str
    inverse_transpose: str
    hadamard: str
    elementwise_power: str
    ones: str
    names: Mapping[str, str]


_GREEK = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota",
          "kappa", "lambda", "mu", "nu", "xi", "omicron", "pi", "rho", "varsigma", "sigma",
          "tau", "upsilon", "phi", "chi", "psi", "omega"]
GREEK_LETTERS = {n: chr(0x3B1 + k) for k, n in enumerate(_GREEK)}
GREEK_LETTERS.update({n.capitalize(): chr(0x391 + k) for k, n in enumerate(_GREEK)
                      if n not in ("varsigma",)})
GREEK_LETTERS.pop("Varsigma", None)

_ASCII = _Style("ascii", "^T", "^-1", "^-T", ".*", ".^", "ones", {})
_UNICODE = _Style("unicode", "ᵀ", "⁻¹", "⁻ᵀ", "⊙", ".^", "𝟏", GREEK_LETTERS)
_LATEX = _Style("latex", "^{\\top}", "^{-1}", "^{-\\top}", " \\odot ", "^", "\\mathbf{1}", {})

_SUPERSCRIPTS = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")

# precedence of printed forms: a child printed below its context gets parentheses
ADD, MUL, NEG, POST, ATOM = 1, 2, 3, 4, 5


def format_fraction(value: Fraction) -> str:
    """``2``, ``1/3`` (LimitError beyond the digits the parsers read back)."""
    from ..core.printing import format_number
    return format_number(value)


def _digits(n: int) -> str:
    return format_fraction(Fraction(n))


class _Printer:
    def __init__(self, style: _Style):
        self.s = style
        self.latex = style is _LATEX

    def text(self, m: MatrixExpr) -> str:
        return self.show(m)[0]

    def wrap(self, m: MatrixExpr, at_least: int) -> str:
        text, prec = self.show(m)
        if prec >= at_least:
            return text
        return f"\\left({text}\\right)" if self.latex else f"({text})"

    def name(self, name: str) -> str:
        if self.latex:
            if name in GREEK_LETTERS and name != "omicron":
                return "\\" + name
            if len(name) == 1:
                return name
            return "\\mathit{" + name.replace("_", "\\_") + "}"
        return self.s.names.get(name, name)

    def call(self, name: str, arg: MatrixExpr) -> str:
        inner = self.text(arg)
        if not self.latex:
            return f"{name}({inner})"
        if name in FUNCTIONS:
            return FUNCTIONS[name].latex.format(inner)
        if name == "det":
            return f"\\det\\left({inner}\\right)"
        if name == "logdet":
            return f"\\log\\left|\\det\\left({inner}\\right)\\right|"
        return f"\\operatorname{{{name}}}\\left({inner}\\right)"

    def show(self, m: MatrixExpr) -> tuple[str, int]:
        s = self.s
        if isinstance(m, Symbol):
            return self.name(m.name), ATOM
        if isinstance(m, Number):
            return self.number(m.value)
        if isinstance(m, Identity):
            return "I", ATOM
        if isinstance(m, Ones):
            return s.ones, ATOM
        if isinstance(m, Zero):
            return "0", ATOM
        if isinstance(m, Transpose):
            if isinstance(m.arg, Inverse):
                return self.wrap(m.arg.arg, ATOM) + s.inverse_transpose, POST
            if m.arg.kind == SCALAR:
                return self.show(m.arg)
            return self.wrap(m.arg, ATOM) + s.transpose, POST
        if isinstance(m, Inverse):
            return self.wrap(m.arg, ATOM) + s.inverse, POST
        if isinstance(m, Power):
            return self.power(m)
        if isinstance(m, Softmax):
            if self.latex:
                word = m.word.replace("_", "\\_")
                return f"\\operatorname{{{word}}}\\left({self.text(m.arg)}\\right)", ATOM
            return self.call(m.word, m.arg), ATOM
        if isinstance(m, (Elementwise, Reduce)):
            return self.call(m.name, m.arg), ATOM
        if isinstance(m, Diag):
            return self.call("diag", m.arg), ATOM
        if isinstance(m, Hadamard):
            sep = s.hadamard if self.latex else f" {s.hadamard} "
            return sep.join(self.wrap(f, POST) for f in m.factors), MUL
        if isinstance(m, Kron):
            if s is _ASCII:
                return f"kron({self.text(m.left)}, {self.text(m.right)})", ATOM
            sep = " \\otimes " if self.latex else " ⊗ "
            return self.wrap(m.left, POST) + sep + self.wrap(m.right, POST), MUL
        if isinstance(m, MatMul):
            return self.matmul(m)
        if isinstance(m, Add):
            return self.add(m)
        raise TypeError(m)  # pragma: no cover

    def number(self, value: Fraction) -> tuple[str, int]:
        if value < 0:
            text, _ = self.number(-value)
            return "-" + text, NEG
        if value.denominator == 1:
            return _digits(value.numerator), ATOM
        if self.latex:
            return f"\\frac{{{_digits(value.numerator)}}}{{{_digits(value.denominator)}}}", ATOM
        return format_fraction(value), MUL

    def power(self, m: Power) -> tuple[str, int]:
        k = const_number(m.exponent)
        if m.kind == SCALAR and k is not None and k < 0:
            return self.matmul(MatMul(Fraction(1), (m,)))
        base = self.wrap(m.base, ATOM)
        if self.latex:
            return f"{base}^{{{self.text(m.exponent)}}}", POST
        if k is not None and k.denominator == 1 and k >= 0:
            exponent = _digits(k.numerator)
        elif isinstance(m.exponent, Symbol) and m.exponent.name != "T":  # x^T: transpose
            exponent = self.text(m.exponent)
        else:
            exponent = "(" + self.text(m.exponent) + ")"
            if k is not None and k.denominator == 1:
                exponent = _digits(k.numerator)  # negative integer: ^-2 is element-wise
        elementwise_marker = m.kind == MATRIX or (m.kind != SCALAR and k == -1)
        if self.s is _UNICODE and not elementwise_marker and k is not None \
                and k.denominator == 1 and k >= 0:
            return base + exponent.translate(_SUPERSCRIPTS), POST
        op = self.s.elementwise_power if elementwise_marker else "^"
        return f"{base}{op}{exponent}", POST

    # ------------------------------------------------------------------ products
    def matmul(self, m: MatMul) -> tuple[str, int]:
        coeff = m.coeff
        sign = "-" if coeff < 0 else ""
        coeff = abs(coeff)
        numer: list[str] = []
        denom: list[str] = []
        rest: list[MatrixExpr] = []
        for f in m.factors:
            k = const_number(f.exponent) if isinstance(f, Power) else None
            if f.kind == SCALAR and k is not None and k < 0:
                base = f.base if k == -1 else Power(f.base, Number(-k))
                denom.append(self.wrap(base, POST) if len(m.factors) > 0 else "")
            elif f.kind == SCALAR and _simple_scalar(f) and not rest:
                numer.append(self.wrap(f, POST))
            else:
                rest.append(f)
        if coeff.denominator != 1:
            denom.insert(0, _digits(coeff.denominator))
        if coeff.numerator != 1:
            numer.insert(0, _digits(coeff.numerator))
        rest_text = self.chain(rest)
        if self.latex:
            if denom:
                top = " ".join(numer) or "1"
                head = f"\\frac{{{top}}}{{{' '.join(denom)}}}"
                return sign + " ".join(p for p in (head, rest_text) if p), NEG if sign else MUL
            return sign + (" ".join(p for p in (" ".join(numer), rest_text) if p) or "1"), \
                NEG if sign else MUL
        den_text = ""
        if denom:
            den_text = denom[0] if len(denom) == 1 else "(" + " ".join(denom) + ")"
        if den_text and not numer and rest_text:
            text = f"{rest_text}/{den_text}"
        elif den_text:
            text = (" ".join(numer) or "1") + "/" + den_text
            text += " " + rest_text if rest_text else ""
        else:
            text = " ".join(numer + ([rest_text] if rest_text else [])) or "1"
        if len(m.factors) == 1 and not numer and not den_text and not sign:
            return self.show(m.factors[0])
        return sign + text, NEG if sign else MUL

    def chain(self, factors: list[MatrixExpr]) -> str:
        parts = []
        for k, f in enumerate(factors):
            nxt = factors[k + 1] if k + 1 < len(factors) else None
            if isinstance(f, MatMul) and f.coeff == 1 and f.kind == SCALAR and \
                    (nxt is None or nxt.kind in (MATRIX, ROW)):
                parts.append(self.chain(list(f.factors)))  # the notes' b^T x C^T
            elif isinstance(f, MatMul) and f.coeff == 1 and f.kind != SCALAR:
                parts.append(self.chain(list(f.factors)))
            else:
                parts.append(self.wrap(f, POST))
        return " ".join(parts)

    def add(self, m: Add) -> tuple[str, int]:
        pieces = []
        for k, t in enumerate(m.terms):
            negative, body = _negated(t)
            text = self.wrap(body, MUL)
            if k == 0:
                pieces.append(("-" if negative else "") + text)
            else:
                pieces.append((" - " if negative else " + ") + text)
        return "".join(pieces), ADD


def _negated(t: MatrixExpr) -> tuple[bool, MatrixExpr]:
    """(True, -t) when ``t`` prints with a leading minus, else (False, t)."""
    if isinstance(t, MatMul) and t.coeff < 0:
        return True, MatMul(-t.coeff, t.factors)
    if isinstance(t, Number) and t.value < 0:
        return True, Number(-t.value)
    return False, t


def _simple_scalar(f: MatrixExpr) -> bool:
    """A scalar printed before the ``/`` of a coefficient (``2 alpha/n``)."""
    return isinstance(f, (Symbol, Reduce, Elementwise, Number)) or \
        (isinstance(f, Power) and isinstance(f.base, (Symbol, Reduce, Elementwise)))


# ========================================================================== evaluate


class _Evaluator:
    """Values as 2-d arrays: a column vector is (n, 1), a scalar (1, 1)."""

    def __init__(self, arrays: Mapping[str, Any]):
        self.arrays = arrays

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
            shape = np.shape(self.arrays.get(name))
            if axis < len(shape):
                return int(shape[axis])
        raise EvaluationError(f"cannot tell the size of {what}")

    def value(self, m: MatrixExpr) -> np.ndarray:
        if isinstance(m, Symbol):
            return self.array(m.name, m.rank)
        if isinstance(m, Number):
            return np.full((1, 1), _float(m.value))
        if isinstance(m, Identity):
            return np.eye(self.size(m.size, "I"))
        if isinstance(m, Ones):
            return np.ones((self.size(m.size, "ones"), 1))
        if isinstance(m, Zero):
            rows_one, cols_one = _ONES[m.shape_kind]
            rows = 1 if rows_one else self.size(m.rows, "0")
            cols = 1 if cols_one else self.size(m.cols, "0")
            return np.zeros((rows, cols))
        if isinstance(m, Transpose):
            return self.value(m.arg).T
        if isinstance(m, Inverse):
            arg = self.value(m.arg)
            try:
                return np.linalg.inv(arg)
            except np.linalg.LinAlgError:
                raise EvaluationError("inverse of a singular matrix") from None
        if isinstance(m, MatMul):
            acc = np.full((1, 1), _float(m.coeff))
            for f in m.factors:
                acc = _multiply(acc, self.value(f))
            return acc
        if isinstance(m, Hadamard):
            acc = np.ones((1, 1))
            for f in m.factors:
                acc = acc * self.value(f)
            return acc
        if isinstance(m, Add):
            total: Any = 0.0
            for t in m.terms:
                total = total + self.value(t)
            return np.asarray(total)
        if isinstance(m, Diag):
            arg = self.value(m.arg)
            if m.arg.kind == MATRIX:
                return np.diagonal(arg).reshape(-1, 1).copy()
            return np.diag(arg.ravel())
        if isinstance(m, Reduce):
            arg = self.value(m.arg)
            if m.name == "det":
                return np.full((1, 1), np.linalg.det(arg))
            if m.name == "logdet":
                return np.full((1, 1), np.linalg.slogdet(arg)[1])
            if m.name == "tr":
                return np.full((1, 1), np.trace(arg))
            return np.full((1, 1), np.sum(arg))
        if isinstance(m, Softmax):
            arg = self.value(m.arg)
            axis = {"": None, "rows": 1, "cols": 0}[m.over]
            result = softmax_values(m.name, arg, axis)
            return result.reshape(1, 1) if m.kind == SCALAR else result
        if isinstance(m, Elementwise):
            return np.asarray(FUNCTIONS[m.name].numpy(self.value(m.arg)))
        if isinstance(m, Power):
            base, exponent = self.value(m.base), self.value(m.exponent)
            with np.errstate(divide="ignore", invalid="ignore"):
                return base ** exponent
        if isinstance(m, Kron):
            return np.kron(self.value(m.left), self.value(m.right))
        raise TypeError(m)  # pragma: no cover


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
