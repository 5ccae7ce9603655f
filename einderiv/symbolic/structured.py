"""The derivative by a structured variable (issue 17; docs/structured.md).

For a variable assumed symmetric or diagonal, :func:`einderiv.diff` returns the element
of the variable's space that gives the first-order change along the directions of
that space: with ``G`` the unconstrained gradient over the variable's two axes,
``sym(G) = (G + G^T)/2`` for a symmetric matrix and ``diag(diag(G))`` for a diagonal
one (the orthogonal projection of ``G`` onto the space). It does not depend on how
the function is read off the space (``S[i,j]`` or ``S[j,i]``), which is why the
simplifier may treat the two as one before the derivative is taken.
"""

from __future__ import annotations

from fractions import Fraction

from ..core.ir import Delta, Expr, Index, Product, Sum, rename
from ..core.structures import structure_of

__all__ = ["project"]


def project(d: Expr, name: str, new: tuple[Index, ...], kind: str) -> Expr:
    """The derivative ``d`` (its first free labels ``new``: the variable's two axes)
    projected onto the space of matrices of ``kind`` (unsimplified)."""
    p, q = new
    out = d.free
    if structure_of(kind).diagonal:  # G[p,p] delta[p,q]
        return Product(Fraction(1), (rename(d, {q: p}), Delta(p, q, (name, 0))), out)
    swapped = rename(d, {p: q, q: p})
    half = Fraction(1, 2)
    return Sum((Product(half, (d,), out), Product(half, (swapped,), out)), out)
