"""The entry points: :func:`parse` and :func:`diff`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from fractions import Fraction
from typing import overload

from .core.ir import (DerivativeOf, Expr, Index, Product, Sum, Tensor,
                      cached, iter_tensors, remember, visible_indices)
from .core.definitions import inline, variable_hint
from .core.layouts import DENOMINATOR, check_layout, derivative_axes
from .core.named import body_of, definitions_in, has_names, opaque
from .core.scopes import outer_origins, rebind
from .core.shapes import check_shapes, normalize_shapes
from .core.structures import apply_assumptions, normalize_assume, structures_in
from .errors import EinderivError, IndexMismatchError, ParseError, did_you_mean, guard_recursion
from .symbolic import definitions, syntax
from .symbolic.backprop import backprop
from .symbolic.backprop import ranks as name_ranks
from .symbolic.diff import derivative
from .symbolic.simplify import multiplied_out
from .symbolic.simplify import simplify as _simplify
from .symbolic.structured import project
from .symbolic.syntax import parse_wrt

__all__ = ["parse", "diff", "jvp", "hvp", "with_axes"]



@guard_recursion
def parse(text: str, shapes: Mapping[str, object] | None = None, *,
          simplify: bool = True, assume: Mapping[str, str] | None = None,
          expand: bool = False) -> Expr:
    """Parse an index expression (docs/language.md) into an :class:`~einderiv.core.ir.Expr`.

    Repeated indices in a product are summed (Einstein rule); ``-> [i,j]`` fixes the
    free indices. ``shapes`` (name -> tuple of ints or size names) is checked for
    consistency. With ``simplify=True`` (default) deltas are contracted and like
    terms collected; ``simplify=False`` keeps the literal structure. ``assume`` (name
    -> ``"symmetric"`` or ``"diagonal"``) marks square-matrix variables as structured
    (docs/structured.md). A text with definitions (``Z[i] = ...; ...``) keeps each
    use of a name (printed in the names); ``expand=True`` writes every use out.

    >>> import einderiv
    >>> e = einderiv.parse("X[a,b]*theta[b] - Y[a]", shapes={"X": (4, 3)})
    >>> e.free
    ('a',)
    >>> str(e)
    'X[a,b]*theta[b] - Y[a]'
    """
    built, program = definitions.read(text)  # statements: docs/language.md, "Definitions"
    e = apply_assumptions(built, assume, normalize_shapes(shapes))
    check_shapes(e, normalize_shapes(shapes))
    if expand:
        e, program = inline(e), None
    return definitions.with_program(_simplify(e) if simplify else e, program)


def _readable_fresh(count: int, avoid: set[str]) -> tuple[Index, ...]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    names = [c for c in letters if c not in avoid]
    k = 1
    while len(names) < count:
        names.extend(f"{c}{k}" for c in letters if f"{c}{k}" not in avoid)
        k += 1
    return tuple(names[:count])


@overload
def diff(expr: Expr | str, wrt: str, shapes: Mapping[str, object] | None = None, *,
         layout: str = DENOMINATOR, assume: Mapping[str, str] | None = None,
         expand: bool = False) -> Expr: ...
@overload
def diff(expr: Expr | str, wrt: list[str] | tuple[str, ...],
         shapes: Mapping[str, object] | None = None, *,
         layout: str = DENOMINATOR, assume: Mapping[str, str] | None = None,
         expand: bool = False) -> tuple[Expr, ...]: ...


@guard_recursion
def diff(expr: Expr | str, wrt: str | list[str] | tuple[str, ...],
         shapes: Mapping[str, object] | None = None, *, layout: str = DENOMINATOR,
         assume: Mapping[str, str] | None = None,
         expand: bool = False) -> Expr | tuple[Expr, ...]:
    """The derivative of ``expr`` by the variable ``wrt``, in denominator layout.

    ``wrt`` is a name (``"theta"``: new indices are chosen) or a name with index
    labels for the new axes (``"theta[d]"``). The result's free indices are the new
    ones first, then those of ``expr``: a gradient has the variable's shape, and
    d(A x)/dx evaluates to A^T (notes 001_*, A.1 and A.4). By a variable assumed
    symmetric (``assume={"S": "symmetric"}``, or marked by :func:`parse`) the result is
    ``sym(G) = (G + G^T)/2`` of the unconstrained gradient ``G``; by a diagonal one,
    ``diag(diag(G))`` (docs/structured.md).

    >>> import einderiv
    >>> g = einderiv.diff("(X[a,b]*theta[b] - Y[a])*(X[a,c]*theta[c] - Y[a])/n", "theta")
    >>> print(g)
    2*X[a,d]*(X[a,b]*theta[b] - Y[a])/n
    >>> g.free
    ('d',)

    ``layout="numerator"`` puts ``expr``'s axes first, then the variable's: the same
    tensor with its axes permuted (docs/layout.md, "Choosing the layout"); an unknown
    name is a :class:`~einderiv.errors.LayoutError` listing the valid ones.

    >>> einderiv.diff("A[i,j]*x[j]", "x[k]", layout="numerator").free
    ('i', 'k')

    A list of variables gives a tuple of derivatives, in that order (the gradient of
    a loss by each parameter); ``compile`` of that tuple computes them in one plan,
    sharing the work they have in common (:func:`einderiv.compile_expr`).

    >>> gW, gb = einderiv.diff("(W[i,j]*x[j] + b[i] - y[i])*(W[i,k]*x[k] + b[i] - y[i])",
    ...                        ["W", "b"])
    >>> print(gW)
    2*x[f]*(W[e,a]*x[a] + b[e] - y[e])

    Through definitions (``Z[i] = ...; ...``, docs/language.md) the result prints in
    their names; ``wrt`` may be one of them; ``expand=True`` leaves the names out.
    """
    layout = check_layout(layout)
    shape_map = normalize_shapes(shapes)
    if not isinstance(wrt, str) and not (isinstance(wrt, (list, tuple)) and wrt and
                                         all(isinstance(w, str) for w in wrt)):
        raise ParseError(f"wrt must be a variable name or a non-empty list of names, got "
                         f"{type(wrt).__name__} {wrt!r:.80}")
    e, ranks = parse_with_ranks(expr, shape_map, assume)

    def one(w: str) -> Expr:
        result = differentiate(e, w, shape_map, ranks=ranks, layout=layout, assume=assume)[1]
        if expand:
            return _written_out(result)
        return result if e.definitions is None else \
            definitions.with_program(result, e.definitions.without_written())

    return one(wrt) if isinstance(wrt, str) else tuple(one(w) for w in wrt)


def _written_out(result: Expr) -> Expr:
    """A derivative with every use of a definition written out, simplified again."""
    if not has_names(result):
        return result
    out = _simplify(inline(result), result.free)
    simplified = cached(out, "simplified")
    out = dataclasses.replace(out)
    object.__setattr__(out, "derivative_of", result.derivative_of)
    remember(out, "simplified", simplified)
    return out


def parse_with_ranks(expr: Expr | str, shape_map: Mapping[str, tuple],
                     assume: Mapping[str, str] | None = None) -> tuple[Expr, dict[str, int]]:
    """``expr`` parsed and simplified, and the rank of each variable its text uses --
    also of one that simplifying removed (``s + -s``): its derivative is a zero of
    the right shape, not an error. ``assume`` marks structured variables."""
    if not isinstance(expr, str):
        if assume and isinstance(expr, Expr):
            return definitions.with_program(
                _simplify(apply_assumptions(expr, assume, shape_map)), expr.definitions), {}
        return expr, {}
    written = parse(expr, shape_map, simplify=False, assume=assume)
    return (definitions.with_program(_simplify(written), written.definitions),
            name_ranks(written))


def differentiate(e: Expr, wrt: str, shape_map: Mapping[str, tuple],
                  log: list[str] | None = None,
                  ranks: Mapping[str, int] | None = None,
                  layout: str = DENOMINATOR,
                  assume: Mapping[str, str] | None = None) -> tuple[Expr, Expr]:
    """The raw derivative (the rules applied, nothing simplified, the variable's axes
    first) and the result :func:`diff` returns, its free indices in ``layout``.
    ``log`` receives the names of the rules applied; ``ranks`` gives the ranks of
    variables the text used (see :func:`parse_with_ranks`). By a structured variable
    (in ``assume`` or marked in ``e``) the raw derivative is projected onto its space
    (:mod:`einderiv.symbolic.structured`)."""
    layout = check_layout(layout)
    if not isinstance(e, Expr):
        raise EinderivError(f"expected an expression or its text, got {type(e).__name__}")
    if shape_map:
        check_shapes(e, shape_map)
    name, given = parse_wrt(wrt)
    # Through definitions: backpropagation on the names, each body once (symbolic.backprop)
    named = has_names(e)
    top = opaque(e) if named else e  # the text around the bodies
    ranks = {**(ranks or {}), **name_ranks(e)}
    if name in ranks:
        rank = ranks[name]
    elif name in shape_map:
        rank = len(shape_map[name])
    elif given is not None:
        rank = len(given)
    else:
        hint = did_you_mean(name, ranks)
        raise IndexMismatchError(
            f"{name!r} does not occur in the expression" + (f"; {hint} (" if hint else ", so ")
            + f"its rank is unknown; write it with indices ({name}[i] for a vector) or give "
            f"its shape" + (")" if hint else ""))
    if given is not None and len(given) != rank:
        raise IndexMismatchError(
            f"{name!r} has {rank} ax{'is' if rank == 1 else 'es'} but {wrt!r} names {len(given)}")
    if given is not None:
        clash = set(given) & set(e.free)
        if clash:
            raise IndexMismatchError(
                f"index {sorted(clash)[0]!r} in {wrt!r} is already a free index of the "
                f"expression {e.free}; choose another name")
        new = given
    else:
        avoid = visible_indices(top) | set(ranks)
        new = _readable_fresh(rank, avoid)
    origins = outer_origins(top)
    origins.update({n: (name, axis) for axis, n in enumerate(new)})
    # an axis of a definition is the variable axis it comes from (also where the
    # definition is gone from e: sum[b](A[b])*0 + s by A)
    table: dict[str, Expr] = {d.name: d.body for d in getattr(e.definitions, "definitions", ())}
    if named:
        table.update((n.name, body_of(n)) for n in definitions_in(e))
    if table:
        origins = {i: variable_hint(h, table) for i, h in origins.items()}
    raw = backprop(e, name, new, log) if named else derivative(rebind(e), name, new, log)
    kind = normalize_assume(assume).get(name) or structures_in(e).get(name)
    if kind is not None:
        if rank != 2:
            raise EinderivError(f"{name!r} is assumed {kind}, which needs a square matrix, "
                                f"but it has {rank} ax{'is' if rank == 1 else 'es'}")
        raw = project(raw, name, new, kind)
        if log is not None:
            log.append(f"projected onto {kind} matrices")
    # The layouts differ only in the order of the free indices (an axis permutation).
    result = _simplify(raw, derivative_axes(new, e.free, layout))
    if isinstance(result, Sum):
        hints = {i: variable_hint(h, table) for i, h in result.hints}
        for i in result.out:
            if hints.get(i) is None and i in origins:
                hints[i] = origins[i]
        result = Sum(result.terms, result.out, tuple(hints.items()))
    # Which axes belong to the variable (a declared field, not part of equality): the
    # structure report reads it when the variable no longer occurs in the derivative.
    # Written on a fresh copy, never on a node the caller or a cache may hold.
    simplified = cached(result, "simplified")
    result = dataclasses.replace(result)
    object.__setattr__(result, "derivative_of", DerivativeOf(name, new, layout))
    remember(result, "simplified", simplified)
    return raw, result


@guard_recursion
def jvp(expr: Expr | str, wrt: str, vector: str = "v",
        shapes: Mapping[str, object] | None = None, *, layout: str = DENOMINATOR,
        assume: Mapping[str, str] | None = None) -> Expr:
    """The derivative of ``expr`` by ``wrt`` applied to a direction ``vector`` (a new
    variable with ``wrt``'s shape): ``sum_p d expr / d wrt[p] * vector[p]``, built
    and simplified symbolically, so the full Jacobian is never formed. Free indices:
    those of ``expr``, so both layouts give the same result (``layout`` is checked).
    A structured ``wrt`` (``assume``) makes ``vector`` structured too.

    >>> import numpy as np, einderiv
    >>> j = einderiv.jvp("tanh(W[i,j]*x[j])", "x", "v")
    >>> print(j)
    W[i,a]*v[a]*(1 - tanh(W[i,b]*x[b])**2) -> [i]
    """
    check_layout(layout)
    shape_map = normalize_shapes(shapes)
    e, ranks = parse_with_ranks(expr, shape_map, assume)
    name, given = parse_wrt(wrt)
    if not isinstance(vector, str) or not vector.isidentifier() or vector in syntax.RESERVED:
        raise ParseError(f"vector must be a variable name, got {vector!r}")
    if vector in e.variables or vector == name:
        raise IndexMismatchError(
            f"the direction {vector!r} is already a variable of the expression; choose another name")
    d = differentiate(e, wrt, shape_map, ranks=ranks, assume=assume)[1]
    axes = d.free[: len(d.free) - len(e.free)]
    kind = normalize_assume(assume).get(name) or structures_in(e).get(name)
    product = Product(Fraction(1), (d, Tensor(vector, axes, kind)), e.free)
    result = _simplify(product, e.free)
    # along a symmetric direction the halves of sym(G) become like terms once multiplied out
    return result if kind is None else multiplied_out(result, e.free)


@guard_recursion
def hvp(expr: Expr | str, wrt: str, vector: str = "v",
        shapes: Mapping[str, object] | None = None, *, layout: str = DENOMINATOR,
        assume: Mapping[str, str] | None = None) -> Expr:
    """The second derivative of ``expr`` by ``wrt`` applied to ``vector``:
    ``sum_q d2 expr / d wrt[p] d wrt[q] * vector[q]``, without forming the Hessian.
    Free indices: ``wrt``'s axes, then those of ``expr`` (``layout="numerator"``:
    those of ``expr`` first).

    >>> import numpy as np, einderiv
    >>> h = einderiv.hvp("x[i]*A[i,j]*x[j]", "x")
    >>> A, x, v = np.arange(9.0).reshape(3, 3), np.ones(3), np.array([1.0, 0.0, 2.0])
    >>> bool(np.allclose(h.evaluate(A=A, x=x, v=v), (A + A.T) @ v))
    True
    """
    shape_map = normalize_shapes(shapes)
    e, ranks = parse_with_ranks(expr, shape_map, assume)
    first = differentiate(e, wrt, shape_map, ranks=ranks, layout=check_layout(layout),
                          assume=assume)[1]
    # The first derivative may no longer contain the variable (a linear function):
    # name its axes explicitly so the second knows its rank (and its structure).
    name, _ = parse_wrt(wrt)
    kinds = {**structures_in(e), **normalize_assume(assume)}
    return jvp(first, with_axes(first, name, len(first.free) - len(e.free)), vector, shape_map,
               assume=kinds)


def with_axes(e: Expr, name: str, rank: int) -> str:
    """``"name[i,j]"`` with ``rank`` index names new to ``e``: a ``wrt`` that fixes the
    variable's rank even where ``e`` no longer contains it."""
    if rank == 0:
        return f"{name}[]"  # a scalar, said explicitly
    avoid = visible_indices(e) | {t.name for t in iter_tensors(e)}
    return f"{name}[{','.join(_readable_fresh(rank, avoid))}]"
