"""Index form -> matrix form, from the index structure alone (docs/matrix.md).

A :class:`~einderiv.core.ir.Product` is read as a graph. Each factor is a *piece* with
at most two labelled ends (a matrix ``X[a,b]`` has ends ``a`` and ``b``, a vector
one end, a scalar none). A summed label joins exactly two ends, so the pieces
joined by summed labels form paths and cycles:

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
the cofactors are single matrices (``(A + A^T) x``) or where that is shorter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from ..core.ir import (
    Delta,
    Det,
    Expr,
    Func,
    Index,
    Inv,
    LogDet,
    Pow,
    Product,
    SizeHint,
    Sum,
    Tensor,
    factor_indices,
    fresh_index,
    outer_origins,
)
from ..core.softmax import Word, named_view
from ..errors import EinderivError, NotMatrixExpressible, guard_recursion
from .algebra import (
    Orient,
    choose_form,
    factor_common,
    hadamard,
    inverse,
    make_sum,
    mat_mul,
    plain_length,
    reading_cost,
    shaped_zero,
    transpose,
)
from .nodes import (
    COLUMN,
    MATRIX,
    ROW,
    SCALAR,
    Add,
    Diag,
    Elementwise,
    Identity,
    Kron,
    MatrixExpr,
    Number,
    Ones,
    Power,
    Reduce,
    Softmax,
    Symbol,
    Transpose,
    Zero,
    const_number,
)

__all__ = ["convert"]

#: Names that mean something else in matrix notation (einderiv.matrix.syntax).
RESERVED_IN_MATRIX_NOTATION = frozenset({"I", "ones", "tr", "diag", "sum", "norm2", "kron",
                                         *(f"{w}_{s}" for w in ("softmax", "log_softmax",
                                                                "logsumexp")
                                           for s in ("rows", "cols"))})

_SCALAR: Orient = (None, None)


def convert(expr: Expr, *, wrt_rank: int | None = None, flatten: str | None = None) -> MatrixExpr:
    """See :func:`einderiv.matrix.to_matrix`."""
    return guard_recursion(_convert)(expr, wrt_rank=wrt_rank, flatten=flatten)


def _convert(expr: Expr, *, wrt_rank: int | None, flatten: str | None) -> MatrixExpr:
    from ..symbolic.simplify import simplify
    if not isinstance(expr, Expr):
        raise EinderivError(f"to_matrix needs an einderiv expression, got {type(expr).__name__}")
    e = simplify(expr)
    clash = sorted(RESERVED_IN_MATRIX_NOTATION & set(e.variables))
    e = named_view(e)  # softmax, log_softmax, logsumexp as words (einderiv.core.softmax)
    if clash:
        raise NotMatrixExpressible(
            f"the variable {clash[0]!r} would read as a reserved word of matrix notation "
            f"({', '.join(sorted(RESERVED_IN_MATRIX_NOTATION))}); rename it")
    free = e.free
    n = len(free)
    if wrt_rank is not None and (isinstance(wrt_rank, bool) or not isinstance(wrt_rank, int)
                                 or not 0 <= wrt_rank <= n):
        raise EinderivError(f"wrt_rank must be an integer from 0 to {n} (the number of free "
                            f"axes), got {wrt_rank!r}")
    converter = _Converter(e)
    if flatten is not None:
        if flatten not in ("F", "C"):
            raise EinderivError(f"flatten must be 'F' (column-major vec) or 'C' (row-major), "
                                f"got {flatten!r}")
        if wrt_rank is None:
            raise EinderivError("flatten needs wrt_rank: how many leading axes are the "
                                "variable's (they become the rows)")
        rows, cols = free[:wrt_rank], free[wrt_rank:]
        if len(rows) > 1 or len(cols) > 1:
            return converter.kron(e, rows, cols, flatten)
        return converter.convert(e, (rows[0] if rows else None, cols[0] if cols else None))
    if n > 2:
        kron_hint = (" For a derivative by a matrix, to_matrix(wrt_rank=2, flatten='F') gives "
                     "the Kronecker form where one exists." if n in (3, 4) else "")
        raise NotMatrixExpressible(
            f"the expression has {n} free axes {free}; matrix notation has at most two "
            f"(scalars, vectors, matrices). Use the index form (str(expr)), or flatten the "
            f"values with einderiv.flatten(expr.evaluate(...), n_row_axes, 'F').{kron_hint}")
    if n == 0:
        orient: Orient = _SCALAR
    elif n == 1:
        orient = (None, free[0]) if wrt_rank == 0 else (free[0], None)
    else:
        orient = (free[0], free[1])
    return converter.convert(e, orient)


# ======================================================================== converter


@dataclass(eq=False)  # pieces are told apart by identity
class _Piece:
    """A factor seen as a matrix: ``ends`` = (row label, column label) in its natural
    orientation (a vector: (label, None)); ``make(orient)`` builds it oriented."""

    ends: Orient
    make: Callable[[Orient], MatrixExpr]

    @property
    def is_vector(self) -> bool:
        return self.ends[1] is None and self.ends[0] is not None

    def column(self) -> MatrixExpr:
        return self.make((self.ends[0], None))


def _short(e: object, limit: int = 60) -> str:
    text = str(e)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _flip(o: Orient) -> Orient:
    return (o[1], o[0])


class _Converter:
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
        key = (e, o)
        if key in self.memo:
            return self.memo[key]
        result = self._direct(e, o)
        if isinstance(e, Product) and o != _SCALAR:
            wrapped = transpose(self._direct(e, _flip(o)))
            result = choose_form(result, wrapped, row=o[0] is None)
        elif isinstance(e, (Func, Pow)) and o[0] is None and o[1] is not None:
            wrapped = transpose(self._direct(e, _flip(o)))  # a row: exp(z)^T, not exp(z^T)
            result = wrapped if reading_cost(wrapped) <= reading_cost(result) else result
        elif isinstance(e, Sum) and o != _SCALAR:  # (X theta - Y)^T, but a^T + 2 s b^T
            wrapped = transpose(self._direct(e, _flip(o)))
            result = min((result, wrapped), key=plain_length)  # ties: distributed
        self.memo[key] = result
        return result

    def _direct(self, e: Expr, o: Orient) -> MatrixExpr:
        if isinstance(e, Sum):
            return self.sum(e, o)
        if isinstance(e, Product):
            return self.product(e, o)
        if isinstance(e, Word):
            return self.word(e, o)
        if isinstance(e, Func):
            return Elementwise(e.name, self.convert(e.arg, o))
        if isinstance(e, Pow):
            return self.power(self.convert(e.base, o), self.convert(e.exponent, _SCALAR))
        return self.piece(e).make(o)

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
    def piece(self, f: Expr) -> _Piece:
        """The factor ``f`` as a piece (a matrix, vector or scalar with labelled ends)."""
        if isinstance(f, Tensor):
            return self._tensor_piece(f)
        if isinstance(f, Delta):
            if f.i == f.j:
                return _vector_piece(f.i, Ones(f.size or self.hint(f.i)))
            ident = Identity(f.size or self.hint(f.i) or self.hint(f.j))
            return _Piece((f.i, f.j), lambda o: ident)
        if isinstance(f, Inv):
            inv = inverse(self.closed(f.arg))
            k, m = f.indices
            if k == m:
                return _vector_piece(k, Diag(inv))
            return _matrix_piece((k, m), inv)
        if isinstance(f, (Det, LogDet)):
            arg = self.closed(f.arg)
            arg = arg.arg if isinstance(arg, Transpose) else arg  # det(M^T) = det(M)
            value = Reduce("det" if isinstance(f, Det) else "logdet", arg)
            return _Piece(_SCALAR, lambda o: value)
        free = f.free
        if len(set(free)) != len(free):
            raise NotMatrixExpressible(
                f"the factor {_short(f)} repeats a free index {free}; use the index form")
        if len(free) > 2:
            raise NotMatrixExpressible(
                f"the factor {_short(f)} has {len(free)} free axes {free} inside a product; "
                "matrix notation has at most two. Use the index form (str(expr)).")
        ends = (free + (None, None))[:2]
        return _Piece(ends, lambda o: self.convert(f, o))  # type: ignore[arg-type]

    def _tensor_piece(self, t: Tensor) -> _Piece:
        if len(t.indices) == 0:
            symbol = Symbol(t.name, 0)
            return _Piece(_SCALAR, lambda o: symbol)
        if len(t.indices) == 1:
            return _vector_piece(t.indices[0], Symbol(t.name, 1))
        if len(t.indices) == 2:
            a, b = t.indices
            if a == b:
                return _vector_piece(a, Diag(Symbol(t.name, 2)))
            return _matrix_piece((a, b), Symbol(t.name, 2))
        raise NotMatrixExpressible(
            f"{t.name} has {len(t.indices)} axes; matrix notation has scalars, vectors and "
            "matrices only. Use the index form (str(expr)).")

    # ------------------------------------------------------------------- products
    def product(self, p: Product, o: Orient) -> MatrixExpr:
        self.scopes.append(outer_origins(p))
        try:
            return self._product(p, o)
        finally:
            self.scopes.pop()

    def _product(self, p: Product, o: Orient) -> MatrixExpr:
        from ..symbolic.simplify import flatten_product
        for k, f in enumerate(p.factors):
            if isinstance(f, Sum) and len(f.free) > 2 and f.terms:
                # a sum with three or more axes inside a product: multiply it out
                rest = p.factors[:k] + p.factors[k + 1:]
                hints = dict(f.hints)
                terms = []
                for t in f.terms:  # a term broadcasts along the labels it lacks
                    carried = set(t.free) | {x for g in rest for x in factor_indices(g)}
                    ones = tuple(Delta(lab, lab, hints.get(lab) or self.hint(lab))
                                 for lab in f.out if lab not in carried)
                    terms.append(flatten_product(Product(p.coeff, rest + (t,) + ones, p.out)))
                return self.sum(Sum(tuple(terms), p.out), o)
        out = set(p.out)
        scalars: list[MatrixExpr] = []
        pieces: list[_Piece] = []
        for f in p.factors:
            pc = self.piece(f)
            if pc.ends == _SCALAR:
                scalars.append(pc.make(_SCALAR))
            else:
                pieces.append(pc)
        carried = {lab for pc in pieces for lab in pc.ends if lab is not None}
        for lab in p.out:
            if lab not in carried:  # broadcast along a label no factor carries
                pieces.append(_vector_piece(lab, Ones(self.hint(lab))))
        pieces = _merge_free_hadamards(pieces, out)
        summed = [lab for lab in dict.fromkeys(x for f in p.factors for x in factor_indices(f))
                  if lab not in out]
        if any(_matrix_ends(pieces, lab) > 2 for lab in summed):
            pieces = self._row_sums(pieces, summed)
        if any(_matrix_ends(pieces, lab) > 2 for lab in summed):
            pieces = _series_parallel(pieces, out, scalars)
            summed = [lab for lab in summed if any(lab in pc.ends for pc in pieces)]
        for lab in summed:
            pieces = self._join_summed(pieces, lab, out, scalars)
        components = _components(pieces, out)
        labelled: list[_Component] = []
        for comp in components:
            if comp.labels == ():
                scalars.append(comp.scalar())
            else:
                labelled.append(comp)
        return mat_mul(p.coeff, scalars + self._combine(labelled, o))

    def _row_sums(self, pieces: list[_Piece], summed: list[Index]) -> list[_Piece]:
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
                        pc = _vector_piece(other, column)
                        break
            result.append(pc)
        return result

    def _join_summed(self, pieces: list[_Piece], lab: Index, out: set[Index],
                     scalars: list[MatrixExpr]) -> list[_Piece]:
        """Make summed label ``lab`` join exactly two ends (or none)."""
        vectors = [pc for pc in pieces if pc.is_vector and pc.ends[0] == lab]
        mats = [(pc, k) for pc in pieces if not pc.is_vector
                for k in (0, 1) if pc.ends[k] == lab]
        if len(mats) > 2:
            names = ", ".join(_short(pc.make(pc.ends)) for pc, _ in mats)
            raise NotMatrixExpressible(
                f"the summed index {lab!r} is shared by {len(mats) + len(vectors)} factors, "
                f"{len(mats)} of them matrices ({names}); a matrix product joins two. Use "
                "the index form (str(expr)).")
        keep = 2 if not mats else 1  # x^T y stays an inner product
        if len(vectors) > keep:
            merged = _vector_hadamard(vectors[keep - 1:])
            pieces = [pc for pc in pieces if pc not in vectors[keep - 1:]] + [merged]
            vectors = vectors[:keep - 1] + [merged]
        if len(mats) == 2 and vectors:
            (v,) = vectors
            new = fresh_index()
            diag = Diag(v.column())
            pieces = [pc for pc in pieces if pc is not v] + [_Piece((lab, new), lambda o: diag)]
            pc, k = mats[1]
            ends = list(pc.ends)
            ends[k] = new
            pieces[pieces.index(pc)] = _Piece((ends[0], ends[1]),
                                              _relabelled(pc, pc.ends, (ends[0], ends[1])))
        elif len(mats) + len(vectors) == 1:  # summed over one factor only
            if vectors:
                (v,) = vectors
                pieces = [pc for pc in pieces if pc is not v]
                scalars.append(_sum_all(v.column()))
            else:
                pc, k = mats[0]
                other = pc.ends[1 - k]
                if other is not None and other not in out and \
                        sum(other in q.ends for q in pieces) == 1:  # sum of all entries
                    pieces = [q for q in pieces if q is not pc]
                    scalars.append(Reduce("sum", pc.make(pc.ends)))
                else:  # a row or column sum: a product with a vector of ones
                    pieces.append(_vector_piece(lab, Ones(self.hint(lab))))
        return pieces

    def _combine(self, comps: list[_Component], o: Orient) -> list[MatrixExpr]:
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
    def _vector(comps: list[_Component], lab: Index, as_row: bool) -> MatrixExpr:
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

    # ------------------------------------------------------------------ Kronecker
    def kron(self, e: Expr, rows: tuple[Index, ...], cols: tuple[Index, ...],
             order: str) -> MatrixExpr:
        """The flattened derivative ``flatten(e, len(rows), order)`` as Kronecker products."""
        if len(rows) > 2 or len(cols) > 2:
            raise NotMatrixExpressible(
                f"{len(rows)} row axes and {len(cols)} column axes: the Kronecker form covers "
                "at most two of each. Use the index form or einderiv.flatten on the values.")
        out = rows + cols
        if isinstance(e, Sum) and not e.terms:
            return Zero(MATRIX)
        terms = e.terms if isinstance(e, Sum) else (e,)
        parts = []
        for t in terms:
            p = t if isinstance(t, Product) and t.out == out else Product(Fraction(1), (t,), out)
            parts.append(self._kron_term(p, rows, cols, order))
        return make_sum(factor_common(parts))

    def _kron_term(self, p: Product, rows: tuple[Index, ...], cols: tuple[Index, ...],
                   order: str) -> MatrixExpr:
        slot: dict[Index, str | None] = {}
        for axes in (rows, cols):
            if len(axes) == 2:  # "F": the first index varies fastest (the right factor)
                first, second = ("right", "left") if order == "F" else ("left", "right")
                slot[axes[0]], slot[axes[1]] = first, second
            elif axes:
                slot[axes[0]] = None  # a single axis may sit in either factor
        groups = _factor_groups(p)
        sides: dict[str, list[Expr]] = {"left": [], "right": []}
        scalars: list[Expr] = []
        pending: list[list[Expr]] = []
        for factors, labels in groups:
            wanted = {slot[lab] for lab in labels} - {None}
            if len(wanted) > 1:
                raise NotMatrixExpressible(
                    f"under flatten order {order!r} this term is not a Kronecker product: one "
                    f"factor group carries axes {sorted(labels)} of both Kronecker factors. Use "
                    "the index form or einderiv.flatten on the values.")
            if not labels:
                scalars.extend(factors)
            elif wanted:
                sides[wanted.pop()].extend(factors)
            else:
                pending.append(factors)
        for factors in pending:  # carries only single axes: either side gives the same
            sides["right"].extend(factors)
        result: dict[str, MatrixExpr] = {}
        for side in ("left", "right"):
            r = next((a for a in rows if slot[a] in (side, None) and
                      (slot[a] == side or _carries(sides[side], a))), None)
            c = next((a for a in cols if slot[a] in (side, None) and
                      (slot[a] == side or _carries(sides[side], a))), None)
            sub = Product(Fraction(1), tuple(sides[side]), tuple(x for x in (r, c) if x))
            result[side] = self.convert(sub, (r, c)) if (r or c) else Number(Fraction(1))
        scalar_parts = [self.convert(f, _SCALAR) for f in scalars]
        if const_number(result["left"]) == 1 or const_number(result["right"]) == 1:
            body = result["right"] if const_number(result["left"]) == 1 else result["left"]
        else:
            body = Kron(result["left"], result["right"], order)
        return mat_mul(p.coeff, scalar_parts + [body])


def _carries(factors: list[Expr], label: Index) -> bool:
    return any(label in factor_indices(f) for f in factors)


def _factor_groups(p: Product) -> list[tuple[list[Expr], set[Index]]]:
    """The factors of ``p`` grouped by shared labels (summed or free); each group with
    the free labels it carries."""
    parent = list(range(len(p.factors)))

    def find(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    first: dict[Index, int] = {}
    for k, f in enumerate(p.factors):
        for lab in factor_indices(f):
            if lab in first:
                parent[find(k)] = find(first[lab])
            else:
                first[lab] = k
    groups: dict[int, list[Expr]] = {}
    for k, f in enumerate(p.factors):
        groups.setdefault(find(k), []).append(f)
    out = set(p.out)
    return [(fs, {lab for f in fs for lab in factor_indices(f) if lab in out})
            for fs in groups.values()]


# ================================================================ piece helpers


def _vector_piece(label: Index, column: MatrixExpr) -> _Piece:
    def make(o: Orient) -> MatrixExpr:
        return column if o[0] == label else transpose(column)
    return _Piece((label, None), make)


def _matrix_piece(ends: tuple[Index, Index], natural: MatrixExpr) -> _Piece:
    def make(o: Orient) -> MatrixExpr:
        return natural if o == ends else transpose(natural)
    return _Piece(ends, make)


def _relabelled(pc: _Piece, old: tuple, new: tuple) -> Callable[[Orient], MatrixExpr]:
    """``pc.make`` for a piece whose end labels were renamed from ``old`` to ``new``."""
    def make(o: Orient) -> MatrixExpr:
        return pc.make(old if o == new else _flip(old))
    return make


def _vector_hadamard(vectors: list[_Piece]) -> _Piece:
    lab = vectors[0].ends[0]
    assert lab is not None
    return _vector_piece(lab, hadamard([v.column() for v in vectors]))


def _sum_all(m: MatrixExpr) -> MatrixExpr:
    if isinstance(m, Diag) and m.arg.kind == MATRIX:
        return Reduce("tr", m.arg)
    return Reduce("sum", m)


def _merge_free_hadamards(pieces: list[_Piece], out: set[Index]) -> list[_Piece]:
    """Matrix pieces on the same two labels, one of them free: one piece, ``A ⊙ B``."""
    result: list[_Piece] = []
    for pc in pieces:
        if not pc.is_vector and None not in pc.ends and set(pc.ends) & out:
            for k, q in enumerate(result):
                if not q.is_vector and None not in q.ends and set(q.ends) == set(pc.ends):
                    result[k] = _hadamard_piece(q, pc)
                    break
            else:
                result.append(pc)
        else:
            result.append(pc)
    return result


def _matrix_ends(pieces: list[_Piece], lab: Index) -> int:
    return sum(pc.ends.count(lab) for pc in pieces if not pc.is_vector)


def _series_parallel(pieces: list[_Piece], out: set[Index],
                     scalars: list[MatrixExpr]) -> list[_Piece]:
    """Reduce the matrix pieces as a series-parallel graph (labels are vertices,
    matrices edges): two matrices on the same two labels are one, ``A ⊙ B``
    (parallel); a summed label joining exactly two matrices is a product (series).
    Used where a summed label joins three or more matrices, as in the gradient of a
    layer, ``((W2^T R) ⊙ (1 - tanh(W1 X).^2)) X^T``."""
    pieces = list(pieces)
    while True:
        merged = _parallel_step(pieces, out) or _series_step(pieces, out, scalars)
        if not merged:
            return pieces


def _degree(pieces: list[_Piece], lab: Index) -> int:
    return sum(pc.ends.count(lab) for pc in pieces)


def _parallel_step(pieces: list[_Piece], out: set[Index]) -> bool:
    mats = [pc for pc in pieces if not pc.is_vector and None not in pc.ends
            and pc.ends[0] != pc.ends[1]]
    for k, a in enumerate(mats):
        for b in mats[k + 1:]:
            if set(a.ends) != set(b.ends):
                continue
            if all(lab not in out and _degree(pieces, lab) == 2 for lab in a.ends):
                continue  # an isolated pair: a trace, tr(A B^T)
            pieces[pieces.index(a)] = _hadamard_piece(a, b)
            pieces.remove(b)
            return True
    return False


def _series_step(pieces: list[_Piece], out: set[Index], scalars: list[MatrixExpr]) -> bool:
    for v in pieces:  # a vector on a label it shares with one matrix only: A x
        lab = v.ends[0]
        if not v.is_vector or lab in out or _degree(pieces, lab) != 2:
            continue
        found = [(b, j) for b in pieces if b is not v and not b.is_vector
                 and None not in b.ends and b.ends[0] != b.ends[1]
                 for j in (0, 1) if b.ends[j] == lab]
        if len(found) != 1:
            continue
        b, j = found[0]
        other = b.ends[1 - j]
        assert other is not None
        column = mat_mul(1, [b.make((other, lab)), v.column()])
        pieces[pieces.index(v)] = _vector_piece(other, column)
        pieces.remove(b)
        return True
    for a in pieces:
        if a.is_vector or None in a.ends:
            continue
        for k in (0, 1):
            lab = a.ends[k]
            if lab in out or _degree(pieces, lab) != 2 or a.ends[1 - k] == lab:
                continue
            found = [(b, j) for b in pieces if b is not a and not b.is_vector
                     and None not in b.ends for j in (0, 1) if b.ends[j] == lab]
            if len(found) != 1:
                continue
            b, j = found[0]
            chain = _chain_piece(a, k, b, j)
            pieces[pieces.index(a)] = chain
            pieces.remove(b)
            x = chain.ends[0]
            if x == chain.ends[1]:  # a loop: a trace, or a diagonal on a shared label
                pieces.remove(chain)
                if x not in out and _degree(pieces, x) == 0:
                    scalars.append(Reduce("tr", chain.make((x, "\0"))))
                else:
                    pieces.append(_vector_piece(x, Diag(chain.make((x, "\0")))))
            return True
    return False


def _chain_piece(a: _Piece, k: int, b: _Piece, j: int) -> _Piece:
    """Pieces ``a`` and ``b`` joined at a's end ``k`` and b's end ``j``: a product."""
    x, y = a.ends[1 - k], b.ends[1 - j]
    lab = a.ends[k]

    def build(first: Index | None) -> MatrixExpr:
        if first == x:  # a then b
            return mat_mul(1, [a.make((x, lab)), b.make((lab, y))])
        return mat_mul(1, [b.make((y, lab)), a.make((lab, x))])

    def make(o: Orient) -> MatrixExpr:
        if x == y:  # a loop (x, x): orientation by the marker in o[1]
            return build(x)
        first = o[0]
        direct = build(first)
        wrapped = transpose(build(y if first == x else x))
        return choose_form(direct, wrapped, row=False)

    return _Piece((x, y), make)


def _hadamard_piece(a: _Piece, b: _Piece) -> _Piece:
    def make(o: Orient) -> MatrixExpr:
        return hadamard([a.make(o), b.make(o)])
    return _Piece(a.ends, make)


# ================================================================== components


class _Component:
    """Pieces joined by summed labels: a path (a chain) or a cycle (a trace)."""

    def __init__(self, pieces: list[_Piece], out: set[Index]):
        self.pieces = pieces
        self.out = out
        self.terminals = [(pc, k) for pc in pieces for k in (0, 1)
                          if pc.ends[k] is None or pc.ends[k] in out]
        if self.terminals and len(self.terminals) != 2:  # pragma: no cover - by construction
            raise NotMatrixExpressible("a factor graph that is not a chain")
        self.labels = tuple(pc.ends[k] for pc, k in self.terminals if pc.ends[k] is not None)

    def walk(self, start: tuple[_Piece, int]) -> list[tuple[_Piece, Orient]]:
        pc, k = start
        steps: list[tuple[_Piece, Orient]] = []
        seen = 0
        while True:
            o = (pc.ends[k], pc.ends[1 - k])
            steps.append((pc, o))
            nxt = o[1]
            seen += 1
            if nxt is None or nxt in self.out or seen > len(self.pieces):
                return steps
            found = [(q, j) for q in self.pieces for j in (0, 1)
                     if q.ends[j] == nxt and not (q is pc and j == 1 - k)]
            if not found:  # pragma: no cover
                raise NotMatrixExpressible(f"index {nxt!r} joins nothing")
            pc, k = found[0]
            if seen >= len(self.pieces) and (pc, k) == (self.pieces[0], 0):
                return steps

    @staticmethod
    def chain(steps: list[tuple[_Piece, Orient]]) -> MatrixExpr:
        return mat_mul(1, [pc.make(o) for pc, o in steps])

    def scalar(self) -> MatrixExpr:
        if not self.terminals:
            return self.trace()
        a, b = (self.chain(self.walk(t)) for t in self.terminals)
        return min((a, b), key=reading_cost)

    def trace(self) -> MatrixExpr:
        options = []
        for start in self.pieces:
            for k in (0, 1):
                steps = self._cycle(start, k)
                options.append(Reduce("tr", self.chain(steps)))
        return min(options, key=reading_cost)

    def _cycle(self, start: _Piece, k: int) -> list[tuple[_Piece, Orient]]:
        steps = []
        pc, end = start, k
        for _ in range(len(self.pieces)):
            o = (pc.ends[end], pc.ends[1 - end])
            steps.append((pc, o))
            nxt = o[1]
            found = [(q, j) for q in self.pieces for j in (0, 1)
                     if q.ends[j] == nxt and not (q is pc and j == 1 - end)]
            pc, end = found[0]
        return steps

    def oriented(self, o: Orient) -> MatrixExpr:
        """The component with rows ``o[0]`` and columns ``o[1]``."""
        t0, t1 = self.terminals
        lab0, lab1 = t0[0].ends[t0[1]], t1[0].ends[t1[1]]
        if lab0 is not None and lab0 == lab1:  # both ends on one free label: a diagonal
            d = [Diag(self.chain(self.walk(t))) for t in self.terminals]
            best = min(d, key=reading_cost)
            return best if o[0] is not None else transpose(best)
        start, other = (t0, t1) if lab0 == o[0] else (t1, t0)
        direct = self.chain(self.walk(start))
        wrapped = transpose(self.chain(self.walk(other)))
        return choose_form(direct, wrapped, row=o[0] is None)


def _components(pieces: list[_Piece], out: set[Index]) -> list[_Component]:
    parent = list(range(len(pieces)))

    def find(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    first: dict[Index, int] = {}
    for k, pc in enumerate(pieces):
        for lab in pc.ends:
            if lab is None or lab in out:
                continue
            if lab in first:
                parent[find(k)] = find(first[lab])
            else:
                first[lab] = k
    groups: dict[int, list[_Piece]] = {}
    for k, pc in enumerate(pieces):
        groups.setdefault(find(k), []).append(pc)
    return [_Component(g, out) for g in groups.values()]
