"""Definitions in matrix notation: ``Z = W^T X; A = tanh(Z); 2 (V A - T) A^T``.

An index expression that carries definitions (:mod:`einderiv.core.definitions`)
converts to a :class:`Let`: the definitions its form in the names uses, each in matrix
notation (a definition's rows are the first index of its left-hand side), then the
expression in the names. It prints as ``name = ...`` statements joined by ``"; "``
(what :func:`einderiv.parse_matrix` reads back) and evaluates definition by
definition, each once. Where a definition has no matrix form (three indices), the
expression converts without the names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..core.definitions import fold, inline, used_definitions
from ..core.ir import Expr
from ..errors import NotMatrixExpressible
from . import evaluate, printing
from .nodes import _CHILDREN, COLUMN, EVALUATORS, ROW, SCALAR, MatrixExpr

__all__ = ["Let", "with_names"]


@dataclass(frozen=True, repr=False)
class Let(MatrixExpr):
    """``name = value; ...; body``: the body in the names of the definitions."""

    definitions: tuple[tuple[str, MatrixExpr], ...]
    body: MatrixExpr

    @property
    def kind(self) -> str:
        return self.body.kind


def _copy(e: Expr, like: Expr) -> Expr:
    """A fresh node equal to ``e`` with ``like``'s record of the derivative, no names."""
    copy = replace(e)
    object.__setattr__(copy, "derivative_of", like.derivative_of)
    return copy


def with_names(expr: Expr, convert: Callable[[Expr], MatrixExpr],
               convert_definition: Callable[[Expr], MatrixExpr]) -> MatrixExpr:
    """``expr`` converted in the names of its definitions (:class:`Let`); ``convert``
    converts the body (with the options of ``to_matrix``), ``convert_definition`` a
    definition's body (rows: its first free index)."""
    used = used_definitions(expr)
    try:
        defs = tuple((d.name, convert_definition(d.written)) for d in used)
    except NotMatrixExpressible:
        return convert(_copy(inline(expr), expr))
    body = convert(_copy(fold(expr), expr))
    return Let(defs, body) if defs else body


def _children(m: Let) -> tuple[MatrixExpr, ...]:
    return (*(v for _, v in m.definitions), m.body)


def _show(p: Any, m: Let) -> tuple[str, int]:
    separator = r",\quad " if p.latex else "; "
    parts = [f"{p.name(name)} = {p.text(value)}" for name, value in m.definitions]
    return separator.join([*parts, p.text(m.body)]), printing.ADD


def _value(ev: Any, m: Let) -> np.ndarray:
    arrays: dict[str, Any] = dict(ev.arrays)
    for name, value in m.definitions:
        v = _value_of(value, arrays)
        arrays[name] = v.reshape(()) if value.kind == SCALAR else \
            v[:, 0] if value.kind == COLUMN else v[0, :] if value.kind == ROW else v
    return _value_of(m.body, arrays)


def _value_of(m: MatrixExpr, arrays: Mapping[str, Any]) -> np.ndarray:
    return EVALUATORS["numpy"](m, arrays)


_CHILDREN[Let] = _children
printing._SHOW[Let] = _show
evaluate._VALUE[Let] = _value
