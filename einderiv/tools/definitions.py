"""Definitions at work: their values, and the chain rule through them.

:func:`evaluate_named` evaluates an expression with definitions (``Z[i,n] = ...;
A[i,n] = tanh(Z[i,n]); ...``, docs/language.md) name by name: each definition once,
from its body as written with the names before it given their values, then the
expression in the names (:func:`einderiv.core.definitions.fold`); it returns the value
and the intermediates. :func:`chain_steps` gives, for :func:`einderiv.derive_steps`,
the derivatives by the named pieces between the expression and a variable: the
backpropagation of notes 003_*, X.21-X.23 (``dL/dA``, then ``dL/dZ`` through
``A = tanh(Z)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..api import differentiate, parse_with_ranks
from ..core.definitions import Definition, Program, fold
from ..core.ir import Expr
from ..core.shapes import normalize_shapes
from ..errors import EinderivError
from ..symbolic.definitions import with_program
from ..symbolic.syntax import parse_wrt

__all__ = ["evaluate_named", "chain_steps"]


def evaluate_named(expr: Expr | str, **arrays: Any) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The value of ``expr`` and of each of its definitions (name -> array, axes in the
    order of the definition's left-hand side), each definition computed once.

    >>> import numpy as np, einderiv
    >>> text = "Z[i,n] = W[j,i]*X[j,n]; A[i,n] = tanh(Z[i,n]); sum[i,n](A[i,n]**2)"
    >>> W, X = np.ones((4, 3)), np.full((4, 5), 0.1)
    >>> value, named = einderiv.evaluate_named(text, W=W, X=X)
    >>> sorted(named), named["Z"].shape
    (['A', 'Z'], (3, 5))
    >>> bool(np.isclose(value, np.sum(np.tanh(W.T @ X) ** 2)))
    True
    """
    e = parse_with_ranks(expr, {})[0]
    program = e.definitions
    if not isinstance(program, Program):
        return e.evaluate(**arrays), {}
    values: dict[str, np.ndarray] = {}
    for d in program.definitions:
        values[d.name] = np.asarray(d.written.evaluate(**arrays, **values))
    folded = fold(e, program)
    return folded.evaluate(**arrays, **values), values


def chain_steps(e: Expr, wrt: str, shapes: Mapping[str, object] | None = None
                ) -> list[tuple[Definition, Definition | None, Expr]]:
    """For each definition between ``e`` and the variable of ``wrt`` (the last first):
    the definition, the later one through which the derivative comes (None: ``e``
    itself), and the derivative of ``e`` by its name (printed in the names)."""
    program = e.definitions
    if not isinstance(program, Program) or program.written is None:
        return []
    name, _ = parse_wrt(wrt)
    shape_map = normalize_shapes(shapes)
    depends: set[str] = {name}
    for d in program.definitions:
        if d.written.variables & depends:
            depends.add(d.name)
    out = []
    for d in reversed(program.definitions):
        if d.name not in depends or d.name == name:
            continue
        users = [u for u in program.definitions if d.name in u.written.variables]
        if program.written is not None and d.name in program.written.variables:
            through = None
        elif users:
            through = users[0]
        else:  # pragma: no cover - an unused definition is warned about, never here
            continue
        try:
            derivative = differentiate(e, d.name, shape_map, ranks=parse_with_ranks(e, {})[1])[1]
        except EinderivError:  # pragma: no cover - a name's derivative always exists
            continue
        out.append((d, through, with_program(derivative, program.without_written())))
    return out
