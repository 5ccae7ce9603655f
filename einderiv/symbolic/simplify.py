"""Simplification: named rules applied bottom-up, one function per node type.

The rules (each a function below):

* :func:`flatten_product` -- a product inside a product is one einsum term; numbers
  fold into the coefficient; equal scalar factors merge into powers (``n * n**-1 = 1``).
* :func:`contract_deltas` -- ``delta[i,j]`` with ``j`` summed renames ``j`` to ``i``
  (notes 001_*, A.18 -> A.19); a delta with both indices free stays
  (``d x[i] / d x[j] = delta[j,i]``).
* :func:`expand_delta_sums` -- a sum factor whose terms carry deltas is multiplied
  out, so the deltas can be contracted; other sums stay factored (the residual
  ``X theta - Y`` is kept whole, as in A.20).
* :func:`collect_terms` -- terms equal up to the names of summed indices and the
  order of factors are added (A.19 -> A.20: two equal terms become one with
  coefficient 2); zeros are dropped.
* :func:`~einderiv.core.canonical.canonical_key` (in :mod:`einderiv.core.canonical`) -- a
  name-independent key of a term, used for ordering and for recognising equal terms.
* :func:`prettify` -- summed indices renamed to readable letters, never shadowing an
  index of an enclosing scope.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping
from fractions import Fraction

from ..core.canonical import (
    Key,
    canonical_key,
    factor_order,
    indices_in_order,
    order_factors,
    ordered_product,
    product_parts,
    same_factors,
    same_tuple,
    sort_key,
)
from ..core.ir import (
    Delta,
    Det,
    Expr,
    Func,
    Index,
    Inv,
    LogDet,
    Pow,
    Product,
    SizeHint,
    Sum,
    Tensor,
    bound_indices,
    children,
    const_value,
    factor_indices,
    freshen_bound,
    gc_paused,
    number,
    outer_origins,
    rename,
    size_marker,
    walk,
)
from .identities import (
    FUNCTION_IDENTITIES,
    has_both_sigmoids,
    negated,
    note,
    one_plus_exp,
    reflect_sigmoids,
    sigmoid_complement,
)

__all__ = ["simplify", "prettify"]

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
    with gc_paused():
        result = prettify(_simplify(e))
        # Only a sum keeps size hints for its axes (a walk of all of e to find them).
        hints = outer_origins(e) if isinstance(result, Sum) else {}
        return _with_order(result, order, hints)


def _simplify(e: Expr) -> Expr:
    rule = _RULES.get(type(e))
    return rule(e) if rule else e


def _with_order(e: Expr, order: tuple[Index, ...], hints: Mapping[Index, SizeHint]) -> Expr:
    """``e`` with its free indices in ``order`` (a root needs a definite axis order)."""
    if e.free == order:
        if isinstance(e, Sum) and not e.terms:
            return Sum((), order, tuple((i, hints.get(i)) for i in order))
        return e
    if isinstance(e, Sum):
        terms = tuple(_reorder_term(t, order) for t in e.terms)
        return Sum(terms, order, tuple((i, hints.get(i)) for i in order))
    return _reorder_term(e, order)


def _reorder_term(t: Expr, order: tuple[Index, ...]) -> Expr:
    have = set(t.free)
    want = tuple(i for i in order if i in have)
    if t.free == want:
        return t
    if isinstance(t, Product):
        return Product(t.coeff, t.factors, want)
    return Product(Fraction(1), (t,), want)


# ===================================================================== atoms & calls


def _simplify_func(e: Func) -> Expr:
    arg = _node(_simplify(e.arg))
    value = const_value(arg)
    if value is not None:
        folded = _fold_number(e.name, value)
        if folded is not None:
            return _constant(folded)
    for name, rewrite in FUNCTION_IDENTITIES.get(e.name, ()):
        replaced = rewrite(arg)
        if replaced is not None:  # log(sigmoid(u)) = -softplus(-u), ...: identities.py
            note(name)
            return _simplify(replaced)
    return Func(e.name, arg)


def _fold_number(name: str, x: Fraction) -> Fraction | None:
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
        "sqrt": _exact_sqrt,
    }
    fold = exact.get(name)
    return fold(x) if fold else None


def _constant(v: Fraction) -> Expr:
    """A number in canonical form: zero is the empty sum, as ``parse("0")`` gives."""
    return Sum((), ()) if v == 0 else number(v)


def _exact_sqrt(v: Fraction) -> Fraction | None:
    if v < 0:
        return None
    n, d = math.isqrt(v.numerator), math.isqrt(v.denominator)
    return Fraction(n, d) if n * n == v.numerator and d * d == v.denominator else None


def _simplify_pow(e: Pow) -> Expr:
    return _power(_node(_simplify(e.base)), _simplify(e.exponent))


def _power(base: Expr, exponent: Expr) -> Expr:
    """``base**exponent`` of simplified parts, by the power rules: ``x**1 = x``,
    ``x**0 = 1``, small integer powers of numbers folded, ``(x**a)**k = x**(a k)`` for
    an integer ``k``, ``(1 + exp(w))**-1 = sigmoid(-w)``."""
    k = const_value(exponent)
    if k is not None:
        if k == 1:
            return base
        if k == 0:
            return _ones_like(base)
        b = const_value(base)
        if b is not None and k.denominator == 1 and not (b == 0 and k < 0) and \
                abs(k) * max(b.numerator.bit_length(), b.denominator.bit_length()) <= 4096:
            return _constant(b ** int(k))  # fold only while the result stays small
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


def _ones_like(e: Expr) -> Expr:
    hints = outer_origins(e)
    if not e.free:
        return number(1)
    return Product(Fraction(1), tuple(Delta(i, i, hints.get(i)) for i in e.free), e.free)


def _common_number_out(p: Product) -> Product:
    """A sum factor whose terms all carry the same number up to sign gives it to the
    product's coefficient, where there are other factors: ``1/2 (2 mu - 2 x) s**-2`` is
    ``(mu - x) s**-2`` (issue 15: numeric constants fold)."""
    if len(p.factors) < 2:
        return p
    for k, f in enumerate(p.factors):
        if not isinstance(f, Sum) or len(f.terms) < 2 or \
                not all(isinstance(t, Product) for t in f.terms):
            continue
        g = abs(f.terms[0].coeff)  # type: ignore[union-attr]
        if g in (0, 1) or any(abs(t.coeff) != g for t in f.terms):  # type: ignore[union-attr]
            continue
        inner = collect_terms(Sum(tuple(_scale(t, 1 / g) for t in f.terms), f.out, f.hints))
        factors = p.factors[:k] + (inner,) + p.factors[k + 1:]
        return Product(p.coeff * g, factors, p.out)
    return p


def _simplify_closed(e: Inv | Det | LogDet) -> Expr:
    """The argument of inv/det/logdet is a closed scope: simplified as a root, so its
    axis order (rows, columns) is kept."""
    arg = _with_order(_simplify(e.arg), e.arg.free, outer_origins(e.arg))
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
            and _bare(p.factors[0], set(p.out)):
        return p.factors[0]  # one atom that means the same alone: no rule applies
    p = flatten_product(p)
    if not isinstance(p, Product):
        return p
    p = contract_deltas(p)
    if any(isinstance(f, Product) or (isinstance(f, Sum) and len(f.terms) <= 1)
           for f in p.factors):
        return normalize_product(p)  # a renamed factor simplified to a product: flatten
    expanded = expand_delta_sums(p)
    if expanded is not None:
        return expanded
    p = merge_scalar_powers(p)
    if p.coeff == 0:
        return _zero_like(p)
    if len(p.factors) == 1 and p.coeff == 1 and _bare(p.factors[0], set(p.out)):
        # Below the root only the labels matter, not their order; simplify() restores
        # the root's order, so one canonical form serves every spelling.
        return p.factors[0]
    p = _common_number_out(p)
    if len(p.factors) == 1 and isinstance(p.factors[0], Sum):
        s = p.factors[0]
        scaled = collect_terms(Sum(tuple(_scale(t, p.coeff) for t in s.terms), s.out, s.hints))
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


def _bare(f: Expr, out: set[Index]) -> bool:
    """Whether the one-factor product ``f -> out`` means the same as ``f`` alone:
    same free set and no index repeated within ``f`` (``X[a,a]`` alone is a trace)."""
    labels = factor_indices(f)
    return set(f.free) == out and len(labels) == len(set(labels))


def _scale(t: Expr, c: Fraction) -> Expr:
    if c == 1:
        return t
    if isinstance(t, Product):
        return same_factors(Product(t.coeff * c, t.factors, t.out), t)
    return Product(c, (t,), t.free)


def _zero_like(e: Expr) -> Sum:
    hints = outer_origins(e)
    return Sum((), e.free, tuple((i, hints.get(i)) for i in e.free))


def flatten_product(p: Product) -> Expr:
    """Merge nested products and one-term sums, fold numbers; zero if any factor is."""
    if not any(isinstance(f, (Product, Sum)) for f in p.factors):
        return _zero_like(p) if p.coeff == 0 else p  # nothing to merge
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
            f = _broadcast_term(t, f) if set(t.free) != set(f.out) else t
        if isinstance(f, Sum) and not f.terms:
            return _zero_like(p)
        if isinstance(f, Product):
            f = freshen_bound(f, taken)
            taken.update(bound_indices(f))
            coeff *= f.coeff
            stack.extend(reversed(f.factors))
            continue
        out.append(f)
    if coeff == 0:
        return _zero_like(p)
    return Product(coeff, tuple(out), p.out)


def _broadcast_term(t: Expr, s: Sum) -> Expr:
    """Term ``t`` of sum ``s`` made explicit along the indices it broadcasts over."""
    missing = [i for i in s.out if i not in set(t.free)]
    hints = dict(s.hints)
    hints.update({k: v for k, v in outer_origins(s).items() if k not in hints})
    markers = tuple(Delta(i, i, hints.get(i)) for i in missing)
    return Product(Fraction(1), (t, *markers), s.out)


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
                        factors = _share_delta_hints(
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
    shared = _share_delta_hints(factors)
    if not renamed_any and shared is factors:
        return p  # nothing to contract
    return Product(p.coeff, tuple(shared), p.out)


def _resimplify(g: Expr) -> Expr:
    return g if isinstance(g, (Tensor, Delta)) else _simplify(g)


def _share_delta_hints(factors: list[Expr]) -> list[Expr]:
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


def expand_delta_sums(p: Product) -> Expr | None:
    """Multiply out a sum factor that carries deltas, then simplify each term. A sum
    whose terms carry only ones-markers (``R[e,b] + b2[e]``: the bias broadcast along
    the samples) is multiplied out only where that is no longer: the residual of a
    batch MLP stays whole, ``W - W s 1^T`` becomes ``W s 1^T y - W y``."""
    for k, f in enumerate(p.factors):
        if not isinstance(f, Sum):
            continue
        kinds = {_delta_kind(t) for t in f.terms}
        if not kinds & {"delta", "marker"}:
            continue
        rest = p.factors[:k] + p.factors[k + 1:]
        terms = []
        for t in f.terms:
            t = _broadcast_term(t, f) if set(t.free) != set(f.out) else t
            terms.append(normalize_product(Product(p.coeff, (*rest, t), p.out)))
        expanded = collect_terms(Sum(tuple(terms), p.out, ()))
        if "delta" in kinds or _size(expanded) <= _size(p):
            return expanded
    return None


def _delta_kind(t: Expr) -> str | None:
    """``"delta"`` if ``t`` carries a delta to contract, ``"marker"`` if only
    ones-markers ``delta[b,b]`` (a term broadcast along an axis it lacks), else None."""
    factors = (t,) if isinstance(t, Delta) else t.factors if isinstance(t, Product) else ()
    deltas = [f for f in factors if isinstance(f, Delta)]
    if any(f.i != f.j for f in deltas):
        return "delta"
    return "marker" if deltas else None


def merge_scalar_powers(p: Product) -> Product:
    """``n * n`` -> ``n**2`` and ``n * n**-1`` -> 1 for factors without free indices;
    numeric factors (after folding) go into the coefficient. Factors with free indices
    merge too where they are equal up to the names of their own summed indices
    (:func:`merge_indexed_powers`)."""
    coeff = p.coeff
    rest: list[Expr] = []
    scalars: list[tuple[Expr, Fraction]] = []  # (base, exponent) of index-free powers
    for f in _sqrt_as_powers(p.factors):
        value = const_value(f)
        if value is not None:
            coeff *= value
            continue
        base, k = _base_and_exponent(f)
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


def _sqrt_as_powers(factors: tuple[Expr, ...]) -> tuple[Expr, ...]:
    """``sqrt(u)**k`` as ``u**(k/2)`` where another factor is a power of ``u``, so the
    two merge: ``s (1 - s) / sqrt(s)`` is ``sqrt(s) (1 - s)``, which stays 0 where ``s``
    underflows to 0, instead of 0/0 (oracle fuzz seed 31, input 2446: the derivative of
    ``sqrt(sigmoid(u))``)."""
    roots = [k for k, f in enumerate(factors) if _sqrt_base(f) is not None]
    if not roots:
        return factors
    bases = {canonical_key(_base_and_exponent(f)[0]) for k, f in enumerate(factors)
             if k not in roots}
    result = list(factors)
    for k in roots:
        inner, power = _sqrt_base(factors[k])  # type: ignore[misc]
        if canonical_key(inner) in bases:
            result[k] = Pow(inner, number(power / 2))
    return tuple(result)


def _sqrt_base(f: Expr) -> tuple[Expr, Fraction] | None:
    """``(u, k)`` for ``f = sqrt(u)**k`` (k a number, 1 for ``sqrt(u)``), else None."""
    base, k = _base_and_exponent(f)
    if k is not None and isinstance(base, Func) and base.name == "sqrt":
        return base.arg, k
    return None


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
        base, power = _base_and_exponent(f)
        if power is not None and not isinstance(base, (Tensor, Delta)):
            groups.setdefault(canonical_key(base), []).append(k)
    # only where a division is involved: r[a]*r[a] stays a product of two equal
    # factors (the Gram form r^T r of the matrix printer), s*s/s is s
    merged = [ks for ks in groups.values()
              if len(ks) > 1 and any(_base_and_exponent(factors[k])[1] < 0 for k in ks)]
    if not merged:
        return factors
    note("cancel-equal-factors")
    result: list[Expr | None] = list(factors)
    markers: list[Expr] = []
    for ks in merged:
        base = _base_and_exponent(factors[ks[0]])[0]
        total = sum((_base_and_exponent(factors[k])[1] for k in ks), Fraction(0))
        for k in ks:
            result[k] = None
        if total != 0:
            result[ks[0]] = base if total == 1 else _power(base, number(total))
            continue
        carried = {i for f in result if f is not None for i in factor_indices(f)}
        hints = outer_origins(base)
        markers.extend(Delta(i, i, hints.get(i)) for i in base.free if i not in carried)
    return [f for f in result if f is not None] + markers


def _merged_powers(scalars: list[tuple[Expr, Fraction]]) -> list[Expr]:
    """The powers of equal bases (by canonical key) multiplied, in order of first
    appearance; a power that comes to 0 is dropped. A merged power goes through the
    power rules (:func:`_power`), and what they rewrite is merged again:
    ``(q**-2)**(-1/2) (q**-2)**(-1/2) q**-2`` is ``(q**-2)**-1 q**-2 = q**2 q**-2 = 1``
    (so that simplifying the printed result changes nothing; fuzz --seed 57)."""
    for _ in range(8):  # each round unwraps a power of a power: a few rounds at most
        if len(scalars) < 2:  # nothing to merge: no keys needed
            powers = [[base, k] for base, k in scalars]
        else:
            by_key: dict[tuple, list] = {}
            for base, k in scalars:
                key = canonical_key(base)
                if key in by_key:
                    by_key[key][1] += k
                else:
                    by_key[key] = [base, k]
            powers = list(by_key.values())
        powers = [(base, k) for base, k in powers if k != 0]
        merged = [base if k == 1 else _power(base, number(k)) for base, k in powers]
        # merged again where the rules (or k = 1 of a power) leave another base
        rewritten = any(_base_and_exponent(m)[0] is not base
                        for m, (base, _) in zip(merged, powers))
        if not rewritten or len(merged) < 2:
            return merged
        scalars = [_base_and_exponent(m) for m in merged]
        if any(k is None for _, k in scalars):  # a symbolic exponent: ((p**q)**(3/2))**(-1/2)
            return merged
    return merged


def _base_and_exponent(f: Expr) -> tuple[Expr, Fraction | None]:
    """``(x, k)`` for ``f = x**k`` (k None: not a number), ``(f, 1)`` otherwise."""
    return (f.base, const_value(f.exponent)) if isinstance(f, Pow) else (f, _ONE)


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
        if _size(reflected) < _size(collected):
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
               for t in s.terms) or _size(s, EXPAND_MAX_NODES + 1) > EXPAND_MAX_NODES:
        return s  # nothing to multiply out (the common case: no walk), or too large
    expanded: list[Expr] = []
    grew = False
    for t in s.terms:
        parts = _distributed(t)
        if parts is None:
            expanded.append(t)
            continue
        grew = True
        expanded.extend(parts)
        if len(expanded) > EXPAND_MAX_TERMS:
            return s
    if not grew or not _some_alike(expanded):
        return s
    terms = [normalize_product(t) if isinstance(t, Product) else t for t in expanded]
    result = collect_terms(Sum(tuple(terms), s.out, s.hints))
    if _size(result) >= _size(s):
        return s
    note("multiply-out")
    return result


def _some_alike(terms: list[Expr]) -> bool:
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


def _distributed(t: Expr) -> list[Expr] | None:
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
        u = _broadcast_term(u, f) if set(u.free) != set(f.out) else u
        part = flatten_product(Product(t.coeff, (*rest, u), t.out))
        more = _distributed(part) if len(sums) > 1 else None
        parts.extend(more if more is not None else [part])
    return parts


def _size(e: Expr, limit: int | None = None) -> int:
    """The number of nodes of ``e`` (counting stops at ``limit``)."""
    return sum(1 for _ in itertools.islice(walk(e), limit))


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
        key = _term_key(t)
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
    for key in sorted(groups, key=lambda k: (_has_factors(groups[k][0]), sort_key(k))):
        first, coeff = groups[key]
        if coeff == 0:
            continue
        term = _collected(first, coeff)
        _remember_term_key(term, key if len(key) == 4 else key[:4])
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
        with_hints = Sum((inner,), s.out, tuple(_hints_for(s).items()))
        return normalize_product(_broadcast_term(inner, with_hints))
    if not terms or any(set(t.free) != set(s.out) for t in terms):
        hints = _hints_for(s)
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
        if _splices(t):
            inner_scale = scale * t.coeff
            stack.extend((u, inner_scale) for u in reversed(t.factors[0].terms))
            continue
        if t.free and set(t.free) != out:
            hinted = hinted or Sum(s.terms, s.out, tuple(_hints_for(s).items()))
            t = normalize_product(_broadcast_term(t, hinted))
        flat.append(_scale(_node(t), scale))
    return flat


def _splices(t: Expr) -> bool:
    """Whether ``t`` is a one-factor product of a sum with the same indices, whose
    terms go into the enclosing sum (with the product's coefficient)."""
    return isinstance(t, Product) and len(t.factors) == 1 and isinstance(t.factors[0], Sum) \
        and set(t.factors[0].out) == set(t.out) and \
        len(set(factor_indices(t.factors[0]))) == len(t.out)


def _lone_term(s: Sum) -> Expr | None:
    """What :func:`collect_terms` makes of a sum of one term that carries all the
    sum's indices and has nothing to splice or drop (a product rule applied to a
    single factor gives one): that term as :func:`_collected` writes it. None for
    any other sum."""
    if len(s.terms) != 1:
        return None
    t = s.terms[0]
    if isinstance(t, Sum) or _splices(t) or set(t.free) != set(s.out):
        return None
    t = _node(t)
    coeff = t.coeff if isinstance(t, Product) else _ONE
    return None if coeff == 0 else _collected(t, coeff)


def size_signature(e: Expr) -> tuple:
    """The sizes ``(x, k)`` of the size markers in ``e`` (``size(x, k)``: a summed
    ``delta[i,i]`` whose size hint is an axis of a variable, see
    :func:`einderiv.core.ir.size_marker`), sorted. Equality of expressions ignores size
    hints, so terms equal but for these are told apart by it. Memoised."""
    if isinstance(e, (Tensor, Delta)):
        return ()
    found = e.__dict__.get("_size_signature")
    if found is None:
        sizes: list = []
        if isinstance(e, Product):
            sizes.extend(f.size for f in e.factors if size_marker(f, e))  # type: ignore[union-attr]
        for c in children(e):
            sizes.extend(size_signature(c))
        found = tuple(sorted(sizes))
        object.__setattr__(e, "_size_signature", found)
    return found


def _has_factors(t: Expr) -> bool:
    """False for a number (a product without factors): numbers come first in a sum."""
    return bool(t.factors) if isinstance(t, Product) else True


def _collected(first: Expr, coeff: Fraction) -> Expr:
    """The term of :func:`collect_terms` for a group of equal terms: the factors of
    the group's first term with the total coefficient; a lone factor that means the
    same alone (coefficient 1, see :func:`_bare`) stands for itself."""
    factors, out = (first.factors, first.out) if isinstance(first, Product) \
        else ((first,), first.free)
    if coeff == 1 and len(factors) == 1 and _bare(factors[0], set(out)):
        return factors[0]
    if not isinstance(first, Product):
        return Product(coeff, factors, out)
    if first.coeff is coeff or first.coeff == coeff:
        return first  # already that product (the identity test is the common, quick case)
    return same_factors(Product(coeff, factors, out), first)


def _term_order(t: Expr) -> tuple:
    """Terms in canonical order: numbers first, then by name-blind key."""
    return (_has_factors(t), sort_key(_term_key(t)))


def _term_key(t: Expr) -> Key:
    """The canonical key of term ``t`` without its coefficient: that of
    ``Product(1, t.factors, t.out)``, or of ``Product(1, (t,), t.free)`` for a term that
    is not a product. Memoised on the node: collecting and prettifying both sort by it."""
    key = t.__dict__.get("_term_key")
    if key is None:
        if isinstance(t, Product):
            body, tail, _ = product_parts(t, {})
        else:
            body, tail, _ = order_factors((t,), {i: i for i in t.free})
        key = ("*", (1, 1), body, tail)
        object.__setattr__(t, "_term_key", key)
    return key


def _remember_term_key(t: Expr, key: Key) -> None:
    """Note ``key`` as the :func:`_term_key` of ``t`` (a term built from a group with
    that key), so sorting it again needs no new key."""
    if "_term_key" not in t.__dict__:
        object.__setattr__(t, "_term_key", key)


def _hints_for(s: Sum) -> dict[Index, SizeHint]:
    """Size hints for the axes of ``s`` taken before its terms are combined, so a
    size survives when the tensors that carried it cancel (``M[j,i] + s - M[j,i]``)."""
    hints = dict(s.hints)
    origins = outer_origins(s)
    for i in s.out:
        if hints.get(i) is None and origins.get(i) is not None:
            hints[i] = origins[i]
    return hints


# ========================================================================= prettify

_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _pool(taken: set[Index]) -> Iterable[Index]:
    for n in itertools.count():
        for ch in _LETTERS:
            name = ch if n == 0 else f"{ch}{n}"
            if name not in taken:
                yield name


def prettify(e: Expr, taken: set[Index] | None = None) -> Expr:
    """Rename summed indices (and the internal indices of closed scopes) to readable
    letters in order of appearance. Each scope gets names used nowhere else in the
    expression, so sibling sums read ``b`` and ``c`` as in the notes (001_*, A.17).
    Axes are put in sorted order everywhere (only labels matter inside an expression;
    one order makes one canonical form); the argument of inv/det/logdet keeps rows
    before columns, and :func:`simplify` gives the root its axis order afterwards."""
    used = set(e.free) if taken is None else set(taken)
    # Never a variable's name (no 'b[b]'), nor one that size(x, k) names.
    used.update(e.variables)
    used.update(name for name, _ in size_signature(e))
    return _pretty(e, used)


def _node(e: Expr) -> Expr:
    """An atom with a repeated index standing alone (``exp(M[i,i])`` after a delta
    renamed ``M[i,l]``) is its diagonal: spelled as the parser spells it,
    ``M[i,i] -> [i]``, so each expression has one canonical form."""
    labels = factor_indices(e)
    if isinstance(e, (Tensor, Delta, Inv)) and len(set(labels)) < len(labels):
        return Product(Fraction(1), (e,), tuple(sorted(e.free)))
    return e


def _pretty(e: Expr, used: set[Index]) -> Expr:
    """``used`` holds every name assigned so far; it grows as scopes are visited."""
    if isinstance(e, (Tensor, Delta)):
        return e
    if isinstance(e, Func):
        return Func(e.name, _node(_pretty(e.arg, used)))
    if isinstance(e, Pow):
        return Pow(_node(_pretty(e.base, used)), _pretty(e.exponent, used))
    if isinstance(e, (Inv, Det, LogDet)):
        arg = e.arg
        names = list(itertools.islice(_pool(used), 2))
        used.update(names)
        inner = _pretty(rename(arg, dict(zip(arg.free, names))), used)
        inner = _with_order(inner, tuple(names), outer_origins(inner))
        return Inv(inner, e.indices) if isinstance(e, Inv) else type(e)(inner)
    if isinstance(e, Sum):
        used.update(e.out)
        out = tuple(sorted(e.out))
        # Order first (name-blind keys), then name: names follow the printed order.
        ordered = sorted((_node(t) for t in e.terms), key=_term_order)
        terms = [_pretty(t, used) for t in ordered]
        return Sum(tuple(terms), out, e.hints)
    if isinstance(e, Product):
        used.update(e.out)
        bound = bound_indices(e)
        ordered = factor_order(e, {})
        if not bound:  # no summed index to name
            return _pretty_unsummed(e, ordered, used)
        e = Product(e.coeff, ordered, e.out)
        order = [i for f in e.factors for i in indices_in_order(f, frozenset(bound))
                 if i in bound]
        order = list(dict.fromkeys(order)) + sorted(bound - set(order))
        names = _pool(used)
        mapping = {b: next(names) for b in order}
        used.update(mapping.values())
        factors = [rename(f, mapping) for f in e.factors]  # at once: a swap cannot collide
        out = tuple(sorted(e.out))
        return Product(e.coeff, tuple(_pretty(f, used) for f in factors), out)
    raise TypeError(e)  # pragma: no cover


def _pretty_unsummed(p: Product, ordered: tuple[Expr, ...], used: set[Index]) -> Product:
    """:func:`_pretty` of a product without summed indices, its factors ``ordered``:
    only the factors have names to choose (``p`` itself where nothing changes)."""
    factors = same_tuple(tuple(_pretty(f, used) for f in ordered), p.factors)
    out = tuple(sorted(p.out))
    if factors is p.factors and out == p.out:
        return p
    return Product(p.coeff, factors, out)


_RULES: dict[type, Callable[..., Expr]] = {
    Func: _simplify_func,
    Pow: _simplify_pow,
    Inv: _simplify_closed,
    Det: _simplify_closed,
    LogDet: _simplify_closed,
    Product: _simplify_product,
    Sum: _simplify_sum,
}
