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
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
import opt_einsum as oe

from ..core.ir import (
    Delta,
    Expr,
    Index,
    Product,
    SizeHint,
    Sum,
    Tensor,
    bound_indices,
    factor_indices,
    iter_tensors,
    outer_origins,
    rename,
)
from ..errors import EinderivError, IndexMismatchError
from ..symbolic.syntax import parse_wrt

__all__ = ["structure", "StructureReport"]

Size = int | str
_PATTERN_LIMIT = (64, 32)  # largest flattened matrix drawn as text (rows, columns)


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


def _variable_axes(e: Expr, wrt: str | None, shapes: Mapping[str, tuple],
                   var_axes: int | None) -> tuple[str | None, tuple[Index, ...] | None]:
    """The variable's name and the labels of its axes (the leading free labels)."""
    if var_axes is not None:
        if isinstance(var_axes, bool) or not isinstance(var_axes, int) \
                or not 0 <= var_axes <= len(e.free):
            raise EinderivError(f"var_axes must be an integer from 0 to {len(e.free)}, "
                                f"got {var_axes!r}")
        name = parse_wrt(wrt)[0] if wrt is not None else None
        return name, e.free[:var_axes]
    if wrt is None:
        recorded = e.__dict__.get("derivative_of")  # diff() knows the variable
        if recorded is None or e.free[:len(recorded[1])] != recorded[1]:
            return None, None
        return recorded
    name, given = parse_wrt(wrt)
    if given is not None:
        if e.free[:len(given)] != given:
            raise IndexMismatchError(
                f"{wrt!r} names the axes {given}, but the derivative's axes are {e.free}; "
                f"the variable's axes come first (denominator layout)")
        return name, given
    rank = _rank(e, name, shapes)
    if rank > len(e.free):
        raise IndexMismatchError(
            f"{name!r} has {rank} axes but the derivative has only {len(e.free)}: "
            f"is it the derivative by {name!r}?")
    return name, e.free[:rank]


def _rank(e: Expr, name: str, shapes: Mapping[str, tuple]) -> int:
    if name in shapes:
        return len(shapes[name])
    recorded = e.__dict__.get("derivative_of")  # set by diff(): (variable, its axes)
    if recorded is not None and recorded[0] == name:
        return len(recorded[1])
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


def _first_size(hints: tuple[SizeHint, ...], shapes: Mapping[str, tuple],
                arrays: Mapping[str, Any]) -> Size | None:
    """The first size the hints resolve to, preferring numbers to size names."""
    sizes = [s for h in hints if (s := _size(h, shapes, arrays)) is not None]
    return next((s for s in sizes if isinstance(s, int)), sizes[0] if sizes else None)


def _size(hint: SizeHint, shapes: Mapping[str, tuple], arrays: Mapping[str, Any]) -> Size | None:
    if isinstance(hint, int):
        return hint
    if isinstance(hint, str):
        value = arrays.get(hint)
        return int(value) if isinstance(value, (int, np.integer)) else hint
    if isinstance(hint, tuple):
        tensor, axis = hint
        if tensor in arrays and axis < np.ndim(arrays[tensor]):
            return int(np.shape(arrays[tensor])[axis])
        if tensor in shapes and axis < len(shapes[tensor]):
            return shapes[tensor][axis]
    return None


