"""``softmax[k](u)``, ``log_softmax[k](u)`` and ``logsumexp[k](u)``: words of the
language defined by their expansion (docs/language.md, "Softmax and log-sum-exp").

The parser (:mod:`einderiv.symbolic.einstein`) builds each word as the expression it stands
for, with ``G`` the free indices of ``u`` other than ``k`` (the batch axes):

* ``logsumexp[k](u)  = log(sum[k](exp(u)))``                  free: ``G``
* ``softmax[k](u)    = exp(u) / sum[j](exp(u with k -> j))``    free: those of ``u``
* ``log_softmax[k](u) = u - logsumexp[k](u)``                   free: those of ``u``

so differentiation, simplification, evaluation and code export are the engine's
own, already tested rules: the lowering (:mod:`einderiv.numeric.lowering`) evaluates
``log(sum exp)`` max-shifted and ``exp(u)/sum exp`` as one softmax step, so the words
stay finite for large ``u``, and their derivatives (``d logsumexp = softmax``,
``d softmax = softmax (delta - softmax)``) come out of the chain rule.

The printers recognise these shapes wherever they occur -- written by the parser or
by hand, or made by ``diff`` -- and print them back as the words. :func:`named_view`
rewrites an expression for printing only: each shape becomes a :class:`Word` node
(a :class:`~einderiv.core.ir.Func` subclass whose free indices are the word's). A
``Word`` never reaches the engine; it exists between the recogniser and a printer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

from .broadcast import unbroadcast
from .canonical import canonical_key
from .ir import (RENAME_RULES, Expr, Func, Index, Pow, Product, Sum, cached, children, const_value,
                 factor_indices, number, remember, rename, walk, with_children)

__all__ = ["WORDS", "expand", "named_view", "Word", "lse_parts", "softmax_parts"]

#: The reserved words, each taking ``[index](expr)``.
WORDS = ("softmax", "log_softmax", "logsumexp")


# ====================================================================== expansions


def _sum_exp(u: Expr, k: Index) -> Product:
    """``sum[k](exp(u))``: ``k`` summed by this product (a scope of its own)."""
    return Product(Fraction(1), (Func("exp", u),), tuple(i for i in u.free if i != k))


def expand(word: str, u: Expr, k: Index) -> Expr:
    """The expression ``word[k](u)`` stands for (``k`` a free index of ``u``)."""
    assert k in u.free, (word, k, u.free)
    if word == "logsumexp":
        return Func("log", _sum_exp(u, k))
    if word == "softmax":
        return Product(Fraction(1), (Func("exp", u), Pow(_sum_exp(u, k), number(-1))), u.free)
    if word == "log_softmax":
        rest = tuple(i for i in u.free if i != k)
        return Sum((u, Product(Fraction(-1), (expand("logsumexp", u, k),), rest)), u.free)
    raise ValueError(word)  # pragma: no cover


# ===================================================================== recognisers


@dataclass(frozen=True, repr=False)
class Word(Func):
    """``name[index](arg)`` for the printers (see the module docstring)."""

    index: Index = ""

    @property
    def free(self) -> tuple[Index, ...]:
        if self.name == "logsumexp":
            return tuple(i for i in self.arg.free if i != self.index)
        return self.arg.free

    def renamed(self, mapping: Mapping[Index, Index]) -> Word:
        """The word with its free labels renamed (:func:`einderiv.core.ir.rename`): the axis
        of softmax and log_softmax is one of them; that of logsumexp is bound."""
        if self.name == "logsumexp":
            inner = {k: v for k, v in mapping.items() if k != self.index}
            return Word(self.name, rename(self.arg, inner), self.index)
        return Word(self.name, rename(self.arg, mapping), mapping.get(self.index, self.index))


RENAME_RULES[Word] = Word.renamed  # a word binds its axis (logsumexp) or renames it


def lse_parts(e: Expr) -> tuple[Expr, Index] | None:
    """``(u, k)`` where ``e`` is ``log(sum[k](exp(u)))`` -- one summed index, no
    number in front -- else None."""
    if not (isinstance(e, Func) and type(e) is Func and e.name == "log"):
        return None
    return _sum_exp_parts(e.arg)


def _sum_exp_parts(s: Expr) -> tuple[Expr, Index] | None:
    if not (isinstance(s, Product) and s.coeff == 1 and len(s.factors) == 1):
        return None
    f = s.factors[0]
    if not (type(f) is Func and f.name == "exp"):
        return None
    labels = factor_indices(f)
    if len(set(labels)) != len(labels):
        return None
    summed = [i for i in f.free if i not in s.out]
    if len(summed) != 1 or not set(s.out) <= set(f.free):
        return None
    return f.arg, summed[0]


def _same_up_to(u: Expr, k: Index, w: Expr, j: Index) -> bool:
    """Whether ``w`` with ``j`` renamed ``k`` is ``u`` (up to the names of the indices
    each sums): the exponent of a softmax and that of its normaliser."""
    if set(u.free) - {k} != set(w.free) - {j} or k not in u.free or j not in w.free:
        return False
    if k != j and k in w.free:
        return False
    return canonical_key(u, {k: "@softmax"}) == canonical_key(w, {j: "@softmax"})


def softmax_parts(p: Product) -> list[tuple[list[tuple[int, Index]], int]]:
    """The softmaxes among the factors of ``p``: for each normaliser factor
    ``sum[j](exp(w))**-n`` (n a positive integer), ``n`` factors ``exp(u)``, each ``w``
    with ``j`` renamed to one of its own indices ``k`` (``p_b p_k`` in the softmax
    Jacobian has two). Returns ``([(exp factor, k), ...], normaliser factor)`` pairs;
    each factor is used once at most."""
    found: list[tuple[list[tuple[int, Index]], int]] = []
    used: set[int] = set()
    for n, f in enumerate(p.factors):
        power = const_value(f.exponent) if isinstance(f, Pow) else None
        if power is None or power >= 0 or power.denominator != 1:
            continue
        assert isinstance(f, Pow)  # a power was found above
        parts = _sum_exp_parts(f.base)
        if parts is None:
            continue
        w, j = parts
        exps: list[tuple[int, Index]] = []
        for m, g in enumerate(p.factors):
            if len(exps) == -power:
                break
            if m in used or not (type(g) is Func and g.name == "exp"):
                continue
            labels = factor_indices(g)
            if len(set(labels)) != len(labels):
                continue
            ks = [k for k in g.free if k not in f.base.free]
            if len(ks) == 1 and _same_up_to(g.arg, ks[0], w, j):
                exps.append((m, ks[0]))
        if len(exps) == -power:
            found.append((exps, n))
            used.update(m for m, _ in exps)
            used.add(n)
    return found


def named_view(e: Expr) -> Expr:
    """``e`` with the shapes of the words replaced by :class:`Word` nodes, for the
    printers; ``e`` itself where none occurs."""
    return _view_memo(e) if _may_contain(e) else e


def _view_memo(e: Expr) -> Expr:
    """:func:`_view`, memoised on the immutable node (``True``: no word below)."""
    found = cached(e, "named_view")
    if found is None:
        found = _view(e)
        remember(e, "named_view", True if found is e else found)
    return e if found is True else found


def _may_contain(e: Expr) -> bool:
    return any(type(n) is Func and n.name == "exp" for n in walk(e))


def _view(e: Expr) -> Expr:
    if isinstance(e, Word):
        return e
    parts = lse_parts(e)
    if parts is not None:
        u, k = parts
        return Word("logsumexp", _view_memo(u), k)
    if isinstance(e, Product):
        pairs = softmax_parts(e)
        factors = list(e.factors)
        drop: set[int] = set()
        for exps, n in pairs:
            for m, k in exps:
                factors[m] = Word("softmax", _view_memo(e.factors[m].arg), k)  # type: ignore[attr-defined]
            drop.add(n)
        new = tuple(_view_memo(f) if n not in drop and not isinstance(f, Word) else f
                    for n, f in enumerate(factors) if n not in drop)
        if not pairs and all(a is b for a, b in zip(new, e.factors)):
            return e
        return Product(e.coeff, new, e.out)
    if isinstance(e, Sum):
        return _log_softmax_sum(e)
    kids = children(e)
    new_kids = [_view_memo(c) for c in kids]
    if all(a is b for a, b in zip(new_kids, kids)):
        return e
    return with_children(e, new_kids)


def _terms_of(u: Expr) -> list[Expr]:
    return list(u.terms) if isinstance(u, Sum) and u.terms else [u]


def _plain(t: Expr) -> Expr:
    """A one-factor product that only orders its factor's axes, as that factor."""
    if isinstance(t, Product) and t.coeff == 1 and len(t.factors) == 1:
        f = t.factors[0]
        labels = factor_indices(f)
        if set(labels) == set(t.out) and len(labels) == len(set(labels)):
            return f
    return t


