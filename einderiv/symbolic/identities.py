"""Identities of the ML functions as named rules (issue 15): one table entry each.

The simplifier (:mod:`einderiv.symbolic.simplify`) applies them; :func:`derive_steps` lists
the ones that fired. Every entry keeps values (the tests check each on random data,
and a hypothesis property over the whole float range); each fires only where it
makes the expression shorter, more stable, or canonical.

========================  ==========================================  ================
name                      identity                                    fires
========================  ==========================================  ================
``exp-log``               ``exp(log(u)) = u`` (u > 0)                  always
``log-exp``               ``log(exp(u)) = u``                          always
``softplus``              ``log(1 + exp(u)) = softplus(u)``            always (stable)
``sigmoid-of-exp``        ``(1 + exp(u))**-1 = sigmoid(-u)``           always (stable)
``log-sigmoid``           ``log(sigmoid(u)) = -softplus(-u)``          always (stable)
``log-one-minus-sigmoid`` ``log(1 - sigmoid(u)) = -softplus(u)``       always (stable)
``sigmoid-complement``    ``1 - sigmoid(-u) = sigmoid(u)``             always (shorter)
``sigmoid-reflection``    ``sigmoid(-u) = 1 - sigmoid(u)``             where terms then
                                                                      cancel (shorter)
``power-of-product``      ``(u v)**k = u**k v**k`` (k an integer,      always
                          nothing summed in ``u v``)
``cancel-equal-factors``  ``f(X[a,b] w[b]) / f(X[a,h] w[h]) = 1``      always
``multiply-out``          ``y (1 - s) - (1 - y) s = y - s``            where shorter
========================  ==========================================  ================

``sigmoid-reflection`` gives the textbook BCE gradient ``X^T (sigmoid(X w) - y)``,
accurate to the rounding of its terms, not relative to a tiny result: with every label
1 and every margin over 37 it is exactly 0 where ``-X^T sigmoid(-X w)`` is about
``-4e-18 X``. ``sigmoid(-u) sigmoid(u)`` is left as it is: it is accurate in both tails, where
``(1 - sigmoid(u)) sigmoid(u)`` is 0 for ``u > 37`` (tests/test_numerics.py).

The derivative rules of the functions (``sigmoid' = sigmoid (1 - sigmoid)``,
``softplus' = sigmoid``, ``tanh' = 1 - tanh**2``) are entries of
:data:`einderiv.core.functions.FUNCTIONS`.

:func:`recording` collects the names of the identities that fire inside it;
outside it, :func:`note` costs one context-variable lookup.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from fractions import Fraction

from ..core.ir import Expr, Func, Product, Sum, children, const_value, with_children

__all__ = ["Identity", "IDENTITIES", "FUNCTION_IDENTITIES", "recording", "note", "negated", "is_negated",
           "one_plus_exp", "sigmoid_complement", "has_both_sigmoids", "reflect_sigmoids"]


@dataclass(frozen=True)
class Identity:
    """A named identity: ``statement`` as the docs and :func:`derive_steps` print it."""

    name: str
    statement: str


IDENTITIES: Mapping[str, Identity] = {i.name: i for i in [
    Identity("exp-log", "exp(log(u)) = u"),
    Identity("log-exp", "log(exp(u)) = u"),
    Identity("softplus", "log(1 + exp(u)) = softplus(u)"),
    Identity("sigmoid-of-exp", "(1 + exp(u))**-1 = sigmoid(-u)"),
    Identity("log-sigmoid", "log(sigmoid(u)) = -softplus(-u)"),
    Identity("log-one-minus-sigmoid", "log(1 - sigmoid(u)) = -softplus(u)"),
    Identity("sigmoid-complement", "1 - sigmoid(-u) = sigmoid(u)"),
    Identity("sigmoid-reflection", "sigmoid(-u) = 1 - sigmoid(u), where terms then cancel"),
    Identity("power-of-product", "(u v)**k = u**k v**k, k an integer, element-wise"),
    Identity("cancel-equal-factors", "f(u)**p f(u)**q = f(u)**(p+q), up to dummy names"),
    Identity("multiply-out", "y (1 - s) - (1 - y) s = y - s: multiplied out where shorter"),
]}

_FIRED: ContextVar[list[str] | None] = ContextVar("einderiv_identities_fired", default=None)


def note(name: str) -> None:
    """Record that the identity ``name`` fired (when inside :func:`recording`)."""
    fired = _FIRED.get()
    if fired is not None and name not in fired:
        fired.append(name)


@contextlib.contextmanager
def recording() -> Iterator[list[str]]:
    """Collect the names of the identities that fire inside the block, in order."""
    fired: list[str] = []
    token = _FIRED.set(fired)
    try:
        yield fired
    finally:
        _FIRED.reset(token)


# ------------------------------------------------------------------ patterns


def negated(w: Expr) -> Expr:
    """``-w`` (raw: the caller simplifies it)."""
    if isinstance(w, Product):
        return Product(-w.coeff, w.factors, w.out)
    return Product(Fraction(-1), (w,), w.free)


def is_negated(w: Expr) -> bool:
    """Whether ``w`` is written with a minus sign (a product with a negative coefficient)."""
    return isinstance(w, Product) and w.coeff < 0 and bool(w.factors)


def one_plus_exp(s: Expr) -> Expr | None:
    """``w`` if ``s`` is ``1 + exp(w)`` (the pattern of the logistic loss), else None."""
    return _one_and(s, 1, "exp")


def sigmoid_complement(s: Expr) -> Expr | None:
    """``u`` if ``s`` is ``1 - sigmoid(u)``, else None."""
    return _one_and(s, -1, "sigmoid")


def _one_and(s: Expr, sign: int, name: str) -> Expr | None:
    """``w`` if ``s`` is ``1 + sign*name(w)`` with ``w`` carrying all of ``s``'s axes."""
    if not isinstance(s, Sum) or len(s.terms) != 2:
        return None
    one, other = sorted(s.terms, key=lambda t: const_value(t) is None)
    if const_value(one) != 1:
        return None
    if sign < 0:
        if not (isinstance(other, Product) and other.coeff == -1 and len(other.factors) == 1):
            return None
        other = other.factors[0]
    if not isinstance(other, Func) or other.name != name:
        return None
    return other.arg if set(other.arg.free) == set(s.out) else None