def _size_product(sizes: list[Size]) -> Size:
    """``4*k**2``: the product of sizes, a number where all are known."""
    n, names = 1, Counter()
    for s in sizes:
        if isinstance(s, int):
            n *= s
        else:
            names[s] += 1
    if not names:
        return n
    parts = [str(n)] if n != 1 else []
    parts += [s if c == 1 else f"{s}**{c}" for s, c in names.items()]
    return "*".join(parts)


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
    _shapes: dict[str, tuple] = field(repr=False)

    # ---------------------------------------------------------------- numbers
    @property
    def shape(self) -> tuple[Size, ...]:
        return tuple(self.sizes[i] for i in self.expr.free)

    def _int_sizes(self, arrays: Mapping[str, Any], values: np.ndarray | None = None
                   ) -> dict[Index, int]:
        known: dict[Index, int] = {}
        for i in self.expr.free:
            s = _first_size(self._origins.get(i, ()), self._shapes, arrays)
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

    # --------------------------------------------------------------- flatten
    def flatten_view(self, order: str = "F") -> dict[str, Any]:
        """How :func:`einderiv.flatten` (``n_row_axes`` = the variable's rank) turns
        ``T`` into a matrix: its shape and what row ``r`` and column ``c`` are."""
        if self.var_axes is None or self.fun_axes is None:
            raise EinderivError("the layout is unknown: pass wrt= to structure()")
        if order not in ("F", "C"):
            raise EinderivError(f"order must be 'F' or 'C', got {order!r}")
        rows = _size_product([self.sizes[i] for i in self.var_axes])
        cols = _size_product([self.sizes[i] for i in self.fun_axes])
        var = self.variable or "x"
        return {
            "order": order, "rows": _grouped(rows), "cols": _grouped(cols),
            "row": _position(self.var_axes, self.sizes, order),
            "col": _position(self.fun_axes, self.sizes, order),
            "row_entry": f"{var}[{','.join(self.var_axes)}]" if self.var_axes else var,
            "col_entry": (f"{self.function}[{','.join(self.fun_axes)}]" if self.fun_axes
                          else self.function),
            "fastest": ("column-major: the first index varies fastest" if order == "F"
                        else "row-major: the last index varies fastest"),
        }

    def pattern(self, order: str = "F") -> str | None:
        """The flattened matrix's structural nonzeros as text (``#``; ``.`` zero),
        rows labelled with the variable's entries; None if the sizes are not all
        integers or the matrix is too large to draw."""
        view = self.flatten_view(order)
        if not (isinstance(view["rows"], int) and isinstance(view["cols"], int)):
            return None
        if view["rows"] > _PATTERN_LIMIT[0] or view["cols"] > _PATTERN_LIMIT[1]:
            return None
        from ..numeric.layout import flatten
        assert self.var_axes is not None and self.fun_axes is not None
        m = flatten(self.mask(), len(self.var_axes), order)
        vshape = tuple(int(self.sizes[i]) for i in self.var_axes)
        fshape = tuple(int(self.sizes[i]) for i in self.fun_axes)
        var, fun = self.variable or "x", self.function
        rows_at = [_entry(var, np.unravel_index(r, vshape, order=order)) for r in range(m.shape[0])]
        width = max(len(r) for r in rows_at)
        heads = [",".join(map(str, np.unravel_index(c, fshape, order=order)))
                 for c in range(m.shape[1])] if fshape else [""]
        cw = max(1, *(len(h) for h in heads))
        lines = [" " * (width + 2) + " ".join(h.rjust(cw) for h in heads)
                 + f"   <- {fun}[{','.join(self.fun_axes)}]" * bool(self.fun_axes)]
        slow = (-1 if order == "F" else 0) if len(vshape) > 1 else None
        for r in range(m.shape[0]):
            if slow is not None and r and _slow_changes(r, vshape, order, slow):
                lines.append(" " * (width + 2) + "-" * ((cw + 1) * m.shape[1] - 1))
            cells = " ".join(("#" if v else ".").rjust(cw) for v in m[r])
            lines.append(f"{rows_at[r].rjust(width)}  {cells}")
        return "\n".join(lines)

    # ---------------------------------------------------------------- report
    def items(self) -> list[tuple[str, str]]:
        """The report as (topic, text) pairs, shared by the text, Markdown and HTML
        renderings."""
        return _report_items(self)

    def title(self) -> str:
        if self.variable is None:
            return f"Structure of {self.expr}"
        return f"Structure of T = d{self.function}/d{self.variable} = {self.expr}"

    def __str__(self) -> str:
        width = max(len(k) for k, _ in self.items())
        out = [self.title()]
        for key, text in self.items():
            lines = text.split("\n")
            out.append(f"  {key.ljust(width)}  {lines[0]}")
            out += [f"  {' ' * width}  {line}" for line in lines[1:]]
        return "\n".join(out)

    def _repr_markdown_(self) -> str:
        out = [f"**{_md(self.title())}**", "", "| | |", "|---|---|"]
        blocks = []
        for key, text in self.items():
            if key.startswith("pattern"):
                blocks.append(f"{key}:\n\n```\n{text}\n```\n")
            else:
                out.append(f"| {key} | {'<br>'.join(map(_md, text.split(chr(10))))} |")
        return "\n".join(out + [""] + blocks)

    def _repr_html_(self) -> str:
        rows = []
        for key, text in self.items():
            body = (f"<pre>{html.escape(text)}</pre>" if "\n" in text
                    else html.escape(text))
            rows.append(f"<tr><th style='text-align:left;vertical-align:top'>"
                        f"{html.escape(key)}</th><td style='text-align:left'>{body}</td></tr>")
        return (f"<div><b>{html.escape(self.title())}</b><table>{''.join(rows)}</table></div>")


