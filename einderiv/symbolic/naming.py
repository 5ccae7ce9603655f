"""Readable names: summed indices renamed to letters in order of appearance (notes
001_*, A.17), each scope with names used nowhere else in the expression.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from ..core.canonical import factor_order, indices_in_order, same_tuple
from ..core.ir import (Delta, Det, Expr, Func, Index, Inv, LogDet, Pow, Product, Sum, Tensor,
                       bound_indices, rename)
from ..core.scopes import outer_origins
from .terms import as_node, size_signature, term_order, with_order

__all__ = ["prettify"]

_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _pool(taken: set[Index]) -> Iterator[Index]:
    for n in itertools.count():
        for ch in _LETTERS:
            name = ch if n == 0 else f"{ch}{n}"
            if name not in taken:
                yield name


def prettify(e: Expr, taken: set[Index] | None = None) -> Expr:
    """Rename summed indices (and the internal indices of closed scopes) to readable
    letters in order of appearance. Each scope gets names used nowhere else in the
    expression, so sibling sums read ``b`` and ``c`` as in the notes (001_*, A.17).
    Axes are put in sorted order everywhere (only labels matter inside an expression;
    one order makes one canonical form); the argument of inv/det/logdet keeps rows
    before columns, and :func:`simplify` gives the root its axis order afterwards."""
    used = set(e.free) if taken is None else set(taken)
    # Never a variable's name (no 'b[b]'), nor one that size(x, k) names.
    used.update(e.variables)
    used.update(name for name, _ in size_signature(e))
    return _pretty(e, used)


def _pretty(e: Expr, used: set[Index]) -> Expr:
    """``used`` holds every name assigned so far; it grows as scopes are visited."""
    if isinstance(e, (Tensor, Delta)):
        return e
    if isinstance(e, Func):
        return Func(e.name, as_node(_pretty(e.arg, used)))
    if isinstance(e, Pow):
        return Pow(as_node(_pretty(e.base, used)), _pretty(e.exponent, used))
    if isinstance(e, (Inv, Det, LogDet)):
        arg = e.arg
        names = list(itertools.islice(_pool(used), 2))
        used.update(names)
        inner = _pretty(rename(arg, dict(zip(arg.free, names))), used)
        inner = with_order(inner, tuple(names), outer_origins(inner))
        return Inv(inner, e.indices) if isinstance(e, Inv) else type(e)(inner)
    if isinstance(e, Sum):
        used.update(e.out)
        out = tuple(sorted(e.out))
        # Order first (name-blind keys), then name: names follow the printed order.
        ordered = sorted((as_node(t) for t in e.terms), key=term_order)
        terms = [_pretty(t, used) for t in ordered]
        return Sum(tuple(terms), out, e.hints)
    if isinstance(e, Product):
        used.update(e.out)
        bound = bound_indices(e)
        in_order = factor_order(e, {})
        if not bound:  # no summed index to name
            return _pretty_unsummed(e, in_order, used)
        e = Product(e.coeff, in_order, e.out)
        order = [i for f in e.factors for i in indices_in_order(f, frozenset(bound))
                 if i in bound]
        order = list(dict.fromkeys(order)) + sorted(bound - set(order))
        pool = _pool(used)
        mapping = {b: next(pool) for b in order}
        used.update(mapping.values())
        factors = [rename(f, mapping) for f in e.factors]  # at once: a swap cannot collide
        out = tuple(sorted(e.out))
        return Product(e.coeff, tuple(_pretty(f, used) for f in factors), out)
    raise TypeError(e)  # pragma: no cover


def _pretty_unsummed(p: Product, ordered: tuple[Expr, ...], used: set[Index]) -> Product:
    """:func:`_pretty` of a product without summed indices, its factors ``ordered``:
    only the factors have names to choose (``p`` itself where nothing changes)."""
    factors = same_tuple(tuple(_pretty(f, used) for f in ordered), p.factors)
    out = tuple(sorted(p.out))
    if factors is p.factors and out == p.out:
        return p
    return Product(p.coeff, factors, out)
