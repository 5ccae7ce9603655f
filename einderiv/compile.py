"""Compiled evaluation: plan once, evaluate many times (issue 5; being built)."""

from __future__ import annotations

from typing import Any, Mapping

from .ir import Expr

__all__ = ["compile_expr", "CompiledExpr"]


class CompiledExpr:
    """A planned expression; call it with the arrays as keyword arguments."""

    def __init__(self, expr: Expr):
        self.expr = expr

    def __call__(self, **arrays: Any):
        return self.expr.evaluate(**arrays)


def compile_expr(expr: Expr, shapes: Mapping[str, Any] | None = None, backend: str = "numpy",
                 **options: Any) -> CompiledExpr:
    return CompiledExpr(expr)