def _log_softmax_sum(s: Sum) -> Expr:
    """A sum with the terms of ``u`` and ``-logsumexp[k](u)`` among its terms: those
    terms become one ``log_softmax[k](u)`` (in the place of the first of them)."""
    terms = list(s.terms)
    bare = [_plain(unbroadcast(t, keep_scalars=False)) for t in terms]
    for n, t in enumerate(bare):
        if not (isinstance(t, Product) and t.coeff == -1 and len(t.factors) == 1):
            continue
        parts = lse_parts(t.factors[0])
        if parts is None or set(t.out) != set(t.factors[0].free):
            continue
        w, j = parts
        axis = set(s.out) - set(t.free)
        if len(axis) != 1 or set(w.free) - {j} != set(t.free):
            continue
        (k,) = axis
        u = rename(w, {j: k})
        wanted = _terms_of(u)
        places: list[int] = []
        for w in wanted:
            key = canonical_key(_plain(unbroadcast(w, keep_scalars=False)))
            at = next((m for m, x in enumerate(bare)
                       if m != n and m not in places and canonical_key(x) == key), None)
            if at is None:
                break
            places.append(at)
        if len(places) != len(wanted):
            continue
        first = min(places)
        word = Word("log_softmax", _view_memo(u), k)
        position = sum(1 for m in range(first) if m not in places and m != n)
        rest = [_view_memo(x) for m, x in enumerate(terms) if m not in places and m != n]
        rest.insert(position, word)
        if len(rest) == 1 and tuple(word.free) == s.out:
            return word
        return Sum(tuple(rest), s.out, s.hints)
    new = tuple(_view_memo(t) for t in terms)
    if all(a is b for a, b in zip(new, s.terms)):
        return s
    return Sum(new, s.out, s.hints)
