"""Pieces of the simplifier that call nothing back: node counts, canonical term keys,
number folding, the flattening of products, axis order. Pure functions of their
arguments; :mod:`einderiv.symbolic.simplify` builds its rules from them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import TypeGuard

from ..core.broadcast import explicit_broadcast
from ..core.canonical import (Key, canonical_key, order_factors, product_parts, same_factors,
                              sort_key)
from ..core.ir import (Delta, Expr, Func, Index, Inv, Pow, Product, SizeHint, Sum, Tensor,
                       bound_indices, cached, children, const_value, factor_indices, freshen_bound,
                       number, remember)
from ..core.scopes import outer_origins, size_marker

_ONE = Fraction(1)


def reorder_term(t: Expr, order: tuple[Index, ...]) -> Expr:
    have = set(t.free)
    want = tuple(i for i in order if i in have)
    if t.free == want:
        return t
    if isinstance(t, Product):
        return Product(t.coeff, t.factors, want)
    return Product(Fraction(1), (t,), want)


def with_order(e: Expr, order: tuple[Index, ...], hints: Mapping[Index, SizeHint]) -> Expr:
    """``e`` with its free indices in ``order`` (a root needs a definite axis order)."""
    if e.free == order:
        if isinstance(e, Sum) and not e.terms:
            return Sum((), order, tuple((i, hints.get(i)) for i in order))
        return e
    if isinstance(e, Sum):
        terms = tuple(reorder_term(t, order) for t in e.terms)
        return Sum(terms, order, tuple((i, hints.get(i)) for i in order))
    return reorder_term(e, order)


def fold_number(name: str, x: Fraction) -> Fraction | None:
    """A function of a number, when the result is exactly rational."""
    exact: dict[str, Callable[[Fraction], Fraction | None]] = {
        "exp": lambda v: Fraction(1) if v == 0 else None,
        "log": lambda v: Fraction(0) if v == 1 else None,
        "sin": lambda v: Fraction(0) if v == 0 else None,
        "tan": lambda v: Fraction(0) if v == 0 else None,
        "tanh": lambda v: Fraction(0) if v == 0 else None,
        "cos": lambda v: Fraction(1) if v == 0 else None,
        "sigmoid": lambda v: Fraction(1, 2) if v == 0 else None,
        "relu": lambda v: max(v, Fraction(0)),
        "abs": abs,
        "sign": lambda v: Fraction((v > 0) - (v < 0)),
        "step": lambda v: Fraction(1 if v > 0 else 0),
        "sqrt": exact_sqrt,
    }
    fold = exact.get(name)
    return fold(x) if fold else None


def constant_expr(v: Fraction) -> Expr:
    """A number in canonical form: zero is the empty sum, as ``parse("0")`` gives."""
    return Sum((), ()) if v == 0 else number(v)


def exact_sqrt(v: Fraction) -> Fraction | None:
    if v < 0:
        return None
    n, d = math.isqrt(v.numerator), math.isqrt(v.denominator)
    return Fraction(n, d) if n * n == v.numerator and d * d == v.denominator else None


def ones_like(e: Expr) -> Expr:
    hints = outer_origins(e)
    if not e.free:
        return number(1)
    return Product(Fraction(1), tuple(Delta(i, i, hints.get(i)) for i in e.free), e.free)


def is_bare(f: Expr, out: set[Index]) -> bool:
    """Whether the one-factor product ``f -> out`` means the same as ``f`` alone:
    same free set and no index repeated within ``f`` (``X[a,a]`` alone is a trace)."""
    labels = factor_indices(f)
    return set(f.free) == out and len(labels) == len(set(labels))


def times_number(t: Expr, c: Fraction) -> Expr:
    if c == 1:
        return t
    if isinstance(t, Product):
        return same_factors(Product(t.coeff * c, t.factors, t.out), t)
    return Product(c, (t,), t.free)


def zero_like(e: Expr) -> Sum:
    hints = outer_origins(e)
    return Sum((), e.free, tuple((i, hints.get(i)) for i in e.free))


def flatten_product(p: Product) -> Expr:
    """Merge nested products and one-term sums, fold numbers; zero if any factor is."""
    if not any(isinstance(f, (Product, Sum)) for f in p.factors):
        return zero_like(p) if p.coeff == 0 else p  # nothing to merge
    coeff = p.coeff
    out: list[Expr] = []
    taken = set(p.out)
    for f in p.factors:
        taken.update(factor_indices(f))
    stack = list(reversed(p.factors))  # depth first, factors in order
    while stack:
        f = stack.pop()
        if isinstance(f, Sum) and len(f.terms) == 1:
            t = f.terms[0]
            f = explicit_broadcast(t, f) if set(t.free) != set(f.out) else t
        if isinstance(f, Sum) and not f.terms:
            return zero_like(p)
        if isinstance(f, Product):
            f = freshen_bound(f, taken)
            taken.update(bound_indices(f))
            coeff *= f.coeff
            stack.extend(reversed(f.factors))
            continue
        out.append(f)
    if coeff == 0:
        return zero_like(p)
    return Product(coeff, tuple(out), p.out)


def share_delta_hints(factors: list[Expr]) -> list[Expr]:
    """Give every delta the size hint any factor knows for its index (a dropped
    ones-marker may have been the only one that knew it)."""
    if not any(isinstance(f, Delta) and f.size is None for f in factors):
        return factors
    known: dict[Index, SizeHint] = {}
    for f in factors:
        for i, hint in outer_origins(f).items():
            if hint is not None:
                known.setdefault(i, hint)
    return [Delta(f.i, f.j, known.get(f.i, known.get(f.j)))
            if isinstance(f, Delta) and f.size is None else f for f in factors]


def delta_kind(t: Expr) -> str | None:
    """``"delta"`` if ``t`` carries a delta to contract, ``"marker"`` if only
    ones-markers ``delta[b,b]`` (a term broadcast along an axis it lacks), else None."""
    factors = (t,) if isinstance(t, Delta) else t.factors if isinstance(t, Product) else ()
    deltas = [f for f in factors if isinstance(f, Delta)]
    if any(f.i != f.j for f in deltas):
        return "delta"
    return "marker" if deltas else None


def sqrt_as_powers(factors: tuple[Expr, ...]) -> tuple[Expr, ...]:
    """``sqrt(u)**k`` as ``u**(k/2)`` where another factor is a power of ``u``, so the
    two merge: ``s (1 - s) / sqrt(s)`` is ``sqrt(s) (1 - s)``, which stays 0 where ``s``
    underflows to 0, instead of 0/0 (oracle fuzz seed 31, input 2446: the derivative of
    ``sqrt(sigmoid(u))``)."""
    roots = [k for k, f in enumerate(factors) if sqrt_base(f) is not None]
    if not roots:
        return factors
    bases = {canonical_key(base_and_exponent(f)[0]) for k, f in enumerate(factors)
             if k not in roots}
    result = list(factors)
    for k in roots:
        inner, power = sqrt_base(factors[k])  # type: ignore[misc]
        if canonical_key(inner) in bases:
            result[k] = Pow(inner, number(power / 2))
    return tuple(result)


def sqrt_base(f: Expr) -> tuple[Expr, Fraction] | None:
    """``(u, k)`` for ``f = sqrt(u)**k`` (k a number, 1 for ``sqrt(u)``), else None."""
    base, k = base_and_exponent(f)
    if k is not None and isinstance(base, Func) and base.name == "sqrt":
        return base.arg, k
    return None


def base_and_exponent(f: Expr) -> tuple[Expr, Fraction | None]:
    """``(x, k)`` for ``f = x**k`` (k None: not a number), ``(f, 1)`` otherwise."""
    return (f.base, const_value(f.exponent)) if isinstance(f, Pow) else (f, _ONE)


def some_alike(terms: list[Expr]) -> bool:
    """Whether two of ``terms`` are equal up to their coefficients and dummy names (a
    cheap test before simplifying the multiplied-out terms: only then can any cancel)."""
    seen: set[Key] = set()
    for t in terms:
        key = canonical_key(Product(Fraction(1), t.factors, t.out) if isinstance(t, Product)
                            else t)
        if key in seen:
            return True
        seen.add(key)
    return False


def distributed(t: Expr) -> list[Expr] | None:
    """The product ``t`` multiplied out over its small sum factors (each term of a sum
    made explicit along the labels it broadcasts over), or None where it has none."""
    if not isinstance(t, Product):
        return None
    sums = [k for k, f in enumerate(t.factors)
            if isinstance(f, Sum) and 1 < len(f.terms) <= 4
            and all(isinstance(u, (Product, Tensor, Func, Pow)) for u in f.terms)]
    if not sums:
        return None
    k = sums[0]
    f = t.factors[k]
    assert isinstance(f, Sum)
    rest = t.factors[:k] + t.factors[k + 1:]
    parts = []
    for u in f.terms:
        u = explicit_broadcast(u, f) if set(u.free) != set(f.out) else u
        part = flatten_product(Product(t.coeff, (*rest, u), t.out))
        more = distributed(part) if len(sums) > 1 else None
        parts.extend(more if more is not None else [part])
    return parts


def node_count(e: Expr, limit: int | None = None) -> int:
    """The number of nodes of ``e`` as a tree: a subexpression in two places counts
    twice, as it prints (counting stops at ``limit``)."""
    count, stack = 0, [e]
    while stack and (limit is None or count < limit):
        count += 1
        stack.extend(children(stack.pop()))
    return count


def splices(t: Expr) -> TypeGuard[Product]:
    """Whether ``t`` is a one-factor product of a sum with the same indices, whose
    terms go into the enclosing sum (with the product's coefficient)."""
    return isinstance(t, Product) and len(t.factors) == 1 and isinstance(t.factors[0], Sum) \
        and set(t.factors[0].out) == set(t.out) and \
        len(set(factor_indices(t.factors[0]))) == len(t.out)


def size_signature(e: Expr) -> tuple:
    """The sizes ``(x, k)`` of the size markers in ``e`` (``size(x, k)``: a summed
    ``delta[i,i]`` whose size hint is an axis of a variable, see
    :func:`einderiv.core.scopes.size_marker`), sorted. Equality of expressions ignores size
    hints, so terms equal but for these are told apart by it. Memoised."""
    if isinstance(e, (Tensor, Delta)):
        return ()
    found = cached(e, "size_signature")
    if found is None:
        sizes: list = []
        if isinstance(e, Product):
            sizes.extend(f.size for f in e.factors if size_marker(f, e))
        for c in children(e):
            sizes.extend(size_signature(c))
        found = tuple(sorted(sizes))
        remember(e, "size_signature", found)
    return found


def has_factors(t: Expr) -> bool:
    """False for a number (a product without factors): numbers come first in a sum."""
    return bool(t.factors) if isinstance(t, Product) else True


def collected_term(first: Expr, coeff: Fraction) -> Expr:
    """The term of :func:`collect_terms` for a group of equal terms: the factors of
    the group's first term with the total coefficient; a lone factor that means the
    same alone (coefficient 1, see :func:`is_bare`) stands for itself."""
    factors, out = (first.factors, first.out) if isinstance(first, Product) \
        else ((first,), first.free)
    if coeff == 1 and len(factors) == 1 and is_bare(factors[0], set(out)):
        return factors[0]
    if not isinstance(first, Product):
        return Product(coeff, factors, out)
    if first.coeff is coeff or first.coeff == coeff:
        return first  # already that product (the identity test is the common, quick case)
    return same_factors(Product(coeff, factors, out), first)


def term_order(t: Expr) -> tuple:
    """Terms in canonical order: numbers first, then by name-blind key."""
    return (has_factors(t), sort_key(term_key(t)))


def term_key(t: Expr) -> Key:
    """The canonical key of term ``t`` without its coefficient: that of
    ``Product(1, t.factors, t.out)``, or of ``Product(1, (t,), t.free)`` for a term that
    is not a product. Memoised on the node: collecting and prettifying both sort by it."""
    key = cached(t, "term_key")
    if key is None:
        if isinstance(t, Product):
            body, tail, _ = product_parts(t, {})
        else:
            body, tail, _ = order_factors((t,), {i: i for i in t.free})
        key = ("*", (1, 1), body, tail)
        remember(t, "term_key", key)
    return key


def remember_term_key(t: Expr, key: Key) -> None:
    """Note ``key`` as the :func:`term_key` of ``t`` (a term built from a group with
    that key), so sorting it again needs no new key."""
    if cached(t, "term_key") is None:
        remember(t, "term_key", key)


def hints_for(s: Sum) -> dict[Index, SizeHint]:
    """Size hints for the axes of ``s`` taken before its terms are combined, so a
    size survives when the tensors that carried it cancel (``M[j,i] + s - M[j,i]``)."""
    hints = dict(s.hints)
    origins = outer_origins(s)
    for i in s.out:
        if hints.get(i) is None and origins.get(i) is not None:
            hints[i] = origins[i]
    return hints


def as_node(e: Expr) -> Expr:
    """An atom with a repeated index standing alone (``exp(M[i,i])`` after a delta
    renamed ``M[i,l]``) is its diagonal: spelled as the parser spells it,
    ``M[i,i] -> [i]``, so each expression has one canonical form."""
    labels = factor_indices(e)
    if isinstance(e, (Tensor, Delta, Inv)) and len(set(labels)) < len(labels):
        return Product(Fraction(1), (e,), tuple(sorted(e.free)))
    return e
