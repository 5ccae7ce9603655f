"""Array kernels of the step kinds, on numpy arrays or arrays that implement numpy's
functions (dask): max-shifted log-sum-exp and softmax (issue 6), terms aligned and
broadcast to a sum's axes, a term placed on a strided diagonal view (no dense identity),
matrices made ready for numpy.linalg. :mod:`einderiv.numeric.execution` calls them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import opt_einsum as oe

from ..core.ir import Index
from .paths import einsum_spec

__all__ = ["linalg_ready", "linalg_back", "determinant", "logsumexp", "softmax", "softmax_all",
           "label_sizes", "aligned", "broadcast", "embed", "diagonal_view"]


def linalg_ready(m: Any) -> Any:
    """numpy.linalg supports float32/64 and complex64/128: promote other floats
    (float16, longdouble) to float64 and other complex numbers (clongdouble) to
    complex128, as numpy does for integers. A dask matrix becomes one chunk along its
    two axes (dask's LU needs square chunks; the matrices of inv, det and solve are
    small next to the data that flows through the products)."""
    if hasattr(m, "rechunk") and m.ndim == 2 and len(m.chunks[0]) + len(m.chunks[1]) > 2:
        return m.rechunk(-1)
    if isinstance(m, np.ndarray) and m.dtype.kind == "f" and m.dtype.itemsize not in (4, 8):
        return m.astype(np.float64)
    if isinstance(m, np.ndarray) and m.dtype.kind == "c" and m.dtype.itemsize not in (8, 16):
        return m.astype(np.complex128)
    return m


def determinant(m: Any, log: bool = False) -> Any:
    """``det(m)``, or ``log |det(m)|`` (by slogdet: no overflow), of a matrix that
    :func:`linalg_ready` prepared; on a dask matrix (one chunk) a lazy 0-d dask array,
    as dask has no det of its own (numpy's would compute it, with a warning)."""
    def one(block: Any) -> Any:
        return np.asarray(np.linalg.slogdet(block)[1] if log else np.linalg.det(block))

    if hasattr(m, "map_blocks"):
        dtype = np.finfo(m.dtype).dtype if log and np.dtype(m.dtype).kind == "c" else m.dtype
        return m.map_blocks(one, drop_axis=[0, 1], dtype=dtype)
    return one(m) if log else np.linalg.det(m)


def linalg_back(result: Any, *originals: Any) -> Any:
    """A linear-algebra result in the dtype numpy's promotion gives ``originals``
    where :func:`linalg_ready` widened them or the library did (float16 in, float16
    out; dask's ``inv`` of float32 is float64); a real result, such as slogdet's, in
    the real type of that precision."""
    target = np.result_type(*(np.dtype(o.dtype) for o in originals))
    if target.kind == "c" and np.dtype(result.dtype).kind != "c":
        target = np.finfo(target).dtype
    if np.dtype(result.dtype) == target:
        return result
    return result.astype(target) if hasattr(result, "astype") else np.asarray(result, target)


def _all_finite(m: Any) -> bool:
    """Whether ``m`` is a numpy array of finite numbers (False for a lazy array: the
    caller then takes the path that needs no answer)."""
    if not isinstance(m, np.ndarray):
        return False
    if m.size == 1 and m.dtype.kind == "f":
        return math.isfinite(m.item())  # one number: no temporary array
    return bool(np.isfinite(m).all())


def softmax(u: Any, axes: tuple[int, ...]) -> Any:
    """``exp(u) / sum exp(u)`` over ``axes``, shifted by the max (no overflow, issue 6);
    where the max is not finite (all -inf: 0/0; inf or nan) the shift is 0, so the
    result is nan there, as ``exp(u - logsumexp(u))`` would be."""
    m = u.max(axis=axes, keepdims=True) if u.size else np.zeros(
        tuple(1 if k in axes else n for k, n in enumerate(u.shape)))
    if not _all_finite(m):
        m = np.where(np.isfinite(m), m, 0.0)
    e = np.exp(u - m)
    total = e.sum(axis=axes, keepdims=True)
    if isinstance(e, np.ndarray):
        e /= total  # e is a new array: divide in place
        return e
    return e / total


def softmax_all(u: np.ndarray) -> np.ndarray:
    """:func:`softmax` over every axis of a non-empty numpy array (a softmax over a
    vector): the same arithmetic, with the max and the sum as numbers."""
    if u.dtype.kind != "f":
        return softmax(u, tuple(range(u.ndim)))
    m = u.max()
    if not math.isfinite(m):
        m = 0.0  # all -inf (0/0), or inf or nan: nan, as the general way gives
    e = np.exp(u - m)
    e /= e.sum()
    return e


def label_sizes(parts: Sequence[tuple[int, tuple[Index, ...], float]], values: Sequence[Any]
                ) -> dict[Index, int]:
    """The size of each label of the terms of a sum, from their values."""
    sizes: dict[Index, int] = {}
    for slot, labels, _ in parts:
        sizes.update(zip(labels, values[slot].shape))
    return sizes


def aligned(v: Any, have: tuple[Index, ...], want: tuple[Index, ...]) -> Any:
    """``v`` transposed to the order of ``want`` with size-1 axes for missing labels."""
    if have == want:
        return v
    present = [i for i in want if i in have]
    perm = [have.index(i) for i in present]
    if perm != list(range(len(perm))):
        v = v.transpose(perm)
    shape = []
    it = iter(v.shape)
    for i in want:
        shape.append(next(it) if i in have else 1)
    return v.reshape(tuple(shape))


def broadcast(v: Any, shape: tuple[int, ...], backend: str) -> Any:
    if backend == "numpy":
        return np.array(np.broadcast_to(v, shape))  # a real array, not a read-only view
    return np.broadcast_to(v, shape)


def embed(inner: Any, rest_labels: tuple[Index, ...], out: tuple[Index, ...],
           pairs: tuple[tuple[Index, Index], ...], backend: str, dtype: np.dtype) -> Any:
    """Place ``inner`` (axes ``rest_labels``) on the diagonal ``keep == gone`` of a
    zero array with axes ``out``."""
    sizes = dict(zip(rest_labels, inner.shape))
    for keep, gone in pairs:
        sizes[gone] = sizes[keep]
    shape = tuple(sizes[i] for i in out)
    if backend != "numpy":
        # Lazy backends: multiply by a dense identity (no in-place writes).
        operands = [inner] + [np.eye(sizes[keep], dtype=dtype) for keep, _ in pairs]
        labels = [rest_labels] + [(keep, gone) for keep, gone in pairs]
        return oe.contract(einsum_spec(labels, out), *operands, backend=backend)
    result = np.zeros(shape, dtype=np.result_type(inner, dtype))
    diagonal_view(result, out, rest_labels, pairs)[...] = inner
    return result


def diagonal_view(total: np.ndarray, out: tuple[Index, ...], rest_labels: tuple[Index, ...],
                   pairs: tuple[tuple[Index, Index], ...]) -> np.ndarray:
    """The writable strided view of ``total`` (axes ``out``) on its diagonal
    ``keep == gone`` for each pair, with axes ``rest_labels``: no copy, no identity."""
    strides = dict(zip(out, total.strides))
    sizes = dict(zip(out, total.shape))
    for keep, gone in pairs:
        strides[keep] += strides.pop(gone)
    return np.lib.stride_tricks.as_strided(
        total, shape=tuple(sizes[i] for i in rest_labels),
        strides=tuple(strides[i] for i in rest_labels), writeable=True)


def logsumexp(u: Any, axes: tuple[int, ...], c: float) -> Any:
    """``log(c * sum exp(u))`` over ``axes``, shifted by the max over them: no overflow
    (issue 6); all -inf (log 0), inf or nan: shifted by 0 there, as numpy would compute."""
    if not axes:
        return np.log(c * np.exp(u))
    m = u.max(axis=axes, keepdims=True) if u.size else np.zeros(
        tuple(1 if k in axes else n for k, n in enumerate(u.shape)))
    if _all_finite(m):
        # the common case: each sum of exp(u - m) is >= 1 (a lazy array: below)
        total = np.log(np.exp(u - m).sum(axis=axes, keepdims=True)) + m
    else:  # all -inf (log 0), or inf/nan: shift by 0 there, as numpy would compute
        m = np.where(np.isfinite(m), m, 0.0)
        with np.errstate(divide="ignore"):
            total = np.log(np.sum(np.exp(u - m), axis=axes, keepdims=True)) + m
    total = total.squeeze(axis=axes)
    return total + np.log(c) if c != 1.0 else total
