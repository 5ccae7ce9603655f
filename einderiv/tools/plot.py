"""Pictures of derivative tensors (needs matplotlib: ``pip install "einderiv[plot]"``).

:func:`plot` draws the matrix :func:`einderiv.flatten` makes of a derivative ``T =
d f / d W`` (rows: the entries of ``W``, columns: the entries of ``f``) as a heat map,
with separators between the blocks of rows that share the slowest-varying index of
``W`` (notes 003_*, X.18 and eq. 71: ``dZ/dW`` is block diagonal), or as small
multiples: one panel per entry of ``f``'s last axis. Zero is white, so structural
zeros show as blank space.

It returns a :class:`~einderiv.tools.picture.Picture`: a notebook shows it as an image
(no ``%matplotlib`` magic needed), ``.figure`` is the matplotlib ``Figure``,
``.save(path)`` writes it. A matrix with more than ``max_cells`` rows or columns is
drawn by blocks, each cell the entry of largest magnitude in its block (the title
says so), so a 10^8-entry Jacobian takes seconds; with tqdm installed, long work
shows a progress bar on standard error.

matplotlib is imported only when a picture is drawn, and figures are built without
pyplot (no display, no global state).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.ir import Expr
from ..errors import EinderivError
from ..numeric.layout import flatten
from .inspect import StructureReport, structure
from .picture import Picture, block_extremes, block_size, progress_bar
from .render import unravel

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot", "Picture"]

_MAX_TICKS = 40      # label every row/column up to this many
_MAX_PANELS = 16     # small multiples drawn at most
_CHUNK = 1 << 22     # entries aggregated at a time (32 MiB of float64)
_PROGRESS_FROM = 10 ** 7  # entries from which progress=None shows a bar


def _figure_class() -> type[Figure]:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise EinderivError(
            "einderiv.plot needs matplotlib, which is not installed: "
            "pip install 'einderiv[plot]' (or pip install matplotlib)") from None
    return Figure


def plot(expr: Expr | StructureReport, wrt: str | None = None,
         values: Mapping[str, Any] | None = None, *,
         shapes: Mapping[str, object] | None = None, kind: str = "matrix", order: str = "F",
         var_axes: int | None = None, function: str = "f",
         path: str | os.PathLike[str] | None = None, title: str | None = None,
         max_cells: int = 400, progress: bool | None = None, **arrays: Any) -> Picture:
    """Draw the derivative ``expr`` (an :class:`~einderiv.core.ir.Expr`, or the report of
    :meth:`~einderiv.core.ir.Expr.structure`) evaluated at ``values``; return a
    :class:`Picture` (saved to ``path`` if given; ``.figure`` is the matplotlib figure).

    ``values`` maps names to arrays, as for :func:`einderiv.check`; arrays may also
    come as keywords (``plot(d, "W", W=W, A=A)``), as for ``Expr.evaluate``. The
    keywords ``shapes`` (names to sizes, as for :func:`einderiv.diff`; they must agree
    with the arrays), ``kind``, ``order``, ``var_axes``, ``function``, ``path``,
    ``title``, ``max_cells`` and ``progress`` are options. ``wrt`` names the
    variable, whose axes become the rows; ``kind="matrix"`` (the flattened Jacobian,
    rows in ``order`` "F" or "C") or ``"slices"`` (one panel per entry of the last
    axis). A matrix larger than ``max_cells`` along a side is drawn by blocks: each
    cell the entry of largest magnitude in its block. ``progress``: True shows a
    progress bar (tqdm, if installed), False never, None (default) when the tensor
    has 10^7 entries or more.

    >>> import numpy as np, einderiv
    >>> d = einderiv.diff("W[j,i]*A[j]", "W")
    >>> pic = einderiv.plot(d, "W", {"W": np.ones((4, 3)), "A": np.arange(1.0, 5.0)})
    >>> pic.axes[0].get_ylabel()
    'W[b,c]: row b + 4*c (order F)'
    >>> pic.shape, pic.aggregated, pic._repr_png_()[:4]
    ((12, 3), False, b'\\x89PNG')
    """
    figure_class = _figure_class()
    if kind not in ("matrix", "slices"):
        raise EinderivError(f"kind must be 'matrix' or 'slices', got {kind!r}")
    if isinstance(max_cells, bool) or not isinstance(max_cells, int) or max_cells < 1:
        raise EinderivError(f"max_cells must be a positive integer, got {max_cells!r}")
    given = _values(values, arrays, shapes)
    if isinstance(expr, StructureReport):
        report = expr
    elif isinstance(expr, Expr):
        sizes = {**dict(shapes or {}), **{k: np.shape(v) for k, v in given.items()}}
        report = structure(expr, wrt, shapes=sizes, var_axes=var_axes, function=function)
    else:
        raise EinderivError(f"plot() needs a derivative expression, got {type(expr).__name__}")
    if report.var_axes is None:
        raise EinderivError("plot() needs to know which axes belong to the variable: "
                            "pass wrt='W' (or var_axes=k)")
    show = progress if progress is not None else _dense_size(report, given) >= _PROGRESS_FROM
    bar = progress_bar(3, bool(show), "einderiv.plot: evaluating")
    try:
        tensor = np.asarray(report.expr.evaluate(**given))
        if np.iscomplexobj(tensor):
            raise EinderivError("plot() draws real tensors; this one is complex")
        bar.update(1)
        bar.set_description("einderiv.plot: aggregating")
        caption = title if title is not None else report.title().replace("Structure of ", "")
        if kind == "slices":
            picture = _slices(figure_class, report, tensor, caption, max_cells)
        else:
            picture = _matrix(figure_class, report, tensor, order, caption, max_cells,
                              bool(show))
        bar.update(1)
        bar.set_description("einderiv.plot: drawing")
        if path is not None:
            picture.save(path)
        bar.update(1)
    finally:
        bar.close()
    return picture


def _values(values: Mapping[str, Any] | None, arrays: Mapping[str, Any],
            shapes: Mapping[str, object] | None) -> dict[str, Any]:
    """``values`` and the keyword arrays as one dict; ``shapes`` must agree with them."""
    if values is not None and not isinstance(values, Mapping):
        raise EinderivError(f"plot() takes values as a mapping of names to arrays, got "
                            f"{type(values).__name__}")
    given = dict(values or {})
    both = sorted(set(given) & set(arrays))
    if both:
        raise EinderivError(f"{', '.join(map(repr, both))} given both in values and as a "
                            f"keyword: give each array once")
    given.update(arrays)
    if shapes is not None and not isinstance(shapes, Mapping):
        raise EinderivError(f"shapes must map names to sizes (X=(4, 3)), got "
                            f"{type(shapes).__name__}")
    for name, sizes in (shapes or {}).items():
        if name not in given:
            continue
        want = tuple(sizes) if isinstance(sizes, (tuple, list)) else (sizes,)
        have = np.shape(given[name])
        if len(want) != len(have) or any(isinstance(w, int) and w != h
                                         for w, h in zip(want, have)):
            raise EinderivError(f"shapes gives {name!r} the sizes {want} but its array has "
                                f"shape {have}")
    return given


def _dense_size(report: StructureReport, arrays: Mapping[str, Any]) -> int:
    """The number of entries of the tensor, from the arrays' shapes (0 if unknown)."""
    try:
        sizes = report._int_sizes(arrays)
    except EinderivError:
        return 0
    return math.prod(sizes.get(i, 0) for i in report.expr.free)


