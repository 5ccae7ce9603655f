"""Inspecting a derivative tensor: where it is zero, what repeats, what it compresses to.

A derivative ``T = d f / d W`` in denominator layout has ``W``'s axes first, then
``f``'s (notes 001_*, A.1; 003_*, Concept 20). Such tensors are mostly zeros and
repeats (003_*, X.18 and Concept 27): ``dZ/dW`` for ``Z = W^T A`` is zero off the
diagonal ``q == i`` and repeats ``A`` on it, so it compresses to ``A`` (X.20,
Notation 28); the activation Jacobian ``d tanh(z)/dz`` is diagonal and compresses
to the vector ``1 - tanh(z)**2``, which a chain rule applies by element-wise
multiplication (X.22-X.23).

:func:`structure` reads that off the simplified index expression, never from
numbers: a Kronecker delta whose two labels are both free says "nonzero only where
p == i"; a free label that no factor carries (only deltas or broadcast markers) is an
axis the tensor is constant along. The compressed form merges the labels of each
delta (renames one to the other, drops the delta) and removes the broadcast axes;
:meth:`StructureReport.expand` rebuilds the dense tensor from its values.

This module holds the analysis; the report's text, Markdown and HTML renderings
and the flattened-matrix views are in :mod:`einderiv.tools.render`, axis sizes
in :mod:`einderiv.tools.sizes`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
import opt_einsum as oe

from ..core.ir import (Delta, Expr, Index, Product, SizeHint, Sum, Tensor, factor_indices,
                       iter_tensors, rename)
from ..core.layouts import DENOMINATOR, check_layout
from ..core.scopes import outer_origins
from ..core.shapes import normalize_shapes
from ..errors import EinderivError, IndexMismatchError
from ..symbolic.simplify import simplify
from ..symbolic.syntax import parse_wrt
from . import render
from .sizes import Size, first_size, size_product

__all__ = ["structure", "StructureReport"]


# ============================================================================ terms


@dataclass(frozen=True)
class _Term:
    """One einsum term split into its structural part (free deltas, broadcast
    markers) and the rest."""

    coeff: Fraction
    rest: tuple[Expr, ...]        # factors that carry values
    out: tuple[Index, ...]        # the term's free labels
    pairs: tuple[tuple[Index, Index], ...]  # delta[p,i] with p != i, both free
    carried: frozenset[Index]     # free labels some value-carrying factor has


def _split_term(t: Expr) -> _Term:
    coeff, factors, out = ((t.coeff, t.factors, t.out) if isinstance(t, Product)
                           else (Fraction(1), (t,), t.free))
    free = set(out)
    rest: list[Expr] = []
    pairs: list[tuple[Index, Index]] = []
    for f in factors:
        if isinstance(f, Delta) and f.i in free and f.j in free:
            if f.i != f.j:
                pairs.append((f.i, f.j))
            continue  # delta[i,i] with i free: ones along i (a broadcast marker)
        rest.append(f)
    carried = frozenset(i for f in rest for i in factor_indices(f)) & free
    return _Term(coeff, tuple(rest), tuple(out), tuple(pairs), carried)


def _terms(e: Expr) -> list[_Term]:
    return [_split_term(t) for t in e.terms] if isinstance(e, Sum) else [_split_term(e)]


def _groups(pairs: tuple[tuple[Index, Index], ...], order: tuple[Index, ...]
            ) -> tuple[tuple[Index, ...], ...]:
    """Labels tied together by deltas (union-find), each group in axis order."""
    parent: dict[Index, Index] = {}

    def root(i: Index) -> Index:
        while parent.setdefault(i, i) != i:
            i = parent[i]
        return i

    for i, j in pairs:
        parent[root(i)] = root(j)
    members: dict[Index, list[Index]] = {}
    for i in order:
        if i in parent:
            members.setdefault(root(i), []).append(i)
    return tuple(sorted((tuple(g) for g in members.values()), key=lambda g: order.index(g[0])))


def _representatives(groups: tuple[tuple[Index, ...], ...]) -> dict[Index, Index]:
    """Each delta-tied label -> the label it merges into: the group's last axis (a
    function axis where the group has one, so ``1 - tanh(z[i])**2`` keeps ``i``)."""
    return {i: g[-1] for g in groups for i in g}


def _compress_term(t: _Term, rep: Mapping[Index, Index], order: list[Index]) -> Expr:
    mapping = {i: r for i, r in rep.items() if i != r}
    factors = tuple(rename(f, mapping) for f in t.rest)
    kept = {rep.get(i, i) for i in t.carried}
    return Product(t.coeff, factors, tuple(i for i in order if i in kept))


# ========================================================================= layout


def _variable_axes(e: Expr, wrt: str | None, shapes: Mapping[str, tuple[Size, ...]],
                   var_axes: int | None, layout: str
                   ) -> tuple[str | None, tuple[Index, ...] | None]:
    """The variable's name and the labels of its axes (the leading free labels in
    denominator layout, the trailing ones in numerator layout)."""
    def placed(k: int) -> tuple[Index, ...]:
        return e.free[:k] if layout == DENOMINATOR else e.free[len(e.free) - k:]

    where = "first (denominator layout)" if layout == DENOMINATOR else "last (numerator layout)"
    if var_axes is not None:
        if isinstance(var_axes, bool) or not isinstance(var_axes, int) \
                or not 0 <= var_axes <= len(e.free):
            raise EinderivError(f"var_axes must be an integer from 0 to {len(e.free)}, "
                                f"got {var_axes!r}")
        name = parse_wrt(wrt)[0] if wrt is not None else None
        return name, placed(var_axes)
    if wrt is None:
        recorded = e.derivative_of  # diff() knows the variable
        if recorded is None or recorded.layout != layout or not recorded.fits(e.free):
            return None, None
        return recorded.variable, recorded.axes
    name, given = parse_wrt(wrt)
    if given is not None:
        if placed(len(given)) != given:
            raise IndexMismatchError(
                f"{wrt!r} names the axes {given}, but the derivative's axes are {e.free}; "
                f"the variable's axes come {where}")
        return name, given
    rank = _rank(e, name, shapes)
    if rank > len(e.free):
        raise IndexMismatchError(
            f"{name!r} has {rank} axes but the derivative has only {len(e.free)}: "
            f"is it the derivative by {name!r}?")
    return name, placed(rank)


def _rank(e: Expr, name: str, shapes: Mapping[str, tuple[Size, ...]]) -> int:
    if name in shapes:
        return len(shapes[name])
    recorded = e.derivative_of  # set by diff(): the variable, its axes, the layout
    if recorded is not None and recorded.variable == name:
        return len(recorded.axes)
    for t in iter_tensors(e):
        if t.name == name:
            return len(t.indices)
    if isinstance(e, Sum):  # diff() records (variable, axis) for its new labels
        hints = dict(e.hints)
        k = 0
        while k < len(e.free) and hints.get(e.free[k]) == (name, k):
            k += 1
        if k:
            return k
        n = len(e.free)  # numerator layout: the variable's labels trail
        while k < n and all(hints.get(e.free[n - k - 1 + a]) == (name, a) for a in range(k + 1)):
            k += 1
        if k:
            return k
    raise EinderivError(
        f"the rank of {name!r} cannot be read off the derivative (it no longer occurs "
        f"in it): pass shapes={{{name!r}: (...)}}, or wrt='{name}[p,q,...]' with the "
        f"derivative's leading index labels, or var_axes=k")


def _origins(e: Expr, groups: tuple[tuple[Index, ...], ...], name: str | None,
             var: tuple[Index, ...] | None) -> dict[Index, tuple[SizeHint, ...]]:
    """Where each free label's size may come from, best first: a tensor axis carrying
    it, a size hint, the variable's axis, a delta-tied label's sources."""
    found = outer_origins(e)
    if isinstance(e, Sum):
        found.update({i: h for i, h in e.hints if h is not None and i not in found})
    sources: dict[Index, list[SizeHint]] = {i: [found[i]] if found.get(i) else [] for i in e.free}
    if name is not None and var:
        for axis, i in enumerate(var):
            sources[i].append((name, axis))
    for g in groups:
        tied = [h for i in g for h in sources[i]]
        for i in g:
            sources[i] += [h for h in tied if h not in sources[i]]
    return {i: tuple(h) for i, h in sources.items()}


# ========================================================================= report


@dataclass
class StructureReport:
    """What :func:`structure` found; ``str()`` is a plain-text report, and Jupyter
    shows it as Markdown or HTML. Fields:

    * ``expr`` the derivative ``T``; ``shape`` its sizes (ints or names);
      ``variable``/``function`` the names; ``var_axes``/``fun_axes`` their labels.
    * ``deltas``: groups of labels tied by Kronecker deltas: ``T`` is nonzero only
      where they are equal. ``constant_axes``: labels ``T`` does not depend on;
      ``constant_diagonals``: delta groups along whose diagonal ``T`` repeats.
    * ``nonzeros`` (structural, i.e. not forced to zero by a delta) of ``dense_size``.
    * ``compressed``: the smallest expression that, with the deltas and broadcasts,
      rebuilds ``T`` (:meth:`expand`); ``chain``: ``dL/dW`` from ``G = dL/df``.
    """

    expr: Expr
    variable: str | None
    function: str
    var_axes: tuple[Index, ...] | None
    fun_axes: tuple[Index, ...] | None
    sizes: dict[Index, Size]
    deltas: tuple[tuple[Index, ...], ...]
    constant_axes: tuple[Index, ...]
    constant_diagonals: tuple[tuple[Index, ...], ...]
    compressed: Expr
    common: bool
    nonzeros: Size | None
    dense_size: Size
    chain: Expr | None
    upstream: str
    term_deltas: tuple[tuple[tuple[Index, ...], ...], ...]
    _origins: dict[Index, tuple[SizeHint, ...]] = field(repr=False)
    _shapes: dict[str, tuple[Size, ...]] = field(repr=False)
    layout: str = DENOMINATOR

    @property
    def row_axes(self) -> tuple[Index, ...] | None:
        """The axes that :meth:`flatten_view` makes rows: the variable's in
        denominator layout, the function's in numerator layout (the leading ones)."""
        return self.var_axes if self.layout == DENOMINATOR else self.fun_axes

    @property
    def col_axes(self) -> tuple[Index, ...] | None:
        """The axes that become columns (the trailing ones)."""
        return self.fun_axes if self.layout == DENOMINATOR else self.var_axes

    # ---------------------------------------------------------------- numbers
    @property
    def shape(self) -> tuple[Size, ...]:
        return tuple(self.sizes[i] for i in self.expr.free)

    def _int_sizes(self, arrays: Mapping[str, Any], values: np.ndarray | None = None
                   ) -> dict[Index, int]:
        known: dict[Index, int] = {}
        for i in self.expr.free:
            s = first_size(self._origins.get(i, ()), self._shapes, arrays)
            if isinstance(s, int):
                known[i] = s
        if values is not None:
            for i, n in zip(self.compressed.free, np.shape(values)):
                known.setdefault(i, int(n))
        for g in self.deltas:
            n = next((known[i] for i in g if i in known), None)
            if n is not None:
                for i in g:
                    known.setdefault(i, n)
        missing = [i for i in self.expr.free if i not in known]
        if missing:
            raise EinderivError(
                f"the size of ax{'es' if len(missing) > 1 else 'is'} {', '.join(missing)} is "
                f"unknown: give integer shapes to structure() or the arrays to expand()")
        return known

    def expand(self, values: Any, **arrays: Any) -> np.ndarray:
        """The dense tensor (axes ``expr.free``) rebuilt from the values of
        :attr:`compressed` (axes ``compressed.free``): each delta puts them on its
        diagonal, each constant axis repeats them. Sizes come from the integer
        shapes given to :func:`structure`, else from ``arrays``.

        >>> import numpy as np, einderiv
        >>> d = einderiv.diff("tanh(z[i])", "z")
        >>> s = d.structure("z")
        >>> z = np.array([0.5, -1.0, 2.0])
        >>> bool(np.allclose(s.expand(s.compressed.evaluate(z=z)), d.evaluate(z=z)))
        True
        """
        vals = np.asarray(values)
        free = self.expr.free
        sizes = self._int_sizes(arrays, vals)
        want = tuple(sizes[i] for i in self.compressed.free)
        if vals.shape != want:
            raise EinderivError(f"the compressed values must have shape {want} (axes "
                                f"{self.compressed.free}), got {vals.shape}")
        operands: list[np.ndarray] = [vals]
        labels: list[tuple[Index, ...]] = [self.compressed.free]
        for g in self.deltas:
            operands += [np.eye(sizes[g[-1]]) for _ in g[:-1]]
            labels += [(i, g[-1]) for i in g[:-1]]
        present = {i for lab in labels for i in lab}
        for i in free:
            if i not in present:
                operands.append(np.ones(sizes[i]))
                labels.append((i,))
        symbols = {i: oe.get_symbol(k) for k, i in enumerate(free)}
        spec = ",".join("".join(symbols[i] for i in lab) for lab in labels)
        return np.asarray(oe.contract(spec + "->" + "".join(symbols[i] for i in free), *operands))

    def mask(self, **arrays: Any) -> np.ndarray:
        """Boolean array of the structural nonzeros (where no delta forces a zero)."""
        sizes = self._int_sizes(arrays)
        free = self.expr.free
        patterns = self.term_deltas if not self.common else (self.deltas,)
        out = np.zeros(tuple(sizes[i] for i in free), dtype=bool)
        if isinstance(self.expr, Sum) and not self.expr.terms:
            return out  # the zero tensor
        for groups in patterns:
            term = np.ones_like(out)
            grid = np.indices(out.shape, sparse=True)
            for g in groups:
                axes = [free.index(i) for i in g]
                for a in axes[1:]:
                    term = term & (grid[axes[0]] == grid[a])
            out |= term
        return out

    # ------------------------------------------------------------- rendering
    def flatten_view(self, order: str = "F") -> render.FlattenView:
        """How :func:`einderiv.flatten` (``n_row_axes`` = the variable's rank) turns
        ``T`` into a matrix: its shape and what row ``r`` and column ``c`` are."""
        return render.flatten_view(self, order)

    def pattern(self, order: str = "F") -> str | None:
        """The flattened matrix's structural nonzeros as text (``#``; ``.`` zero),
        rows labelled with the variable's entries; None if the sizes are not all
        integers or the matrix is too large to draw."""
        return render.pattern(self, order)

    def items(self) -> list[tuple[str, str]]:
        """The report as (topic, text) pairs, shared by the text, Markdown and HTML
        renderings."""
        return render.report_items(self)

    def title(self) -> str:
        if self.variable is None:
            return f"Structure of {self.expr}"
        return f"Structure of T = d{self.function}/d{self.variable} = {self.expr}"

    def __str__(self) -> str:
        return render.to_text(self)

    def _repr_markdown_(self) -> str:
        return render.to_markdown(self)

    def _repr_html_(self) -> str:
        return render.to_html(self)