def _grouped(size: Size) -> Size:
    return f"({size})" if isinstance(size, str) and "*" in size else size


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("*", "\\*").replace("_", "\\_")


def _entry(name: str, index: tuple) -> str:
    return f"{name}[{','.join(str(int(k)) for k in index)}]" if index else name


def _slow_changes(r: int, shape: tuple[int, ...], order: str, slow: int) -> bool:
    a = np.unravel_index(r - 1, shape, order=order)[slow]
    b = np.unravel_index(r, shape, order=order)[slow]
    return bool(a != b)


def _position(labels: tuple[Index, ...], sizes: Mapping[Index, Size], order: str) -> str:
    """``b + 4*c`` (order F) or ``3*b + c`` (order C): the flat position of an entry."""
    if not labels:
        return "0"
    terms = []
    for k, i in enumerate(labels):
        others = labels[:k] if order == "F" else labels[k + 1:]
        stride = _size_product([sizes[j] for j in others])
        terms.append(i if stride == 1 else f"{stride}*{i}")
    return " + ".join(terms)


# ======================================================================== analysis


def structure(expr: Expr, wrt: str | None = None, *, shapes: Mapping[str, object] | None = None,
              var_axes: int | None = None, function: str = "f") -> StructureReport:
    """The structure of a derivative tensor ``T = d f / d wrt`` (see the module doc).

    ``wrt`` names the variable (``"W"``, or ``"W[b,c]"`` with the derivative's leading
    labels); its rank comes from ``shapes``, from the expression, or ``var_axes``.
    ``shapes`` (name -> sizes, as for :func:`einderiv.diff`) gives the numbers in
    the report. ``function`` names ``f`` in the text.

    >>> import einderiv
    >>> d = einderiv.diff("W[j,i]*A[j]", "W")          # Z = W^T A, notes 003_* X.20
    >>> s = d.structure("W", shapes={"W": (4, 3), "A": (4,)}, function="Z")
    >>> s.shape, s.deltas, str(s.compressed), s.nonzeros, s.dense_size
    ((4, 3, 3), (('c', 'i'),), 'A[b]', 12, 36)
    >>> print(s.chain)
    A[b]*G[c]
    """
    from ..core.shapes import normalize_shapes
    if not isinstance(expr, Expr):
        raise EinderivError(f"structure() needs an expression, got {type(expr).__name__}")
    shape_map = normalize_shapes(shapes)
    name, var = _variable_axes(expr, wrt, shape_map, var_axes)
    free = expr.free
    fun = free[len(var):] if var is not None else None
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
    dense = _size_product([sizes[i] for i in free])
    if not terms:
        nonzeros: Size | None = 0
    elif common:
        nonzeros = _size_product([sizes[i] for i in free if i not in merged])
    else:
        nonzeros = None
    chain, upstream = _chain(expr, var, fun, name)
    report = StructureReport(
        expr=expr, variable=name, function=function, var_axes=var, fun_axes=fun,
        sizes=sizes, deltas=groups, constant_axes=constant, constant_diagonals=diagonals,
        compressed=compressed, common=common, nonzeros=nonzeros, dense_size=dense,
        chain=chain, upstream=upstream, term_deltas=per_term, _origins=origins,
        _shapes=shape_map)
    if nonzeros is None and isinstance(dense, int) and dense <= 10**7:
        report.nonzeros = int(report.mask().sum())
    return report


def _compressed(e: Expr, terms: list[_Term], rep: Mapping[Index, Index],
                order: list[Index]) -> Expr:
    """The terms with delta-tied labels merged and broadcast axes dropped, simplified."""
    from ..symbolic.simplify import simplify
    if not terms:
        return Product(Fraction(0), (), ())
    parts = [_compress_term(t, rep, order) for t in terms]
    hints = outer_origins(e)
    body = parts[0] if len(parts) == 1 else \
        Sum(tuple(parts), tuple(order), tuple((i, hints.get(i)) for i in order))
    return simplify(body, tuple(order))


