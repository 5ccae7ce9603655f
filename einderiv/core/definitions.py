"""Definitions: named intermediate results, as written and as the IR keeps them.

``Z[i,n] = W[j,i]*X[j,n]; A[i,n] = tanh(Z[i,n]); sum[o,n]((V[o,i]*A[i,n] - T[o,n])**2)``
(docs/language.md, "Definitions"; read by :mod:`einderiv.symbolic.definitions`).

Each use ``Z[a,b]`` is a :class:`~einderiv.core.named.Named` node: the one body of ``Z``
with its axes renamed to the use's, a product that any pass reads correctly, and that
the passes which know names read as a tensor ``Z`` (so a body is simplified and
differentiated once). The :class:`Program` that :func:`einderiv.parse` records on its
result (the declared field ``definitions`` of :class:`~einderiv.core.ir.Expr`) keeps the
text's definitions as written; printing in the names reads the nodes themselves
(:func:`used_definitions`, :func:`fold`), so a derivative's own definitions (the adjoints
of backpropagation, :mod:`einderiv.symbolic.backprop`) print as the text's do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import itertools

from .canonical import canonical_key
from .ir import (Delta, Expr, Index, Product, SizeHint, Tensor, children, rename,
                 with_children)
from .named import (Named, body_of, definitions_in, has_names, names_table, opaque, rewrite,
                    use, use_labels)
from .scopes import outer_origins

__all__ = ["Definition", "Program", "fold", "in_names", "names_text", "unwrapped",
           "used_definitions", "definition_of", "inline", "through_names", "Refolder",
           "materialize", "variable_hint"]


@dataclass(frozen=True)
class Definition:
    """``name[indices] = body``. ``written``: the body as the text has it, earlier
    definitions as tensors named by them, its free indices in the order of ``indices``;
    ``body``: the same as the IR keeps it (uses of earlier definitions as
    :class:`~einderiv.core.named.Named` nodes, its free labels private ones).

    >>> import einderiv
    >>> e = einderiv.parse("Z[i,n] = W[j,i]*X[j,n]; A[i,n] = tanh(Z[i,n]); A[i,n]*A[i,n]")
    >>> [(d.name, d.indices, str(d.written)) for d in e.definitions.definitions]
    [('Z', ('i', 'n'), 'W[a,i]*X[a,n]'), ('A', ('i', 'n'), 'tanh(Z[i,n])')]
    """

    name: str
    indices: tuple[Index, ...]
    written: Expr
    body: Expr

    def lhs(self) -> str:
        """``Z[i,n]``, or ``s`` for a scalar."""
        return f"{self.name}[{','.join(self.indices)}]" if self.indices else self.name


@dataclass(frozen=True)
class Program:
    """The definitions of a text, in order, and its expression as written (in the
    names; ``None`` on a derivative, which has no written form)."""

    definitions: tuple[Definition, ...]
    written: Expr | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.definitions)

    def get(self, name: str) -> Definition | None:
        """The definition of ``name``, or None."""
        return next((d for d in self.definitions if d.name == name), None)

    def without_written(self) -> Program:
        return Program(self.definitions, None)


# ============================================================================== in names


def unwrapped(e: Expr) -> Expr:
    """``e`` without a product that only orders its axes (``f -> [h,b]`` of an ``f``
    with free ``(b, h)``): the order is not part of what a definition names."""
    while isinstance(e, Product) and e.coeff == 1 and len(e.factors) == 1 \
            and set(e.out) == set(e.factors[0].free) and len(e.out) == len(e.factors[0].free):
        e = e.factors[0]
    return e


class Refolder:
    """Writes a subexpression equal to a definition's body (up to the names of its
    summed indices and the order of factors: canonical keys) as the name: a
    derivative rule that spells ``tanh'(Z)`` as ``1 - tanh(Z)**2`` gives
    ``1 - A**2`` where ``A = tanh(Z)``. Reads expressions with the names as tensors
    (:func:`~einderiv.core.named.opaque`); one dictionary look-up per node and order of
    its free labels."""

    def __init__(self, uses: list[Named]):
        self.table: dict[tuple, str] = {}
        for n in uses:
            body = opaque(body_of(n))
            bare = unwrapped(body)  # its axes in its own order (tanh(Z[b,a]) has (b, a))
            if not isinstance(bare, (Tensor, Delta)):
                self.table.setdefault(self._key(bare, body.free), n.name)  # the name's order

    @staticmethod
    def _key(x: Expr, order: tuple[Index, ...]) -> tuple:
        return (type(x).__name__, len(order),
                canonical_key(x, {i: f"@{k}" for k, i in enumerate(order)}))  # "#": summed

    def __call__(self, e: Expr) -> Expr:
        if not self.table:
            return e
        done: dict[int, tuple[Expr, Expr]] = {}

        def go(x: Expr) -> Expr:
            if isinstance(x, (Tensor, Delta)):
                return x
            found = done.get(id(x))
            if found is not None:
                return found[1]
            y = unwrapped(x)
            new: Expr | None = None
            if len(set(y.free)) == len(y.free) <= 3 and y.variables:
                new = next((Tensor(self.table[k], order) for order in
                            itertools.permutations(y.free)
                            if (k := self._key(y, order)) in self.table), None)
            if new is None:
                kids = children(x)
                new_kids = [go(k) for k in kids]
                new = x if all(a is b for a, b in zip(new_kids, kids)) else \
                    with_children(x, new_kids)
            done[id(x)] = (x, new)
            return new

        return go(e)


def definition_of(n: Named) -> Definition:
    """The definition a use stands for, written in the names of those it uses, its
    free indices those of its left-hand side."""
    body = body_of(n)
    return Definition(n.name, n.shown, rename(opaque(body), dict(zip(body.free, n.shown))),
                      body)


def fold(e: Expr, program: Program | None = None) -> Expr:
    """``e`` with each use of a definition written as its name (a tensor of that name:
    an expression to print, not to evaluate; ``program`` is not needed and ignored).

    >>> import einderiv
    >>> e = einderiv.parse("Z[i,n] = W[j,i]*X[j,n]; A[i,n] = tanh(Z[i,n]); A[i,n]*A[i,n]")
    >>> print(fold(einderiv.diff(e, "W")))
    2*A[d,a]*X[c,a]*(1 - A[d,a]**2) -> [c,d]
    """
    return opaque(e)


def used_definitions(e: Expr, program: Program | None = None) -> list[Definition]:
    """The definitions that ``e`` uses, with those they use, each after those it uses."""
    return [definition_of(n) for n in definitions_in(e)]


def in_names(e: Expr, render: Callable[[Expr], str], separator: str = "; ") -> str:
    """``e`` printed by ``render`` in the names of its definitions, after them
    (``Z[i,n] = ...; A[i,n] = tanh(Z[i,n]); 2*A[b,n]*...``): text that
    :func:`einderiv.parse` reads back to an expression of the same value."""
    lines = [f"{d.lhs()} = {render(d.written)}" for d in used_definitions(e)]
    return separator.join([*lines, render(opaque(e))])


def names_text(e: Expr) -> str:
    """``e`` in the names of its definitions, without them (``2*V[a,d]*(... A[b,e])``)."""
    return str(opaque(e))


# ============================================================================ writing out


def inline(e: Expr) -> Expr:
    """``e`` with every use written out: the body, its labels renamed to the use's (a
    repeated label takes the diagonal). Size hints that name a definition's axis name the
    variable axis it comes from. Equal bodies are written out once and shared where the
    labels agree."""
    if not has_names(e):
        return e
    bodies: dict[int, Expr] = {}
    names: dict[str, Expr] = {}

    def body(n: Named) -> Expr:
        b = body_of(n)
        found = bodies.get(id(b))
        if found is None:
            found = bodies[id(b)] = go(b)
            names[n.name] = found
        return found

    def hint(h: SizeHint) -> SizeHint:
        return variable_hint(h, names)

    def written_out(x: Expr) -> Expr | None:
        if not isinstance(x, Named):
            return None
        b = body(x)
        return rename(b, dict(zip(b.free, use_labels(x))))

    def go(x: Expr) -> Expr:
        return rewrite(x, written_out, hint)

    for n in definitions_in(e):  # bodies first, so that hints can name them
        body(n)
    return go(e)


def materialize(e: Expr, table: Mapping[str, Named]) -> Expr:
    """The inverse of :func:`~einderiv.core.named.opaque`: each tensor named in
    ``table`` (a use of each definition, by name) becomes a use of that definition with
    the tensor's labels; a size hint naming an axis of one names the variable axis it
    comes from (:func:`variable_hint`: the definition may be gone from the result)."""
    def replacement(x: Expr) -> Expr | None:
        if isinstance(x, Tensor):
            n = table.get(x.name)
            return x if n is None else use(n.name, body_of(n), x.indices, n.shown)
        return x if isinstance(x, Named) else None

    return rewrite(e, replacement, lambda h: variable_hint(h, table)) if table else e


def variable_hint(h: SizeHint, table: Mapping[str, Named | Expr]) -> SizeHint:
    """A size hint ``(name, axis)`` naming an axis of a definition in ``table`` (a use
    of it, or its body): the hint of that axis in its body (a variable's axis, a number,
    or None), through definitions of definitions; any other hint as it is."""
    seen: set[tuple] = set()
    while isinstance(h, tuple) and h and h[0] in table and h not in seen:
        seen.add(h)
        found = table[h[0]]
        body = body_of(found) if isinstance(found, Named) else found
        h = outer_origins(body).get(body.free[h[1]]) if h[1] < len(body.free) else None
    return h


def through_names(e: Expr, fn: Callable[[Expr], Expr]) -> Expr:
    """``fn`` applied to ``e`` with each use of a definition read as a tensor of its
    name (:func:`opaque`), the uses put back after; where names would be ambiguous,
    ``fn`` of ``e`` written out (:func:`inline`)."""
    table = names_table(e)
    if table is None:
        return fn(inline(e))
    return materialize(fn(opaque(e)), table)
