"""Canonical keys and factor order: when two terms are the same term.

:func:`canonical_key` gives a term a key that is equal for terms equal up to the
names of their summed indices and the order of their factors; :mod:`einderiv.symbolic.simplify`
collects like terms by it (notes 001_*, A.19 -> A.20), and its order decides how
factors are printed and how summed indices are named (:func:`canonical_order`). A
product whose factor order no naming of its free labels can change is ranked once
(:func:`_layout`), then keyed by its factors alone; keys and orders are memoised on
the immutable nodes.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import Any

from ..errors import LimitError
from .ir import (Delta, Det, Expr, Func, Index, Inv, LogDet, Pow, Product, Sum, Tensor, cached,
                 const_value, factor_indices, memo, remember)
from .structures import flipped, is_symmetric

__all__ = ["Key", "canonical_key", "symmetric_factor", "canonical_order", "factor_order",
           "indices_in_order", "order_factors", "ordered_product", "product_parts", "same_factors",
           "same_tuple", "sort_key", "sorted_factors"]


Key = tuple


def canonical_key(e: Expr, naming: Mapping[Index, str] | None = None) -> Key:
    """A key equal for expressions equal up to summed-index names and factor order.

    ``naming`` maps the free indices of ``e`` to tokens; unmapped free indices keep
    their names. Summed indices are numbered by first appearance after sorting.
    """
    naming = naming or {}
    if isinstance(e, (Tensor, Delta)):
        return _atom_key(e, naming)
    # Memoised on the (immutable) node, by the naming of its free labels -- the only
    # part of ``naming`` a key depends on. Without it, nested products recompute
    # their children's keys at every level: exponential in depth.
    memo_key = _names(e.free, naming) if naming else e.free
    cache = cached(e, "canonical_keys")
    if cache is None:
        cache = {}
        remember(e, "canonical_keys", cache)
    found = cache.get(memo_key)
    if found is None:
        found = cache[memo_key] = _canonical_key(e, naming)
    return found


def _names(labels: tuple[Index, ...], naming: Mapping[Index, str]) -> tuple[str, ...]:
    """The names ``naming`` gives ``labels`` (a label it does not map keeps its own)."""
    return tuple(map(naming.get, labels, labels))


def _atom_key(e: Tensor | Delta, naming: Mapping[Index, str]) -> Key:
    """The key of a tensor or a delta: quicker to build than to look up on the node,
    and interned, so that equal keys are one object (whose sort key is made once)."""
    if isinstance(e, Tensor):
        names = _names(e.indices, naming)
        # a symmetric matrix's two slots are unordered (einderiv.core.structures)
        key: Key = ("T", e.name, tuple(sorted(names)) if is_symmetric(e) else names)
    else:
        key = ("D", tuple(sorted((naming.get(e.i, e.i), naming.get(e.j, e.j)))))
    found = _ATOM_KEYS.get(key)
    if found is None:
        if len(_ATOM_KEYS) > _MAX_CACHED:
            _ATOM_KEYS.clear()
        _ATOM_KEYS[key] = found = key
    return found


#: Interned keys of tensors and deltas (see :func:`_atom_key`).
_ATOM_KEYS: dict[Key, Key] = {}


def _canonical_key(e: Expr, naming: Mapping[Index, str]) -> Key:
    """The key of a node that is not an atom, by its type (:data:`_KEYS`; a subclass
    of a node type, the printing view ``Word``, is keyed as its base type)."""
    rule = _KEYS.get(type(e))
    if rule is None:
        rule = next(_KEYS[c] for c in type(e).__mro__ if c in _KEYS)
    return rule(e, naming)


def _sum_key(e: Sum, naming: Mapping[Index, str]) -> Key:
    terms = sorted([canonical_key(t, naming) for t in e.terms], key=sort_key)
    return ("S", tuple(terms), tuple(sorted(_names(e.out, naming))))


def _closed_key(e: Inv | Det | LogDet, naming: Mapping[Index, str]) -> Key:
    """The argument of inv/det/logdet is a closed scope: its two labels are slots."""
    closed = {e.arg.free[0]: "@0", e.arg.free[1]: "@1"}
    tail = _names(e.indices, naming) if isinstance(e, Inv) else ()
    if tail and symmetric_factor(e):  # the inverse of a symmetric matrix is symmetric
        tail = tuple(sorted(tail))
    return ("M", type(e).__name__, canonical_key(e.arg, closed), tail)


def symmetric_factor(f: Expr) -> bool:
    """Whether the factor ``f`` is a matrix known symmetric, so that its two index
    slots may be swapped: one assumed so (:func:`einderiv.core.structures.is_symmetric`),
    or the inverse of a matrix whose canonical key is the same with its two labels
    swapped (``inv(X X^T + s I)``, ``inv(X^T X)``: symmetric whatever ``X`` is)."""
    if is_symmetric(f):
        return True
    if not isinstance(f, Inv) or f.indices[0] == f.indices[1]:
        return False
    found = cached(f.arg, "symmetric_arg")
    if found is None:
        p, q = f.arg.free
        found = canonical_key(f.arg, {p: "@0", q: "@1"}) == canonical_key(f.arg, {p: "@1", q: "@0"})
        remember(f.arg, "symmetric_arg", found)
    return found


#: The canonical key of each compound node type: ``(node, naming) -> Key``.
_KEYS: dict[type, Callable[[Any, Mapping[Index, str]], Key]] = {
    Product: lambda e, naming: _product_key(e, naming),
    Sum: _sum_key,
    Func: lambda e, naming: ("F", e.name, canonical_key(e.arg, naming)),
    Pow: lambda e, naming: ("P", canonical_key(e.base, naming), canonical_key(e.exponent)),
    Inv: _closed_key,
    Det: _closed_key,
    LogDet: _closed_key,
}


_REPRS: dict[int, tuple[Key, str]] = {}
#: Entries kept in each cache of keys (:data:`_REPRS`, :data:`_ATOM_KEYS`).
_MAX_CACHED = 100_000


def sort_key(key: Key) -> str:
    """A total order on keys (their repr); cached, since keys are compared often."""
    hit = _REPRS.get(id(key))
    if hit is not None and hit[0] is key:
        return hit[1]
    try:
        text = repr(key)
    except ValueError:  # Python's limit on int -> str (4300 digits): a folded constant
        raise LimitError("a number in the expression has more than 4300 digits; "
                         "einderiv cannot compare it") from None
    if len(_REPRS) > _MAX_CACHED:
        _REPRS.clear()
    _REPRS[id(key)] = (key, text)
    return text


_MAX_TIE_PERMUTATIONS = 720


def _rank(f: Expr, blind: Mapping[Index, str]) -> tuple:
    """Name-blind position of a factor: scalars first, divisions last, then by key."""
    return _rank_by_key(f, canonical_key(f, blind))


def _rank_by_key(f: Expr, key: Key) -> tuple:
    """The :func:`_rank` of ``f`` given its key (summed indices blinded)."""
    return (*rank_flags(f), sort_key(key))


def rank_flags(f: Expr) -> tuple[bool, bool, int]:
    """The part of :func:`_rank` before the key: a division, free labels, the kind."""
    negative_power = isinstance(f, Pow) and (const_value(f.exponent) or 0) < 0
    kind = 0 if isinstance(f, Tensor) else 1 if isinstance(f, Delta) else 2
    return negative_power, bool(f.free), kind


def factor_head(f: Expr) -> tuple:
    """The start of the :func:`_rank` of ``f`` that holds no label, found without a key:
    its flags and the text its key's repr begins with (the tag, and the name or the
    coefficient). Two heads are equal, or differ before either ends and so compare as
    the ranks do, whatever the names. Memoised."""
    found = cached(f, "head")
    if found is None:
        if isinstance(f, (Tensor, Func)):
            lead: tuple = ("T" if isinstance(f, Tensor) else "F", f.name)
        elif isinstance(f, Product):
            lead = ("*", (f.coeff.numerator, f.coeff.denominator))
        elif isinstance(f, (Inv, Det, LogDet)):
            lead = ("M", type(f).__name__)
        else:
            lead = ("D" if isinstance(f, Delta) else "P" if isinstance(f, Pow) else "S",)
        found = (*rank_flags(f), repr(lead)[:-1])  # "('T', 'X'" of "('T', 'X', ('a',))"
        remember(f, "head", found)
    return found


def canonical_order(p: Product, naming: Mapping[Index, str] | None = None
                    ) -> tuple[tuple, tuple[Expr, ...]]:
    """The canonical key of ``p`` and its factors in canonical order.

    Factors are ranked by name-blind keys; ties are broken by trying the orders of
    tied factors and keeping the one whose numbering of summed indices (by first
    appearance) gives the smallest key, so the result does not depend on the names
    of summed indices (capped at 720 orders; beyond that the ranked order is kept).
    """
    naming = naming or {}
    return _product_key(p, naming), product_parts(p, naming)[2]


def _product_key(p: Product, naming: Mapping[Index, str]) -> Key:
    body, tail, _ = product_parts(p, naming)
    return ("*", (p.coeff.numerator, p.coeff.denominator), body, tail)


def product_parts(p: Product, naming: Mapping[Index, str]
                   ) -> tuple[tuple, tuple, tuple[Expr, ...]]:
    """:func:`canonical_order` without the coefficient: the key of the ordered factors,
    the sorted names of the free labels, and the ordered factors.

    They depend only on the factors and on the names of the free labels, and are
    memoised on the (immutable) product by those names: a product is ordered again
    and again as it is normalised, its terms collected and its indices prettified.
    Products built from it keep what is known (:func:`ordered_product`, :func:`same_factors`)."""
    memo = cached(p, "parts")
    if memo is None:
        memo = {}
        remember(p, "parts", memo)
    signature = _naming_signature(p.out, naming)
    found = memo.get(signature)
    if found is None:
        outer = dict(zip(p.out, signature))
        layout = _layout(p)
        found = order_factors(p.factors, outer) if layout is None else _laid_out(layout, outer)
        memo[signature] = found
    return found


def _naming_signature(out: tuple[Index, ...], naming: Mapping[Index, str]) -> tuple:
    """How ``naming`` names the labels ``out``, as a hashable (all the order of a
    product's factors depends on, besides the factors): the names in the order of
    ``out`` (products share this memo only with the same ``out``)."""
    return _names(out, naming) if naming else out


def ordered_product(p: Product) -> Product:
    """``p`` with its factors in canonical order (``p`` itself if they are). The new
    product is given the order found for ``p``: the canonical order is a fixed point,
    since ranking is stable and the identity permutation of tied factors comes first."""
    parts = product_parts(p, {})
    if parts[2] is p.factors:
        return p
    ordered = Product(p.coeff, parts[2], p.out)
    remember(ordered, "parts", {_naming_signature(p.out, {}): parts})
    if cached(p, "layout") is not None:  # the same factors, so the same layout (already in order)
        remember(ordered, "layout", cached(p, "layout"))
    return ordered


def same_factors(new: Product, old: Product) -> Product:
    """``new``, built with the factors and free labels of ``old``, sharing what is
    memoised about their order."""
    for name in ("parts", "layout"):
        found = cached(old, name)
        if found is not None:
            memo(new)[name] = found
    return new


#: The token standing for the ``k``-th free label while a layout is sought
#: (:func:`_find_layout`): ``"!0"``, ``"!1"``, ... "!" sorts before the first character
#: of every other token ("#", "*", "@", a letter, "_"), and occurs in no other key.
SLOT = "!"


_UNSET = object()


def _layout(p: Product) -> tuple[tuple[Expr, ...], dict[Index, str]] | None:
    """The canonical order of the factors of ``p`` and the numbering of its summed
    labels, where they are the same whatever names its free labels get (see
    :func:`_find_layout`); None where they may not be. Memoised on the product."""
    found = cached(p, "layout", _UNSET)
    if found is _UNSET:
        found = _find_layout(p.factors, p.out)
        remember(p, "layout", found)
    return found


def _find_layout(factors: tuple[Expr, ...], out: tuple[Index, ...]
                 ) -> tuple[tuple[Expr, ...], dict[Index, str]] | None:
    """The order and numbering :func:`order_factors` finds for every naming of the
    free labels ``out`` of a product with summed labels, found once with placeholders
    (:data:`SLOT`) for the names: when the ranks of the factors differ before any
    placeholder (no tie, no colour refinement), no naming can change the ranking. A
    product is then keyed under a new naming by keying its factors alone
    (:func:`_laid_out`), not ranking them again under a new blind naming, and so on down
    every nested product. None for a product without summed labels (ranked by the keys
    its key is made of anyway) or where some rank may depend on the names."""
    slots = {i: f"{SLOT}{k}" for k, i in enumerate(out)}
    bound = _summed(factors, slots)
    if not bound or any(symmetric_factor(f) for f in factors):  # orientations to try
        return None
    if len(factors) > 1:
        blind = dict(slots)
        blind.update(dict.fromkeys(bound, "#?"))
        ordered: list[Expr] = []
        # Factors with different heads rank as their heads do: only alike ones are keyed.
        for _, alike in itertools.groupby(sorted(factors, key=factor_head), key=factor_head):
            group = tuple(alike)
            if len(group) > 1:
                if not all(_substitutable(f) for f in group):
                    return None
                ranked = _ranked(group, blind)
                if not all(_decided(a, b) for (a, _), (b, _) in zip(ranked, ranked[1:])):
                    return None
                group = tuple(f for _, f in ranked)
            ordered.extend(group)
        factors = same_tuple(tuple(ordered), factors)
    return factors, _numbering(factors, bound, {})


def _laid_out(layout: tuple[tuple[Expr, ...], dict[Index, str]], outer: Mapping[Index, str]
              ) -> tuple[tuple, tuple, tuple[Expr, ...]]:
    """What :func:`order_factors` finds for a product with a :func:`_layout`, given the
    names ``outer`` of its free labels."""
    ordered, summed = layout
    numbering = dict(outer)
    numbering.update(summed)
    return tuple([canonical_key(f, numbering) for f in ordered]), tuple(sorted(outer.values())), \
        ordered


def _decided(a: tuple, b: tuple) -> bool:
    """Whether ranks ``a <= b`` (:func:`_rank`, found with placeholders) compare the same
    whatever names the placeholders stand for: they differ before either's first one."""
    if a[:3] != b[:3]:
        return True
    end = min(_first_slot(a[3]), _first_slot(b[3]))
    return a[3][:end] != b[3][:end]


def _first_slot(text: str) -> int:
    at = text.find(SLOT)
    return len(text) if at < 0 else at


def _substitutable(e: Expr) -> bool:
    """Whether every key of ``e`` begins as its key with placeholders for names does, up
    to the first placeholder (so comparisons decided before it hold for every naming).
    Sorting keeps this (a placeholder sorts first); only a product whose order
    depends on the names (ties broken by numbering) may break it. Memoised."""
    if isinstance(e, (Tensor, Delta, Inv, Det, LogDet)):  # inv/det: the argument is closed
        return True
    found = cached(e, "substitutable")
    if found is None:
        if isinstance(e, Product):
            found = (_layout(e) is not None or not _summed(e.factors, dict.fromkeys(e.out))) \
                and all(_substitutable(f) for f in e.factors)
        elif isinstance(e, Sum):
            found = all(_substitutable(t) for t in e.terms)
        else:
            assert isinstance(e, (Func, Pow))  # the open nodes are all that is left
            found = _substitutable(e.arg if isinstance(e, Func) else e.base)
        remember(e, "substitutable", found)
    return found


def order_factors(factors: tuple[Expr, ...], outer: Mapping[Index, str]
                   ) -> tuple[tuple, tuple, tuple[Expr, ...]]:
    """The work of :func:`product_parts` (``outer`` names the free labels); the
    ordered factors are ``factors`` itself where the order does not change."""
    bound = _summed(factors, outer)
    tail = tuple(sorted(outer.values()))
    if not bound:  # nothing to number: the ranked order is canonical, ties are equal
        keys = [canonical_key(f, outer) for f in factors]
        if len(factors) < 2:
            return tuple(keys), tail, factors
        order = sorted(range(len(factors)), key=lambda k: _rank_by_key(factors[k], keys[k]))
        ordered = same_tuple(tuple([factors[k] for k in order]), factors)
        return tuple([keys[k] for k in order]), tail, ordered
    blind = dict(outer)
    blind.update({b: "#?" for b in bound})
    ranked = _ranked(factors, blind)
    groups = [list(g) for _, g in itertools.groupby(ranked, key=lambda x: x[0])]
    if any(len(g) > 1 for g in groups):
        # Break ties by what each summed index touches (colour refinement), which
        # does not depend on names; only truly symmetric ties are left to permute.
        refined = dict(outer)
        refined.update({b: f"#{c}" for b, c in _index_colours(factors, bound, outer).items()})
        ranked = _ranked(factors, refined)
        groups = [list(g) for _, g in itertools.groupby(ranked, key=lambda x: x[0])]
    candidates: Iterable = itertools.product(*(distinct_orders(g) for g in groups)) \
        if _few_orders(groups) else [tuple(tuple(g) for g in groups)]
    # A symmetric matrix with a summed label may be read either way round: each
    # orientation is tried, so the key does not depend on the one written.
    turnable = [k for k, f in enumerate(factors)
                if symmetric_factor(f) and bound.intersection(factor_indices(f))]
    if len(turnable) > _MAX_TURNS:
        turnable = []
    best: tuple | None = None
    best_order: tuple[Expr, ...] = ()
    for choice in candidates:
        ordered = tuple(f for g in choice for _, f in g)
        for turned in _orientations(ordered, factors, turnable):
            numbering = _numbering(turned, bound, outer)
            key = tuple(canonical_key(f, numbering) for f in turned)
            if best is None or sort_key(key) < sort_key(best):
                best, best_order = key, turned
    return best or (), tail, same_tuple(best_order, factors)


#: At most this many symmetric factors are turned round (2**n orientations each).
_MAX_TURNS = 6


def _orientations(ordered: tuple[Expr, ...], factors: tuple[Expr, ...], turnable: list[int]
                  ) -> Iterator[tuple[Expr, ...]]:
    """``ordered``, and (where ``turnable`` names symmetric factors of ``factors``)
    every way of turning those round."""
    yield ordered
    if not turnable:
        return
    targets = [factors[k] for k in turnable]
    for mask in range(1, 2 ** len(targets)):
        turn = {id(t) for b, t in enumerate(targets) if mask >> b & 1}
        yield tuple(flipped(f) if id(f) in turn else f for f in ordered)


def _ranked(factors: tuple[Expr, ...], blind: Mapping[Index, str]) -> list[tuple[tuple, Expr]]:
    """``(rank, factor)`` pairs in rank order (:func:`_rank`; stable: ties keep their order)."""
    return sorted(((_rank(f, blind), f) for f in factors), key=lambda x: x[0])


def _numbering(ordered: tuple[Expr, ...], bound: set[Index], outer: Mapping[Index, str]
               ) -> dict[Index, str]:
    """``outer`` and the summed labels ``bound`` numbered ``#0``, ``#1``, ... by first
    appearance in the factors ``ordered``."""
    numbering = dict(outer)
    blind_bound = frozenset(bound)
    for f in ordered:
        for i in indices_in_order(f, blind_bound):
            if i in bound and i not in numbering:
                numbering[i] = f"#{len(numbering) - len(outer)}"
    return numbering


def same_tuple(ordered: tuple[Expr, ...], factors: tuple[Expr, ...]) -> tuple[Expr, ...]:
    """``factors`` itself if ``ordered`` holds the same objects in the same order (so
    a product already in order is kept, with what is remembered about it)."""
    if len(ordered) != len(factors):
        return ordered
    for a, b in zip(ordered, factors):
        if a is not b:
            return ordered
    return factors


def _summed(factors: tuple[Expr, ...], outer: Collection[Index]) -> set[Index]:
    """The labels of ``factors`` that are not free (not in ``outer``): the summed ones."""
    seen: set[Index] = set()
    for f in factors:
        seen.update(factor_indices(f))
    return seen.difference(outer)


def _few_orders(groups: list[list]) -> bool:
    """Whether the distinct orders of tied factors (per group, its factorial over those
    of its runs of equal factors) number at most :data:`_MAX_TIE_PERMUTATIONS`."""
    n_perm = 1
    for g in groups:
        n_perm *= math.factorial(len(g))
        for count in Counter(f for _, f in g).values():
            n_perm //= math.factorial(count)
        if n_perm > _MAX_TIE_PERMUTATIONS:
            return False
    return True


def distinct_orders(group: list) -> Iterator[tuple]:
    """The orders of a group of tied ``(rank, factor)`` pairs, equal factors not
    swapped (``u[g]*u[g]*u[g]*u[g]`` has one order, not 24): swapping them changes no
    key (a product of twenty factors with such repeats took seconds to key)."""
    members: dict[Expr, list] = {}
    for item in group:
        members.setdefault(item[1], []).append(item)
    pools = list(members.values())
    counts = [len(pool) for pool in pools]

    def orders(left: int) -> Iterator[tuple[int, ...]]:
        if left == 0:
            yield ()
            return
        for c, n in enumerate(counts):
            if n:
                counts[c] -= 1
                for rest in orders(left - 1):
                    yield (c,) + rest
                counts[c] += 1

    for classes in orders(len(group)):
        taken = [0] * len(pools)
        order = []
        for c in classes:
            order.append(pools[c][taken[c]])
            taken[c] += 1
        yield tuple(order)


def _index_colours(factors: tuple[Expr, ...], bound: set[Index], outer: Mapping[Index, str],
                   rounds: int = 3) -> dict[Index, str]:
    """A name-independent colour per summed index: the sorted keys of the factors it
    occurs in, seen with that index marked and the others by their current colour."""
    colours = {b: "" for b in bound}
    occurs = {b: [f for f in factors if b in factor_indices(f)] for b in bound}
    for _ in range(rounds):
        signatures = {}
        for b in bound:
            naming = dict(outer)
            naming.update({c: f"#{colours[c]}" for c in bound})
            naming[b] = "*"
            signatures[b] = "|".join(sorted(sort_key(canonical_key(f, naming))
                                            for f in occurs[b]))
        palette = sorted(set(signatures.values()))
        new = {b: str(palette.index(signatures[b])) for b in bound}
        if new == colours:
            break
        colours = new
    return colours


def indices_in_order(f: Expr, blind: frozenset[Index] = frozenset()) -> list[Index]:
    """Free labels of ``f`` in order of first appearance, inner factors and terms in
    an order that does not depend on the names in ``blind`` (the summed indices of
    the enclosing product, which are about to be renamed). Only the order of the labels
    in ``blind`` is used (callers number or rename those), so where ``f`` has fewer
    than two of them its factors and terms are taken as they come. Memoised."""
    if isinstance(f, (Tensor, Inv)):
        return list(f.indices)
    if isinstance(f, Delta):
        return [f.i, f.j]
    free = set(f.free)
    relevant = frozenset(blind & free)
    cache = cached(f, "index_order")
    if cache is None:
        cache = {}
        remember(f, "index_order", cache)
    if relevant not in cache:
        cache[relevant] = _indices_in_order_uncached(f, blind, relevant, free)
    return cache[relevant]


def _indices_in_order_uncached(f: Expr, blind: frozenset[Index], relevant: frozenset[Index],
                               free: set[Index]) -> list[Index]:
    if isinstance(f, (Func, Pow)):
        return indices_in_order(f.arg if isinstance(f, Func) else f.base, blind)
    naming = {i: "#?" for i in relevant}
    if isinstance(f, Product):
        ordered = factor_order(f, naming) if len(naming) > 1 else f.factors
        seen = [i for g in ordered for i in indices_in_order(g, blind) if i in free]
        return list(dict.fromkeys(seen))
    if isinstance(f, Sum):
        terms = sorted(f.terms, key=lambda t: sort_key(canonical_key(t, naming))) \
            if len(naming) > 1 else f.terms
        seen = [i for t in terms for i in indices_in_order(t, blind)]
        return [i for i in dict.fromkeys(seen) if i in free]
    return []


def factor_order(p: Product, naming: Mapping[Index, str]) -> tuple[Expr, ...]:
    """The factors of ``p`` in canonical order under ``naming`` (:func:`canonical_order`),
    without keying them where every naming gives that order (a :func:`_layout`)."""
    layout = _layout(p)
    return layout[0] if layout is not None else product_parts(p, naming)[2]


def sorted_factors(factors: tuple[Expr, ...], out: set[Index]) -> tuple[Expr, ...]:
    """Factors in canonical order (see :func:`canonical_order`)."""
    return order_factors(factors, {i: i for i in out})[2]
