"""Ones-markers: how a term of a sum that lacks some of the sum's indices is written.

A sum's terms may carry fewer indices than the sum (a term broadcasts along the
others). The simplifier writes such a term out with a ones-marker ``delta[i,i]``
along each missing index (:func:`explicit_broadcast`), so each expression has one
spelling; the printers take the markers off again (:func:`unbroadcast`), so the
text reads as the user wrote it.
"""

from __future__ import annotations

from fractions import Fraction

from .ir import Delta, Expr, Product, Sum, Tensor, factor_indices
from .scopes import outer_origins

__all__ = ["explicit_broadcast", "unbroadcast"]


def explicit_broadcast(t: Expr, s: Sum) -> Product:
    """Term ``t`` of sum ``s`` made explicit along the indices it broadcasts over."""
    missing = [i for i in s.out if i not in set(t.free)]
    hints = dict(s.hints)
    hints.update({k: v for k, v in outer_origins(s).items() if k not in hints})
    markers = tuple(Delta(i, i, hints.get(i)) for i in missing)
    return Product(Fraction(1), (t, *markers), s.out)


def unbroadcast(t: Expr, keep_scalars: bool = True) -> Expr:
    """Term ``t`` without its ones-markers ``delta[i,i]`` along free indices that no
    other factor carries (what a sum's broadcasting by name adds back, as the
    simplifier writes a term that carries some of the sum's indices)."""
    if not isinstance(t, Product):
        return t
    markers = [f for f in t.factors if isinstance(f, Delta) and f.i == f.j and f.i in t.out
               and sum(factor_indices(g).count(f.i) for g in t.factors) == 2]
    if not markers:
        return t
    gone = {f.i for f in markers}
    rest = tuple(f for f in t.factors if not any(f is m for m in markers))
    out = tuple(i for i in t.out if i not in gone)
    if not out and keep_scalars:  # parse keeps an index-free term bare; this one is
        return t  # written out (the text must read back to it): kept
    if t.coeff == 1 and len(rest) == 1 and isinstance(rest[0], (Tensor, Delta)) and \
            set(rest[0].free) == set(out) and len(factor_indices(rest[0])) == len(out):
        return rest[0]
    return Product(t.coeff, rest, out)
