"""Central finite differences, written independently of einderiv.

Used by the identity tests as a second, numeric reference next to the closed forms
of tests/cases.py. ``einderiv.check`` has its own finite differences; it is tested
separately and never used as a reference.
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

Arrays = Mapping[str, np.ndarray]


def central_diff(f: Callable[[Arrays], np.ndarray], arrays: Arrays, name: str,
                 eps: float = 1e-6) -> np.ndarray:
    """d f / d arrays[name] in denominator layout: shape ``x.shape + f.shape``.

    Each entry of ``x`` is moved by ``±h`` with ``h = eps * max(1, |x_k|)`` and
    ``(f(x + h e_k) - f(x - h e_k)) / (2 h)`` fills slot ``k``.
    """
    x = np.array(arrays[name], dtype=float)  # a copy: the caller's array is not touched
    base = np.asarray(f(dict(arrays)), dtype=float)
    out = np.empty(x.shape + base.shape)
    for k in np.ndindex(*x.shape):
        h = eps * max(1.0, abs(float(x[k])))
        xp, xm = x.copy(), x.copy()
        xp[k] += h
        xm[k] -= h
        fp = np.asarray(f({**arrays, name: xp}), dtype=float)
        fm = np.asarray(f({**arrays, name: xm}), dtype=float)
        out[k] = (fp - fm) / (2 * h)
    return out


def central_hessian(f: Callable[[Arrays], np.ndarray], arrays: Arrays, name: str,
                    eps: float = 1e-4) -> np.ndarray:
    """Second derivative by nested central differences: shape ``x.shape * 2 + f.shape``;
    slot ``[p, q]`` is d/dx_p (d f/dx_q)."""
    return central_diff(lambda a: central_diff(f, a, name, eps), arrays, name, eps)


def assert_close_to_fd(got: np.ndarray, numeric: np.ndarray, rtol: float = 1e-5) -> None:
    """``got`` equals ``numeric`` in shape and, entry by entry, up to finite-difference
    error relative to the largest entry."""
    got = np.asarray(got)
    assert got.shape == numeric.shape, f"shape {got.shape}, finite differences give {numeric.shape}"
    scale = max(1.0, float(np.max(np.abs(numeric))) if numeric.size else 0.0)
    np.testing.assert_allclose(got, numeric, rtol=rtol, atol=rtol * scale)
