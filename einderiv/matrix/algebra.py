"""Matrix-expression algebra for the index -> matrix conversion: constructors that
tidy as they build (``(A^T)^T = A``, ``(A^-1)^-1 = A``, products flattened with their
numbers folded into one coefficient and scalars in front, identities dropped), which
of two equal forms reads better, and sums with their common factors pulled out
(``A x + A^T x`` is ``(A + A^T) x``). It knows matrix expressions
(:mod:`einderiv.matrix`) only; :mod:`einderiv.matrix.from_index` reads index
expressions with it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from fractions import Fraction
from typing import Any

from ..core.ir import Index, SizeHint
from .nodes import (COLUMN, MATRIX, ROW, SCALAR, Add, Diag, Elementwise, Hadamard, Identity,
                    Inverse, MatMul, MatrixExpr, Number, Ones, Power, Reduce, Softmax, Symbol,
                    Transpose, Zero, children, const_number)

__all__ = ["Orient", "transpose", "inverse", "mat_mul", "hadamard", "plain_length",
           "reading_cost", "choose_form", "make_sum", "shaped_zero", "factor_common"]

Orient = tuple[Index | None, Index | None]  # (row label, column label)

# ===================================================================== constructors


def is_symmetric_matrix(m: MatrixExpr) -> bool:
    """Whether ``m`` is known symmetric: a symmetric variable, its inverse, a sum or
    a multiple of symmetric matrices (assumptions: :mod:`einderiv.core.structures`)."""
    if isinstance(m, Symbol):
        return m.symmetric
    if isinstance(m, Identity):
        return True
    if isinstance(m, Inverse):
        return is_symmetric_matrix(m.arg)
    if isinstance(m, Add):
        return m.kind == MATRIX and all(is_symmetric_matrix(t) for t in m.terms)
    if isinstance(m, MatMul) and m.kind == MATRIX:
        chain = [f for f in m.factors if f.kind != SCALAR]
        # a palindrome A B A^T with B symmetric (X^T X, X S X^T)
        n = len(chain)
        middle = chain[n // 2] if n % 2 else None
        return all(chain[n - 1 - k] == transpose(chain[k]) for k in range(n // 2)) and \
            (middle is None or is_symmetric_matrix(middle))
    return False


def transpose(m: MatrixExpr) -> MatrixExpr:
    if isinstance(m, Transpose):
        return m.arg
    if is_symmetric_matrix(m):  # S^T = S, S^-T = S^-1
        return m
    if m.kind == SCALAR or isinstance(m, Identity) or (isinstance(m, Diag) and m.kind == MATRIX):
        return m
    if isinstance(m, Zero):
        kind = {COLUMN: ROW, ROW: COLUMN}.get(m.shape_kind, m.shape_kind)
        return Zero(kind, m.cols, m.rows)
    if isinstance(m, Number):
        return m
    return Transpose(m)


def inverse(m: MatrixExpr) -> MatrixExpr:
    if isinstance(m, Transpose) and is_symmetric_matrix(m.arg):
        return Inverse(m.arg)
    if isinstance(m, Transpose):
        return Transpose(Inverse(m.arg))
    if isinstance(m, Inverse):
        return m.arg
    return Inverse(m)


def _is_simple_scalar(f: MatrixExpr) -> bool:
    return isinstance(f, (Symbol, Reduce, Elementwise)) or \
        (isinstance(f, Power) and isinstance(f.base, (Symbol, Reduce, Elementwise)))


def mat_mul(coeff: Fraction | int, factors: Iterable[MatrixExpr]) -> MatrixExpr:
    """``coeff`` times the product of ``factors``: nested products flattened, numbers
    folded, scalars moved to the front (simple ones first), identities dropped."""
    coeff = Fraction(coeff)
    simple: list[MatrixExpr] = []
    compound: list[MatrixExpr] = []
    chain: list[MatrixExpr] = []

    def add(f: MatrixExpr) -> None:
        nonlocal coeff
        value = const_number(f)
        if value is not None:
            coeff *= value
        elif isinstance(f, MatMul) and f.kind != SCALAR:
            coeff *= f.coeff
            for g in f.factors:
                add(g)
        elif isinstance(f, MatMul) and f.coeff != 1:
            coeff *= f.coeff
            add(MatMul(Fraction(1), f.factors) if len(f.factors) > 1 else f.factors[0])
        elif f.kind == SCALAR:
            (simple if _is_simple_scalar(f) else compound).append(f)
        else:
            chain.append(f)

    for f in factors:
        add(f)
    if len(chain) > 1:
        chain = [f for f in chain if not isinstance(f, Identity)] or chain[:1]
    items = tuple(simple + compound + chain)
    if coeff == 0:
        return Number(Fraction(0))
    if not items:
        return Number(coeff)
    if coeff == 1 and len(items) == 1:
        return items[0]
    return MatMul(coeff, items)


def hadamard(factors: list[MatrixExpr]) -> MatrixExpr:
    flat: list[MatrixExpr] = []
    for f in factors:
        flat.extend(f.factors if isinstance(f, Hadamard) else (f,))
    return flat[0] if len(flat) == 1 else Hadamard(tuple(flat))


def plain_length(m: MatrixExpr) -> int:
    """Characters of the ASCII form, spaces not counted."""
    return len(str(m).replace(" ", ""))


def reading_cost(m: MatrixExpr) -> tuple[int, int]:
    """How hard ``m`` is to read: its transposes, then its length (lower is better)."""
    return m.transposes, plain_length(m)


def choose_form(direct: MatrixExpr, wrapped: MatrixExpr, row: bool) -> MatrixExpr:
    """Between a chain with its transposes distributed and the transpose of the
    reversed chain: a row vector reads best as a transposed column (``(C x)^T``); a
    column or a matrix with its transposes distributed (``B^T A^T``,
    ``W1^T diag(...) W2^T r``) unless that costs two or more extra transposes."""
    if row:
        if isinstance(wrapped, Transpose) and isinstance(wrapped.arg, MatMul) and \
                any(is_symmetric_matrix(f) for f in wrapped.arg.factors):
            # (x - mu)^T S^-1, as statistics texts write it, not (S^-1 (x - mu))^T
            inner = wrapped.arg
            alt = mat_mul(inner.coeff, [transpose(f) for f in reversed(inner.factors)])
            if alt.transposes <= wrapped.transposes:
                return alt
        return wrapped if reading_cost(wrapped) < reading_cost(direct) else direct
    return wrapped if wrapped.transposes + 1 < direct.transposes else direct


def dims(m: MatrixExpr) -> tuple[SizeHint, SizeHint]:
    """Size hints of the rows and columns of ``m`` (None where unknown or 1)."""
    rule = _DIMS.get(type(m))
    return rule(m) if rule is not None else (None, None)


def _symbol_dims(m: Symbol) -> tuple[SizeHint, SizeHint]:
    return ((m.name, 0) if m.rank else None, (m.name, 1) if m.rank == 2 else None)


def _transpose_dims(m: Transpose) -> tuple[SizeHint, SizeHint]:
    r, c = dims(m.arg)
    return c, r


def _softmax_dims(m: Softmax) -> tuple[SizeHint, SizeHint]:
    if m.kind == m.arg.kind:
        return dims(m.arg)
    r, c = dims(m.arg)  # logsumexp: one axis is left
    return {COLUMN: (r, None), ROW: (None, c)}.get(m.kind, (None, None))


def _arg_dims(m: Inverse | Elementwise) -> tuple[SizeHint, SizeHint]:
    return dims(m.arg)


def _power_dims(m: Power) -> tuple[SizeHint, SizeHint]:
    return dims(m.base)


def _identity_dims(m: Identity) -> tuple[SizeHint, SizeHint]:
    return m.size, m.size


def _ones_dims(m: Ones) -> tuple[SizeHint, SizeHint]:
    return m.size, None


def _zero_dims(m: Zero) -> tuple[SizeHint, SizeHint]:
    return m.rows, m.cols


def _diag_dims(m: Diag) -> tuple[SizeHint, SizeHint]:
    r, c = dims(m.arg)
    return (r, None) if m.arg.kind == MATRIX else (r or c, r or c)


def _matmul_dims(m: MatMul) -> tuple[SizeHint, SizeHint]:
    chain = [f for f in m.factors if f.kind != SCALAR]
    if chain:
        return dims(chain[0])[0], dims(chain[-1])[1]
    return None, None


def _widest_dims(m: Add | Hadamard) -> tuple[SizeHint, SizeHint]:
    for t in (m.terms if isinstance(m, Add) else m.factors):
        if t.kind != SCALAR:
            return dims(t)
    return None, None


#: :func:`dims` by node type (the others: unknown).
_DIMS: dict[type[MatrixExpr], Callable[[Any], tuple[SizeHint, SizeHint]]] = {
    Symbol: _symbol_dims, Transpose: _transpose_dims, Softmax: _softmax_dims,
    Inverse: _arg_dims, Elementwise: _arg_dims, Power: _power_dims,
    Identity: _identity_dims, Ones: _ones_dims, Zero: _zero_dims, Diag: _diag_dims,
    MatMul: _matmul_dims, Add: _widest_dims, Hadamard: _widest_dims,
}


# ======================================================================= sums


def make_sum(terms: list[MatrixExpr]) -> MatrixExpr:
    flat: list[MatrixExpr] = []
    for t in terms:
        flat.extend(t.terms if isinstance(t, Add) else (t,))
    nonzero = [t for t in flat if not _is_zero(t)]
    if not nonzero:
        return flat[0]
    if nonzero and all(t.kind == SCALAR for t in nonzero):  # a zero may carry the shape
        nonzero += [t for t in flat if _is_zero(t) and t.kind != SCALAR][:1]
    flat = _collect_like(nonzero)
    if not flat:  # everything cancelled: a zero that keeps the shape (0 ones ones^T)
        coeff, scalars, chain = _split(nonzero[0])
        return MatMul(Fraction(0), tuple(chain) or (Number(Fraction(0)),))
    flat.sort(key=_term_order)
    if len(flat) == 1:
        return flat[0]
    common = _common_coefficient([_split(t)[0] for t in flat])
    if abs(common) != 1 and all(t.kind == MATRIX for t in flat):
        # a common coefficient of matrix terms outside: (S^-1 - S^-1 u u^T S^-1)/2, (A + A^T)/2
        inner = [mat_mul(_split(t)[0] / common, [*_split(t)[1], *_split(t)[2]]) for t in flat]
        return mat_mul(common, [Add(tuple(inner))])
    return Add(tuple(flat))


def _collect_like(terms: list[MatrixExpr]) -> list[MatrixExpr]:
    """Equal terms but for their coefficients added (``A + A^T`` is ``2 A`` once ``A``
    is known symmetric; ``1 + 1`` is ``2``); terms that cancel are dropped."""
    groups: dict[tuple, list] = {}
    for t in terms:
        coeff, scalars, chain = _split(t)
        key = (tuple(scalars), tuple(chain))
        if key in groups:
            groups[key][0] += coeff
            groups[key][2] = None  # rebuilt below
        else:
            groups[key] = [coeff, [*scalars, *chain], t]
    if len(groups) == len(terms):
        return terms
    return [t if t is not None else mat_mul(coeff, factors)
            for coeff, factors, t in groups.values() if coeff != 0]


def _is_zero(t: MatrixExpr) -> bool:
    return const_number(t) == 0 or isinstance(t, Zero) or (isinstance(t, MatMul) and t.coeff == 0)


def shaped_zero(o: Orient, rows: SizeHint, cols: SizeHint) -> MatrixExpr:
    """A zero vector or matrix written so that it keeps its shape: ``0 ones``."""
    factors: list[MatrixExpr] = []
    if o[0] is not None:
        factors.append(Ones(rows))
    if o[1] is not None:
        factors.append(Transpose(Ones(cols)))
    return MatMul(Fraction(0), tuple(factors))


def _term_order(t: MatrixExpr) -> tuple[int, int, int, str]:
    coeff, scalars, chain = _split(t)
    scaled = abs(coeff) != 1 or (bool(scalars) and bool(chain))
    return (int(coeff < 0), _outer_transposes(t), int(scaled),
            str(t) if t.kind != SCALAR else "")  # scalars keep their order


def _outer_transposes(m: MatrixExpr) -> int:
    """Transpose marks outside scalar subexpressions (``A + A^T``, not ``exp(x^T y)``)."""
    if m.kind == SCALAR:
        return 0
    own = int(isinstance(m, Transpose))
    return own + sum(_outer_transposes(c) for c in children(m))


def _split(t: MatrixExpr) -> tuple[Fraction, list[MatrixExpr], list[MatrixExpr]]:
    """A term as (coefficient, scalar factors, matrix chain)."""
    value = const_number(t)
    if value is not None:
        return value, [], []
    if isinstance(t, MatMul) and t.kind == SCALAR:  # x^T y: a scalar, not a chain
        unit = t.factors[0] if len(t.factors) == 1 else MatMul(Fraction(1), t.factors)
        return t.coeff, [unit], []
    if isinstance(t, MatMul):
        return (t.coeff, [f for f in t.factors if f.kind == SCALAR],
                [f for f in t.factors if f.kind != SCALAR])
    if t.kind == SCALAR:
        return Fraction(1), [t], []
    return Fraction(1), [], [t]


def factor_common(terms: list[MatrixExpr]) -> list[MatrixExpr]:
    """Pull a matrix factor common to several terms out of them, on the right or
    the left, where the cofactors are single matrices or the result is shorter."""
    for _ in range(8):
        for side in (-1, 0):
            pulled = _pull(terms, side)
            if pulled is not None:
                terms = pulled
                break
        else:
            return terms
    return terms


def _pull(terms: list[MatrixExpr], side: int) -> list[MatrixExpr] | None:
    """Pull one common factor (on the right: ``side=-1``, left: ``side=0``) out of
    several terms, or None. All terms ending in the factor are tried first, then
    those whose cofactors are single matrices (``2 M^-1 x + 2 M^-T x + ...``)."""
    parts = [_split(t) for t in terms]
    ends = Counter(chain[side] for _, _, chain in parts if chain)
    for factor, count in ends.most_common():
        if count < 2:
            break
        members = [k for k, (_, _, chain) in enumerate(parts) if chain and chain[side] == factor]
        short = [k for k in members if len(parts[k][2]) <= 2 and
                 all(_is_simple_scalar(x) for x in parts[k][1])]
        for group in (members, short):
            if len(group) < 2:
                continue
            new = _pulled(terms, parts, group, factor, side)
            if new is not None:
                rest = [t for k, t in enumerate(terms) if k not in group]
                return rest[:group[0]] + [new] + rest[group[0]:]
    return None


def _pulled(terms: list[MatrixExpr], parts: list, group: list[int], factor: MatrixExpr,
            side: int) -> MatrixExpr | None:
    """The terms ``group`` with ``factor`` pulled out, where that reads better."""
    cof = [(parts[k][0], parts[k][1], parts[k][2][:-1] if side == -1 else parts[k][2][1:])
           for k in group]
    common_coeff = _common_coefficient([c for c, _, _ in cof])
    common_scalars = _common_scalars([s for _, s, _ in cof])
    all_scalar = all(not chain for _, _, chain in cof)
    if not all_scalar and is_symmetric_matrix(factor) and any(not ch for _, _, ch in cof):
        return None  # S^-1 - S^-1 u u^T S^-1 reads better than (I - S^-1 u u^T) S^-1
    r, c = dims(factor)
    ident = Identity(r if side == -1 else c)
    cofactors = []
    for coeff, scalars, chain in cof:
        rest = list(scalars)
        for s in common_scalars:
            rest.remove(s)
        body = chain if chain or all_scalar else [ident]
        cofactors.append(mat_mul(coeff / common_coeff, rest + body))
    if len({x.kind for x in cofactors} - {SCALAR}) > 1:
        return None  # cofactors of different shapes cannot be added
    inner = make_sum(factor_common(cofactors))
    new = mat_mul(common_coeff, common_scalars +
                  ([inner, factor] if side == -1 else [factor, inner]))
    simple = all(len(_split(x)[2]) == 1 and not _split(x)[1] and abs(_split(x)[0]) == 1
                 for x in cofactors)
    old = make_sum([terms[k] for k in group])
    if new.kind != old.kind:  # pragma: no cover - guarded above
        return None
    if simple or all_scalar or plain_length(new) < plain_length(old):
        return new
    return None


def _common_coefficient(coeffs: list[Fraction]) -> Fraction:
    magnitudes = {abs(c) for c in coeffs}
    if len(magnitudes) != 1:
        return Fraction(1)
    (m,) = magnitudes
    return -m if all(c < 0 for c in coeffs) else m


def _common_scalars(lists: list[list[MatrixExpr]]) -> list[MatrixExpr]:
    common = Counter(lists[0])
    for scalars in lists[1:]:
        common &= Counter(scalars)
    result = []
    for s in lists[0]:
        if common[s] > 0:
            result.append(s)
            common[s] -= 1
    return result
