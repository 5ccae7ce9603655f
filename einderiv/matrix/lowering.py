"""Lowering matrix notation to the index-labelled IR, for :func:`einderiv.parse_matrix`.

Every value carries its row and column labels (``None`` for a vector's missing
axis), so a transpose only swaps the two labels and a matrix product renames the
right operand's row label to the left operand's column label. Shapes come from
``shapes``: a name's rank decides whether it is a scalar, a (column) vector or a
matrix, whatever its case. Sizes that do not fit are :class:`~einderiv.ShapeError`
naming both shapes, with a caret under the operator.

The parser (:mod:`einderiv.matrix.syntax`) calls one :class:`Lowering` method per
operation, atom or function; this module knows nothing of tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction

from ..core.functions import FUNCTIONS
from ..core.ir import (Delta, Det, Expr, Func, Index, Inv, LogDet, Pow, Product, SizeHint, Sum,
                       Tensor, children, fresh_index, number, rename, with_children)
from ..core.softmax import WORDS
from ..core.softmax import expand as expand_word
from ..errors import ShapeError, format_caret
from .lexer import SPECIAL

__all__ = ["Lowering", "Val", "MATRIX_FUNCTIONS", "SOFTMAX_FUNCTIONS", "fill_sizes"]

MATRIX_FUNCTIONS = ("inv", "det", "logdet", "tr", "diag", "sum", "norm2")
#: softmax(z), log_softmax(z), logsumexp(z) of a vector; of each row or column of a
#: matrix with the suffix _rows / _cols (docs/matrix.md).
SOFTMAX_FUNCTIONS = tuple(f"{w}{s}" for w in WORDS for s in ("", "_rows", "_cols"))


class _Dim:
    """The size of an axis. Sizes of ``I`` and ``ones`` start unknown and are unified
    with the sizes they meet (a union-find cell); ``hint`` is the size hint for
    evaluation, ``(variable, axis)`` where known."""

    __slots__ = ("size", "hint", "parent", "source", "pos")

    def __init__(self, size: int | str | None, hint: SizeHint = None, source: str = "",
                 pos: int = 0):
        self.size = size
        self.hint = hint
        self.parent: _Dim | None = None
        self.source = source  # 'I' or 'ones' for an unknown size
        self.pos = pos

    def find(self) -> _Dim:
        d = self
        while d.parent is not None:
            d = d.parent
        return d


def _unify(a: _Dim | None, b: _Dim | None) -> bool:
    """Make ``a`` and ``b`` one size; False where both are known and differ."""
    if a is None or b is None:
        return True
    a, b = a.find(), b.find()
    if a is b:
        return True
    if a.size is not None and b.size is not None and a.size != b.size:
        return False
    if a.size is None:  # keep the known one as the root
        a, b = b, a
    b.parent = a
    if a.hint is None:
        a.hint = b.hint
    return True


@dataclass
class Val:
    """A lowered value: ``expr`` with free labels ``row`` / ``col`` (None: size 1),
    read from ``text[start:end]``."""

    expr: Expr
    row: Index | None
    col: Index | None
    rdim: _Dim | None
    cdim: _Dim | None
    start: int
    end: int

    @property
    def labels(self) -> tuple[Index, ...]:
        return tuple(x for x in (self.row, self.col) if x is not None)

    @property
    def is_scalar(self) -> bool:
        return self.row is None and self.col is None


def _size_text(d: _Dim | None, label: Index | None) -> str:
    if label is None:
        return "1"
    size = None if d is None else d.find().size
    return "?" if size is None else str(size)


def _scalar(expr: Expr, start: int, end: int) -> Val:
    return Val(expr, None, None, None, None, start, end)


class Lowering:
    """The operations of matrix notation on lowered values, for one text."""

    def __init__(self, text: str, shapes: Mapping[str, tuple]):
        self.text = text
        self.shapes = shapes
        self.unknown: dict[str, _Dim] = {}  # placeholder size of a delta -> its size

    def shape_error(self, message: str, pos: int) -> ShapeError:
        return ShapeError(format_caret(message, self.text, pos))

    def describe(self, v: Val) -> str:
        span = self.text[v.start:v.end].strip()
        if v.is_scalar:
            return f"{span} (a scalar)"
        return f"{span} ({_size_text(v.rdim, v.row)}x{_size_text(v.cdim, v.col)})"

    # -------------------------------------------------------------------- atoms
    def const(self, value: Fraction, pos: int, end: int | None = None) -> Val:
        return _scalar(number(value), pos, end or pos + 1)

    def variable(self, name: str, pos: int) -> Val:
        end = self._name_end(pos)
        if name not in self.shapes and self.text[pos:end] in self.shapes:
            name = self.text[pos:end]  # a Greek letter that is itself the name
        if name not in self.shapes:
            raise self.shape_error(
                f"unknown name {name!r}: give its shape in shapes (() for a scalar, (n,) for "
                "a vector, (n, m) for a matrix)", pos)
        shape = self.shapes[name]
        if len(shape) == 0:
            return _scalar(Tensor(name, ()), pos, end)
        if len(shape) == 1:
            r = fresh_index()
            return Val(Tensor(name, (r,)), r, None, _Dim(shape[0], (name, 0)), None, pos, end)
        if len(shape) == 2:
            r, c = fresh_index(), fresh_index()
            return Val(Tensor(name, (r, c)), r, c, _Dim(shape[0], (name, 0)),
                       _Dim(shape[1], (name, 1)), pos, end)
        raise self.shape_error(f"{name!r} has shape {shape} ({len(shape)} axes); matrix notation "
                               "has scalars, vectors and matrices (use einderiv.parse)", pos)

    def _name_end(self, pos: int) -> int:
        j = pos + 1
        while j < len(self.text) and (self.text[j].isalnum() or self.text[j] == "_") and \
                self.text[j] not in SPECIAL:
            j += 1
        return j

    def _placeholder(self, source: str, pos: int) -> tuple[_Dim, str]:
        d = _Dim(None, None, source, pos)
        key = f"?{len(self.unknown)}"
        self.unknown[key] = d
        return d, key

    def identity(self, pos: int) -> Val:
        d, key = self._placeholder("I", pos)
        r, c = fresh_index(), fresh_index()
        return Val(Delta(r, c, key), r, c, d, d, pos, pos + 1)

    def ones(self, pos: int) -> Val:
        d, key = self._placeholder("ones", pos)
        r = fresh_index()
        return Val(Delta(r, r, key), r, None, d, None, pos, pos + len("ones"))

    def sizes_of_unknowns(self) -> dict[str, SizeHint]:
        """The sizes of ``I`` and ``ones``, from what they met or from shapes."""
        sizes: dict[str, SizeHint] = {}
        for key, d in self.unknown.items():
            root = d.find()
            if root.size is None and root.hint is None:
                given = self.shapes.get(d.source)
                if not given:
                    raise self.shape_error(
                        f"cannot tell the size of {d.source} here: write it next to a matrix "
                        f"it multiplies or adds to, or give shapes={{'{d.source}': n}}", d.pos)
                _unify(root, _Dim(given[0], given[0] if isinstance(given[0], int) else None))
            sizes[key] = _delta_size(root)
        return sizes

    # --------------------------------------------------------------- operations
    def negate(self, v: Val, pos: int) -> Val:
        return Val(_mul(-1, (v.expr,), v.labels), v.row, v.col, v.rdim, v.cdim, pos, v.end)

    def transpose(self, v: Val, pos: int) -> Val:
        return Val(v.expr, v.col, v.row, v.cdim, v.rdim, v.start, pos + 1)

    def scale(self, s: Val, v: Val, start: int, end: int) -> Val:
        return Val(_mul(1, (s.expr, v.expr), v.labels), v.row, v.col, v.rdim, v.cdim,
                   start, end)

    def matmul(self, a: Val, b: Val, pos: int) -> Val:
        start, end = a.start, b.end
        if a.is_scalar:
            return self.scale(a, b, start, end)
        if b.is_scalar:
            return self.scale(b, a, start, end)
        if a.col is None and b.row is None:  # column times row: an outer product
            return Val(_mul(1, (a.expr, b.expr), _labels(a.row, b.col)),
                       a.row, b.col, a.rdim, b.cdim, start, end)
        if a.col is not None and b.row is not None:
            if not _unify(a.cdim, b.rdim):
                raise self.shape_error(
                    f"cannot multiply {self.describe(a)} by {self.describe(b)}: "
                    f"{_size_text(a.cdim, a.col)} columns against "
                    f"{_size_text(b.rdim, b.row)} rows", pos)
            right = rename(b.expr, {b.row: a.col})
            return Val(_mul(1, (a.expr, right), _labels(a.row, b.col)),
                       a.row, b.col, a.rdim, b.cdim, start, end)
        raise self.shape_error(
            f"cannot multiply {self.describe(a)} by {self.describe(b)}: the inner sizes "
            f"{_size_text(a.cdim, a.col)} and {_size_text(b.rdim, b.row)} differ", pos)

    def _same_shape(self, a: Val, b: Val, pos: int, what: str) -> Val:
        """``b`` relabelled onto ``a``'s labels (both non-scalar, equal shapes)."""
        same = (a.row is None) == (b.row is None) and (a.col is None) == (b.col is None) and \
            _unify(a.rdim, b.rdim) and _unify(a.cdim, b.cdim)
        if not same:
            raise self.shape_error(f"cannot {what} {self.describe(a)} and {self.describe(b)}: "
                                   "the shapes differ", pos)
        mapping = {old: new for old, new in ((b.row, a.row), (b.col, a.col))
                   if old is not None and new is not None}
        return Val(rename(b.expr, mapping), a.row, a.col, a.rdim, a.cdim, b.start, b.end)

    def add(self, a: Val, b: Val, pos: int, subtract: bool = False) -> Val:
        if subtract:
            b = self.negate(b, pos)
        start, end = a.start, b.end
        if a.is_scalar or b.is_scalar:
            wide = b if a.is_scalar else a
            return Val(_add((a.expr, b.expr), wide.labels), wide.row, wide.col, wide.rdim,
                       wide.cdim, start, end)
        b = self._same_shape(a, b, pos, "add")
        return Val(_add((a.expr, b.expr), a.labels), a.row, a.col, a.rdim, a.cdim, start, end)

    def hadamard(self, a: Val, b: Val, pos: int) -> Val:
        if a.is_scalar or b.is_scalar:
            s, v = (a, b) if a.is_scalar else (b, a)
            return self.scale(s, v, a.start, b.end)
        b2 = self._same_shape(a, b, pos, "multiply element-wise")
        return Val(_mul(1, (a.expr, b2.expr), a.labels), a.row, a.col, a.rdim,
                   a.cdim, a.start, b.end)

    def divide(self, a: Val, b: Val, pos: int) -> Val:
        if not b.is_scalar:
            raise self.shape_error(f"cannot divide by {self.describe(b)}: only by a scalar "
                                   "(multiply by inv(...) for a matrix)", pos)
        return self.matmul(a, _scalar(Pow(b.expr, number(-1)), b.start, b.end), pos)

    def power(self, v: Val, exponent: Val, pos: int, elementwise: bool) -> Val:
        if not exponent.is_scalar:
            raise self.shape_error(f"the exponent {self.describe(exponent)} must be a scalar",
                                   pos)
        if v.row is not None and v.col is not None and not elementwise:
            raise self.shape_error(
                f"{self.describe(v)} is a matrix: '^' would be ambiguous; write .^ for an "
                "element-wise power or a product (A A) for a matrix power", pos)
        return Val(Pow(v.expr, exponent.expr), v.row, v.col, v.rdim, v.cdim, v.start,
                   exponent.end)

    def inverse(self, v: Val, pos: int) -> Val:
        if v.is_scalar:
            return _scalar(Pow(v.expr, number(-1)), v.start, pos + 2)
        arg = self._closed(v, "an inverse", pos)
        r, c = fresh_index(), fresh_index()
        return Val(Inv(arg, (r, c)), r, c, v.cdim, v.rdim, v.start, pos + 2)

    def _require_square(self, v: Val, what: str, pos: int) -> tuple[Index, Index]:
        """The (row, column) labels of ``v``, a square matrix (else a ShapeError)."""
        if v.row is None or v.col is None or not _unify(v.rdim, v.cdim):
            raise self.shape_error(f"{what} needs a square matrix, got {self.describe(v)}", pos)
        return v.row, v.col

    def _closed(self, v: Val, what: str, pos: int) -> Expr:
        """The square matrix ``v`` as the argument of inv/det/logdet: its expression
        with the free labels in (row, column) order."""
        order = self._require_square(v, what, pos)
        if v.expr.free == order:
            return v.expr
        return Product(Fraction(1), (v.expr,), order)

    # ---------------------------------------------------------------- functions
    def apply(self, name: str, v: Val, pos: int) -> Val:
        """``name(v)``: an element-wise function, a softmax word or one of
        :data:`MATRIX_FUNCTIONS`."""
        if name in FUNCTIONS:
            return Val(Func(name, v.expr), v.row, v.col, v.rdim, v.cdim, pos, v.end)
        if name in SOFTMAX_FUNCTIONS:
            return self.softmax(name, v, pos)
        return _CALLS[name](self, name, v, pos)

    def _inv(self, name: str, v: Val, pos: int) -> Val:
        return self.inverse(v, pos)

    def _det(self, name: str, v: Val, pos: int) -> Val:
        if v.is_scalar:
            if name == "det":
                return v
            return _scalar(Func("log", Func("abs", v.expr)), pos, v.end)
        arg = self._closed(v, f"{name}(...)", pos)
        return _scalar(Det(arg) if name == "det" else LogDet(arg), pos, v.end)

    def _trace(self, name: str, v: Val, pos: int) -> Val:
        if v.is_scalar:
            return v
        row, col = self._require_square(v, "tr(...)", pos)
        trace = Product(Fraction(1), (v.expr, Delta(row, col, _delta_size(v.rdim))), ())
        return _scalar(trace, pos, v.end)

    def _diag(self, name: str, v: Val, pos: int) -> Val:
        if v.is_scalar:
            return v
        if v.row is not None and v.col is not None:  # the diagonal of a matrix
            row, col = self._require_square(v, "diag(matrix)", pos)
            diagonal = Product(Fraction(1), (v.expr, Delta(row, col, _delta_size(v.rdim))),
                               (row,))
            return Val(diagonal, row, None, v.rdim, None, pos, v.end)
        lab = v.row if v.row is not None else v.col
        dim = v.rdim if v.row is not None else v.cdim
        assert lab is not None
        other = fresh_index()
        matrix = Product(Fraction(1), (v.expr, Delta(lab, other, _delta_size(dim))), (lab, other))
        return Val(matrix, lab, other, dim, dim, pos, v.end)

    def _sum(self, name: str, v: Val, pos: int) -> Val:
        return _scalar(Product(Fraction(1), (v.expr,), ()), pos, v.end)

    def _norm2(self, name: str, v: Val, pos: int) -> Val:
        return _scalar(Func("sqrt", Product(Fraction(1), (v.expr, v.expr), ())), pos, v.end)

    def softmax(self, name: str, v: Val, pos: int) -> Val:
        """``softmax(z)`` of a vector; ``softmax_rows(Z)`` normalises each row of a
        matrix (the sum runs over the column index), ``softmax_cols(Z)`` each column.
        ``logsumexp`` of a vector is a scalar, of the rows a column vector, of the
        columns a row vector (einderiv.core.softmax gives the index form)."""
        word = name.rsplit("_", 1)[0] if name.endswith(("_rows", "_cols")) else name
        over = name[len(word) + 1:]
        if v.is_scalar:
            raise self.shape_error(f"{name}(...) needs a vector or matrix, got "
                                   f"{self.describe(v)}", pos)
        is_matrix = v.row is not None and v.col is not None
        if is_matrix and not over:
            raise self.shape_error(
                f"{name}(...) of a matrix needs the axis: {name}_rows(...) runs over each "
                f"row, {name}_cols(...) over each column; got {self.describe(v)}", pos)
        if over and not is_matrix:
            raise self.shape_error(f"{name}(...) needs a matrix; for a vector write "
                                   f"{word}(...); got {self.describe(v)}", pos)
        if not over:
            k = v.row if v.row is not None else v.col
            assert k is not None
            expr = expand_word(word, v.expr, k)
            if word == "logsumexp":
                return _scalar(expr, pos, v.end)
            return Val(expr, v.row, v.col, v.rdim, v.cdim, pos, v.end)
        k = v.col if over == "rows" else v.row
        assert k is not None
        expr = expand_word(word, v.expr, k)
        if word != "logsumexp":
            return Val(expr, v.row, v.col, v.rdim, v.cdim, pos, v.end)
        if over == "rows":  # one value per row: a column vector
            return Val(expr, v.row, None, v.rdim, None, pos, v.end)
        return Val(expr, None, v.col, None, v.cdim, pos, v.end)  # per column: a row


