"""The shortcuts of the canonical order (einderiv/canonical.py) give what the full
ranking gives.

1. :func:`product_parts` and :func:`factor_order` (which use a product's *layout*,
   its factor order and the numbering of its summed labels found once with
   placeholders for the names of its free labels, where it has one) key and order a
   product, under every naming, exactly as :func:`order_factors` ranks and numbers it.
2. A factor's *head* is the start of its rank (flags, then the beginning of its
   key's repr), so factors with different heads are ordered without keys.
3. Where a factor has fewer than two labels of the enclosing product's summed set,
   the order of its terms and factors does not change the numbering.
4. ``rename`` and ``merge_scalar_powers`` return a node they leave unchanged (and what
   is memoised on it).

1-3 are checked on random expressions (marked ``slow``) and on :data:`TEXTS` (the quick
tier).
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from strategies import Generated, expressions

import einderiv
from einderiv.core.ir import (Func, Pow, Product, Sum, Tensor, bound_indices, factor_indices,
                         rename, walk)
from einderiv.core.canonical import (SLOT, factor_head, rank_flags, canonical_key, canonical_order,
                                factor_order, indices_in_order, order_factors, product_parts,
                                sort_key)
from einderiv.symbolic.simplify import merge_scalar_powers

PROPERTY = settings(deadline=None, derandomize=True, database=None, print_blob=False,
                    max_examples=150,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

#: Tokens the orderings give free labels: blind, numbered, coloured, marked, own names.
TOKENS = ["#?", "#0", "#1", "#", "*", "@0", "a", "z"]


def _nodes(g: Generated) -> list:
    """Every node of the parsed expression and of its derivative by each variable."""
    e = einderiv.parse(g.text)
    roots = [e] + [einderiv.diff(e, v) for v in sorted(e.variables)[:2]]
    return [n for r in roots for n in walk(r)]


def _namings(labels: tuple[str, ...]) -> list[dict[str, str]]:
    """A few namings of ``labels``: their own names, all blind, and mixed tokens."""
    cycles = [dict(zip(labels, itertools.islice(itertools.cycle(TOKENS[k:] + TOKENS[:k]),
                                                len(labels)))) for k in range(len(TOKENS))]
    return [{i: i for i in labels}, dict.fromkeys(labels, "#?")] + cycles


#: Hand-picked: symmetric squares, nested products and sums over several summed labels.
TEXTS = [
    "(W2[o,h]*tanh(W1[h,i]*X[i,b]) - T[o,b])*(W2[o,g]*tanh(W1[g,j]*X[j,b]) - T[o,b])",
    "(M[i,j] - U[i,k]*V[j,k])*(M[i,j] - U[i,l]*V[j,l])",
    "A[i,j]*exp(B[i,k]*C[k,j] + D[j,i])*x[i]*y[j]",
    "x[i]*A[i,j]*(A[j,k]*x[k]*z[i] + sin(B[k,j]*x[k]*x[i]))",
    "sigmoid(-y[a]*X[a,b]*theta[b])*log(1 + exp(X[a,c]*theta[c]*y[a]))",
]


def _texts_and_derivatives() -> list:
    """The nodes of :data:`TEXTS` and of their derivatives."""
    return [n for t in TEXTS for n in _nodes(Generated(t, frozenset(), True))]


def _check_layouts(nodes: list) -> None:
    for p in nodes:
        if not isinstance(p, Product):
            continue
        for naming in _namings(p.out):
            full = order_factors(p.factors, naming)
            fresh = Product(p.coeff, p.factors, p.out)  # nothing memoised on it yet
            assert product_parts(fresh, naming) == full, p
            assert factor_order(fresh, naming) == full[2], p


@pytest.mark.slow
@PROPERTY
@given(g=expressions(smooth=False))
def test_layout_keys_products_as_the_full_ranking_does(g: Generated) -> None:
    _check_layouts(_nodes(g))


def test_layout_of_chosen_expressions() -> None:
    _check_layouts(_texts_and_derivatives())


def _check_heads(nodes: list) -> None:
    for f in nodes:
        flags, start = factor_head(f)[:3], factor_head(f)[3]
        assert flags == rank_flags(f)
        assert SLOT not in start
        for naming in _namings(f.free):
            assert sort_key(canonical_key(f, naming)).startswith(start), f


@pytest.mark.slow
@PROPERTY
@given(g=expressions(smooth=False))
def test_head_begins_every_rank(g: Generated) -> None:
    _check_heads(_nodes(g))


def test_head_of_chosen_expressions() -> None:
    _check_heads(_texts_and_derivatives())


def _sorted_order(f, blind: frozenset) -> list[str]:
    """The labels of ``blind`` free in ``f`` in order of first appearance, its terms and
    factors always sorted (what :func:`indices_in_order` did for every ``f``)."""
    if isinstance(f, (Func, Pow)):
        return _sorted_order(f.arg if isinstance(f, Func) else f.base, blind)
    if not isinstance(f, (Product, Sum)):  # an atom, inv, det
        return [i for i in dict.fromkeys(factor_indices(f)) if i in blind]
    naming = {i: "#?" for i in blind & set(f.free)}
    if isinstance(f, Sum):
        parts = sorted(f.terms, key=lambda t: sort_key(canonical_key(t, naming)))
    else:
        parts = canonical_order(f, naming)[1] if naming else f.factors
    seen = [i for t in parts for i in _sorted_order(t, blind) if i in set(f.free)]
    return list(dict.fromkeys(seen))


def _check_summed_order(nodes: list) -> None:
    for p in nodes:
        if not isinstance(p, Product):
            continue
        blind = frozenset(bound_indices(p))
        for f in p.factors:
            fast = [i for i in dict.fromkeys(indices_in_order(f, blind)) if i in blind]
            assert fast == _sorted_order(f, blind), f


@pytest.mark.slow
@PROPERTY
@given(g=expressions(smooth=False))
def test_order_of_summed_labels_needs_no_sort_below_two(g: Generated) -> None:
    _check_summed_order(_nodes(g))


def test_order_of_summed_labels_in_chosen_expressions() -> None:
    _check_summed_order(_texts_and_derivatives())


def test_rename_keeps_untouched_nodes() -> None:
    e = einderiv.parse("tanh(W[i,j]*x[j])*y[k]")
    assert rename(e, {"q": "r"}) is e
    f = next(n for n in walk(e) if isinstance(n, Tensor) and n.name == "y")
    assert rename(f, {"i": "m"}) is f
    assert rename(f, {"k": "m"}) == Tensor("y", ("m",))
    g = next(n for n in walk(e) if isinstance(n, Func))
    assert rename(g, {"k": "m"}) is g
    assert str(rename(g, {"i": "m"})) == "tanh(W[m,a]*x[a])"


def test_merge_scalar_powers_keeps_an_unchanged_product() -> None:
    p = einderiv.parse("A[i,k]*B[k,j]", simplify=False)
    assert isinstance(p, Product) and merge_scalar_powers(p) is p
    merged = merge_scalar_powers(einderiv.parse("n*n*x[i]", simplify=False))
    assert merged != p and str(merged) == "x[i]*n**2"


def test_equal_tied_factors_are_not_permuted() -> None:
    """Issue 21 D (oracle fuzz seed 21, input 711): a derivative of a product of twenty
    factors with repeats (u[c]*...*u[c]*...*w[c]) took 2-4 s to compile, keying every
    permutation of equal tied factors. Swapping equal factors changes no key, so each
    group is ordered as a multiset: 4 equal and 2 equal factors give 6!/(4! 2!) = 15
    orders, not 720. The derivative's value against finite differences."""
    import math

    import numpy as np
    from fd import assert_close_to_fd, central_diff

    import einderiv
    from einderiv.core.canonical import distinct_orders
    group = [(0, "u")] * 4 + [(0, "w")] * 2
    orders = list(distinct_orders(group))
    assert len(orders) == len(set(orders)) == math.factorial(6) // (math.factorial(4) * 2)
    text = ("u[c]*w[c]*softplus(W[b,b,c])*B[c,a]*w[c]*log(1 + w[c]**2)*u[c]*E[a,c]*u[c]"
            "*z[c]*w[c]*u[c]")
    rng = np.random.default_rng(21)
    arrays = {"u": rng.normal(size=2), "w": rng.normal(size=2), "z": rng.normal(size=2),
              "W": rng.normal(size=(3, 3, 2)), "B": rng.normal(size=(2, 4)),
              "E": rng.normal(size=(4, 2))}
    d = einderiv.diff(text, "w")
    numeric = central_diff(lambda a: einderiv.parse(text).evaluate(**a), arrays, "w")
    assert_close_to_fd(d.evaluate(**arrays), numeric)
