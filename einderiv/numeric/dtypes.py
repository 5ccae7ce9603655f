"""The dtype of a result: numpy's promotion of the arrays given, Python numbers weak.

Evaluation follows numpy's rules (NEP 50): the result's dtype is the promotion of the
arrays' dtypes, and a Python number (``n=100``, ``s=0.5``) takes the arrays' dtype
instead of raising it, so float32 arrays give a float32 result (float16 stays float16,
complex64 stays complex64). Integer and boolean arrays become the promoted floating
type (int arrays alone: float64, as numpy's true division gives), as does a Python
number given with no array at all. A 0-d numpy array or a numpy scalar is an array:
it takes part in the promotion, as in numpy.

>>> import numpy as np
>>> common_dtype([np.ones(3, np.float32), 100])
dtype('float32')
>>> common_dtype([np.arange(3), np.ones(2, np.float32)])
dtype('float64')
>>> common_dtype([np.ones(2, np.float32), 1j])
dtype('complex64')
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ..errors import EvaluationError

__all__ = ["WEAK", "common_dtype", "promote_numpy", "promote_foreign", "is_weak"]

#: Python numbers: weak in the promotion (they take the arrays' dtype).
WEAK = (bool, int, float, complex)


def is_weak(value: Any) -> bool:
    """Whether ``value`` is a Python number (not a numpy scalar)."""
    return type(value) in WEAK


def common_dtype(values: Iterable[Any]) -> np.dtype:
    """numpy's promotion of ``values`` (arrays, dtypes or anything with a ``.dtype``;
    Python numbers weak), made floating where it is integer or boolean."""
    parts = [v if is_weak(v) else np.dtype(getattr(v, "dtype", v)) for v in values]
    if not parts:
        return np.dtype(np.float64)
    dtype = np.result_type(*parts)
    # integers and booleans compute in floats; "O": a Python int beyond int64 alone
    return np.dtype(np.float64) if dtype.kind in "biuO" else dtype


def _as_number(name: str, value: Any, dtype: np.dtype) -> np.ndarray:
    try:
        return np.asarray(value, dtype=dtype)
    except OverflowError:
        raise EvaluationError(f"{name!r} = {value!r} is beyond the range of {dtype}") from None


def promote_numpy(values: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs as numpy arrays: lists and numbers converted, integer and boolean
    arrays and Python numbers cast to the :func:`common_dtype` of all of them
    (:class:`~einderiv.errors.EvaluationError` for anything not numeric). Floating
    and complex arrays are passed on unchanged (numpy promotes them as it computes);
    a subclass (a masked array, ``np.matrix``) becomes the plain array
    ``numpy.asarray`` gives, as documented (its ``@`` and ``*`` differ: a masked
    (3, 4) matrix times its transpose failed inside the Gram product)."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if is_weak(value) or type(value) is np.ndarray:
            out[name] = value
            continue
        try:
            out[name] = np.asarray(value)
        except (ValueError, TypeError) as exc:
            raise EvaluationError(f"{name!r} is not a valid array: {exc}") from None
    for name, value in out.items():
        if not is_weak(value) and value.dtype.kind not in "biufc":
            raise EvaluationError(f"{name!r} must be numeric, got dtype {value.dtype}")
    dtype = common_dtype(out.values())
    for name, value in out.items():
        if is_weak(value):
            out[name] = _as_number(name, value, dtype)
        elif value.dtype.kind in "biu":
            out[name] = value.astype(dtype)
    return out


def promote_foreign(values: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs for a lazy backend (dask): arrays kept as they are (integer and
    boolean ones cast lazily with ``astype``), lists and Python numbers made numpy
    arrays of the :func:`common_dtype`."""
    out = {name: (value if is_weak(value) or hasattr(value, "shape") else np.asarray(value))
           for name, value in values.items()}
    for name, value in out.items():
        if not is_weak(value) and np.dtype(value.dtype).kind not in "biufc":
            raise EvaluationError(f"{name!r} must be numeric, got dtype {value.dtype}")
    dtype = common_dtype(out.values())
    for name, value in out.items():
        if is_weak(value):
            out[name] = _as_number(name, value, dtype)
        elif np.dtype(value.dtype).kind in "biu":
            out[name] = value.astype(dtype)
    return out