def _label_sizes(free: tuple[Index, ...], origins: Mapping[Index, tuple[SizeHint, ...]],
                 groups: tuple[tuple[Index, ...], ...], shapes: Mapping[str, tuple]
                 ) -> dict[Index, Size]:
    """Each axis's size for the report: a number, a size name, or ``|i|`` if unknown."""
    sizes: dict[Index, Size] = {}
    for i in free:
        size = _first_size(origins[i], shapes, {})
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
    from ..symbolic.simplify import simplify
    taken = {t.name for t in iter_tensors(e)} | {name}
    upstream = next(g for g in ("G", "G_", "G1", "G2", "Gup") if g not in taken)
    if var is None or not fun:
        return None, upstream
    product = Product(Fraction(1), (e, Tensor(upstream, fun)), var)
    return simplify(product, var), upstream


def _summed_with(chain: Expr, upstream: str) -> set[Index] | None:
    """Labels of ``G`` that ``chain`` sums over (None: G is not a plain factor)."""
    summed: set[Index] = set()
    for t in (chain.terms if isinstance(chain, Sum) else (chain,)):
        factors = t.factors if isinstance(t, Product) else (t,)
        bound = bound_indices(t) if isinstance(t, Product) else set()
        for f in factors:
            if isinstance(f, Tensor) and f.name == upstream:
                summed |= set(f.indices) & bound
            elif upstream in f.variables:
                return None
    return summed


# ========================================================================= text


def _report_items(s: StructureReport) -> list[tuple[str, str]]:
    items = [("shape", _shape_text(s)), ("layout", _layout_text(s))]
    if isinstance(s.expr, Sum) and not s.expr.terms:
        items.append(("nonzeros", f"none: T is identically zero ({s.dense_size} entries)"))
        return items
    items.append(("deltas", _deltas_text(s)))
    items.append(("nonzeros", _nonzeros_text(s)))
    items.append(("constant", _constant_text(s)))
    items.append(("compressed", _compressed_text(s)))
    if s.chain is not None:
        items.append(("chain rule", _chain_text(s)))
    elif s.var_axes is not None:
        items.append(("chain rule", f"{s.function} is a scalar: T is its gradient, with "
                      f"the shape of {s.variable}; dL/d{s.variable} = (dL/d{s.function}) * T"))
    if s.var_axes is not None and s.fun_axes is not None:
        same = len(s.var_axes) <= 1 and len(s.fun_axes) <= 1
        for order in ("F",) if same else ("F", "C"):
            v = s.flatten_view(order)
            how = 'order "F" and "C" agree here' if same else v["fastest"]
            items.append(("flatten" if same else f"flatten {order}",
                          f'flatten(T, {len(s.var_axes)}, order="{order}"): a {v["rows"]} x '
                          f'{v["cols"]} matrix, {how}:\nrow {v["row"]} is {v["row_entry"]}, '
                          f'column {v["col"]} is {v["col_entry"]}'))
            picture = s.pattern(order)
            if picture is not None:
                items.append(("pattern" if same else f"pattern {order}", picture))
    return items


def _shape_text(s: StructureReport) -> str:
    dims = ", ".join(map(str, s.shape)) + ("," if len(s.shape) == 1 else "")
    if s.var_axes is None:
        return f"({dims})"
    part = lambda labels: "(" + ", ".join(str(s.sizes[i]) for i in labels) + \
        ("," if len(labels) == 1 else "") + ")"  # noqa: E731
    assert s.fun_axes is not None
    return (f"({dims}) = {s.variable} {part(s.var_axes)} + {s.function} "
            f"{part(s.fun_axes)}")


def _layout_text(s: StructureReport) -> str:
    if s.var_axes is None or s.fun_axes is None:
        return ("axes " + ", ".join(s.expr.free) + "; which belong to the variable is "
                "unknown (pass wrt= to structure())")
    def axes(labels: tuple[Index, ...], owner: str) -> str:
        if not labels:
            return f"{owner} is a scalar (no axes)"
        nums = ", ".join(str(k) for k in range(len(labels)))
        return (f"{', '.join(labels)} = {owner}'s ax{'es' if len(labels) > 1 else 'is'} "
                f"{nums}")
    return (f"{axes(s.var_axes, s.variable or 'x')} (the variable) first, then "
            f"{axes(s.fun_axes, s.function)} (the function): denominator layout "
            f"(notes 001_* A.1; 003_* Concept 20)")


