"""Simplification: the rules applied bottom-up, one function per node type
(:data:`_RULES`), ``simplify`` running them once per public call.

The rules (each a function below or in :mod:`~einderiv.symbolic.terms`):

* :func:`~einderiv.symbolic.terms.flatten_product` -- a product inside a product is one
  einsum term; numbers fold into the coefficient.
* :func:`contract_deltas` -- ``delta[i,j]`` with ``j`` summed renames ``j`` to ``i``
  (notes 001_*, A.18 -> A.19); a delta with both indices free stays
  (``d x[i] / d x[j] = delta[j,i]``).
* :func:`expand_delta_sums` -- a sum factor whose terms carry deltas is multiplied
  out, so the deltas can be contracted; other sums stay factored (the residual
  ``X theta - Y`` is kept whole, as in A.20).
* :func:`merge_scalar_powers`, :func:`merge_indexed_powers` -- equal factors merge
  into powers, up to the names of their summed indices (``n * n**-1 = 1``).
* :func:`collect_terms` -- terms equal up to the names of summed indices and the
  order of factors are added (A.19 -> A.20); zeros are dropped;
  :func:`expand_where_shorter` multiplies out where terms then cancel.
* the identities of the ML functions (:mod:`~einderiv.symbolic.identities`, a table).
* :func:`~einderiv.symbolic.naming.prettify` -- summed indices renamed readably.

The same rules one at a time, as :func:`einderiv.derive_steps` shows them, are the
passes of :mod:`~einderiv.symbolic.pipeline`.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import Any, TypeGuard

from ..core.broadcast import explicit_broadcast
from ..core.canonical import Key, canonical_key, ordered_product, same_tuple, sort_key
from ..core.ir import (Delta, Det, Expr, Func, Index, Inv, LogDet, Pow, Product, Sum, Tensor,
                       bound_indices, cached, const_value, factor_indices, gc_paused, number,
                       remember, rename)
from ..core.definitions import through_names
from ..core.named import has_names
from ..core.scopes import outer_origins
from .identities import (FUNCTION_IDENTITIES, has_both_sigmoids, negated, note, one_plus_exp,
                         reflect_sigmoids, sigmoid_complement)
from .naming import prettify
from .terms import (as_node, base_and_exponent, collected_term, constant_expr, delta_kind,
                    distributed, flatten_product, fold_number, has_factors, hints_for, is_bare,
                    node_count, ones_like, remember_term_key, share_delta_hints, size_signature,
                    some_alike, splices, sqrt_as_powers, term_key, times_number, with_order,
                    zero_like)

__all__ = ["multiplied_out", "simplify", "prettify"]

_ONE = Fraction(1)


# ============================================================================ driver


def simplify(e: Expr, free: tuple[Index, ...] | None = None) -> Expr:
    """Simplify ``e`` and return it with free indices in the order ``free``
    (default: ``e.free``), summed indices renamed readably.

    >>> import einderiv
    >>> str(einderiv.parse("delta[i,j]*x[j] + x[i]"))
    '2*x[i]'
    """
    order = tuple(e.free if free is None else free)
    if cached(e, "simplified") == order:
        return e  # simplify's own result (to_matrix after diff): nothing to do again
    if has_names(e):  # a definition's body is simplified once, not at each use
        result = through_names(e, lambda x: simplify(x, order))
        remember(result, "simplified", order)
        return result
    with gc_paused():
        result = prettify(_simplify(e))
        # Only a sum keeps size hints for its axes (a walk of all of e to find them).
        hints = outer_origins(e) if isinstance(result, Sum) else {}
        result = with_order(result, order, hints)
    remember(result, "simplified", order)
    return result


def multiplied_out(e: Expr, free: tuple[Index, ...]) -> Expr:
    """The simplified product ``e`` with its sum factors multiplied out where that is
    shorter, as the terms of a sum are (:func:`expand_where_shorter`), free indices in
    the order ``free``. For a direction ``v`` assumed symmetric (an hvp by a symmetric
    matrix), ``v[c,d]*(A[c,d] + A[d,c])/2`` is ``v[c,d]*A[c,d]``. Not applied in general:
    ``(X theta - Y)^T (X theta - Y)`` would lose its Gram form."""
    if not isinstance(e, Product) or not any(isinstance(f, Sum) for f in e.factors):
        return e
    wrapped = Sum((e,), e.out)
    with gc_paused():
        expanded = expand_where_shorter(wrapped)
    return e if expanded is wrapped else simplify(expanded, free)


def _simplify(e: Expr) -> Expr:
    if cached(e, "simplified") is not None:
        return e  # simplify's own result inside a larger expression (a definition's body)
    rule = _RULES.get(type(e))
    return rule(e) if rule else e


# ===================================================================== atoms & calls


def _simplify_func(e: Func) -> Expr:
    arg = as_node(_simplify(e.arg))
    value = const_value(arg)
    if value is not None:
        folded = fold_number(e.name, value)
        if folded is not None:
            return constant_expr(folded)
    for name, rewrite in FUNCTION_IDENTITIES.get(e.name, ()):
        replaced = rewrite(arg)
        if replaced is not None:  # log(sigmoid(u)) = -softplus(-u), ...: identities.py
            note(name)
            return _simplify(replaced)
    return Func(e.name, arg)


def _simplify_pow(e: Pow) -> Expr:
    return _power(as_node(_simplify(e.base)), _simplify(e.exponent))


def _power(base: Expr, exponent: Expr) -> Expr:
    """``base**exponent`` of simplified parts, by the power rules: ``x**1 = x``,
    ``x**0 = 1``, small integer powers of numbers folded, ``(x**a)**k = x**(a k)`` for
    an integer ``k``, ``(1 + exp(w))**-1 = sigmoid(-w)``."""
    k = const_value(exponent)
    if k is not None:
        if k == 1:
            return base
        if k == 0:
            return ones_like(base)
        b = const_value(base)
        if b is not None and k.denominator == 1 and not (b == 0 and k < 0) and \
                abs(k) * max(b.numerator.bit_length(), b.denominator.bit_length()) <= 4096:
            return constant_expr(b ** int(k))  # fold only while the result stays small
        if isinstance(base, Pow):
            inner = const_value(base.exponent)
            if inner is not None and k.denominator == 1:
                return _power(base.base, number(inner * k))
        w = one_plus_exp(base) if k == -1 else None
        if w is not None:  # 1 / (1 + exp(w)) = sigmoid(-w)
            note("sigmoid-of-exp")
            return _simplify(Func("sigmoid", negated(w)))
        if isinstance(base, Product) and k.denominator == 1 and len(base.factors) > 1 \
                and not bound_indices(base) and abs(k) <= 64:
            # (u v)**k = u**k v**k for an element-wise product (nothing summed) and an
            # integer k: the powers merge with the factors around them, so
            # |y| / (|x| |y|)**2 is |x|**-2 |y|**-1 (cosine similarity, issue 15)
            note("power-of-product")
            return normalize_product(Product(
                base.coeff ** int(k), tuple(_power(f, exponent) for f in base.factors), base.out))
        if isinstance(base, Product) and base.coeff not in (0, 1) and k.denominator == 1 \
                and abs(k) <= 64:
            # (c u)**k = c**k u**k: the number joins the coefficients around it
            # (2 (mu - x)/(2 s**2) is (mu - x)/s**2; issue 15)
            rest = normalize_product(Product(Fraction(1), base.factors, base.out))
            return normalize_product(
                Product(base.coeff ** int(k), (_power(rest, exponent),), base.out))
    return Pow(base, exponent)


def _common_number_out(p: Product) -> Product:
    """A sum factor whose terms all carry the same number up to sign gives it to the
    product's coefficient, where there are other factors: ``1/2 (2 mu - 2 x) s**-2`` is
    ``(mu - x) s**-2`` (issue 15: numeric constants fold)."""
    if len(p.factors) < 2:
        return p
    for k, f in enumerate(p.factors):
        if not isinstance(f, Sum) or len(f.terms) < 2 or not _all_products(f.terms):
            continue
        g = abs(f.terms[0].coeff)
        if g in (0, 1) or any(abs(t.coeff) != g for t in f.terms):
            continue
        inner = collect_terms(Sum(tuple(times_number(t, 1 / g) for t in f.terms), f.out, f.hints))
        factors = p.factors[:k] + (inner,) + p.factors[k + 1:]
        return Product(p.coeff * g, factors, p.out)
    return p


def _all_products(terms: tuple[Expr, ...]) -> TypeGuard[tuple[Product, ...]]:
    return all(isinstance(t, Product) for t in terms)


def _simplify_closed(e: Inv | Det | LogDet) -> Expr:
    """The argument of inv/det/logdet is a closed scope: simplified as a root, so its
    axis order (rows, columns) is kept."""
    arg = with_order(_simplify(e.arg), e.arg.free, outer_origins(e.arg))
    return Inv(arg, e.indices) if isinstance(e, Inv) else type(e)(arg)


# ========================================================================== products


def _simplify_product(e: Product) -> Expr:
    factors = tuple(_simplify(f) for f in e.factors)
    if same_tuple(factors, e.factors) is not e.factors:  # some factor simplified
        e = Product(e.coeff, factors, e.out)
    return normalize_product(e)


def normalize_product(p: Product) -> Expr:
    """Apply the product rules to a product whose factors are already simplified."""
    if len(p.factors) == 1 and p.coeff == 1 and isinstance(p.factors[0], (Tensor, Delta)) \
            and is_bare(p.factors[0], set(p.out)):
        return p.factors[0]  # one atom that means the same alone: no rule applies
    flat = flatten_product(p)
    if not isinstance(flat, Product):
        return flat
    p = contract_deltas(flat)
    if any(isinstance(f, Product) or (isinstance(f, Sum) and len(f.terms) <= 1)
           for f in p.factors):
        return normalize_product(p)  # a renamed factor simplified to a product: flatten
    expanded = expand_delta_sums(p)
    if expanded is not None:
        return expanded
    p = merge_scalar_powers(p)
    if p.coeff == 0:
        return zero_like(p)
    if len(p.factors) == 1 and p.coeff == 1 and is_bare(p.factors[0], set(p.out)):
        # Below the root only the labels matter, not their order; simplify() restores
        # the root's order, so one canonical form serves every spelling.
        return p.factors[0]
    p = _common_number_out(p)
    if len(p.factors) == 1 and isinstance(p.factors[0], Sum):
        s = p.factors[0]
        scaled = collect_terms(Sum(tuple(times_number(t, p.coeff) for t in s.terms), s.out, s.hints))
        if set(s.out) == set(p.out):
            return scaled  # c * (a + b): distribute the number, keep one sum
        if all(set(t.free) == set(s.out) for t in s.terms):
            # sum[a](u + v) with every term carrying a: sum[a](u) + sum[a](v), where
            # each term is a product of its own (X^T s - X^T y: the matrix printer
            # pulls X^T out, issue 15)
            return collect_terms(Sum(tuple(normalize_product(Product(p.coeff, (t,), p.out))
                                           for t in s.terms), p.out))
        if p.coeff != 1:  # c * sum[i](a + b): the number goes inside too (one spelling)
            return normalize_product(Product(Fraction(1), (scaled,), p.out))
    return ordered_product(p)


def contract_deltas(p: Product) -> Product:
    """Eliminate Kronecker deltas by renaming (notes 001_*, A.18 -> A.19)."""
    if not any(isinstance(f, Delta) for f in p.factors):
        return p
    factors = list(p.factors)
    out = set(p.out)
    renamed_any = False
    changed = True
    while changed:
        changed = False
        for k, f in enumerate(factors):
            if not isinstance(f, Delta) or (f.i != f.j and f.i in out and f.j in out):
                continue  # a delta with both indices free stays
            others = factors[:k] + factors[k + 1:]
            if f.i == f.j:
                if any(f.i in factor_indices(g) for g in others):
                    if f.size is not None:  # keep its size for a delta that stays
                        factors = share_delta_hints(
                            [Delta(g.i, g.j, g.size or f.size) if isinstance(g, Delta) and
                             f.i in (g.i, g.j) else g for g in factors])
                    del factors[k]  # ones along an index that is already there
                    changed = renamed_any = True
                    break
                continue
            keep, gone = (f.i, f.j) if f.j not in out else (f.j, f.i)
            # Renaming can make terms of a sum factor equal: simplify them again.
            renamed = [_resimplify(rename(g, {gone: keep})) for g in others]
            factors = renamed[:k] + [Delta(keep, keep, f.size)] + renamed[k:]
            changed = renamed_any = True
            break
    shared = share_delta_hints(factors)
    if not renamed_any and shared is factors:
        return p  # nothing to contract
    return Product(p.coeff, tuple(shared), p.out)


def _resimplify(g: Expr) -> Expr:
    return g if isinstance(g, (Tensor, Delta)) else _simplify(g)


def expand_delta_sums(p: Product) -> Expr | None:
    """Multiply out a sum factor that carries deltas, then simplify each term. A sum
    whose terms carry only ones-markers (``R[e,b] + b2[e]``: the bias broadcast along
    the samples) is multiplied out only where that is no longer: the residual of a
    batch MLP stays whole, ``W - W s 1^T`` becomes ``W s 1^T y - W y``."""
    for k, f in enumerate(p.factors):
        if not isinstance(f, Sum):
            continue
        kinds = {delta_kind(t) for t in f.terms}
        if not kinds & {"delta", "marker"}:
            continue
        rest = p.factors[:k] + p.factors[k + 1:]
        terms = []
        for t in f.terms:
            t = explicit_broadcast(t, f) if set(t.free) != set(f.out) else t
            terms.append(normalize_product(Product(p.coeff, (*rest, t), p.out)))
        expanded = collect_terms(Sum(tuple(terms), p.out, ()))
        if "delta" in kinds or node_count(expanded) <= node_count(p):
            return expanded
    return None


def merge_scalar_powers(p: Product) -> Product:
    """``n * n`` -> ``n**2`` and ``n * n**-1`` -> 1 for factors without free indices;
    numeric factors (after folding) go into the coefficient. Factors with free indices
    merge too where they are equal up to the names of their own summed indices
    (:func:`merge_indexed_powers`)."""
    coeff = p.coeff
    rest: list[Expr] = []
    scalars: list[tuple[Expr, Fraction]] = []  # (base, exponent) of index-free powers
    for f in sqrt_as_powers(p.factors):
        value = const_value(f)
        if value is not None:
            coeff *= value
            continue
        base, k = base_and_exponent(f)
        if f.free or k is None:
            rest.append(f)
        else:
            scalars.append((base, k))
    rest = merge_indexed_powers(rest)
    rest.extend(_merged_powers(scalars))
    factors = same_tuple(tuple(rest), p.factors)
    if factors is p.factors and coeff is p.coeff:
        return p  # nothing merged (and what is memoised on p is kept)
    return Product(coeff, factors, p.out)


def merge_indexed_powers(factors: list[Expr]) -> list[Expr]:
    """Factors with free indices that are powers of one base -- equal up to the names
    of their own summed indices, the free ones in the same places -- multiplied:
    ``sigmoid(X[a,b]*w[b]) / sigmoid(X[a,h]*w[h])`` is 1 and ``u[i]**2 / u[i]`` is
    ``u[i]`` (issue 15); only groups with a division merge, so ``r[a]*r[a]`` stays the
    product the matrix printer reads as ``r^T r``. Each value is a product of the same entries,
    so this holds for any naming of the product's labels. Where a base cancels out,
    a ones-marker keeps each of its labels that no other factor carries (its size
    still counts, summed or broadcast). Variables are left as they are (``x[i]*x[i]``
    stays the dot product it reads as)."""
    if not any(isinstance(f, Pow) and (const_value(f.exponent) or 0) < 0 for f in factors):
        return factors  # no division: nothing merges (and no keys to compute)
    groups: dict[Key, list[int]] = {}
    for k, f in enumerate(factors):
        base, power = base_and_exponent(f)
        if power is not None and not isinstance(base, (Tensor, Delta)):
            groups.setdefault(canonical_key(base), []).append(k)
    # only where a division is involved: r[a]*r[a] stays a product of two equal
    # factors (the Gram form r^T r of the matrix printer), s*s/s is s
    merged = [ks for ks in groups.values()
              if len(ks) > 1 and any(_numeric_exponent(factors[k]) < 0 for k in ks)]
    if not merged:
        return factors
    note("cancel-equal-factors")
    result: list[Expr | None] = list(factors)
    markers: list[Expr] = []
    for ks in merged:
        base = base_and_exponent(factors[ks[0]])[0]
        total = sum((_numeric_exponent(factors[k]) for k in ks), Fraction(0))
        for k in ks:
            result[k] = None
        if total != 0:
            result[ks[0]] = base if total == 1 else _power(base, number(total))
            continue
        carried = {i for f in result if f is not None for i in factor_indices(f)}
        hints = outer_origins(base)
        markers.extend(Delta(i, i, hints.get(i)) for i in base.free if i not in carried)
    return [f for f in result if f is not None] + markers


def _numeric_exponent(f: Expr) -> Fraction:
    """The exponent of ``f``, known to be a number (a factor :func:`merge_indexed_powers`
    grouped: :func:`base_and_exponent` gave it one)."""
    power = base_and_exponent(f)[1]
    assert power is not None
    return power


def _merged_powers(scalars: list[tuple[Expr, Fraction]]) -> list[Expr]:
    """The powers of equal bases (by canonical key) multiplied, in order of first
    appearance; a power that comes to 0 is dropped. A merged power goes through the
    power rules (:func:`_power`), and what they rewrite is merged again:
    ``(q**-2)**(-1/2) (q**-2)**(-1/2) q**-2`` is ``(q**-2)**-1 q**-2 = q**2 q**-2 = 1``
    (so that simplifying the printed result changes nothing; fuzz --seed 57)."""
    for _ in range(8):  # each round unwraps a power of a power: a few rounds at most
        if len(scalars) < 2:  # nothing to merge: no keys needed
            powers: list[list[Any]] = [[base, k] for base, k in scalars]  # [base, exponent]
        else:
            by_key: dict[tuple, list[Any]] = {}  # key -> [base, exponent], summed in place
            for base, k in scalars:
                key = canonical_key(base)
                if key in by_key:
                    by_key[key][1] += k
                else:
                    by_key[key] = [base, k]
            powers = list(by_key.values())
        kept: list[tuple[Expr, Fraction]] = [(base, k) for base, k in powers if k != 0]
        merged = [base if k == 1 else _power(base, number(k)) for base, k in kept]
        # merged again where the rules (or k = 1 of a power) leave another base
        rewritten = any(base_and_exponent(m)[0] is not base
                        for m, (base, _) in zip(merged, kept))
        if not rewritten or len(merged) < 2:
            return merged
        found = [base_and_exponent(m) for m in merged]
        if any(k is None for _, k in found):  # a symbolic exponent: ((p**q)**(3/2))**(-1/2)
            return merged
        scalars = [(base, k) for base, k in found if k is not None]  # all of them (above)
    return merged


# ============================================================================== sums


def _simplify_sum(e: Sum) -> Expr:
    collected = collect_terms(Sum(tuple(_simplify(t) for t in e.terms), e.out, e.hints))
    if not isinstance(collected, Sum):
        return collected
    u = sigmoid_complement(collected)
    if u is not None and isinstance(u, Product) and u.coeff < 0:
        note("sigmoid-complement")  # 1 - sigmoid(-u) = sigmoid(u): shorter
        return _simplify(Func("sigmoid", negated(u)))
    if has_both_sigmoids(collected):
        reflected = _simplify(reflect_sigmoids(collected))
        if node_count(reflected) < node_count(collected):
            note("sigmoid-reflection")  # sigmoid(-u) = 1 - sigmoid(u), and terms cancel
            return reflected
    return expand_where_shorter(collected)


#: Multiplying out a sum's terms is tried only up to this many terms after expansion.
EXPAND_MAX_TERMS = 12
#: ... and only for sums of at most this many nodes (it re-simplifies every term).
EXPAND_MAX_NODES = 400


def expand_where_shorter(s: Sum) -> Expr:
    """The sum with each term's sum factors multiplied out and like terms collected,
    where that is shorter (issue 15): ``x s (1 - y) - x y (1 - s)`` is ``x s - x y``
    (the binary cross-entropy gradient ``X^T (sigmoid(X w) - y)``), since the two
    ``x s y`` cancel. Nothing changes where no term cancels or merges: the rule only
    fires when the node count drops, so it cannot undo itself."""
    if not any(isinstance(t, Product) and any(isinstance(f, Sum) for f in t.factors)
               for t in s.terms) or node_count(s, EXPAND_MAX_NODES + 1) > EXPAND_MAX_NODES:
        return s  # nothing to multiply out (the common case: no walk), or too large
    expanded: list[Expr] = []
    grew = False
    for t in s.terms:
        parts = distributed(t)
        if parts is None:
            expanded.append(t)
            continue
        grew = True
        expanded.extend(parts)
        if len(expanded) > EXPAND_MAX_TERMS:
            return s
    if not grew or not some_alike(expanded):
        return s
    terms = [normalize_product(t) if isinstance(t, Product) else t for t in expanded]
    result = collect_terms(Sum(tuple(terms), s.out, s.hints))
    if node_count(result) >= node_count(s):
        return s
    note("multiply-out")
    return result


def collect_terms(s: Sum) -> Expr:
    """Flatten nested sums, add terms equal up to dummy names, drop zeros.

    A term that carries some but not all of the sum's indices is written with
    ones-markers along the others (``2*delta[l,k]*delta[i,i]*delta[j,j] -> [k,l,i,j]``),
    so only index-free terms broadcast implicitly: one spelling per expression."""
    lone = _lone_term(s)
    if lone is not None:
        return lone
    groups: dict[tuple, list] = {}  # key -> [first term with that key, total coefficient]
    for t in _flat_terms(s):
        key = term_key(t)
        sizes = size_signature(t)
        if sizes:  # size(x, 0) and size(y, 0) are different numbers: not collected
            key = (*key, ("size", sizes))
        coeff = t.coeff if isinstance(t, Product) else _ONE
        group = groups.get(key)
        if group is None:
            groups[key] = [t, coeff]
        else:
            group[1] += coeff
    terms = []
    for key in sorted(groups, key=lambda k: (has_factors(groups[k][0]), sort_key(k))):
        first, coeff = groups[key]
        if coeff == 0:
            continue
        term = collected_term(first, coeff)
        remember_term_key(term, key if len(key) == 4 else key[:4])
        terms.append(term)
    if len(terms) == 1 and set(terms[0].free) == set(s.out):
        return terms[0]
    hints = dict(s.hints)
    carried = {i for t in terms for i in t.free}
    if terms and carried != set(s.out):
        # No term carries some axes: (sum of the terms) times ones along them, so a
        # broadcast has one canonical spelling: (1 - tanh(s)**2)*delta[i,i] -> [i].
        inner = terms[0] if len(terms) == 1 else \
            Sum(tuple(terms), tuple(i for i in s.out if i in carried), ())
        with_hints = Sum((inner,), s.out, tuple(hints_for(s).items()))
        return normalize_product(explicit_broadcast(inner, with_hints))
    if not terms or any(set(t.free) != set(s.out) for t in terms):
        hints = hints_for(s)
    return Sum(tuple(terms), s.out, tuple(hints.items()))


def _flat_terms(s: Sum) -> list[Expr]:
    """The terms of ``s``, nested sums (and a one-factor product of a sum with the
    same indices) spliced in place with their coefficients applied; a term carrying
    only some of the sum's indices made explicit along the others."""
    flat: list[Expr] = []
    hinted: Sum | None = None
    out = set(s.out)
    stack = [(t, _ONE) for t in reversed(s.terms)]  # depth first, terms in order
    while stack:
        t, scale = stack.pop()
        if isinstance(t, Sum):
            stack.extend((u, scale) for u in reversed(t.terms))
            continue
        if splices(t):
            assert isinstance(t.factors[0], Sum)  # a one-factor product of a sum
            inner_scale = scale * t.coeff
            stack.extend((u, inner_scale) for u in reversed(t.factors[0].terms))
            continue
        if t.free and set(t.free) != out:
            hinted = hinted or Sum(s.terms, s.out, tuple(hints_for(s).items()))
            t = normalize_product(explicit_broadcast(t, hinted))
        flat.append(times_number(as_node(t), scale))
    return flat


def _lone_term(s: Sum) -> Expr | None:
    """What :func:`collect_terms` makes of a sum of one term that carries all the
    sum's indices and has nothing to splice or drop (a product rule applied to a
    single factor gives one): that term as :func:`collected_term` writes it. None for
    any other sum."""
    if len(s.terms) != 1:
        return None
    t = s.terms[0]
    if isinstance(t, Sum) or splices(t) or set(t.free) != set(s.out):
        return None
    t = as_node(t)
    coeff = t.coeff if isinstance(t, Product) else _ONE
    return None if coeff == 0 else collected_term(t, coeff)


# ========================================================================= prettify



_RULES: dict[type, Callable[..., Expr]] = {
    Func: _simplify_func,
    Pow: _simplify_pow,
    Inv: _simplify_closed,
    Det: _simplify_closed,
    LogDet: _simplify_closed,
    Product: _simplify_product,
    Sum: _simplify_sum,
}