def _one_minus(f: Expr) -> Sum:
    return Sum((Product(Fraction(1), (), ()), Product(Fraction(-1), (f,), f.free)), f.free)


def _softplus(w: Expr, sign: int) -> Expr:
    return Product(Fraction(sign), (Func("softplus", w),), w.free)


def _inner_of(name: str) -> Callable[[Expr], Expr | None]:
    """``outer(name(u)) -> u``: for a function and its inverse."""
    return lambda a: a.arg if isinstance(a, Func) and a.name == name else None


def _softplus_of_one_plus_exp(a: Expr) -> Expr | None:
    w = one_plus_exp(a)
    return None if w is None else Func("softplus", w)


def _log_sigmoid(a: Expr) -> Expr | None:
    if isinstance(a, Func) and a.name == "sigmoid":
        return _softplus(negated(a.arg), -1)
    return None


def _log_one_minus_sigmoid(a: Expr) -> Expr | None:
    u = sigmoid_complement(a)
    return None if u is None else _softplus(u, -1)


#: Rewrites of ``outer(arg)`` by the outer function's name, tried in order: each
#: takes the simplified argument and returns the raw replacement (simplified again by
#: the caller) or None. Keyed by the identity's name in :data:`IDENTITIES`.
FUNCTION_IDENTITIES: Mapping[str, tuple[tuple[str, Callable[[Expr], Expr | None]], ...]] = {
    "exp": (("exp-log", _inner_of("log")),),
    "log": (
        ("log-exp", _inner_of("exp")),
        ("softplus", _softplus_of_one_plus_exp),
        ("log-sigmoid", _log_sigmoid),
        ("log-one-minus-sigmoid", _log_one_minus_sigmoid),
    ),
}


def has_both_sigmoids(e: Expr) -> bool:
    """Whether ``e`` holds a ``sigmoid(-u)`` and a sigmoid of an argument without a
    minus sign (only then can :func:`reflect_sigmoids` let terms cancel)."""
    seen = [False, False]
    stack = [e]
    while stack:
        n = stack.pop()
        if isinstance(n, Func) and n.name == "sigmoid":
            seen[is_negated(n.arg)] = True
            if all(seen):
                return True
        stack.extend(children(n))
    return False


def reflect_sigmoids(e: Expr) -> Expr:
    """``e`` with every ``sigmoid(-u)`` written ``1 - sigmoid(u)`` (raw; the caller
    simplifies and keeps the result only where it is shorter)."""
    if isinstance(e, Func) and e.name == "sigmoid" and is_negated(e.arg):
        return _one_minus(Func("sigmoid", negated(e.arg)))
    kids = children(e)
    if not kids:
        return e
    new = [reflect_sigmoids(k) for k in kids]
    return e if all(n is k for n, k in zip(new, kids)) else with_children(e, new)
