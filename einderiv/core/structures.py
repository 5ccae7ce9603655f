"""Assumptions on variables (issue 17): symmetric and diagonal matrices.

An assumption travels on the IR, as the ``assumed`` field of each :class:`Tensor`
node of the variable (part of equality), so every cache and canonical key stays a
pure function of the node. :data:`STRUCTURES` is the one table of kinds; the text
form of an expression does not show them (they come from ``assume=``).

What the kinds mean for the rest of the package:

* canonical keys (:mod:`einderiv.core.canonical`) treat the two index slots of a
  symmetric matrix, and of the inverse of one, as unordered (``x[i]*S[i,j]*y[j]`` and
  ``y[i]*S[i,j]*x[j]`` are one term);
* a derivative by a structured variable is projected onto its space
  (:mod:`einderiv.symbolic.structured`; docs/structured.md);
* evaluation refuses an array that does not have the structure
  (:func:`check_values`), and matrix notation prints ``S^T`` as ``S``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..errors import EinderivError, EvaluationError
from .ir import Expr, Inv, Tensor, children, iter_tensors, with_children

__all__ = ["Structure", "STRUCTURES", "RTOL", "structure_of", "normalize_assume",
           "apply_assumptions", "is_symmetric", "symmetric_matrix", "check_values",
           "structures_in", "flipped"]


@dataclass(frozen=True)
class Structure:
    """A kind of structured square matrix: its name, what it means, and its rules."""

    name: str
    description: str
    symmetric: bool  # S^T = S: index slots unordered, S^T -> S, S^-T -> S^-1
    diagonal: bool  # off-diagonal entries are zero


#: The kinds of assumption, by name.
STRUCTURES: dict[str, Structure] = {
    "symmetric": Structure(
        "symmetric", "S[i,j] = S[j,i]; the gradient is sym(G) = (G + G^T)/2", True, False),
    "diagonal": Structure(
        "diagonal", "D[i,j] = 0 for i != j; the gradient is diag(diag(G))", True, True),
}

#: Evaluation tolerance: an array passes for symmetric when
#: ``max|S - S^T| <= RTOL * max|S|``, for diagonal when every off-diagonal entry is
#: at most ``RTOL * max|D|`` in magnitude.
RTOL = 1e-8


def structure_of(kind: str) -> Structure:
    """The entry of :data:`STRUCTURES` named ``kind``; an error lists the valid names."""
    found = STRUCTURES.get(kind) if isinstance(kind, str) else None
    if found is None:
        raise EinderivError(f"unknown assumption {kind!r}; valid: "
                            + ", ".join(f"{k} ({s.description})" for k, s in STRUCTURES.items()))
    return found


def normalize_assume(assume: Mapping[str, str] | None) -> dict[str, str]:
    """``assume`` checked: variable name -> a kind of :data:`STRUCTURES`."""
    if not assume:
        return {}
    if not isinstance(assume, Mapping):
        raise EinderivError("assume must map variable names to kinds, e.g. "
                            "{'S': 'symmetric'}")
    out = {}
    for name, kind in assume.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise EinderivError(f"assume: {name!r} is not a variable name")
        out[name] = structure_of(kind).name
    return out


def _check_shape(name: str, kind: str, shape: Any) -> None:
    if shape is None:
        return
    shape = tuple(shape)
    if len(shape) != 2 or (isinstance(shape[0], int) and isinstance(shape[1], int)
                           and shape[0] != shape[1]):
        raise EinderivError(f"{name!r} is assumed {kind}, which needs a square matrix, "
                            f"but its shape is {shape}")


def apply_assumptions(e: Expr, assume: Mapping[str, str] | None,
                      shapes: Mapping[str, Any] | None = None) -> Expr:
    """``e`` with each tensor named in ``assume`` marked with its kind. A variable
    assumed structured must be a square matrix: used with two indices, and square
    where ``shapes`` gives its shape (else an :class:`EinderivError`)."""
    kinds = normalize_assume(assume)
    if not kinds:
        return e
    for name, kind in kinds.items():
        _check_shape(name, kind, (shapes or {}).get(name))
    done: dict[int, Expr] = {}

    def mark(node: Expr) -> Expr:
        found = done.get(id(node))
        if found is not None:
            return found
        if isinstance(node, Tensor):
            kind = kinds.get(node.name)
            if kind is None or node.assumed == kind:
                new: Expr = node
            elif len(node.indices) != 2:
                raise EinderivError(
                    f"{node.name!r} is assumed {kind}, which needs a square matrix, but it "
                    f"is used with {len(node.indices)} ind{'ex' if len(node.indices) == 1 else 'ices'}")
            else:
                new = replace(node, assumed=kind)
        else:
            kids = children(node)
            marked = [mark(c) for c in kids]
            new = node if all(a is b for a, b in zip(marked, kids)) else with_children(node, marked)
        done[id(node)] = new
        return new

    return mark(e)


def structures_in(e: Expr) -> dict[str, str]:
    """Variable name -> kind, for the structured tensors of ``e``."""
    return {t.name: t.assumed for t in iter_tensors(e) if t.assumed}


def symmetric_matrix(arg: Expr) -> bool:
    """Whether the closed matrix ``arg`` (two free labels) is known symmetric: a
    symmetric variable, or the inverse of a symmetric matrix."""
    if isinstance(arg, Tensor):
        return is_symmetric(arg)
    if isinstance(arg, Inv):
        return arg.indices[0] != arg.indices[1] and symmetric_matrix(arg.arg)
    return False


def is_symmetric(f: Expr) -> bool:
    """Whether the factor ``f`` is a matrix known symmetric, with two distinct labels
    (so its two index slots may be swapped)."""
    if isinstance(f, Tensor):
        return f.assumed is not None and STRUCTURES[f.assumed].symmetric \
            and len(f.indices) == 2 and f.indices[0] != f.indices[1]
    if isinstance(f, Inv):
        return f.indices[0] != f.indices[1] and symmetric_matrix(f.arg)
    return False


def flipped(f: Expr) -> Expr:
    """A symmetric factor with its two labels swapped (the same values)."""
    if isinstance(f, Tensor):
        return replace(f, indices=f.indices[::-1])
    assert isinstance(f, Inv)
    return Inv(f.arg, (f.indices[1], f.indices[0]))


def check_values(kinds: Mapping[str, str], arrays: Mapping[str, Any]) -> None:
    """Raise :class:`EvaluationError` where an array given for a structured variable
    lacks its structure (tolerance :data:`RTOL`, relative to the largest entry). A
    lazy array (one with ``.compute()``, dask) is not checked: that would compute it."""
    for name, kind in kinds.items():
        if name not in arrays:
            continue
        value = arrays[name]
        if callable(getattr(value, "compute", None)):
            continue  # a lazy (dask) array: checking it would compute it
        try:
            a = np.asarray(value)
        except Exception:  # noqa: BLE001 -- a backend's tensor: checked as numpy can
            continue
        if a.ndim != 2 or a.shape[0] != a.shape[1]:
            raise EvaluationError(f"{name!r} is assumed {kind} but was given shape "
                                  f"{tuple(a.shape)}, not a square matrix")
        if a.dtype.kind not in "biufc" or a.size == 0:
            continue
        scale = float(np.max(np.abs(a)))
        if kind == "symmetric":
            off = float(np.max(np.abs(a - a.T)))
            what = f"max |{name} - {name}^T|"
        else:
            off = float(np.max(np.abs(a - np.diag(np.diag(a)))))
            what = f"max off-diagonal |{name}|"
        if off > RTOL * scale:
            raise EvaluationError(
                f"{name!r} is assumed {kind} but the array given is not ({what} = {off:.3g}, "
                f"tolerance {RTOL:g} * max|{name}| = {RTOL * scale:.3g}); a derivative by a "
                f"structured variable holds only on its space")