def _axis_owner(s: StructureReport, i: Index) -> str:
    if s.var_axes is None or s.fun_axes is None:
        return ""
    if i in s.var_axes:
        return f"{s.variable} axis {s.var_axes.index(i)}"
    return f"{s.function} axis {s.fun_axes.index(i)}"


def _delta_line(s: StructureReport, g: tuple[Index, ...]) -> str:
    pairs = ", ".join(f"delta[{i},{g[-1]}]" for i in g[:-1])
    owners = " = ".join(o for o in (_axis_owner(s, i) for i in g) if o)
    return (f"{pairs}: nonzero only where {' == '.join(g)}"
            + (f" ({owners})" if owners else ""))


def _deltas_text(s: StructureReport) -> str:
    if not s.common:
        lines = ["no common structure: the terms have different deltas"]
        for k, (t, groups) in enumerate(zip(s.expr.terms, s.term_deltas), 1):  # type: ignore[attr-defined]
            where = "; ".join(_delta_line(s, g) for g in groups) or "no deltas"
            lines.append(f"term {k}, {t}: {where}")
        return "\n".join(lines)
    if not s.deltas:
        return "none: no entry is forced to zero by a Kronecker delta"
    return "\n".join(_delta_line(s, g) for g in s.deltas)


def _nonzeros_text(s: StructureReport) -> str:
    if s.nonzeros is None:
        return f"up to {s.dense_size} (the terms' patterns differ)"
    share = ""
    if isinstance(s.nonzeros, int) and isinstance(s.dense_size, int) and s.dense_size:
        share = f" ({100 * s.nonzeros / s.dense_size:.0f}%)"
    if s.nonzeros == s.dense_size:
        return f"all {s.dense_size} entries can be nonzero (no structural zeros)"
    rest = (f"the other {s.dense_size - s.nonzeros}" if isinstance(s.nonzeros, int)
            and isinstance(s.dense_size, int) else "the others")
    return (f"{s.nonzeros} of {s.dense_size} entries{share} can be nonzero; {rest} "
            f"are structural zeros")


def _constant_text(s: StructureReport) -> str:
    lines = [f"along {i}: T does not depend on {i} (a broadcast axis)" for i in s.constant_axes]
    lines += [f"along the diagonal {' == '.join(g)}: every entry on it is the same "
              f"(Concept 27)" for g in s.constant_diagonals]
    return "\n".join(lines) or "along no axis"


def _compressed_text(s: StructureReport) -> str:
    c = s.compressed
    if not s.common:
        return f"{c} (not compressed: no structure common to all terms)"
    size = _size_product([s.sizes[i] for i in c.free])
    head = (f"{c}   axes ({', '.join(c.free)}), {size} value{'s' * (size != 1)}"
            if c.free else f"{c}   a scalar")
    if not s.deltas and not s.constant_axes:
        return head + "\nnothing to compress: T is this expression"
    parts = [f"C[{','.join(c.free)}]" if c.free else "C"]
    parts += [f"delta[{i},{g[-1]}]" for g in s.deltas for i in g[:-1]]
    ones = [i for i in s.expr.free if i in s.constant_axes]
    rebuild = f"T[{','.join(s.expr.free)}] = {'*'.join(parts)}"
    if ones:
        rebuild += f", repeated along {', '.join(ones)}"
    return head + f"\nrebuild (expand): {rebuild} with C = {c}"


def _chain_text(s: StructureReport) -> str:
    assert s.chain is not None and s.fun_axes is not None and s.var_axes is not None
    g = s.upstream
    var = s.variable or "x"
    lines = [f"dL/d{var}[{','.join(s.var_axes)}] = {s.chain}   "
             f"with {g}[{','.join(s.fun_axes)}] = dL/d{s.function}[{','.join(s.fun_axes)}]"]
    summed = _summed_with(s.chain, g)
    if summed == set():
        broadcast = [i for i in s.var_axes if i not in
                     {j for t in iter_tensors(s.chain) if t.name == g for j in t.indices}]
        how = ("element-wise multiplication" if not broadcast else
               f"element-wise multiplication broadcast along {', '.join(broadcast)} "
               f"(an outer product)")
        lines.append(f"no sum over {', '.join(s.fun_axes)}: apply the compressed form by "
                     f"{how} instead of a matrix product with the flattened T (X.23)")
    elif summed:
        lines.append(f"sums over {', '.join(sorted(summed))}: a matrix product "
                     f"(contraction) with {g}")
    return "\n".join(lines)
