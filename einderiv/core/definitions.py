"""Definitions: named intermediate results, expanded for the engine, folded for printing.

``Z[i,n] = W[j,i]*X[j,n]; A[i,n] = tanh(Z[i,n]); sum[o,n]((V[o,i]*A[i,n] - T[o,n])**2)``
(docs/language.md, "Definitions"; read by :mod:`einderiv.symbolic.definitions`).

The IR has no node for a name: an expression with definitions *is* its expansion, every
use ``Z[a,b]`` replaced by the body with the definition's indices renamed to the use's
(:func:`expand`). Values, derivatives (the chain rule through a name is the chain rule
through its body), evaluation and code export are therefore the engine's own, and equal
to those of the text written out by hand. The :class:`Program` that :func:`einderiv.parse`
and :func:`einderiv.diff` record on their result (the declared field ``definitions`` of
:class:`~einderiv.core.ir.Expr`) keeps the names; :func:`fold` puts them back for
printing: a subexpression equal to a definition's body up to the names of its summed
indices (and the order of factors: canonical keys, :mod:`einderiv.core.canonical`) is
written as the name, and so is a group of factors of a product equal to a product body.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from fractions import Fraction

from .canonical import canonical_key
from .ir import (Delta, Expr, Index, Product, SizeHint, Sum, Tensor, children,
                 factor_indices, rename, with_children)
from .scopes import outer_origins

__all__ = ["Definition", "Program", "expand", "fold", "in_names", "names_text", "unwrapped",
           "used_definitions"]

#: A product with more factors than this is not searched for groups equal to a product body.
MAX_GROUP_SEARCH = 12


@dataclass(frozen=True)
class Definition:
    """``name[indices] = body``. ``written``: the body as the text has it, earlier
    definitions as tensors named by them, its free indices in the order of ``indices``;
    ``body``: the same with every name expanded (an expression of the variables only).

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


# ============================================================================ expanding


def instance(d: Definition, labels: tuple[Index, ...]) -> Expr:
    """The body of ``d`` at a use ``name[labels]``: its indices renamed to ``labels``
    (a label repeated at the use takes the diagonal and sums it, as a tensor's does)."""
    mapping = dict(zip(d.indices, labels))
    body = rename(d.body, mapping)
    if len(set(labels)) == len(labels):
        return body
    return Product(Fraction(1), (body,), Tensor(d.name, labels).free)


def expand(e: Expr, table: Mapping[str, Definition]) -> Expr:
    """``e`` with every tensor named in ``table`` replaced by that definition's body
    (:func:`instance`); the size hints that name a definition's axis name the variable
    axis it comes from. Equal subexpressions stay shared (one node), so the evaluation
    plan computes them once."""
    if not table:
        return e
    origins = {d.name: outer_origins(d.body) for d in table.values()}

    def hint(h: SizeHint) -> SizeHint:
        if isinstance(h, tuple) and h and h[0] in table:
            d = table[h[0]]
            return origins[d.name].get(d.indices[h[1]]) if h[1] < len(d.indices) else None
        return h

    done: dict[int, tuple[Expr, Expr]] = {}

    def go(x: Expr) -> Expr:
        found = done.get(id(x))
        if found is not None:
            return found[1]
        if isinstance(x, Tensor):
            d = table.get(x.name)
            new: Expr = instance(d, x.indices) if d is not None else x
        elif isinstance(x, Delta):
            new = replace(x, size=hint(x.size)) if x.size != hint(x.size) else x
        else:
            kids = children(x)
            new_kids = [go(k) for k in kids]
            new = x if all(a is b for a, b in zip(new_kids, kids)) else with_children(x, new_kids)
            if isinstance(new, Sum) and any(hint(h) != h for _, h in new.hints):
                new = Sum(new.terms, new.out, tuple((i, hint(h)) for i, h in new.hints))
        done[id(x)] = (x, new)  # x kept alive, so its id is not reused
        return new

    return go(e)


# ============================================================================== folding


def unwrapped(e: Expr) -> Expr:
    """``e`` without a product that only orders its axes (``f -> [h,b]`` of an ``f``
    with free ``(b, h)``): the order is not part of what a definition names."""
    while isinstance(e, Product) and e.coeff == 1 and len(e.factors) == 1 \
            and set(e.out) == set(e.factors[0].free) and len(e.out) == len(e.factors[0].free):
        e = e.factors[0]
    return e


def _tokens(labels: Iterable[Index]) -> dict[Index, str]:
    return {i: f"#{k}" for k, i in enumerate(labels)}


