"""The numbers behind the page's heat map: the flattened derivative at small sizes.

Sizes come from the request's integer shapes; a size given by name (``n``) and a
size the request leaves out get small distinct defaults (4, 3, 5, 2, ...). The data
are the request's ``values`` where given, else uniform in [0.5, 1.5) with seed 0
(square matrices made diagonally dominant, so ``inv``/``logdet`` are defined, and
symmetric or diagonal where the request assumes so). The page draws the matrix on a
canvas; no plotting library is needed.

>>> import einderiv
>>> e = einderiv.parse("W[j,i]*A[j]")
>>> h = heatmap(e, einderiv.diff(e, "W"), "W", 1, {"W": (4, 3)}, "denominator", {})
>>> h["rows"], h["cols"], h["sizes"]
(12, 3, {'A': [4], 'W': [4, 3]})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..core.ir import Expr, iter_tensors
from ..core.layouts import DENOMINATOR
from ..core.shapes import check_shapes
from ..core.structures import structures_in
from ..errors import EinderivError, LimitError
from ..numeric.layout import flatten

__all__ = ["heatmap", "MAX_CELLS"]

#: The most cells the heat map draws (and the most entries of one variable).
MAX_CELLS = 4096
_DEFAULTS = (4, 3, 5, 2, 6, 7)


def _sizes(e: Expr, shapes: Mapping[str, tuple], values: Mapping[str, np.ndarray]
           ) -> dict[str, tuple[int, ...]]:
    """An integer shape for every variable of ``e``, filled in one variable at a time
    so that sizes tied by the expression agree."""
    ranks = {t.name: len(t.indices) for t in iter_tensors(e)}
    labels = {t.name: t.indices for t in iter_tensors(e)}
    named: dict[str, int] = {}
    defaults = iter(_DEFAULTS * 8)

    def default(size_name: str | None = None) -> int:
        if size_name is None:
            return next(defaults)
        if size_name not in named:
            named[size_name] = next(defaults)
        return named[size_name]

    known: dict[str, tuple[int, ...]] = {n: tuple(v.shape) for n, v in values.items() if n in ranks}
    for name in sorted(ranks):
        if name not in known and name in shapes:
            known[name] = tuple(s if isinstance(s, int) else default(s) for s in shapes[name])
    for name in sorted(ranks):
        if name in known:
            continue
        index_sizes = check_shapes(e, known)
        fill = default()  # a variable no size reaches: square, so inv/logdet work
        known[name] = tuple(s if isinstance((s := index_sizes.get(i)), int) else fill
                            for i in labels[name])
    check_shapes(e, known)
    return known


def _random(name: str, shape: tuple[int, ...], kind: str | None,
            rng: np.random.Generator) -> np.ndarray:
    a = rng.uniform(0.5, 1.5, size=shape)
    if len(shape) == 2 and shape[0] == shape[1]:
        a = a + shape[0] * np.eye(shape[0])
        if kind == "symmetric":
            a = (a + a.T) / 2
        elif kind == "diagonal":
            a = np.diag(np.diag(a))
    return a


def heatmap(e: Expr, result: Expr, name: str, order: int, shapes: Mapping[str, tuple],
            layout: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """The ``order``-th derivative ``result`` of ``e`` by ``name``, evaluated at small
    sizes and flattened (order F; rows: the entries of the variable the last derivative
    was by in denominator layout, f's in numerator layout; for a Hessian of a scalar,
    the square matrix). Raises :class:`~einderiv.errors.LimitError` where it is too large to draw."""
    values: dict[str, np.ndarray] = {}
    for key, v in given.items():
        try:
            values[key] = np.asarray(v, dtype=float)
        except (TypeError, ValueError):
            raise EinderivError(f"values[{key[:40]!r}] must be a number or nested lists of "
                                f"numbers") from None
        if values[key].size > MAX_CELLS:
            raise LimitError(f"values[{key[:40]!r}] has {values[key].size} entries; the heat "
                             f"map takes at most {MAX_CELLS}")
    sizes = _sizes(e, shapes, values)
    for n, shape in sizes.items():
        if int(np.prod(shape)) > MAX_CELLS:
            raise LimitError(f"{n} has {int(np.prod(shape))} entries at the sizes {shape}; the "
                             f"heat map draws at most {MAX_CELLS}: give smaller sizes")
    kinds = structures_in(e)
    rng = np.random.default_rng(0)
    arrays = {n: values[n] if n in values else _random(n, s, kinds.get(n), rng)
              for n, s in sorted(sizes.items())}
    f_sizes = check_shapes(e, sizes)
    f_shape = [k for i in e.free if isinstance(k := f_sizes.get(i), int)]
    var_shape = sizes.get(name)
    if var_shape is None or len(f_shape) < len(e.free):
        raise EinderivError(f"no sizes for {name if var_shape is None else 'f'}: give shapes")
    cells = int(np.prod(var_shape)) ** order * int(np.prod(f_shape))
    if cells > MAX_CELLS:
        raise LimitError(f"the derivative has {cells} entries at the sizes {sizes}; the heat "
                         f"map draws at most {MAX_CELLS}: give smaller sizes")
    tensor = np.asarray(result.evaluate(**arrays), dtype=float)
    rows = len(var_shape) if layout == DENOMINATOR else len(e.free)
    matrix = flatten(tensor, rows, "F", layout=layout) if tensor.ndim else tensor.reshape(1, 1)
    if matrix.ndim == 1:
        matrix = matrix.reshape(-1, 1)
    finite = np.isfinite(matrix)
    cells_out = [[float(x) if ok else None for x, ok in zip(r, m)]
                 for r, m in zip(matrix.tolist(), finite.tolist())]
    return {"rows": int(matrix.shape[0]), "cols": int(matrix.shape[1]), "values": cells_out,
            "sizes": {n: list(s) for n, s in sorted(sizes.items())},
            "data": "given" if values else "uniform in [0.5, 1.5), seed 0",
            "order": "F"}

