"""Size hints by scope: where the size of each index of an expression comes from.

Sizes are not part of an expression (:mod:`einderiv.core.ir`); where an index occurs
on no tensor (a delta, a broadcast, a zero) evaluation needs a *size hint*. Each
product is a scope of its own (what it sums is its own index), and the argument of
inv/det/logdet is closed; :func:`outer_origins` finds the hints scope by scope.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeGuard

from .named import Named
from .ir import (Delta, Det, Expr, Index, Inv, LogDet, Product, SizeHint, Sum, Tensor,
                 bound_indices, cached, children, factor_indices, fresh_names, open_scope,
                 remember, rename, with_children)

__all__ = ["outer_origins", "size_marker", "rebind"]


def outer_origins(e: Expr) -> dict[Index, SizeHint]:
    """For the labels visible at the top of ``e`` (and any in open scopes, never those
    inside an inv/det/logdet argument), a size hint: the first ``(tensor, axis)``
    carrying the label, else a delta's hint.
    Memoised on the (immutable) node; the caller gets its own copy."""
    found = cached(e, "outer_origins")
    if found is None:
        found = _outer_origins(e)
        remember(e, "outer_origins", found)
    return dict(found)


def _outer_origins(e: Expr) -> dict[Index, SizeHint]:
    # A product below e is a scope of its own: what it sums is another index that may
    # share a name with one of e (``sum[a](y[a])*delta[a,a]``), and so is a label inside
    # an inv/det/logdet argument (``logdet(M[g,a]) + x[a]``). Each product's origins are
    # found within it (its deltas tie its labels there) and only its free labels are
    # passed up. The products below are done innermost first, so each is memoised
    # before its parent reads it (no recursion along a deep expression).
    below = [n for n in _open_scope_products(e) if n is not e]
    for q in reversed(below):
        if cached(q, "outer_origins") is None:
            remember(q, "outer_origins", _scope_origins(q))
    return _scope_origins(e)


def _open_scope_products(e: Expr) -> Iterator[Product]:
    for n in open_scope(e):
        if isinstance(n, Product):
            yield n


def _free_deltas(e: Expr, free: frozenset[Index]) -> Iterator[Delta]:
    """The deltas in ``e`` (through products and sums, not function arguments) whose
    two labels are free all the way up (in ``free``): they tie sizes in the scope
    around ``e`` too (``-(-delta[d1,d2]) + q[i,d1]``: d2 has q's size)."""
    stack: list[tuple[Expr, frozenset[Index]]] = [(e, free)]
    while stack:
        n, here = stack.pop()
        if not here:  # nothing free all the way up: no delta below can tie it
            continue
        if isinstance(n, Delta):
            if n.i in here and n.j in here:
                yield n
        elif isinstance(n, Product):  # what it sums is its own: not free above
            inner = here & frozenset(n.out)
            stack.extend((f, inner) for f in n.factors)
        elif isinstance(n, Sum):
            stack.extend((t, here) for t in n.terms)


def _scope_origins(e: Expr) -> dict[Index, SizeHint]:
    """The origins of the labels of ``e``'s own scope, reading each product below it
    from its memo (see :func:`_outer_origins`)."""
    found: dict[Index, SizeHint] = {}
    deltas: list[Delta] = []
    stack: list[Expr] = [e]
    while stack:
        n = stack.pop()
        if isinstance(n, Tensor):
            for axis, idx in enumerate(n.indices):
                found.setdefault(idx, (n.name, axis))
            continue
        if isinstance(n, Product) and n is not e:
            inner = cached(n, "outer_origins")
            if inner is None:
                inner = _outer_origins(n)
            for idx in n.out:
                if inner.get(idx) is not None:
                    found.setdefault(idx, inner[idx])
            deltas.extend(_free_deltas(n, frozenset(n.out)))
            continue
        if isinstance(n, Sum):
            for idx, hint in n.hints:
                found.setdefault(idx, hint)
        elif isinstance(n, Inv):  # inv(M)[i,j]: i, j have the sizes of M's rows, columns
            inner = outer_origins(n.arg)
            for idx, axis_label in zip(n.indices, n.arg.free):
                if inner.get(axis_label) is not None:
                    found.setdefault(idx, inner[axis_label])
            continue
        elif isinstance(n, Delta):
            deltas.append(n)
        if not isinstance(n, (Det, LogDet)):
            stack.extend(reversed(children(n)))
    for n in deltas:  # tensors first, then a delta's own hint
        if n.size is not None:
            found.setdefault(n.i, n.size)
            found.setdefault(n.j, n.size)
    changed = True
    while changed:  # a delta is square: its indices share one size (chains: fixpoint)
        changed = False
        for n in deltas:
            if (n.i in found) != (n.j in found):
                found.setdefault(n.i, found.get(n.j))
                found.setdefault(n.j, found.get(n.i))
                changed = True
    return found


def size_marker(f: Expr, p: Product) -> TypeGuard[Delta]:
    """Whether factor ``f`` of product ``p`` is a size marker: a ``delta[i,i]`` with
    ``i`` summed by ``p`` and on no other factor (the size of ``i``), whose size hint
    is an axis of a variable, ``(x, k)``. It is printed ``size(x, k)``."""
    if not isinstance(f, Delta) or f.i != f.j or f.i in p.out:
        return False
    hint = f.size
    if not (isinstance(hint, tuple) and len(hint) == 2 and isinstance(hint[0], str)
            and isinstance(hint[1], int)):
        return False
    return sum(factor_indices(g).count(f.i) for g in p.factors) == 2


def rebind(e: Expr) -> Expr:
    """``e`` with every summed or closed-scope index renamed to a fresh internal name,
    so that no label of the text around a use can meet them. A use of a definition
    keeps its body: its labels are private already (:mod:`einderiv.core.named`)."""
    if isinstance(e, Named):
        return e
    if isinstance(e, Product):
        mapping = fresh_names(bound_indices(e))
        return with_children(e, [rebind(rename(f, mapping)) for f in e.factors])
    if isinstance(e, (Inv, Det, LogDet)):  # closed: both labels of the argument are its own
        return with_children(e, [rebind(rename(e.arg, fresh_names(e.arg.free)))])
    kids = children(e)
    return with_children(e, [rebind(c) for c in kids]) if kids else e
