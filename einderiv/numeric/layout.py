"""Flattening a derivative tensor into a matrix (docs/layout.md).

A derivative ``d f / d x`` in denominator layout has the variable's axes first, then
the function's (notes 001_*, A.1; 003_*, Concept 20 and X.18). :func:`flatten` turns
it into a matrix whose rows run over the entries of ``x`` and columns over the entries
of ``f``; in numerator layout (f's axes first) the rows are f's entries.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..core.layouts import DENOMINATOR, check_layout
from ..errors import EinderivError

__all__ = ["flatten"]

_ORDERS = {
    "F": "column-major vec (Magnus & Neudecker): the first index varies fastest",
    "C": "row-major, numpy's default reshape: the last index varies fastest",
}


def flatten(tensor: Any, n_row_axes: int, order: str = "F", *,
            layout: str = DENOMINATOR) -> np.ndarray:
    """Reshape a derivative tensor into a matrix: rows = its first ``n_row_axes``
    axes, columns = the remaining axes. ``layout`` names the tensor's layout (an
    unknown name is a :class:`~einderiv.errors.LayoutError` listing the valid ones):
    in ``"denominator"`` layout (default) the leading axes are the variable's, so
    pass its rank and rows are its entries; in ``"numerator"`` layout they are the
    function's, so pass f's rank and rows are f's entries (the Jacobian).

    ``order="F"`` stacks entries column-major, as ``vec`` in Magnus & Neudecker, so
    that for ``Y = A X B`` the flattened ``dY/dX`` is ``np.kron(B, A.T)`` (the
    transpose of the numerator-layout ``B^T kron A``). ``order="C"`` is numpy's
    row-major reshape.

    >>> import numpy as np, einderiv
    >>> A, X, B = np.random.rand(2, 4), np.random.rand(4, 3), np.random.rand(3, 5)
    >>> d = einderiv.diff("A[i,k]*X[k,l]*B[l,j]", "X")   # shape (4, 3, 2, 5)
    >>> J = einderiv.flatten(d.evaluate(A=A, X=X, B=B), 2, "F")
    >>> bool(np.allclose(J, np.kron(B, A.T)))
    True
    >>> dn = einderiv.diff("A[i,k]*X[k,l]*B[l,j]", "X", layout="numerator")  # (2, 5, 4, 3)
    >>> Jn = einderiv.flatten(dn.evaluate(A=A, X=X, B=B), 2, "F", layout="numerator")
    >>> bool(np.allclose(Jn, np.kron(B.T, A))), bool(np.allclose(Jn, J.T))
    (True, True)
    """
    layout = check_layout(layout)
    if order not in _ORDERS:
        valid = "; ".join(f"{k!r}: {v}" for k, v in _ORDERS.items())
        raise EinderivError(f"unknown order {order!r}; valid orders are {valid}")
    arr = np.asarray(tensor)
    if isinstance(n_row_axes, bool) or not isinstance(n_row_axes, (int, np.integer)) \
            or not 0 <= n_row_axes <= arr.ndim:
        raise EinderivError(
            f"n_row_axes must be an integer from 0 to {arr.ndim} (the tensor's rank), "
            f"got {n_row_axes!r}" + ("" if layout == DENOMINATOR else
                                     "; in numerator layout, pass the function's rank"))
    rows = math.prod(arr.shape[:n_row_axes])
    cols = math.prod(arr.shape[n_row_axes:])
    return np.reshape(arr, (rows, cols), order=order)  # type: ignore[call-overload]
