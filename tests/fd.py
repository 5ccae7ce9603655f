"""Central finite differences, written independently of einderiv: the one numeric
reference of the test suite.

API (every ``f`` takes a dict of arrays and returns an array; ``name`` is the key of
the array to differentiate by; results are in denominator layout like
:func:`einderiv.diff`, shape ``x.shape + f.shape``):

* :func:`central_diff` -- the first derivative, by the 3-point (``accuracy=2``,
  default) or 5-point (``accuracy=4``) central stencil;
* :func:`central_diff_with_error` -- the same and an estimate of its error (the change
  between steps ``eps`` and ``eps/2``), for comparisons that must know whether finite
  differences have converged (random expressions);
* :func:`central_hessian` -- second derivatives by nested central differences;
* :func:`assert_close_to_fd` -- the comparison used with them.

A function of one array is wrapped: ``central_diff(lambda a: g(a["x"]), {"x": x}, "x")``.
``einderiv.check`` has its own finite differences; it is tested separately and never
used as a reference.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

Arrays = Mapping[str, np.ndarray]


#: Offsets and weights of the central stencils, by order of accuracy: the derivative
#: is ``sum(w * f(x + k h)) / (denominator * h)``.
_STENCILS = {2: (((-1, -1), (1, 1)), 2),
             4: (((-2, 1), (-1, -8), (1, 8), (2, -1)), 12)}


def central_diff(f: Callable[[Arrays], np.ndarray], arrays: Arrays, name: str,
                 eps: float = 1e-6, *, accuracy: int = 2) -> np.ndarray:
    """d f / d arrays[name] in denominator layout: shape ``x.shape + f.shape``.

    Each entry ``x_k`` is moved by multiples of ``h = eps * max(1, |x_k|)``: slot ``k``
    is ``(f(x + h e_k) - f(x - h e_k)) / (2 h)`` (``accuracy=2``) or
    ``(f(x - 2h e_k) - 8 f(x - h e_k) + 8 f(x + h e_k) - f(x + 2h e_k)) / (12 h)``
    (``accuracy=4``). The caller's arrays are not touched.
    """
    if accuracy not in _STENCILS:
        raise ValueError(f"accuracy must be one of {sorted(_STENCILS)}, not {accuracy!r}")
    stencil, denominator = _STENCILS[accuracy]
    x = np.array(arrays[name], dtype=float)  # a copy: the caller's array is not touched
    base = np.asarray(f(dict(arrays)), dtype=float)
    out = np.empty(x.shape + base.shape)
    for k in np.ndindex(*x.shape):
        h = eps * max(1.0, abs(float(x[k])))
        total = 0.0
        for offset, weight in stencil:
            moved = x.copy()
            moved[k] += offset * h
            value = np.asarray(f({**arrays, name: moved}), dtype=float)
            total = total + (value if weight == 1 else weight * value)
        out[k] = total / (denominator * h)
    return out


def central_diff_with_error(f: Callable[[Arrays], np.ndarray], arrays: Arrays, name: str,
                            eps: float = 1e-3, *, accuracy: int = 4
                            ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`central_diff` at step ``eps / 2`` and, entry by entry, an estimate of its
    error: its absolute difference from :func:`central_diff` at step ``eps``."""
    coarse = central_diff(f, arrays, name, eps, accuracy=accuracy)
    fine = central_diff(f, arrays, name, eps / 2, accuracy=accuracy)
    return fine, np.abs(fine - coarse)


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