# ======================================================================== analysis


def structure(expr: Expr, wrt: str | None = None, *, shapes: Mapping[str, object] | None = None,
              var_axes: int | None = None, function: str = "f",
              layout: str | None = None) -> StructureReport:
    """The structure of a derivative tensor ``T = d f / d wrt`` (see the module doc).

    ``wrt`` names the variable (``"W"``, or ``"W[b,c]"`` with the derivative's leading
    labels); its rank comes from ``shapes``, from the expression, or ``var_axes``.
    ``shapes`` (name -> sizes, as for :func:`einderiv.diff`) gives the numbers in
    the report. ``function`` names ``f`` in the text. ``layout`` (default: the one
    :func:`einderiv.diff` recorded, else ``"denominator"``) says whether the
    variable's axes lead (denominator) or trail (numerator).

    >>> import einderiv
    >>> d = einderiv.diff("W[j,i]*A[j]", "W")          # Z = W^T A, notes 003_* X.20
    >>> s = d.structure("W", shapes={"W": (4, 3), "A": (4,)}, function="Z")
    >>> s.shape, s.deltas, str(s.compressed), s.nonzeros, s.dense_size
    ((4, 3, 3), (('c', 'i'),), 'A[b]', 12, 36)
    >>> print(s.chain)
    A[b]*G[c]
    """
    if not isinstance(expr, Expr):
        raise EinderivError(f"structure() needs an expression, got {type(expr).__name__}")
    shape_map = normalize_shapes(shapes)
    if layout is None:
        recorded = expr.derivative_of
        layout = recorded.layout if recorded is not None else DENOMINATOR
    layout = check_layout(layout)
    name, var = _variable_axes(expr, wrt, shape_map, var_axes, layout)
    free = expr.free
    fun = tuple(i for i in free if i not in var) if var is not None else None
    terms = _terms(expr) if not (isinstance(expr, Sum) and not expr.terms) else []
    per_term = tuple(_groups(t.pairs, free) for t in terms)
    common = len({frozenset(map(frozenset, g)) for g in per_term}) <= 1
    groups = per_term[0] if common and per_term else ()
    rep = _representatives(groups)
    carried = {rep.get(i, i) for t in terms for i in t.carried} if common \
        else {i for t in terms for i in t.carried} | {i for g in per_term for gg in g for i in gg}
    order = [i for i in free if i in carried and rep.get(i, i) == i]
    compressed = _compressed(expr, terms, rep, order) if common else expr
    origins = _origins(expr, groups, name, var)
    sizes = _label_sizes(free, origins, groups, shape_map)
    constant = tuple(i for i in free if i not in rep and i not in carried)
    diagonals = tuple(g for g in groups if g[-1] not in carried)
    merged = {i for g in groups for i in g[:-1]}
    dense = size_product([sizes[i] for i in free])
    if not terms:
        nonzeros: Size | None = 0
    elif common:
        nonzeros = size_product([sizes[i] for i in free if i not in merged])
    else:
        nonzeros = None
    chain, upstream = _chain(expr, var, fun, name)
    report = StructureReport(
        expr=expr, variable=name, function=function, var_axes=var, fun_axes=fun,
        sizes=sizes, deltas=groups, constant_axes=constant, constant_diagonals=diagonals,
        compressed=compressed, common=common, nonzeros=nonzeros, dense_size=dense,
        chain=chain, upstream=upstream, term_deltas=per_term, _origins=origins,
        _shapes=shape_map, layout=layout)
    if nonzeros is None and isinstance(dense, int) and dense <= 10**7:
        report.nonzeros = int(report.mask().sum())
    return report