def _limits(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    vmax = float(np.max(np.abs(finite))) if finite.size else 1.0
    return (-vmax, vmax) if vmax > 0 else (-1.0, 1.0)


def _row_chunks(tensor: np.ndarray, k: int, order: str) -> tuple[Iterator[np.ndarray], int]:
    """The rows of ``flatten(tensor, k, order)`` as consecutive chunks of about
    ``_CHUNK`` entries each (no copy of the whole matrix), and how many chunks."""
    rows, cols = math.prod(tensor.shape[:k]), math.prod(tensor.shape[k:])
    if order == "F":  # F order: the C-order reshape of the axes reversed
        view = tensor.transpose(tuple(reversed(range(k))) +
                                tuple(reversed(range(k, tensor.ndim))))
    else:
        view = tensor
    lead = view.shape[0] if k and rows else 1
    per_lead = rows // lead if lead else 0
    step = max(1, _CHUNK // max(1, per_lead * cols))
    count = max(1, math.ceil(lead / step))

    def chunks() -> Iterator[np.ndarray]:
        if not k:
            yield view.reshape(1, cols)
            return
        for at in range(0, lead, step):
            yield np.reshape(view[at:at + step], (-1, cols))
    return chunks(), count


def _matrix(figure_class: type[Figure], report: StructureReport, tensor: np.ndarray,
            order: str, caption: str, max_cells: int, show: bool) -> Picture:
    assert report.row_axes is not None
    k = len(report.row_axes)  # the leading axes: the variable's (denominator) or f's
    rows, cols = math.prod(tensor.shape[:k]), math.prod(tensor.shape[k:])
    block = block_size(rows, cols, max_cells)
    if block == (1, 1):
        mat = flatten(tensor, k, order)
    else:
        flatten(np.empty((0,) * tensor.ndim), k, order)  # the same checks of k and order
        chunks, count = _row_chunks(tensor, k, order)
        chunk_bar = progress_bar(count, show, "einderiv.plot: blocks")
        try:
            mat = block_extremes(chunks, rows, cols, block, chunk_bar.update)
        finally:
            chunk_bar.close()
    shown_rows, shown_cols = mat.shape
    fig = figure_class(figsize=(min(3.0 + 0.45 * shown_cols, 14.0),
                                min(2.0 + 0.32 * shown_rows, 14.0)), layout="constrained")
    ax = fig.add_subplot()
    lo, hi = _limits(mat)
    # axes in entries, not cells: a cell of an aggregated picture spans its block
    extent = (-0.5, shown_cols * block[1] - 0.5, shown_rows * block[0] - 0.5, -0.5)
    image = ax.imshow(mat, cmap="RdBu_r", vmin=lo, vmax=hi, interpolation="nearest",
                      aspect="auto", extent=extent)
    ax.set_xlim(-0.5, cols - 0.5)
    ax.set_ylim(rows - 0.5, -0.5)
    fig.colorbar(image, ax=ax, shrink=0.8)
    vshape, fshape = tensor.shape[:k], tensor.shape[k:]
    for edges, line in ((_block_edges(vshape, order), ax.axhline),
                        (_block_edges(fshape, order), ax.axvline)):
        if len(edges) <= _MAX_TICKS:
            for at in edges:
                line(at - 0.5, color="black", linewidth=1.5)
    view = report.flatten_view(order)
    var, fun = report.variable or "x", report.function
    if report.layout != "denominator":
        var, fun = fun, var  # numerator layout: f's entries are the rows
    ax.set_ylabel(f"{view['row_entry']}: row {view['row']} (order {order})")
    ax.set_xlabel(f"{view['col_entry']}: column {view['col']}")
    _ticks(ax.set_yticks, shown_rows, vshape, var, order)
    _ticks(ax.set_xticks, shown_cols, fshape, fun, order)
    note = ""
    if block != (1, 1):
        note = (f"\n{rows} x {cols} entries drawn by blocks of {block[0]} x {block[1]}: "
                f"each cell the entry of largest magnitude in its block")
    ax.set_title(_shorten(caption) + f'\nflatten(T, {k}, order="{order}")' + note, fontsize=9)
    return Picture(fig, "matrix", (rows, cols), block)


def _block_edges(shape: tuple[int, ...], order: str) -> list[int]:
    """Flat positions where the slowest-varying index changes (none for a vector)."""
    if len(shape) < 2:
        return []
    block = math.prod(shape[:-1]) if order == "F" else math.prod(shape[1:])
    total = math.prod(shape)
    return list(range(block, total, block)) if block else []


def _ticks(setter: Callable[..., object], count: int, shape: tuple[int, ...], name: str, order: str) -> None:
    if count > _MAX_TICKS:
        return
    labels = [f"{name}[{','.join(map(str, unravel(r, shape, order)))}]"
              if shape else name for r in range(count)]
    setter(range(count), labels, fontsize=7)


def _shorten(text: str, width: int = 90) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


def _slices(figure_class: type[Figure], report: StructureReport, tensor: np.ndarray,
            caption: str, max_cells: int) -> Picture:
    """One panel per entry of the last axis: ``T[..., i]`` (the variable's shape when
    the function is a vector: ``dZ_i/dW``, X.20 eq. 66-70)."""
    if tensor.ndim < 2:
        raise EinderivError(f"kind='slices' needs a tensor with at least 2 axes, "
                            f"got {tensor.ndim}")
    last = report.expr.free[-1]
    count = min(tensor.shape[-1], _MAX_PANELS)
    ncols = min(count, 4)
    nrows = math.ceil(count / ncols)
    panel = _panel(tensor[..., 0])
    block = block_size(panel.shape[0], panel.shape[1], max_cells)
    height, width = math.ceil(panel.shape[0] / block[0]), math.ceil(panel.shape[1] / block[1])
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
        piece = _panel(tensor[..., n])
        if block != (1, 1):
            piece = block_extremes([piece], piece.shape[0], piece.shape[1], block)
        image = ax.imshow(piece, cmap="RdBu_r", vmin=lo, vmax=hi, interpolation="nearest")
        ax.set_title(f"{last} = {n}", fontsize=8)
        ax.set_yticks(range(piece.shape[0]) if piece.shape[0] <= _MAX_TICKS else [])
        ax.set_xticks(range(piece.shape[1]) if piece.shape[1] <= _MAX_TICKS else [])
        ax.tick_params(labelsize=6)
        ax.set_ylabel(rows_label, fontsize=7)
        ax.set_xlabel(cols_label, fontsize=7)
    if image is not None:  # no panel when the last axis is empty
        fig.colorbar(image, ax=axes, shrink=0.8)
    more = f" (first {count} of {tensor.shape[-1]})" if count < tensor.shape[-1] else ""
    note = "" if block == (1, 1) else (f"\neach cell the entry of largest magnitude in a "
                                       f"block of {block[0]} x {block[1]}")
    fig.suptitle(_shorten(f"{caption}: slices T[{','.join(report.expr.free[:-1])},{last}] "
                          f"along {last}{more}") + note, fontsize=9)
    return Picture(fig, "slices", tensor.shape, block)


def _panel(piece: np.ndarray) -> np.ndarray:
    """One slice as a matrix: its first axis the rows, the others the columns."""
    return piece.reshape(piece.shape[0], -1) if piece.ndim >= 2 else piece.reshape(-1, 1)
