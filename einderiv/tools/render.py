"""Rendering a :class:`~einderiv.tools.inspect.StructureReport`: the plain-text,
Markdown and HTML reports, the flattened-matrix view and its text picture.

The analysis lives in :mod:`einderiv.tools.inspect`; everything here reads a
finished report (its fields, :meth:`~einderiv.tools.inspect.StructureReport.mask`)
and turns it into text.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import TYPE_CHECKING, TypedDict

import numpy as np

from ..core.ir import Expr, Index, Product, Sum, Tensor, bound_indices, iter_tensors
from ..core.layouts import DENOMINATOR
from ..errors import EinderivError
from ..numeric.layout import flatten
from .sizes import Size, size_product

if TYPE_CHECKING:
    from .inspect import StructureReport

__all__ = ["flatten_view", "pattern", "report_items", "to_html", "to_markdown", "to_text",
           "unravel"]

_PATTERN_LIMIT = (64, 32)  # largest flattened matrix drawn as text (rows, columns)


def unravel(flat: int, shape: tuple[int, ...], order: str) -> tuple[int, ...]:
    """The multi-index of entry ``flat`` of an array of ``shape`` flattened in
    ``order`` ("F" or "C", checked by the caller)."""
    return tuple(int(k) for k in np.unravel_index(flat, shape, order="F" if order == "F" else "C"))


# ======================================================================== flatten


class FlattenView(TypedDict):
    """What :meth:`StructureReport.flatten_view` returns: the matrix
    ``flatten(T, k, order)`` makes, its size and which entry each row/column is."""

    order: str
    rows: Size
    cols: Size
    row: str
    col: str
    row_entry: str
    col_entry: str
    fastest: str


def flatten_view(s: StructureReport, order: str) -> FlattenView:
    """See :meth:`StructureReport.flatten_view`."""
    if s.var_axes is None or s.fun_axes is None:
        raise EinderivError("the layout is unknown: pass wrt= to structure()")
    if order not in ("F", "C"):
        raise EinderivError(f"order must be 'F' or 'C', got {order!r}")
    (row_owner, row_axes), (col_owner, col_axes) = _sides(s)
    rows = size_product([s.sizes[i] for i in row_axes])
    cols = size_product([s.sizes[i] for i in col_axes])
    return {
        "order": order, "rows": _grouped(rows), "cols": _grouped(cols),
        "row": _position(row_axes, s.sizes, order),
        "col": _position(col_axes, s.sizes, order),
        "row_entry": f"{row_owner}[{','.join(row_axes)}]" if row_axes else row_owner,
        "col_entry": f"{col_owner}[{','.join(col_axes)}]" if col_axes else col_owner,
        "fastest": ("column-major: the first index varies fastest" if order == "F"
                    else "row-major: the last index varies fastest"),
    }


def pattern(s: StructureReport, order: str) -> str | None:
    """See :meth:`StructureReport.pattern`."""
    view = flatten_view(s, order)
    rows, cols = view["rows"], view["cols"]
    if not (isinstance(rows, int) and isinstance(cols, int)):
        return None
    if rows > _PATTERN_LIMIT[0] or cols > _PATTERN_LIMIT[1]:
        return None
    (row_owner, row_axes), (col_owner, col_axes) = _sides(s)
    m = flatten(s.mask(), len(row_axes), order)
    vshape = tuple(int(s.sizes[i]) for i in row_axes)
    fshape = tuple(int(s.sizes[i]) for i in col_axes)
    rows_at = [_entry(row_owner, unravel(r, vshape, order)) for r in range(m.shape[0])]
    width = max(len(r) for r in rows_at)
    heads = [",".join(map(str, unravel(c, fshape, order)))
             for c in range(m.shape[1])] if fshape else [""]
    cw = max(1, *(len(h) for h in heads))
    lines = [" " * (width + 2) + " ".join(h.rjust(cw) for h in heads)
             + f"   <- {col_owner}[{','.join(col_axes)}]" * bool(col_axes)]
    slow = (-1 if order == "F" else 0) if len(vshape) > 1 else None
    for r in range(m.shape[0]):
        if slow is not None and r and _slow_changes(r, vshape, order, slow):
            lines.append(" " * (width + 2) + "-" * ((cw + 1) * m.shape[1] - 1))
        cells = " ".join(("#" if v else ".").rjust(cw) for v in m[r])
        lines.append(f"{rows_at[r].rjust(width)}  {cells}")
    return "\n".join(lines)


def _sides(s: StructureReport
           ) -> tuple[tuple[str, tuple[Index, ...]], tuple[str, tuple[Index, ...]]]:
    """(owner, axes) of the rows and of the columns of the flattened ``T``: the
    variable's then the function's in denominator layout, the reverse in numerator."""
    assert s.var_axes is not None and s.fun_axes is not None
    var, fun = (s.variable or "x", s.var_axes), (s.function, s.fun_axes)
    return (var, fun) if s.layout == DENOMINATOR else (fun, var)


def _grouped(size: Size) -> Size:
    return f"({size})" if isinstance(size, str) and "*" in size else size


def _entry(name: str, index: tuple[int, ...]) -> str:
    return f"{name}[{','.join(map(str, index))}]" if index else name


def _slow_changes(r: int, shape: tuple[int, ...], order: str, slow: int) -> bool:
    return unravel(r - 1, shape, order)[slow] != unravel(r, shape, order)[slow]


def _position(labels: tuple[Index, ...], sizes: Mapping[Index, Size], order: str) -> str:
    """``b + 4*c`` (order F) or ``3*b + c`` (order C): the flat position of an entry."""
    if not labels:
        return "0"
    terms = []
    for k, i in enumerate(labels):
        others = labels[:k] if order == "F" else labels[k + 1:]
        stride = size_product([sizes[j] for j in others])
        terms.append(i if stride == 1 else f"{stride}*{i}")
    return " + ".join(terms)


# ======================================================================== reports


def to_text(s: StructureReport) -> str:
    items = s.items()
    width = max(len(k) for k, _ in items)
    out = [s.title()]
    for key, text in items:
        lines = text.split("\n")
        out.append(f"  {key.ljust(width)}  {lines[0]}")
        out += [f"  {' ' * width}  {line}" for line in lines[1:]]
    return "\n".join(out)


def to_markdown(s: StructureReport) -> str:
    out = [f"**{_md(s.title())}**", "", "| | |", "|---|---|"]
    blocks = []
    for key, text in s.items():
        if key.startswith("pattern"):
            blocks.append(f"{key}:\n\n```\n{text}\n```\n")
        else:
            out.append(f"| {key} | {'<br>'.join(map(_md, text.split(chr(10))))} |")
    return "\n".join(out + [""] + blocks)


def to_html(s: StructureReport) -> str:
    rows = []
    for key, text in s.items():
        body = f"<pre>{html.escape(text)}</pre>" if "\n" in text else html.escape(text)
        rows.append(f"<tr><th style='text-align:left;vertical-align:top'>"
                    f"{html.escape(key)}</th><td style='text-align:left'>{body}</td></tr>")
    return f"<div><b>{html.escape(s.title())}</b><table>{''.join(rows)}</table></div>"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("*", "\\*").replace("_", "\\_")


def report_items(s: StructureReport) -> list[tuple[str, str]]:
    """See :meth:`StructureReport.items`."""
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
    return items + _flatten_items(s)


def _flatten_items(s: StructureReport) -> list[tuple[str, str]]:
    """How ``flatten`` lays ``T`` out, in each order that differs, with the pictures."""
    if s.var_axes is None or s.fun_axes is None:
        return []
    items = []
    same = len(s.var_axes) <= 1 and len(s.fun_axes) <= 1
    for order in ("F",) if same else ("F", "C"):
        v = s.flatten_view(order)
        how = 'order "F" and "C" agree here' if same else v["fastest"]
        items.append(("flatten" if same else f"flatten {order}",
                      f'flatten(T, {len(_sides(s)[0][1])}, order="{order}"): a {v["rows"]} x '
                      f'{v["cols"]} matrix, {how}:\nrow {v["row"]} is {v["row_entry"]}, '
                      f'column {v["col"]} is {v["col_entry"]}'))
        picture = s.pattern(order)
        if picture is not None:
            items.append(("pattern" if same else f"pattern {order}", picture))
    return items


# ========================================================================== topics


def _shape_text(s: StructureReport) -> str:
    dims = ", ".join(map(str, s.shape)) + ("," if len(s.shape) == 1 else "")
    if s.var_axes is None or s.fun_axes is None:
        return f"({dims})"
    (row_owner, row_axes), (col_owner, col_axes) = _sides(s)
    return f"({dims}) = {row_owner} {_sizes_tuple(s, row_axes)} + {col_owner} " \
           f"{_sizes_tuple(s, col_axes)}"


def _sizes_tuple(s: StructureReport, labels: tuple[Index, ...]) -> str:
    return "(" + ", ".join(str(s.sizes[i]) for i in labels) + ("," if len(labels) == 1 else "") + ")"


def _layout_text(s: StructureReport) -> str:
    if s.var_axes is None or s.fun_axes is None:
        return ("axes " + ", ".join(s.expr.free) + "; which belong to the variable is "
                "unknown (pass wrt= to structure())")
    var = f"{_axes_text(s.var_axes, s.variable or 'x')} (the variable)"
    fun = f"{_axes_text(s.fun_axes, s.function)} (the function)"
    if s.layout == DENOMINATOR:
        return f"{var} first, then {fun}: denominator layout (notes 001_* A.1; 003_* Concept 20)"
    return f"{fun} first, then {var}: numerator layout"


def _axes_text(labels: tuple[Index, ...], owner: str) -> str:
    if not labels:
        return f"{owner} is a scalar (no axes)"
    nums = ", ".join(str(k) for k in range(len(labels)))
    return f"{', '.join(labels)} = {owner}'s ax{'es' if len(labels) > 1 else 'is'} {nums}"


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
        terms = s.expr.terms if isinstance(s.expr, Sum) else (s.expr,)
        for k, (t, groups) in enumerate(zip(terms, s.term_deltas), 1):
            where = "; ".join(_delta_line(s, g) for g in groups) or "no deltas"
            lines.append(f"term {k}, {t}: {where}")
        return "\n".join(lines)
    if not s.deltas:
        return "none: no entry is forced to zero by a Kronecker delta"
    return "\n".join(_delta_line(s, g) for g in s.deltas)


def _nonzeros_text(s: StructureReport) -> str:
    if s.nonzeros is None:
        return f"up to {s.dense_size} (the terms' patterns differ)"
    if s.nonzeros == s.dense_size:
        return f"all {s.dense_size} entries can be nonzero (no structural zeros)"
    share, rest = "", "the others"
    if isinstance(s.nonzeros, int) and isinstance(s.dense_size, int):
        rest = f"the other {s.dense_size - s.nonzeros}"
        if s.dense_size:
            share = f" ({100 * s.nonzeros / s.dense_size:.0f}%)"
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
    size = size_product([s.sizes[i] for i in c.free])
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