class _Folder:
    def __init__(self, program: Program):
        # The later definitions are the larger ones: tried first.
        self.defs = [d for d in reversed(program.definitions)
                     if not isinstance(d.body, Tensor)]
        self.bodies = {d.name: unwrapped(d.body) for d in self.defs}
        self.keys = {d.name: canonical_key(self.bodies[d.name], _tokens(d.indices))
                     for d in self.defs}
        self.done: dict[int, tuple[Expr, Expr]] = {}

    def match(self, x: Expr) -> Expr | None:
        """``name[labels]`` where ``x`` is a definition's body, else None."""
        if isinstance(x, (Tensor, Delta)) or not x.variables:
            return None
        x = unwrapped(x)
        free = x.free
        for d in self.defs:
            body = self.bodies[d.name]
            if len(free) != len(d.indices) or x.variables != body.variables \
                    or type(x) is not type(body):
                continue
            for order in itertools.permutations(free):
                if canonical_key(x, _tokens(order)) == self.keys[d.name]:
                    return Tensor(d.name, order)
        return None

    def group(self, p: Product) -> Product | None:
        """``p`` with a group of its factors that is a product body replaced by the name."""
        n = len(p.factors)
        if n > MAX_GROUP_SEARCH:
            return None
        for d in self.defs:
            body = d.body
            if not isinstance(body, Product) or not 1 <= len(body.factors) <= n \
                    or body.coeff == 0 or not body.variables <= p.variables:
                continue
            m = len(body.factors)
            for combo in itertools.combinations(range(n), m):
                inside = [p.factors[k] for k in combo]
                rest = [p.factors[k] for k in range(n) if k not in combo]
                seen_out = {i for f in rest for i in factor_indices(f)} | set(p.out)
                labels = [i for f in inside for i in factor_indices(f)]
                out = tuple(dict.fromkeys(i for i in labels if i in seen_out))
                if len(out) != len(d.indices):
                    continue
                candidate = Product(body.coeff, tuple(inside), out)
                named = self.match(candidate)
                if named is not None and isinstance(named, Tensor) and named.name == d.name:
                    return Product(p.coeff / body.coeff, (*rest, named), p.out)
        return None

    def fold(self, x: Expr) -> Expr:
        found = self.done.get(id(x))
        if found is not None:
            return found[1]
        named = self.match(x)
        if named is not None:
            new: Expr = named
        else:
            y = x
            while isinstance(y, Product):
                grouped = self.group(y)
                if grouped is None:
                    break
                y = grouped
            kids = children(y)
            new_kids = [self.fold(k) for k in kids]
            new = y if all(a is b for a, b in zip(new_kids, kids)) else with_children(y, new_kids)
        self.done[id(x)] = (x, new)
        return new


def fold(e: Expr, program: Program) -> Expr:
    """``e`` with each subexpression equal to a definition's body written as its name
    (a tensor of that name: an expression to print, not to evaluate).

    >>> import einderiv
    >>> e = einderiv.parse("Z[i,n] = W[j,i]*X[j,n]; A[i,n] = tanh(Z[i,n]); A[i,n]*A[i,n]")
    >>> print(fold(einderiv.diff(e, "W", expand=True), e.definitions))
    2*X[e,a]*A[f,a]*(1 - A[f,a]**2) -> [e,f]
    """
    return _Folder(program).fold(e)


def used_definitions(e: Expr, program: Program) -> list[Definition]:
    """The definitions that ``e`` (in the names) uses, with those they use, in order."""
    needed = set(e.variables) & set(program.names)
    for d in reversed(program.definitions):
        if d.name in needed:
            needed |= set(d.written.variables) & set(program.names)
    return [d for d in program.definitions if d.name in needed]


def in_names(e: Expr, program: Program, render: Callable[[Expr], str],
             separator: str = "; ") -> str:
    """``e`` printed by ``render`` in the names of ``program``, after the definitions it
    uses (``Z[i,n] = ...; A[i,n] = tanh(Z[i,n]); 2*A[b,n]*...``): text that
    :func:`einderiv.parse` reads back to ``e``."""
    folded = fold(e, program)
    lines = [f"{d.lhs()} = {render(d.written)}" for d in used_definitions(folded, program)]
    return separator.join([*lines, render(folded)])


def names_text(e: Expr) -> str:
    """``e`` in the names of its definitions, without them (``2*V[a,d]*(... A[b,e])``)."""
    program = e.definitions
    return str(fold(e, program) if isinstance(program, Program) else e)
