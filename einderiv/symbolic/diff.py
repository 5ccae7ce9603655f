"""Differentiation index by index: one rule per node type.

``d f / d x[p,q,...]`` is built with the new indices ``p, q, ...`` first, then the
free indices of ``f`` (denominator layout, notes 001_*, A.1; generalised in 003_*,
Concept 20: axes of the derivative = axes of the input + axes of the output).

Rules:

* variable: ``d x[b] / d x[d] = delta[d,b]`` (001_*, A.18); any other tensor: 0.
* product: the product rule, one term per factor (A.10, A.13).
* sum: linearity (A.6).
* element-wise ``f(u)``: ``f'(u) * du`` element-wise (chain rule A.11; the
  activation Jacobian is diagonal, 003_* X.22).
* ``u ** c``: ``c u**(c-1) du``; ``u ** v``: ``u**v (dv log u + v du / u)``.
* ``inv(M)[k,l]``: ``-inv(M)[k,p] dM[p,q] inv(M)[q,l]``.
* ``det(M)``: ``det(M) inv(M)[q,p] dM[p,q]`` (Jacobi's formula; 002_*: d|X|/dX = |X| X^-T).
* ``logdet(M)``: ``inv(M)[q,p] dM[p,q]`` (002_*: d ln|X|/dX = X^-T).
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import Any

from ..core.definitions import inline
from ..core.functions import FUNCTIONS
from ..core.ir import (Delta, Det, Expr, Func, Index, Inv, LogDet, Pow, Product, SizeHint, Sum,
                       Tensor, all_indices, const_value, fresh_index, gc_paused, number, rename)
from ..core.named import Named
from ..core.scopes import outer_origins
from ..errors import EinderivError

__all__ = ["derivative", "variable_rule"]


class _Context:
    def __init__(self, wrt: str, new: tuple[Index, ...], log: list[str] | None = None):
        self.wrt = wrt
        self.new = new
        self.log = log  # the rules applied, for derive_steps (None: not recorded)

    def note(self, rule: str) -> None:
        if self.log is not None and rule not in self.log:
            self.log.append(rule)

    def hints(self, e: Expr) -> tuple[tuple[Index, SizeHint], ...]:
        """Size hints for ``new + e.free``: a derivative may lose every tensor that
        carried an index (a zero, a broadcast), but evaluation still needs its size."""
        origins = outer_origins(e)
        pairs: list[tuple[Index, SizeHint]] = [(n, (self.wrt, axis)) for axis, n in enumerate(self.new)]
        pairs += [(i, origins.get(i)) for i in e.free]
        return tuple(pairs)


def derivative(e: Expr, wrt: str, new: tuple[Index, ...], log: list[str] | None = None
               ) -> Expr:
    """The raw (unsimplified) derivative of ``e`` by the variable ``wrt``, whose
    axes get the labels ``new``. Free indices: ``new + e.free``. A ``log`` list
    receives the name of each rule applied, once, in order of first use."""
    clash = set(new) & all_indices(e)
    if clash:  # pragma: no cover - callers pass fresh labels
        raise EinderivError(f"derivative indices {sorted(clash)} already occur in the expression")
    with gc_paused():
        return _d(e, _Context(wrt, new, log))


def _d(e: Expr, ctx: _Context) -> Expr:
    return _RULES[type(e)](e, ctx)


def _zero(e: Expr, ctx: _Context) -> Expr:
    return Sum((), ctx.new + e.free, ctx.hints(e))


def _tensor(e: Tensor, ctx: _Context) -> Expr:
    if e.name != ctx.wrt:
        return _zero(e, ctx)
    deltas = tuple(Delta(n, i, (e.name, axis))
                   for axis, (n, i) in enumerate(zip(ctx.new, e.indices)))
    if ctx.log is not None:  # spelling out the rule costs more than the derivative
        ctx.note(variable_rule(e.name, ctx.new))
    return Product(Fraction(1), deltas, ctx.new + e.free)


def variable_rule(name: str, new: tuple[Index, ...]) -> str:
    """``d x[b] / d x[d] = delta[d,b]`` spelled with the new labels and placeholders."""
    if not new:
        return f"d {name} / d {name} = 1"
    spare = [c for c in "bcefghijklmnopqrstuvw" if c not in new]
    spare = (spare + [f"{c}{n}" for n in range(len(new)) for c in "bc"])[: len(new)]
    deltas = "*".join(f"delta[{n},{i}]" for n, i in zip(new, spare))
    return f"d {name}[{','.join(spare)}] / d {name}[{','.join(new)}] = {deltas}"


def _product(e: Product, ctx: _Context) -> Expr:
    terms = []
    out = ctx.new + e.out
    involved = [k for k, f in enumerate(e.factors) if ctx.wrt in f.variables]
    if len(involved) > 1:
        ctx.note("product rule")
    for k in involved:
        f = e.factors[k]
        rest = e.factors[:k] + e.factors[k + 1:]
        terms.append(Product(e.coeff, (*rest, _d(f, ctx)), out))
    return Sum(tuple(terms), out, ctx.hints(e))


def _sum(e: Sum, ctx: _Context) -> Expr:
    terms = tuple(_d(t, ctx) for t in e.terms if ctx.wrt in t.variables)
    return Sum(terms, ctx.new + e.out, ctx.hints(e))


def _func(e: Func, ctx: _Context) -> Expr:
    if ctx.wrt not in e.variables:
        return _zero(e, ctx)
    outer = FUNCTIONS[e.name].derivative(e.arg)
    ctx.note(f"chain rule for {e.name}")
    return Product(Fraction(1), (outer, _d(e.arg, ctx)), ctx.new + e.free)


def _pow(e: Pow, ctx: _Context) -> Expr:
    if ctx.wrt not in e.variables:
        return _zero(e, ctx)
    out = ctx.new + e.free
    k = const_value(e.exponent)
    if ctx.wrt not in e.exponent.variables:
        ctx.note("quotient rule" if k is not None and k < 0 else "power rule")
        if k is not None:
            power = Pow(e.base, number(k - 1))
            return Product(k, (power, _d(e.base, ctx)), out)
        minus_one = Sum((e.exponent, number(-1)), ())
        return Product(Fraction(1), (e.exponent, Pow(e.base, minus_one), _d(e.base, ctx)), out)
    # u ** v = exp(v log u): d = u**v * (dv * log u + v * du / u)
    ctx.note("power rule for u**v = exp(v log u)")
    du_term = Product(Fraction(1), (e.exponent, Pow(e.base, number(-1)), _d(e.base, ctx)), out) \
        if ctx.wrt in e.base.variables else Sum((), out)
    dv_term = Product(Fraction(1), (Func("log", e.base), _d(e.exponent, ctx)), out)
    return Product(Fraction(1), (e, Sum((dv_term, du_term), out)), out)


def _matrix_derivative(arg: Expr, ctx: _Context, p: Index, q: Index) -> Expr:
    """``d arg[p,q]``: the derivative of the closed matrix argument, its axes
    relabelled ``p, q`` (free: new + (p, q))."""
    inner = _d(arg, ctx)
    return rename(inner, {arg.free[0]: p, arg.free[1]: q})


def _inv(e: Inv, ctx: _Context) -> Expr:
    if ctx.wrt not in e.variables:
        return _zero(e, ctx)
    p, q = fresh_index(), fresh_index()
    row, col = e.indices
    ctx.note("inverse: d inv(M) = -inv(M) dM inv(M)")
    dm = _matrix_derivative(e.arg, ctx, p, q)
    factors = (Inv(e.arg, (row, p)), dm, Inv(e.arg, (q, col)))
    return Product(Fraction(-1), factors, ctx.new + e.free)


def _det(e: Det, ctx: _Context) -> Expr:
    if ctx.wrt not in e.variables:
        return _zero(e, ctx)
    p, q = fresh_index(), fresh_index()
    ctx.note("Jacobi's formula: d det(M) = det(M) inv(M)[q,p] dM[p,q]")
    dm = _matrix_derivative(e.arg, ctx, p, q)
    return Product(Fraction(1), (e, Inv(e.arg, (q, p)), dm), ctx.new)


def _logdet(e: LogDet, ctx: _Context) -> Expr:
    if ctx.wrt not in e.variables:
        return _zero(e, ctx)
    p, q = fresh_index(), fresh_index()
    ctx.note("d logdet(M) = inv(M)[q,p] dM[p,q]")
    dm = _matrix_derivative(e.arg, ctx, p, q)
    return Product(Fraction(1), (Inv(e.arg, (q, p)), dm), ctx.new)


def _named(e: Named, ctx: _Context) -> Expr:
    """A use of a definition, where it is not read as a name (symbolic.backprop is the
    rule through names): the derivative of its body, written out."""
    return _d(inline(e), ctx)


#: The rule for each node type: each takes its own node type (looked up by exact type).
_RULES: dict[type, Callable[[Any, _Context], Expr]] = {
    Named: _named,
    Tensor: _tensor,
    Delta: _zero,
    Product: _product,
    Sum: _sum,
    Func: _func,
    Pow: _pow,
    Inv: _inv,
    Det: _det,
    LogDet: _logdet,
}
