"""The simplification pipeline as named passes, in order: what :func:`derive_steps`
shows one stage at a time (notes 001_*, A.17-A.22).

:func:`~einderiv.symbolic.simplify.simplify` applies the node rules bottom-up,
interleaved node by node; the passes here apply the same rule functions to a whole
expression one rule at a time, so that a derivation can show each. The last pass is
``simplify`` itself: the final expression is exactly what :func:`einderiv.diff`
returns. Every pass keeps values (tests/test_steps.py checks each on random data).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..core.canonical import sorted_factors
from ..core.ir import Expr, Product, Sum, children, with_children
from .naming import prettify
from .simplify import contract_deltas, simplify
from .terms import flatten_product

__all__ = ["Pass", "PIPELINE", "map_products", "rename_dummies"]


@dataclass(frozen=True)
class Pass:
    """One named pass: ``apply`` maps a whole expression to an equal one."""

    name: str
    detail: str
    apply: Callable[[Expr], Expr]


def map_products(e: Expr, fn: Callable[[Product], Expr]) -> Expr:
    """``e`` with ``fn`` applied to every product, innermost first."""
    rebuilt = with_children(e, [map_products(c, fn) for c in children(e)])
    return fn(rebuilt) if isinstance(rebuilt, Product) else rebuilt


def _contract(p: Product) -> Expr:
    flat = flatten_product(p)
    return contract_deltas(flat) if isinstance(flat, Product) else flat


def rename_dummies(e: Expr) -> Expr:
    """Each top-level term with its factors in canonical order and its summed
    indices named afresh from ``a`` (so equal terms print alike, as in A.19)."""
    terms = e.terms if isinstance(e, Sum) else (e,)
    renamed = []
    for t in terms:
        if isinstance(t, Product):
            t = Product(t.coeff, sorted_factors(t.factors, set(t.out)), t.out)
        renamed.append(prettify(t, set(e.free)))
    if isinstance(e, Sum):
        return Sum(tuple(renamed), e.out, e.hints)
    return renamed[0]


#: The passes, in order (the rules of simplify.py, one at a time, then all of them).
PIPELINE: tuple[Pass, ...] = (
    Pass("flatten products", "products of products as one term each, numbers folded",
         lambda x: map_products(x, flatten_product)),
    Pass("contract deltas", "delta[d,b] with b summed: b renamed to d",
         lambda x: map_products(map_products(x, _contract), flatten_product)),
    Pass("rename dummies", "summed indices named in each term's canonical order",
         rename_dummies),
    Pass("collect like terms", "terms equal up to dummy names added, numbers folded, "
         "identities applied", simplify),
)