#: :data:`MATRIX_FUNCTIONS` by name: (lowering, name, argument, position) -> value.
_CALLS: dict[str, Callable[[Lowering, str, Val, int], Val]] = {
    "inv": Lowering._inv, "det": Lowering._det, "logdet": Lowering._det,
    "tr": Lowering._trace, "diag": Lowering._diag, "sum": Lowering._sum,
    "norm2": Lowering._norm2,
}


def _mul(coeff: int, factors: tuple[Expr, ...], out: tuple[Index, ...]) -> Product:
    """A product, with products among the factors spliced in (every label the parser
    makes is fresh, so nothing is captured); keeps long chains flat, not deep."""
    c = Fraction(coeff)
    flat: list[Expr] = []
    for f in factors:
        if isinstance(f, Product) and sum(g is f for g in factors) == 1:
            c *= f.coeff
            flat.extend(f.factors)
        else:
            flat.append(f)
    return Product(c, tuple(flat), out)


def _add(terms: tuple[Expr, ...], out: tuple[Index, ...]) -> Sum:
    """A sum, with sums among the terms (on the same labels) spliced in."""
    flat: list[Expr] = []
    for t in terms:
        if isinstance(t, Sum) and set(t.out) == set(out) and t.terms:
            flat.extend(t.terms)
        else:
            flat.append(t)
    return Sum(tuple(flat), out)


def _labels(*labels: Index | None) -> tuple[Index, ...]:
    return tuple(x for x in labels if x is not None)


def _delta_size(d: _Dim | None) -> SizeHint:
    if d is None:
        return None
    d = d.find()
    if d.hint is not None:
        return d.hint
    return d.size if isinstance(d.size, int) else None


def fill_sizes(e: Expr, sizes: Mapping[str, SizeHint]) -> Expr:
    """``e`` with the placeholder sizes of its deltas (``I``, ``ones``) replaced by
    ``sizes`` (:meth:`Lowering.sizes_of_unknowns`)."""
    if isinstance(e, Delta):
        return Delta(e.i, e.j, sizes[e.size]) if isinstance(e.size, str) and e.size in sizes \
            else e
    return with_children(e, [fill_sizes(c, sizes) for c in children(e)])
