"""Pictures of derivative tensors (needs matplotlib: ``pip install "einderiv[plot]"``).

:func:`plot` draws the matrix :func:`einderiv.flatten` makes of a derivative ``T =
d f / d W`` (rows: the entries of ``W``, columns: the entries of ``f``) as a heat map,
with separators between the blocks of rows that share the slowest-varying index of
``W`` (notes 003_*, X.18 and eq. 71: ``dZ/dW`` is block diagonal), or as small
multiples: one panel per entry of ``f``'s last axis. Zero is white, so structural
zeros show as blank space.

matplotlib is imported only when a picture is drawn, and figures are built without
pyplot (no display, no global state): save them with ``path=`` or
``fig.savefig(...)``; in Jupyter a returned figure shows inline.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..core.ir import Expr
from ..errors import EinderivError
from ..numeric.layout import flatten
from .inspect import StructureReport, structure
from .render import unravel

__all__ = ["plot"]

_MAX_TICKS = 40      # label every row/column up to this many
_MAX_PANELS = 16     # small multiples drawn at most


def _figure_class() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise EinderivError(
            "einderiv.plot needs matplotlib, which is not installed: "
            "pip install 'einderiv[plot]' (or pip install matplotlib)") from None
    return Figure


def plot(expr: Any, wrt: str | None = None, *, kind: str = "matrix", order: str = "F",
         var_axes: int | None = None, function: str = "f", path: Any = None,
         title: str | None = None, **arrays: Any) -> Any:
    """Draw the derivative ``expr`` (an :class:`~einderiv.core.ir.Expr`, or the report of
    :meth:`~einderiv.core.ir.Expr.structure`) evaluated at ``arrays``; return the
    matplotlib ``Figure`` (saved to ``path`` if given).

    ``wrt`` names the variable, whose axes become the rows; ``kind="matrix"`` (the
    flattened Jacobian, rows in ``order`` "F" or "C") or ``"slices"`` (one panel per
    entry of the last axis). Keyword names ``wrt``, ``kind``, ``order``,
    ``var_axes``, ``function``, ``path``, ``title`` are options, every other keyword
    is an array.

    >>> import numpy as np, einderiv
    >>> d = einderiv.diff("W[j,i]*A[j]", "W")
    >>> fig = einderiv.plot(d, "W", W=np.ones((4, 3)), A=np.arange(1.0, 5.0))
    >>> fig.axes[0].get_ylabel()
    'W[b,c]: row b + 4*c (order F)'
    """
    figure_class = _figure_class()
    if kind not in ("matrix", "slices"):
        raise EinderivError(f"kind must be 'matrix' or 'slices', got {kind!r}")
    if isinstance(expr, StructureReport):
        report = expr
    elif isinstance(expr, Expr):
        shapes = {k: np.shape(v) for k, v in arrays.items()}
        report = structure(expr, wrt, shapes=shapes, var_axes=var_axes, function=function)
    else:
        raise EinderivError(f"plot() needs a derivative expression, got {type(expr).__name__}")
    if report.var_axes is None:
        raise EinderivError("plot() needs to know which axes belong to the variable: "
                            "pass wrt='W' (or var_axes=k)")
    tensor = np.asarray(report.expr.evaluate(**arrays))
    if np.iscomplexobj(tensor):
        raise EinderivError("plot() draws real tensors; this one is complex")
    caption = title if title is not None else report.title().replace("Structure of ", "")
    if kind == "slices":
        return _save(_slices(figure_class, report, tensor, caption), path)
    return _save(_matrix(figure_class, report, tensor, order, caption), path)


def _save(fig: Any, path: Any) -> Any:
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig


def _limits(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    vmax = float(np.max(np.abs(finite))) if finite.size else 1.0
    return (-vmax, vmax) if vmax > 0 else (-1.0, 1.0)


def _matrix(figure_class: Any, report: StructureReport, tensor: np.ndarray, order: str,
            caption: str) -> Any:
    assert report.row_axes is not None
    k = len(report.row_axes)  # the leading axes: the variable's (denominator) or f's
    mat = flatten(tensor, k, order)
    rows, cols = mat.shape
    fig = figure_class(figsize=(min(3.0 + 0.45 * cols, 14.0), min(2.0 + 0.32 * rows, 14.0)),
                       layout="constrained")
    ax = fig.add_subplot()
    lo, hi = _limits(mat)
    image = ax.imshow(mat, cmap="RdBu_r", vmin=lo, vmax=hi, interpolation="nearest",
                      aspect="auto")
    fig.colorbar(image, ax=ax, shrink=0.8)
    vshape, fshape = tensor.shape[:k], tensor.shape[k:]
    for at in _block_edges(vshape, order):
        ax.axhline(at - 0.5, color="black", linewidth=1.5)
    for at in _block_edges(fshape, order):
        ax.axvline(at - 0.5, color="black", linewidth=1.5)
    view = report.flatten_view(order)
    var, fun = report.variable or "x", report.function
    if report.layout != "denominator":
        var, fun = fun, var  # numerator layout: f's entries are the rows
    ax.set_ylabel(f"{view['row_entry']}: row {view['row']} (order {order})")
    ax.set_xlabel(f"{view['col_entry']}: column {view['col']}")
    _ticks(ax.set_yticks, rows, vshape, var, order)
    _ticks(ax.set_xticks, cols, fshape, fun, order)
    ax.set_title(_shorten(caption) + f'\nflatten(T, {k}, order="{order}")', fontsize=9)
    return fig


def _block_edges(shape: tuple[int, ...], order: str) -> list[int]:
    """Flat positions where the slowest-varying index changes (none for a vector)."""
    if len(shape) < 2:
        return []
    block = math.prod(shape[:-1]) if order == "F" else math.prod(shape[1:])
    total = math.prod(shape)
    return list(range(block, total, block)) if block else []


def _ticks(setter: Any, count: int, shape: tuple[int, ...], name: str, order: str) -> None:
    if count > _MAX_TICKS:
        return
    labels = [f"{name}[{','.join(map(str, unravel(r, shape, order)))}]"
              if shape else name for r in range(count)]
    setter(range(count), labels, fontsize=7)


def _shorten(text: str, width: int = 90) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


def _slices(figure_class: Any, report: StructureReport, tensor: np.ndarray, caption: str) -> Any:
    """One panel per entry of the last axis: ``T[..., i]`` (the variable's shape when
    the function is a vector: ``dZ_i/dW``, X.20 eq. 66-70)."""
    if tensor.ndim < 2:
        raise EinderivError(f"kind='slices' needs a tensor with at least 2 axes, "
                            f"got {tensor.ndim}")
    last = report.expr.free[-1]
    count = min(tensor.shape[-1], _MAX_PANELS)
    ncols = min(count, 4)
    nrows = math.ceil(count / ncols)
    panel = tensor[..., 0]
    height, width = (panel.shape + (1, 1))[:2] if panel.ndim else (1, 1)
    fig = figure_class(figsize=(min(1.5 + ncols * (0.9 + 0.35 * width), 16.0),
                                min(1.2 + nrows * (0.9 + 0.3 * height), 16.0)),
                       layout="constrained")
    lo, hi = _limits(tensor)
    inner = report.expr.free[:-1]
    rows_label = inner[0] if inner else ""
    cols_label = ",".join(inner[1:]) if len(inner) > 1 else ""
    axes = fig.subplots(nrows, ncols, squeeze=False)
    image = None
    for n, ax in enumerate(axes.flat):
        if n >= count:
            ax.set_axis_off()
            continue
        piece = tensor[..., n]
        piece = piece.reshape(piece.shape[0], -1) if piece.ndim >= 2 else piece.reshape(-1, 1)
        image = ax.imshow(piece, cmap="RdBu_r", vmin=lo, vmax=hi, interpolation="nearest")
        ax.set_title(f"{last} = {n}", fontsize=8)
        ax.set_yticks(range(piece.shape[0]) if piece.shape[0] <= _MAX_TICKS else [])
        ax.set_xticks(range(piece.shape[1]) if piece.shape[1] <= _MAX_TICKS else [])
        ax.tick_params(labelsize=6)
        ax.set_ylabel(rows_label, fontsize=7)
        ax.set_xlabel(cols_label, fontsize=7)
    fig.colorbar(image, ax=axes, shrink=0.8)
    more = f" (first {count} of {tensor.shape[-1]})" if count < tensor.shape[-1] else ""
    fig.suptitle(_shorten(f"{caption}: slices T[{','.join(report.expr.free[:-1])},{last}] "
                          f"along {last}{more}"), fontsize=9)
    return fig
