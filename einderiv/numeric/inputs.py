"""What a call of a compiled expression was given: which array library the arrays
come from (the backend ``compile()`` picks when none is named, as opt_einsum's
``backend="auto"`` does), the variables in the order the expression shows them,
and the error for a missing or misspelt name.

numpy arrays, Python numbers and lists go with any backend; arrays of two other
libraries in one call (a dask array and a torch tensor) are an error naming them.

>>> import numpy as np
>>> infer_backend({"X": np.ones(3), "n": 4})
'numpy'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..core.ir import Expr, iter_tensors
from ..errors import EinderivError, EvaluationError, did_you_mean

__all__ = ["expressions", "LIBRARIES", "library_of", "infer_backend", "foreign_arrays",
           "wrong_backend", "ordered_variables", "missing_error", "check_flag"]

#: The backend of an array, by the top-level module of its type.
LIBRARIES: dict[str, str] = {"dask": "dask", "jax": "jax", "jaxlib": "jax", "torch": "torch"}


def library_of(value: Any) -> str | None:
    """The backend ``value`` belongs to (``"dask"``, ``"jax"``, ``"torch"``), or None
    for numpy arrays, numbers, lists and anything numpy converts."""
    return LIBRARIES.get(type(value).__module__.partition(".")[0])


def _type_name(value: Any) -> str:
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"


def foreign_arrays(arrays: Mapping[str, Any]) -> dict[str, list[str]]:
    """Library -> the names of the arrays of ``arrays`` that belong to it (numpy and
    numbers left out)."""
    found: dict[str, list[str]] = {}
    for name, value in arrays.items():
        library = library_of(value)
        if library is not None:
            found.setdefault(library, []).append(name)
    return found


def infer_backend(arrays: Mapping[str, Any]) -> str:
    """The backend for these arrays: the one library other than numpy they come from,
    ``"numpy"`` where there is none; :class:`~einderiv.errors.EvaluationError` naming
    the arrays and their types where there are several."""
    found = foreign_arrays(arrays)
    if len(found) > 1:
        said = "; ".join(f"{', '.join(map(repr, names))} "
                         f"{'is a' if len(names) == 1 else 'are'} {library} "
                         f"array{'' if len(names) == 1 else 's'} "
                         f"({_type_name(arrays[names[0]])})"
                         for library, names in found.items())
        raise EvaluationError(f"arrays of different libraries in one call: {said}; pass arrays "
                              "of one library (numpy arrays and numbers go with any)")
    return next(iter(found), "numpy")


def wrong_backend(arrays: Mapping[str, Any], backend: str) -> EvaluationError:
    """The error for arrays of another library than the ``backend`` asked for (there
    must be one)."""
    found = {lib: names for lib, names in foreign_arrays(arrays).items() if lib != backend}
    library, names = next(iter(found.items()))
    return EvaluationError(
        f"{names[0]!r} is a {library} array ({_type_name(arrays[names[0]])}) but "
        f"backend={backend!r} was asked for; leave backend out (it follows the arrays) "
        f"or pass backend={library!r}")


def ordered_variables(exprs: Iterable[Expr]) -> list[str]:
    """The variables of ``exprs`` in the order they first occur (as printed)."""
    seen: dict[str, None] = {}
    for e in exprs:
        for t in iter_tensors(e):
            seen.setdefault(t.name, None)
    return list(seen)


def missing_error(variables: Sequence[str], inputs: Iterable[str],
                  arrays: Mapping[str, Any]) -> EvaluationError:
    """The error for a call that lacks an input: a given name close to a missing one
    is said to be misspelt (``unknown array 'thetaa'; did you mean 'theta'?``)."""
    inputs = list(inputs)
    missing = [n for n in variables if n not in arrays]
    wanted = set(variables) | set(inputs)
    unknown = [n for n in arrays if n not in wanted]
    for name in unknown:
        hint = did_you_mean(name, missing or [n for n in inputs if n not in arrays])
        if hint:
            return EvaluationError(f"unknown array {name!r}; {hint} (the expression uses "
                                   f"{', '.join(variables)})")
    if missing:
        return EvaluationError(f"missing value for {', '.join(map(repr, missing))}; "
                               f"the expression uses {', '.join(variables)}")
    name = next(n for n in inputs if n not in arrays)
    return EvaluationError(
        f"missing value for {name!r}: the expression uses the size of one of its "
        f"axes (size({name}, k), or an axis of the result)")


def expressions(expr: Expr | Sequence[Expr]) -> Expr | tuple[Expr, ...]:
    """``expr``, or a list of expressions as a tuple (compiled into one plan with
    several results); :class:`~einderiv.errors.EinderivError` for anything else."""
    if isinstance(expr, Expr):
        return expr
    if isinstance(expr, (list, tuple)) and expr and all(isinstance(e, Expr) for e in expr):
        return tuple(expr)
    raise EinderivError(f"expected an expression or a non-empty list of expressions, "
                        f"got {type(expr).__name__} {expr!r:.80}")


def check_flag(name: str, value: Any) -> None:
    """:class:`~einderiv.errors.EinderivError` where an on/off option is not a bool (a
    string such as ``"no"`` would read as true)."""
    if not isinstance(value, bool):
        raise EinderivError(f"{name} must be True or False, got {value!r}")
