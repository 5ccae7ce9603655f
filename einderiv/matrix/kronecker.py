"""A flattened three- or four-axis derivative as Kronecker products
(``to_matrix(wrt_rank=..., flatten="F" | "C")``; docs/matrix.md).

Each term's factors are grouped by the labels they share; a group goes to the left
or the right Kronecker factor by the axes it carries (under ``"F"`` the first of two
row or column axes varies fastest: the right factor), and each side converts as a
matrix through the converter's ``convert``.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

from ..core.ir import Expr, Index, Product, Sum, factor_indices
from ..errors import NotMatrixExpressible
from .algebra import Orient, factor_common, make_sum, mat_mul
from .factor_graph import linked_groups
from .nodes import MATRIX, Kron, MatrixExpr, Number, Zero, const_number

__all__ = ["kron"]

Convert = Callable[[Expr, Orient], MatrixExpr]


def kron(convert: Convert, e: Expr, rows: tuple[Index, ...], cols: tuple[Index, ...],
         order: str) -> MatrixExpr:
    """The flattened derivative ``flatten(e, len(rows), order)`` as Kronecker products;
    ``convert(expr, orientation)`` converts each side."""
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
        parts.append(_kron_term(convert, p, rows, cols, order))
    return make_sum(factor_common(parts))


def _kron_term(convert: Convert, p: Product, rows: tuple[Index, ...],
               cols: tuple[Index, ...], order: str) -> MatrixExpr:
    slot = _slots(rows, cols, order)
    sides, scalars = _sides(p, slot, order)
    result: dict[str, MatrixExpr] = {}
    for side in ("left", "right"):
        r = next((a for a in rows if slot[a] in (side, None) and
                  (slot[a] == side or _carries(sides[side], a))), None)
        c = next((a for a in cols if slot[a] in (side, None) and
                  (slot[a] == side or _carries(sides[side], a))), None)
        sub = Product(Fraction(1), tuple(sides[side]), tuple(x for x in (r, c) if x))
        result[side] = convert(sub, (r, c)) if (r or c) else Number(Fraction(1))
    scalar_parts = [convert(f, (None, None)) for f in scalars]
    if const_number(result["left"]) == 1 or const_number(result["right"]) == 1:
        body = result["right"] if const_number(result["left"]) == 1 else result["left"]
    else:
        body = Kron(result["left"], result["right"], order)
    return mat_mul(p.coeff, scalar_parts + [body])


def _slots(rows: tuple[Index, ...], cols: tuple[Index, ...], order: str
           ) -> dict[Index, str | None]:
    """Which Kronecker factor (``"left"``, ``"right"``) each axis belongs to; None
    for a single row or column axis, which may sit in either."""
    slot: dict[Index, str | None] = {}
    for axes in (rows, cols):
        if len(axes) == 2:  # "F": the first index varies fastest (the right factor)
            first, second = ("right", "left") if order == "F" else ("left", "right")
            slot[axes[0]], slot[axes[1]] = first, second
        elif axes:
            slot[axes[0]] = None  # a single axis may sit in either factor
    return slot


def _sides(p: Product, slot: dict[Index, str | None], order: str
           ) -> tuple[dict[str, list[Expr]], list[Expr]]:
    """The factors of ``p`` on each side of the Kronecker product, and its scalars."""
    sides: dict[str, list[Expr]] = {"left": [], "right": []}
    scalars: list[Expr] = []
    pending: list[list[Expr]] = []
    for factors, labels in _factor_groups(p):
        wanted = {side for lab in labels if (side := slot[lab]) is not None}
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
    return sides, scalars


def _carries(factors: list[Expr], label: Index) -> bool:
    return any(label in factor_indices(f) for f in factors)


def _factor_groups(p: Product) -> list[tuple[list[Expr], set[Index]]]:
    """The factors of ``p`` grouped by shared labels (summed or free); each group with
    the free labels it carries."""
    out = set(p.out)
    return [(fs, {lab for f in fs for lab in factor_indices(f) if lab in out})
            for fs in linked_groups(list(p.factors), factor_indices)]
