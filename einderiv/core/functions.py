"""The element-wise function table: one entry per function.

Each :class:`ElementwiseFunction` holds the name used in expressions, the numpy
implementation (numerically stable where a naive formula overflows), the derivative
as an expression of the argument, the LaTeX template, and how generated code spells
it (:mod:`einderiv.numeric.codegen`). Differentiation, printing, evaluation and code export
all read this table; adding a function is adding one line.

The derivative ``f'(u)`` has the same free indices as ``u``; the chain rule in
:mod:`einderiv.diff` multiplies it element-wise with ``du``
(notes 003_*, X.22-X.23: the activation Jacobian is diagonal).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from .ir import Expr, Func, Pow, Product, Sum, number

__all__ = ["ElementwiseFunction", "FUNCTIONS"]


@dataclass(frozen=True)
class ElementwiseFunction:
    name: str
    numpy: Callable[..., object]
    derivative: Callable[[Expr], Expr]
    latex: str  # a format string with one "{}" for the argument
    real_only: bool = False  # defined (or differentiable) for real input only
    # Generated code (einderiv.numeric.codegen): a template with {xp} for the array module
    # (np, jnp or torch) and {x} for the argument; "" means {xp}.<name>({x}).
    code: str = ""
    # Backends that spell the function differently: backend name -> template.
    code_by_backend: Mapping[str, str] = field(default_factory=dict, hash=False)

    def source(self, backend: str, xp: str, x: str) -> str:
        """The function applied to the variable ``x`` in generated code for ``backend``."""
        template = self.code_by_backend.get(backend) or self.code or "{xp}." + self.name + "({x})"
        return template.format(xp=xp, x=x)


def _times(coeff: Fraction | int, *factors: Expr, like: Expr) -> Product:
    """``coeff * factors``, element-wise over the free indices of ``like``."""
    return Product(Fraction(coeff), factors, like.free)


def _one_minus(e: Expr) -> Sum:
    return Sum((number(1), _times(-1, e, like=e)), e.free)


def _square(e: Expr) -> Pow:
    return Pow(e, number(2))


def _sigmoid(x):
    # 1 / (1 + exp(-x)): exp(-x) overflows to inf for x < -709, which gives the right
    # limit 0 (short of the subnormal range), so the warning is silenced; nan stays
    # nan. Twice as fast as exp(-logaddexp(0, -x)), which the generated code uses.
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def _f(name: str, u: Expr) -> Func:
    return Func(name, u)


_TABLE = [
    ElementwiseFunction("exp", np.exp, lambda u: _f("exp", u), r"\exp\left({}\right)"),
    ElementwiseFunction("log", np.log, lambda u: Pow(u, number(-1)), r"\log\left({}\right)"),
    ElementwiseFunction("sin", np.sin, lambda u: _f("cos", u), r"\sin\left({}\right)"),
    ElementwiseFunction("cos", np.cos, lambda u: _times(-1, _f("sin", u), like=u),
                        r"\cos\left({}\right)"),
    ElementwiseFunction("tan", np.tan, lambda u: Sum((number(1), _square(_f("tan", u))), u.free),
                        r"\tan\left({}\right)"),
    ElementwiseFunction("tanh", np.tanh, lambda u: _one_minus(_square(_f("tanh", u))),
                        r"\tanh\left({}\right)"),
    ElementwiseFunction("sigmoid", _sigmoid,
                        lambda u: _times(1, _f("sigmoid", u), _one_minus(_f("sigmoid", u)), like=u),
                        r"\sigma\left({}\right)", real_only=True,
                        code="{xp}.exp(-{xp}.logaddexp(0.0, -{x}))",
                        code_by_backend={"torch": "{xp}.sigmoid({x})",
                                         # one fused XLA loop; exp(-x) = inf gives 0
                                         "jax": "1.0 / (1.0 + {xp}.exp(-{x}))"}),
    ElementwiseFunction("softplus", lambda x: np.logaddexp(0.0, x), lambda u: _f("sigmoid", u),
                        r"\operatorname{{softplus}}\left({}\right)", real_only=True,
                        code="{xp}.logaddexp(0.0, {x})",
                        code_by_backend={"torch": "{xp}.logaddexp({xp}.zeros_like({x}), {x})"}),
    ElementwiseFunction("sqrt", np.sqrt,
                        lambda u: _times(Fraction(1, 2), Pow(_f("sqrt", u), number(-1)), like=u),
                        r"\sqrt{{{}}}"),
    ElementwiseFunction("relu", lambda x: np.maximum(x, 0), lambda u: _f("step", u),
                        r"\operatorname{{relu}}\left({}\right)", real_only=True,
                        code="{xp}.maximum({x}, 0)", code_by_backend={"torch": "{xp}.relu({x})"}),
    ElementwiseFunction("abs", np.abs, lambda u: _f("sign", u), r"\left|{}\right|",
                        real_only=True),
    # Derivatives of step and sign are zero almost everywhere (their jumps are not
    # differentiable; einderiv, like autograd and JAX, returns 0 there).
    ElementwiseFunction("step", lambda x: np.heaviside(x, 0.0),
                        lambda u: Sum((), u.free), r"\operatorname{{step}}\left({}\right)",
                        real_only=True, code="{xp}.heaviside({x}, 0.0)",
                        code_by_backend={"torch": "{xp}.heaviside({x}, {xp}.zeros_like({x}))"}),
    ElementwiseFunction("sign", np.sign, lambda u: Sum((), u.free),
                        r"\operatorname{{sign}}\left({}\right)", real_only=True),
]

FUNCTIONS: Mapping[str, ElementwiseFunction] = {f.name: f for f in _TABLE}