def _compressed(e: Expr, terms: list[_Term], rep: Mapping[Index, Index],
                order: list[Index]) -> Expr:
    """The terms with delta-tied labels merged and broadcast axes dropped, simplified."""
    if not terms:
        return Product(Fraction(0), (), ())
    parts = [_compress_term(t, rep, order) for t in terms]
    hints = outer_origins(e)
    body = parts[0] if len(parts) == 1 else \
        Sum(tuple(parts), tuple(order), tuple((i, hints.get(i)) for i in order))
    return simplify(body, tuple(order))


def _label_sizes(free: tuple[Index, ...], origins: Mapping[Index, tuple[SizeHint, ...]],
                 groups: tuple[tuple[Index, ...], ...], shapes: Mapping[str, tuple[Size, ...]]
                 ) -> dict[Index, Size]:
    """Each axis's size for the report: a number, a size name, or ``|i|`` if unknown."""
    sizes: dict[Index, Size] = {}
    for i in free:
        size = first_size(origins[i], shapes, {})
        sizes[i] = f"|{i}|" if size is None else size
    for g in groups:  # labels tied by a delta share one size
        sizes.update(dict.fromkeys(g, _tied_size([sizes[i] for i in g], g[-1])))
    return sizes


def _tied_size(sizes: list[Size], last: Index) -> Size:
    """One size for delta-tied axes: a number, else a size name, else ``|last|``."""
    for n in sizes:
        if isinstance(n, int):
            return n
    named = [n for n in sizes if not str(n).startswith("|")]
    return named[0] if named else f"|{last}|"


def _chain(e: Expr, var: tuple[Index, ...] | None, fun: tuple[Index, ...] | None,
           name: str | None) -> tuple[Expr | None, str]:
    """``dL/dW = sum over f's axes of T * G`` with ``G = dL/df``, simplified: the deltas
    contract, leaving the compressed form applied without a matrix product."""
    taken = {t.name for t in iter_tensors(e)} | {name}
    upstream = next(g for g in ("G", "G_", "G1", "G2", "Gup") if g not in taken)
    if var is None or not fun:
        return None, upstream
    product = Product(Fraction(1), (e, Tensor(upstream, fun)), var)
    return simplify(product, var), upstream
