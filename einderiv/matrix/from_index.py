"""Index form -> matrix form, from the index structure alone (docs/matrix.md):
:func:`to_matrix` and its converter, one method per IR node type (:data:`_DIRECT`,
:data:`_PIECES`, :data:`_CHOOSE`).

A :class:`~einderiv.core.ir.Product` is read as a graph
(:mod:`einderiv.matrix.factor_graph`). Each factor is a *piece* with at most two
labelled ends (a matrix ``X[a,b]`` has ends ``a`` and ``b``, a vector one end, a
scalar none). A summed label joins exactly two ends, so the pieces joined by summed
labels form paths and cycles:

* a path is a matrix-product chain; a piece entered from its column end is
  transposed (notes 001_*, A.21-A.22: ``X[a,d] X[a,b]`` is ``X^T X``);
* a cycle is a trace;
* vector pieces on one summed label beside a matrix are multiplied element-wise
  (``⊙``); between two matrices such a vector is ``diag(v)``;
* the free labels are the rows and columns of the result, in ``expr.free`` order
  (denominator layout: the variable's axis first, 001_*, A.1). Chains that end on
  the same free labels are combined element-wise (``⊙``), a vector on a free label
  beside a matrix becomes ``diag(v)`` on that side (the activation Jacobian,
  003_*, X.22-X.23), chains on different free labels make an outer product;
* where a summed label joins three or more matrices, the pieces are first reduced
  as a series-parallel graph: two chains between the same two labels are one,
  ``A ⊙ B`` (the gradient of a layer, ``((W2^T R) ⊙ D) X^T``);
* what is left with a summed label on three or more matrices, or more than two
  free axes, has no matrix form: :class:`~einderiv.errors.NotMatrixExpressible`.

Sums convert term by term; a factor common to several terms is pulled out where
the cofactors are single matrices (``(A + A^T) x``) or where that is shorter. A
three- or four-axis derivative flattened to a matrix is a Kronecker product
(:mod:`einderiv.matrix.kronecker`).
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import Any

from ..core.ir import (Delta, Det, Expr, Func, Index, Inv, LogDet, Pow, Product, SizeHint, Sum,
                       Tensor, factor_indices, fresh_index)
from ..core.named import has_names
from ..core.layouts import DENOMINATOR, check_layout, leading_rank
from ..core.scopes import outer_origins
from ..core.softmax import Word, named_view
from ..errors import EinderivError, NotMatrixExpressible, guard_recursion
from ..symbolic.simplify import flatten_product, simplify
from .algebra import (Orient, choose_form, factor_common, hadamard, inverse, make_sum, mat_mul,
                      plain_length, reading_cost, shaped_zero, transpose)
from .factor_graph import (Component, Piece, components, flip, matrix_ends, matrix_piece,
                           merge_free_hadamards, relabelled, series_parallel, short, sum_all,
                           vector_hadamard, vector_piece)
from .definitions import with_names
from .kronecker import kron
from .nodes import (COLUMN, MATRIX, ROW, SCALAR, Add, Diag, Elementwise, Identity, MatrixExpr,
                    Number, Ones, Power, Reduce, Softmax, Symbol, Transpose, Zero, const_number)

__all__ = ["to_matrix", "RESERVED_IN_MATRIX_NOTATION"]

#: Names that mean something else in matrix notation (einderiv.matrix.syntax).
RESERVED_IN_MATRIX_NOTATION = frozenset({"I", "ones", "tr", "diag", "sum", "norm2", "kron",
                                         *(f"{w}_{s}" for w in ("softmax", "log_softmax",
                                                                "logsumexp")
                                           for s in ("rows", "cols"))})

_SCALAR: Orient = (None, None)


def to_matrix(expr: Any, *, wrt_rank: int | None = None,
              flatten: str | None = None, layout: str | None = None) -> MatrixExpr:
    """``expr`` in matrix notation, in its layout (denominator unless
    ``einderiv.diff(..., layout="numerator")`` made it).

    ``wrt_rank`` is the number of free axes that belong to the variable of a
    derivative (``einderiv.diff`` puts them first). It matters in two places: a
    one-axis derivative by a scalar (``wrt_rank=0``) is a row vector (001_*, A.1),
    and ``flatten`` needs it to split rows from columns. Without it a one-axis
    result is a column vector and a two-axis result has rows = its first axis.

    ``flatten="F"`` (column-major ``vec``) or ``"C"`` (row-major) gives a three- or
    four-axis derivative as the Kronecker product that equals
    ``einderiv.flatten(expr.evaluate(...), wrt_rank, flatten)``, where one exists.

    ``layout`` (default: the one ``diff`` recorded on ``expr``, else
    ``"denominator"``) says where the variable's ``wrt_rank`` axes are: leading in
    denominator layout, trailing in numerator layout, where the function's axes are
    the rows (a gradient of a scalar is a row vector, ``d(A x)/dx`` is ``A``). For a
    numerator-layout result of ``diff``, ``wrt_rank`` defaults to the variable's rank.

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
    >>> print(einderiv.diff("A[i,j]*x[j]", "x", layout="numerator").to_matrix())
    A
    """
    return guard_recursion(_convert)(expr, wrt_rank=wrt_rank, flatten=flatten, layout=layout)


def _convert(expr: Expr, *, wrt_rank: int | None, flatten: str | None,
             layout: str | None) -> MatrixExpr:
    if not isinstance(expr, Expr):
        raise EinderivError(f"to_matrix needs an einderiv expression, got {type(expr).__name__}")
    if has_names(expr):  # in the names: Z = W^T X; A = tanh(Z); ...
        return with_names(expr, lambda x: _convert(
            x, wrt_rank=wrt_rank, flatten=flatten, layout=layout), lambda x: _convert(
            x, wrt_rank=None, flatten=None, layout=DENOMINATOR))
    recorded = expr.derivative_of  # set by diff(); simplify() makes a node without it
    if recorded is not None and not recorded.fits(expr.free):
        recorded = None
    if layout is None:
        layout = recorded.layout if recorded is not None else DENOMINATOR
    layout = check_layout(layout)
    if wrt_rank is None and layout != DENOMINATOR and recorded is not None \
            and recorded.layout == layout:
        wrt_rank = len(recorded.axes)
    e = simplify(expr)
    clash = sorted(RESERVED_IN_MATRIX_NOTATION & set(e.variables))
    e = named_view(e)  # softmax, log_softmax, logsumexp as words (einderiv.core.softmax)
    if clash:
        raise NotMatrixExpressible(
            f"the variable {clash[0]!r} would read as a reserved word of matrix notation "
            f"({', '.join(sorted(RESERVED_IN_MATRIX_NOTATION))}); rename it")
    free = e.free
    _check_options(len(free), wrt_rank, flatten)
    # The leading axes are the rows: the variable's (denominator) or f's (numerator).
    n_rows = None if wrt_rank is None else leading_rank(len(free), wrt_rank, layout)
    converter = _Converter(e)
    if flatten is not None:
        rows, cols = free[:n_rows], free[n_rows:]
        if len(rows) > 1 or len(cols) > 1:
            return kron(converter.convert, e, rows, cols, flatten)
        return converter.convert(e, (rows[0] if rows else None, cols[0] if cols else None))
    return converter.convert(e, _orientation(free, n_rows))


def _check_options(n: int, wrt_rank: int | None, flatten: str | None) -> None:
    """``wrt_rank`` from 0 to ``n`` (the number of free axes); ``flatten`` None, or
    ``"F"`` or ``"C"`` with a ``wrt_rank``."""
    if wrt_rank is not None and (isinstance(wrt_rank, bool) or not isinstance(wrt_rank, int)
                                 or not 0 <= wrt_rank <= n):
        raise EinderivError(f"wrt_rank must be an integer from 0 to {n} (the number of free "
                            f"axes), got {wrt_rank!r}")
    if flatten is not None:
        if flatten not in ("F", "C"):
            raise EinderivError(f"flatten must be 'F' (column-major vec) or 'C' (row-major), "
                                f"got {flatten!r}")
        if wrt_rank is None:
            raise EinderivError("flatten needs wrt_rank: how many leading axes are the "
                                "variable's (they become the rows)")


def _orientation(free: tuple[Index, ...], n_rows: int | None) -> Orient:
    """The rows and columns of a result with free labels ``free`` (at most two), of
    which the first ``n_rows`` are rows (None: not said; a vector is a column)."""
    n = len(free)
    if n > 2:
        kron_hint = (" For a derivative by a matrix, to_matrix(wrt_rank=2, flatten='F') gives "
                     "the Kronecker form where one exists." if n in (3, 4) else "")
        raise NotMatrixExpressible(
            f"the expression has {n} free axes {free}; matrix notation has at most two "
            f"(scalars, vectors, matrices). Use the index form (str(expr)), or flatten the "
            f"values with einderiv.flatten(expr.evaluate(...), n_row_axes, 'F').{kron_hint}")
    if n == 0:
        return _SCALAR
    if n == 1:
        return (None, free[0]) if n_rows == 0 else (free[0], None)
    return (free[0], free[1])


# ======================================================================== converter


class _Converter:
    """Converts the nodes of one expression, each in an orientation: ``o`` = (row label,
    column label), None where the axis has size 1. Results are memoised by (node, o)."""

    def __init__(self, root: Expr):
        self.memo: dict[tuple[Expr, Orient], MatrixExpr] = {}
        # Size hints of the scopes around the node being converted, innermost last: a
        # product's summed labels are its own, an inv/det/logdet argument starts anew.
        self.scopes = [outer_origins(root)]
        self.root = root

    def hint(self, label: Index | None) -> SizeHint:
        if label is None:
            return None
        for origins in reversed(self.scopes):
            if origins.get(label) is not None:
                return origins[label]
        return None

    def closed(self, arg: Expr) -> MatrixExpr:
        """An inv/det/logdet argument as a matrix: a scope of its own."""
        outer, self.scopes = self.scopes, [outer_origins(arg)]
        try:
            return self.convert(arg, (arg.free[0], arg.free[1]))
        finally:
            self.scopes = outer

    # ------------------------------------------------------------------- dispatch
    def convert(self, e: Expr, o: Orient) -> MatrixExpr:
        """``e`` with rows ``o[0]`` and columns ``o[1]``: its direct form, or the
        transpose of the flipped one where :data:`_CHOOSE` says that reads better."""
        key = (e, o)
        if key in self.memo:
            return self.memo[key]
        result = self.direct(e, o)
        choose = _CHOOSE.get(type(e))
        if choose is not None:
            result = choose(self, e, o, result)
        self.memo[key] = result
        return result

    def direct(self, e: Expr, o: Orient) -> MatrixExpr:
        return _DIRECT.get(type(e), _Converter.atom)(self, e, o)

    def atom(self, e: Expr, o: Orient) -> MatrixExpr:
        """A tensor, delta, inv, det or logdet: its piece, oriented."""
        return self.piece(e).make(o)

    def func(self, e: Func, o: Orient) -> MatrixExpr:
        return Elementwise(e.name, self.convert(e.arg, o))

    def pow(self, e: Pow, o: Orient) -> MatrixExpr:
        return self.power(self.convert(e.base, o), self.convert(e.exponent, _SCALAR))

    def word(self, e: Word, o: Orient) -> MatrixExpr:
        """``softmax[k](u)`` and its kin: of a vector, ``softmax(z)``; of a matrix, by
        rows (``k`` the column index: each row is normalised, ``softmax_rows(Z)``) or
        by columns, whichever reads shorter in the orientation ``o``."""
        u, k = e.arg, e.index
        batch = [i for i in u.free if i != k]
        if len(batch) > 1:
            raise NotMatrixExpressible(
                f"{e.name}[{k}] of an argument with {len(u.free)} free axes {u.free}; matrix "
                "notation has at most two. Use the index form (str(expr)).")
        if not batch:
            inner = (k, None) if e.name == "logsumexp" else o
            return Softmax(e.name, self.convert(u, inner), "")
        (g,) = batch
        by_rows = Softmax(e.name, self.convert(u, (g, k)), "rows")
        by_cols = Softmax(e.name, self.convert(u, (k, g)), "cols")
        if (e.name == "logsumexp" and o[0] == g) or o == (g, k):
            options = [by_rows, transpose(by_cols)]
        else:
            options = [by_cols, transpose(by_rows)]
        return min(options, key=plain_length)

    @staticmethod
    def power(base: MatrixExpr, exponent: MatrixExpr) -> MatrixExpr:
        k = const_number(exponent)
        if k == 1:
            return base
        inner = const_number(base.exponent) if isinstance(base, Power) else None
        if isinstance(base, Power) and k is not None and inner is not None and \
                k.denominator == 1 and inner.denominator == 1:  # (x^2)^3; not (x^2)^(1/2)
            return Power(base.base, Number(k * inner))
        return Power(base, Number(k) if k is not None else exponent)

    # --------------------------------------------------------------------- pieces
    def piece(self, f: Expr) -> Piece:
        """The factor ``f`` as a piece (a matrix, vector or scalar with labelled ends)."""
        return _PIECES.get(type(f), _Converter.compound_piece)(self, f)

    def tensor_piece(self, t: Tensor) -> Piece:
        if len(t.indices) == 0:
            symbol = Symbol(t.name, 0)
            return Piece(_SCALAR, lambda o: symbol)
        if len(t.indices) == 1:
            return vector_piece(t.indices[0], Symbol(t.name, 1))
        if len(t.indices) == 2:
            a, b = t.indices
            if a == b:
                return vector_piece(a, Diag(Symbol(t.name, 2)))
            return matrix_piece((a, b), Symbol(t.name, 2, t.assumed))
        raise NotMatrixExpressible(
            f"{t.name} has {len(t.indices)} axes; matrix notation has scalars, vectors and "
            "matrices only. Use the index form (str(expr)).")

    def delta_piece(self, f: Delta) -> Piece:
        if f.i == f.j:
            return vector_piece(f.i, Ones(f.size or self.hint(f.i)))
        ident = Identity(f.size or self.hint(f.i) or self.hint(f.j))
        return Piece((f.i, f.j), lambda o: ident)

    def inv_piece(self, f: Inv) -> Piece:
        inv = inverse(self.closed(f.arg))
        k, m = f.indices
        if k == m:
            return vector_piece(k, Diag(inv))
        return matrix_piece((k, m), inv)

    def det_piece(self, f: Det | LogDet) -> Piece:
        arg = self.closed(f.arg)
        arg = arg.arg if isinstance(arg, Transpose) else arg  # det(M^T) = det(M)
        value = Reduce("det" if isinstance(f, Det) else "logdet", arg)
        return Piece(_SCALAR, lambda o: value)

    def compound_piece(self, f: Expr) -> Piece:
        """A sum, product, function or power inside a product: converted as a whole."""
        free = f.free
        if len(set(free)) != len(free):
            raise NotMatrixExpressible(
                f"the factor {short(f)} repeats a free index {free}; use the index form")
        if len(free) > 2:
            raise NotMatrixExpressible(
                f"the factor {short(f)} has {len(free)} free axes {free} inside a product; "
                "matrix notation has at most two. Use the index form (str(expr)).")
        padded = (*free, None, None)
        return Piece((padded[0], padded[1]), lambda o: self.convert(f, o))

    # ------------------------------------------------------------------- products
    def product(self, p: Product, o: Orient) -> MatrixExpr:
        self.scopes.append(outer_origins(p))
        try:
            return self._product(p, o)
        finally:
            self.scopes.pop()

    def _product(self, p: Product, o: Orient) -> MatrixExpr:
        expanded = self._multiplied_out(p)
        if expanded is not None:
            return self.sum(expanded, o)
        out = set(p.out)
        scalars: list[MatrixExpr] = []
        pieces: list[Piece] = []
        for f in p.factors:
            pc = self.piece(f)
            if pc.ends == _SCALAR:
                scalars.append(pc.make(_SCALAR))
            else:
                pieces.append(pc)
        carried = {lab for pc in pieces for lab in pc.ends if lab is not None}
        for lab in p.out:
            if lab not in carried:  # broadcast along a label no factor carries
                pieces.append(vector_piece(lab, Ones(self.hint(lab))))
        pieces = merge_free_hadamards(pieces, out)
        summed = [lab for lab in dict.fromkeys(x for f in p.factors for x in factor_indices(f))
                  if lab not in out]
        if any(matrix_ends(pieces, lab) > 2 for lab in summed):
            pieces = self._row_sums(pieces, summed)
        if any(matrix_ends(pieces, lab) > 2 for lab in summed):
            pieces = series_parallel(pieces, out, scalars)
            summed = [lab for lab in summed if any(lab in pc.ends for pc in pieces)]
        for lab in summed:
            pieces = self._join_summed(pieces, lab, out, scalars)
        labelled: list[Component] = []
        for comp in components(pieces, out):
            if comp.labels == ():
                scalars.append(comp.scalar())
            else:
                labelled.append(comp)
        return mat_mul(p.coeff, scalars + self._combine(labelled, o))

    def _multiplied_out(self, p: Product) -> Sum | None:
        """Where a factor of ``p`` is a sum with three or more axes: ``p`` multiplied
        out over its terms (a term broadcasts along the labels it lacks), else None."""
        for k, f in enumerate(p.factors):
            if isinstance(f, Sum) and len(f.free) > 2 and f.terms:
                rest = p.factors[:k] + p.factors[k + 1:]
                hints = dict(f.hints)
                terms = []
                for t in f.terms:
                    carried = set(t.free) | {x for g in rest for x in factor_indices(g)}
                    ones = tuple(Delta(lab, lab, hints.get(lab) or self.hint(lab))
                                 for lab in f.out if lab not in carried)
                    terms.append(flatten_product(Product(p.coeff, rest + (t,) + ones, p.out)))
                return Sum(tuple(terms), p.out)
        return None

    def _row_sums(self, pieces: list[Piece], summed: list[Index]) -> list[Piece]:
        """Where a summed label joins three matrices: a matrix with an end summed over it
        alone is a vector on its other end, ``Y ones`` for ``Y[a,b]`` summed over ``b``
        (``X^T diag(Y ones) softmax_rows(X W)`` in the softmax cross-entropy gradient)."""
        result = []
        for pc in pieces:
            if not pc.is_vector and pc.ends[1] is not None and pc.ends[0] != pc.ends[1]:
                for k in (0, 1):
                    lab, other = pc.ends[k], pc.ends[1 - k]
                    if lab in summed and other is not None and \
                            sum(lab in q.ends for q in pieces) == 1:
                        column = mat_mul(1, [pc.make((other, lab)), Ones(self.hint(lab))])
                        pc = vector_piece(other, column)
                        break
            result.append(pc)
        return result

    def _join_summed(self, pieces: list[Piece], lab: Index, out: set[Index],
                     scalars: list[MatrixExpr]) -> list[Piece]:
        """Make summed label ``lab`` join exactly two ends (or none)."""
        vectors = [pc for pc in pieces if pc.is_vector and pc.ends[0] == lab]
        mats = [(pc, k) for pc in pieces if not pc.is_vector
                for k in (0, 1) if pc.ends[k] == lab]
        if len(mats) > 2:
            names = ", ".join(short(pc.make(pc.ends)) for pc, _ in mats)
            raise NotMatrixExpressible(
                f"the summed index {lab!r} is shared by {len(mats) + len(vectors)} factors, "
                f"{len(mats)} of them matrices ({names}); a matrix product joins two. Use "
                "the index form (str(expr)).")
        keep = 2 if not mats else 1  # x^T y stays an inner product
        if len(vectors) > keep:
            merged = vector_hadamard(vectors[keep - 1:])
            pieces = [pc for pc in pieces if pc not in vectors[keep - 1:]] + [merged]
            vectors = vectors[:keep - 1] + [merged]
        if len(mats) == 2 and vectors:
            (v,) = vectors
            new = fresh_index()
            diag = Diag(v.column())
            pieces = [pc for pc in pieces if pc is not v] + [Piece((lab, new), lambda o: diag)]
            pc, k = mats[1]
            ends = list(pc.ends)
            ends[k] = new
            pieces[pieces.index(pc)] = Piece((ends[0], ends[1]),
                                              relabelled(pc, pc.ends, (ends[0], ends[1])))
        elif len(mats) + len(vectors) == 1:  # summed over one factor only
            if vectors:
                (v,) = vectors
                pieces = [pc for pc in pieces if pc is not v]
                scalars.append(sum_all(v.column()))
            else:
                pc, k = mats[0]
                other = pc.ends[1 - k]
                if other is not None and other not in out and \
                        sum(other in q.ends for q in pieces) == 1:  # sum of all entries
                    pieces = [q for q in pieces if q is not pc]
                    scalars.append(Reduce("sum", pc.make(pc.ends)))
                else:  # a row or column sum: a product with a vector of ones
                    pieces.append(vector_piece(lab, Ones(self.hint(lab))))
        return pieces

    def _combine(self, comps: list[Component], o: Orient) -> list[MatrixExpr]:
        """The labelled components as chain factors with rows ``o[0]``, columns ``o[1]``."""
        row, col = o
        mats = [c for c in comps if set(c.labels) == {row, col} and row is not None
                and col is not None]
        on_row = [c for c in comps if set(c.labels) == {row} and c not in mats]
        on_col = [c for c in comps if set(c.labels) == {col} and c not in mats]
        if len(mats) + len(on_row) + len(on_col) != len(comps):  # pragma: no cover
            raise NotMatrixExpressible("a product whose axes do not match its free indices")
        if mats:
            parts: list[MatrixExpr] = []
            if on_row:
                parts.append(Diag(hadamard([c.oriented((row, None)) for c in on_row])))
            parts.append(hadamard([c.oriented((row, col)) for c in mats]))
            if on_col:
                parts.append(Diag(hadamard([c.oriented((col, None)) for c in on_col])))
            return parts
        parts = []
        if on_row:
            parts.append(self._vector(on_row, row, as_row=False))
        if on_col:
            parts.append(self._vector(on_col, col, as_row=True))
        return parts

    @staticmethod
    def _vector(comps: list[Component], lab: Index | None, as_row: bool) -> MatrixExpr:
        if not as_row:
            return hadamard([c.oriented((lab, None)) for c in comps])
        if len(comps) == 1:
            return comps[0].oriented((None, lab))
        return transpose(hadamard([c.oriented((lab, None)) for c in comps]))

    # ----------------------------------------------------------------------- sums
    def sum(self, s: Sum, o: Orient) -> MatrixExpr:
        if not s.terms:
            hints = dict(s.hints)
            kind = {(True, True): SCALAR, (False, True): COLUMN, (True, False): ROW,
                    (False, False): MATRIX}[(o[0] is None, o[1] is None)]
            rows = hints.get(o[0]) or self.hint(o[0]) if o[0] else None
            cols = hints.get(o[1]) or self.hint(o[1]) if o[1] else None
            if s is self.root or kind == SCALAR:
                return Zero(kind, rows, cols)
            return shaped_zero(o, rows, cols)  # keeps its shape inside a larger expression
        terms: list[MatrixExpr] = []
        for t in s.terms:
            if not t.free:
                m = self.convert(t, _SCALAR)
            elif set(t.free) == set(s.out):
                m = self.convert(t, o)
            else:  # broadcast along the labels the term lacks
                m = self.convert(Product(Fraction(1), (t,), s.out), o)
            terms.extend(m.terms if isinstance(m, Add) else (m,))
        terms = factor_common(terms)
        return make_sum(terms)


def _choose_product(c: _Converter, e: Product, o: Orient, direct: MatrixExpr) -> MatrixExpr:
    """A chain with its transposes distributed, or the transposed reversed chain."""
    if o == _SCALAR:
        return direct
    wrapped = transpose(c.direct(e, flip(o)))
    return choose_form(direct, wrapped, row=o[0] is None)


def _choose_row(c: _Converter, e: Expr, o: Orient, direct: MatrixExpr) -> MatrixExpr:
    """A function or power as a row: ``exp(z)^T``, not ``exp(z^T)``."""
    if not (o[0] is None and o[1] is not None):
        return direct
    wrapped = transpose(c.direct(e, flip(o)))
    return wrapped if reading_cost(wrapped) <= reading_cost(direct) else direct


def _choose_sum(c: _Converter, e: Sum, o: Orient, direct: MatrixExpr) -> MatrixExpr:
    """``(X theta - Y)^T``, but ``a^T + 2 s b^T``: the shorter (ties: distributed)."""
    if o == _SCALAR:
        return direct
    wrapped = transpose(c.direct(e, flip(o)))
    return min((direct, wrapped), key=plain_length)


#: The conversion of a node by type (the others: :meth:`_Converter.atom`, their piece).
_DIRECT: dict[type[Expr], Callable[[_Converter, Any, Orient], MatrixExpr]] = {
    Sum: _Converter.sum, Product: _Converter.product, Word: _Converter.word,
    Func: _Converter.func, Pow: _Converter.pow,
}

#: A factor as a piece by type (the others: :meth:`_Converter.compound_piece`).
_PIECES: dict[type[Expr], Callable[[_Converter, Any], Piece]] = {
    Tensor: _Converter.tensor_piece, Delta: _Converter.delta_piece,
    Inv: _Converter.inv_piece, Det: _Converter.det_piece, LogDet: _Converter.det_piece,
}

#: Where the transpose of the flipped form may read better, by type:
#: (converter, node, orientation, direct form) -> the form to keep.
_CHOOSE: dict[type[Expr], Callable[[_Converter, Any, Orient, MatrixExpr], MatrixExpr]] = {
    Product: _choose_product, Func: _choose_row, Word: _choose_row, Pow: _choose_row,
    Sum: _choose_sum,
}
