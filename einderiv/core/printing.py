"""Index-notation printers: plain text that :func:`einderiv.parse` reads back to an
equal expression, and LaTeX.

Text rules: a product prints its factors joined by ``*`` with negative powers as
divisions (``2*X[a,d]*r[a]/n``); where the Einstein rule would not give the product's
free indices, it adds ``sum[i](...)`` or an explicit ``-> [i,j]``. At the root the
axis order is part of the expression, so ``-> [...]`` is added whenever the order
differs from the einsum implicit (sorted) order. Under the issue-14 rules a sum's
terms are printed without the ones they only broadcast along (a sum broadcasts by
name), a product inside a printed ``sum[a](...)`` keeps ``a`` free without ``-> [...]``,
and a summed ``delta[i,i]`` whose size is an axis of a variable prints ``size(x, k)``.

LaTeX (:func:`to_latex`) means the expression under the usual Einstein reading, with
explicit ``\\sum`` and ``\\left[...\\right]_{i}`` outputs where that reading would
differ (docs/language.md, "LaTeX").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from fractions import Fraction
from typing import Any

from ..errors import LimitError
from .definitions import fold, in_names, used_definitions
from .named import has_names
from .broadcast import explicit_broadcast, unbroadcast
from .functions import FUNCTIONS
from .ir import (Delta, Det, Expr, Func, Index, Inv, LogDet, Pow, Product, Sum, Tensor, all_indices,
                 const_value, factor_indices, rename)
from .scopes import size_marker
from .softmax import Word, named_view

__all__ = ["to_text", "to_latex", "format_number", "latex_name", "latex_indices"]


def format_number(value: Fraction) -> str:
    """``2``, ``-1/3``: integers plain, other rationals as a fraction."""
    if max(value.numerator.bit_length(), value.denominator.bit_length()) > 13000:
        # ~3900 digits: what the lexer reads back
        raise LimitError("a number in the expression has more than 3900 digits; "
                         "einderiv cannot print it")
    if value.denominator == 1:
        return str(value.numerator)
    return f"{value.numerator}/{value.denominator}"


#: The indices bound by the ``sum[...]``s printed around the text being printed: parse
#: keeps them free throughout the body (docs/language.md), so the Einstein rule there
#: does not sum them. Empty at the root and inside inv/det/logdet (closed scopes).
_BOUND: ContextVar[frozenset] = ContextVar("einderiv_printing_bound", default=frozenset())


@contextmanager
def _bound_as(bound: frozenset) -> Iterator[None]:
    token = _BOUND.set(bound)
    try:
        yield
    finally:
        _BOUND.reset(token)


def _implicit(factors: tuple[Expr, ...], p: Product | None = None) -> tuple[Index, ...]:
    """The free indices the Einstein rule gives ``factors`` (of product ``p``) where
    printed: those occurring once, and those a printed ``sum[...]`` around binds. A
    size marker (printed ``size(x, k)``) shows no index."""
    bound = _BOUND.get()
    counts: dict[Index, int] = {}  # a plain dict: Counter.update is slow for small inputs
    for f in factors:
        if p is not None and isinstance(f, Delta) and size_marker(f, p):
            continue
        for i in factor_indices(f):
            counts[i] = counts.get(i, 0) + 1
    return tuple(sorted(i for i, c in counts.items() if c == 1 or i in bound))


def _size_text(f: Delta) -> str:
    assert isinstance(f.size, tuple)  # a size marker's hint is (variable, axis)
    name, axis = f.size
    return f"size({name}, {axis})"


def _lone_size(e: Expr) -> Delta | None:
    """The size marker ``e`` is alone (``size(x, 0)``: one factor, no number), or None."""
    if isinstance(e, Product) and e.coeff == 1 and len(e.factors) == 1 and not e.out and \
            size_marker(e.factors[0], e):
        return e.factors[0]
    return None


def _split(p: Product) -> tuple[list[Expr], list[Expr]]:
    num, den = [], []
    for f in p.factors:
        k = const_value(f.exponent) if isinstance(f, Pow) else None
        if k is not None and k < 0:
            assert isinstance(f, Pow)  # only a power has an exponent
            den.append(f.base if k == -1 else Pow(f.base, _number(-k)))
        else:
            num.append(f)
    return num, den


def _number(k: Fraction) -> Product:
    return Product(k, (), ())


# ============================================================================== text


def to_text(e: Expr) -> str:
    """Index notation for ``e``, with the root's axis order made explicit if needed.
    The shapes of ``softmax[k](u)``, ``log_softmax[k](u)`` and ``logsumexp[k](u)``
    print as those words (:func:`einderiv.core.softmax.named_view`). An expression
    with definitions prints in their names, after the definitions it uses
    (:mod:`einderiv.core.definitions`)."""
    if has_names(e):
        return in_names(e, lambda x: _rooted(named_view(x)))
    return _rooted(named_view(e))


def _rooted(e: Expr) -> str:
    """``e`` as text whose parse has ``e``'s free indices in ``e``'s order."""
    if isinstance(e, Sum):
        e = _printable_sum(e)
    body = _text(e, top=True)
    if not e.free or _natural_order(e) == e.free or (isinstance(e, Sum) and not e.terms):
        return body
    if isinstance(e, Product) and not _is_plain(e) and not _summation_only(e):
        return body  # already printed with an explicit arrow in root order
    return f"{_wrap_sum(e, body)} -> [{','.join(e.free)}]"


def _wrap_sum(e: Expr, body: str) -> str:
    return f"({body})" if isinstance(e, Sum) else body


def _natural_order(e: Expr) -> tuple[Index, ...]:
    """The axis order :func:`einderiv.parse` gives the printed text."""
    if isinstance(e, Product):
        if _is_plain(e) or _summation_only(e):
            return tuple(sorted(e.out))
        return e.out
    if isinstance(e, Sum):
        for t in e.terms:
            if t.free:
                return _natural_order(t) if set(t.free) == set(e.out) else tuple(sorted(e.out))
        return ()
    if isinstance(e, (Tensor, Delta, Inv)):
        return _implicit((e,))
    if isinstance(e, Word):  # its expansion keeps the order the argument's text has
        arg = _printable_sum(e.arg) if isinstance(e.arg, Sum) else e.arg
        return tuple(i for i in _natural_order(arg) if i in e.free)
    return tuple(sorted(e.free))


def _summation_only(p: Product) -> bool:
    """Printed as ``sum[...](...)``: the Einstein rule (with the printed ``sum[...]``s
    around) keeps all of ``p.out`` free, and more, none bound around already."""
    implicit = set(_implicit(p.factors, p))
    extra = implicit - set(p.out)
    return set(p.out) <= implicit and bool(extra) and not extra & _BOUND.get()


def _is_plain(p: Product) -> bool:
    return set(_implicit(p.factors, p)) == set(p.out) and len(p.out) == len(set(p.out))


def _diagonal(e: Expr) -> bool:
    """An atom with a repeated index (``M[a,a]``): inside a product its labels are
    einsum labels, but standing alone it is the diagonal and must say so."""
    if not isinstance(e, (Tensor, Delta, Inv)):
        return False
    labels = factor_indices(e)
    return len(set(labels)) < len(labels)


def _standalone(e: Expr, parens: bool) -> str:
    """``e`` where it stands alone (a function argument, a term, a power's base);
    ``parens``: whether an explicit '->' there needs parentheses."""
    if _diagonal(e):
        text = f"{_text(e)} -> [{','.join(e.free)}]"
        return f"({text})" if parens else text
    return _text(e, top=not parens)


def _text(e: Expr, top: bool = False) -> str:
    """``e`` as text; ``top``: whether it stands at the root (see :data:`_TEXT`)."""
    return _TEXT[type(e)](e, top)


def _word_text(e: Word, top: bool) -> str:
    """The word binds its index in the argument, as ``sum[k]`` does."""
    if e.name == "logsumexp" and e.index in _BOUND.get():  # a sum[k] around: rename
        taken = all_indices(e.arg) | _BOUND.get()
        new = next(f"{e.index}{n}" for n in range(1, len(taken) + 2)
                   if f"{e.index}{n}" not in taken)
        e = Word(e.name, rename(e.arg, {e.index: new}), new)
    with _bound_as(_BOUND.get() | {e.index}):
        return f"{e.name}[{e.index}]({_standalone(e.arg, parens=False)})"


def _matrix_arg(arg: Expr) -> str:
    if isinstance(arg, Tensor) and len(set(arg.indices)) == 2 and arg.free == arg.indices:
        return arg.name
    with _bound_as(frozenset()):  # a closed scope: no sum[...] around reaches in
        if isinstance(arg, Sum):
            arg = _printable_sum(arg)
        text = _text(arg, top=True)
        if _natural_order(arg) != arg.free:
            return f"{_wrap_sum(arg, text)} -> [{','.join(arg.free)}]"
        return text


def _atom(e: Expr) -> str:
    """``e`` as an operand of ``**``: parenthesised unless a name, call or number."""
    value = const_value(e)
    if value is not None:
        s = format_number(value)
        return s if value >= 0 and value.denominator == 1 else f"({s})"
    if _diagonal(e):
        return _standalone(e, parens=True)
    if isinstance(e, (Tensor, Delta, Func, Inv, Det, LogDet)):
        return _text(e)
    lone = _lone_size(e)
    if lone is not None:
        return _size_text(lone)
    return f"({_text(e, top=True)})"


def _factor(e: Expr) -> str:
    value = const_value(e)
    if value is not None and value >= 0:
        return format_number(value) if value.denominator == 1 else f"({format_number(value)})"
    lone = _lone_size(e)
    if lone is not None:
        return _size_text(lone)
    if isinstance(e, (Sum, Product)) and not (isinstance(e, Sum) and len(e.terms) == 1):
        return f"({_text(e)})"
    return _text(e)


def _flat_labels(f: Expr) -> list[Index]:
    """The labels parse counts for factor ``f`` of a product: a parenthesised product
    that needs no '->' is only grouping (``x[i]*(y[i]*z[i])`` is ``x[i]*y[i]*z[i]``),
    so its factors' labels count in the enclosing product."""
    if isinstance(f, Product) and _is_plain(f):
        return [i for g in f.factors if not size_marker(g, f) for i in _flat_labels(g)]
    return list(factor_indices(f))


def _nested_product(f: Product, around: set[Index]) -> str:
    """A product factor of a product whose other factors use ``around``. Printed
    plain, parse would merge its factors into the enclosing product: where it sums an
    index that is also used around it (its factors' groupings included), it keeps
    ``-> [...]`` to stay a scope of its own (``w[i,j]*(y[i]*z[i] -> [])``; fuzz --seed 28)."""
    if const_value(f) is not None or not _is_plain(f) or _lone_size(f) is not None:
        return _factor(f)
    if set(_flat_labels(f)) - set(f.out) & around:
        return f"({_product_text(f, top=True)} -> [{','.join(f.out)}])"
    return f"({_product_text(f, top=False)})"


def _product_text(p: Product, top: bool) -> str:
    bound = _BOUND.get()
    implicit = set(_implicit(p.factors, p))
    plain = implicit == set(p.out) and len(p.out) == len(set(p.out))
    summed_single = sorted(implicit - set(p.out))
    as_sum = not plain and set(p.out) <= implicit and bool(summed_single) and \
        not set(summed_single) & bound
    if as_sum:  # sum[i](...): parse keeps i free throughout the body
        with _bound_as(bound | frozenset(summed_single)):
            if len(p.factors) == 1 and p.coeff == 1 and isinstance(p.factors[0], Sum):
                text = _text(p.factors[0])
            else:
                text = _product_body(p)
        return f"sum[{','.join(summed_single)}]({text})"  # the root adds its order
    text = _product_body(p)
    if plain:
        return text
    if len(p.factors) == 1 and p.coeff == 1 and isinstance(p.factors[0], Sum):
        # '(a + b) -> [i]' would apply '->' to each term; one factor keeps it whole.
        text = "1*" + text
    arrow = f"{text} -> [{','.join(p.out)}]"
    return arrow if top else f"({arrow})"


def _product_body(p: Product) -> str:
    """The factors of ``p`` joined by ``*`` and ``/``, with its number and sign."""
    num, den = _split(p)
    coeff = p.coeff
    sign = "-" if coeff < 0 else ""
    c = abs(coeff)
    counts: Counter[Index] = Counter()  # the labels parse counts here, if a factor nests
    if any(isinstance(f, Product) for f in num):
        counts.update(i for g in p.factors if not size_marker(g, p) for i in _flat_labels(g))
    parts = []
    for f in num:
        if isinstance(f, Product):  # the labels used around f: more than f's own
            own = Counter(_flat_labels(f))
            around = {i for i, n in counts.items() if n > own[i]} | set(p.out)
            parts.append(_nested_product(f, around))
        elif isinstance(f, Delta) and size_marker(f, p):
            parts.append(_size_text(f))
        else:
            parts.append(_factor(f))
    if c != 1 or not parts:
        parts.insert(0, format_number(c))
    text = "*".join(parts)
    for f in den:
        if const_value(f) == 0:  # parse refuses a literal '/0': the same value, readable back
            text += "*0**-1"
            continue
        text += "/" + (_factor(f) if not isinstance(f, Pow) else _atom(f))
    return sign + text


def _printable_sum(s: Sum) -> Sum:
    """``s`` as printed: a sum broadcasts its terms by name (docs/language.md), so
    a term's ones-markers along indices it only broadcasts over are left out
    (``b1[h]`` for ``b1[h]*delta[n,n] -> [h,n]``) where another term carries them."""
    bare = tuple(unbroadcast(t) for t in s.terms)
    if {i for t in bare for i in t.free} == set(s.out):
        return Sum(bare, s.out, s.hints)
    carried = any(set(t.free) == set(s.out) for t in s.terms)
    terms = tuple(explicit_broadcast(t, s) if set(t.free) != set(s.out) and
                  (t.free or not carried) else t for t in s.terms)
    return Sum(terms, s.out, s.hints)


def _sum_text(s: Sum) -> str:
    s = _printable_sum(s)
    if not s.terms:
        if not s.out:
            return "0"
        # A zero tensor: 0 times ones along each axis (delta[i,i] with i free is ones).
        ones = "*".join(f"delta[{i},{i}]" for i in s.out)
        return f"0*{ones} -> [{','.join(s.out)}]"
    pieces: list[str] = []
    for k, t in enumerate(s.terms):
        negative = isinstance(t, Product) and t.coeff < 0
        if k == 0:
            # The first term fixes the sum's axis order when parsed: its sign stays
            # inside its own '-> [...]' (a leading '-(...)' would re-sort the indices).
            pieces.append(f"({_text(t)})" if isinstance(t, Sum) else _standalone(t, parens=True))
            continue
        if negative:
            assert isinstance(t, Product)
            body = _text(Product(-t.coeff, t.factors, t.out))
        else:
            body = _standalone(t, parens=True)
        if isinstance(t, Sum):
            body = f"({body})"
        pieces.append((" - " if negative else " + ") + body)
    return "".join(pieces)


# ============================================================================= LaTeX

_GREEK = {
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
    "lambda", "mu", "nu", "xi", "pi", "rho", "sigma", "tau", "upsilon", "phi", "chi", "psi",
    "omega", "Gamma", "Delta", "Theta", "Lambda", "Xi", "Pi", "Sigma", "Upsilon", "Phi",
    "Psi", "Omega",
}
_UNICODE_GREEK = {chr(0x3B1 + k): n for k, n in enumerate(
    ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
     "lambda", "mu", "nu", "xi", "omicron", "pi", "rho", "varsigma", "sigma", "tau", "upsilon",
     "phi", "chi", "psi", "omega"])}


def latex_name(name: str) -> str:
    if name in _GREEK:
        return "\\" + name
    if len(name) == 1 and name in _UNICODE_GREEK and _UNICODE_GREEK[name] != "omicron":
        return "\\" + _UNICODE_GREEK[name]
    if len(name) == 1:
        return name
    escaped = name.replace("_", r"\_")
    return rf"\mathit{{{escaped}}}"


def latex_indices(indices: tuple[Index, ...]) -> str:
    names = [latex_name(i) for i in indices]
    sep = "" if all(len(i) == 1 for i in indices) else ","
    return sep.join(names)


def to_latex(e: Expr) -> str:
    r"""LaTeX index notation for ``e`` that means ``e`` under the usual Einstein reading
    (an index repeated in a product is summed, one that occurs once is free).

    Where that reading would differ, the printer says what is meant
    (docs/language.md, "LaTeX"): ``\sum_{b}`` over the indices a product sums that the
    rule would not (``\sum_{a} x_{a}``), and ``\left[\,\cdots
ight]_{i}`` around a
    product that keeps a repeated index free: the entries indexed by ``i``, nothing
    summed over ``i`` inside (the Hadamard product ``\left[w_{i} x_{i}
ight]_{i}``).
    An index bound by a ``\sum`` or such brackets around is free throughout them.
    A ones vector is ``\mathbf{1}_{i}``; a size marker, ``\operatorname{size}(x, 0)``.
    A sum broadcasts its terms by name: ``W_{ha} X_{an} + b_{h}``. The shapes of
    the softmax words print as ``\operatorname{softmax}_{k}\left(u\right)`` (and
    ``log\_softmax``, ``logsumexp``), ``k`` free throughout the argument. An expression
    with definitions prints in their names, after the definitions it uses, as
    ``Z_{in} = \ldots,\quad`` (as :func:`to_text` does)."""
    if has_names(e):
        lines = [f"{_latex_tensor(Tensor(d.name, d.indices), frozenset())} = "
                 f"{_latex(named_view(d.written), frozenset())}" for d in used_definitions(e)]
        return ",\\quad ".join([*lines, _latex(named_view(fold(e)), frozenset())])
    return _latex(named_view(e), frozenset())


def _latex(e: Expr, fixed: frozenset = frozenset()) -> str:
    """``e`` standing alone; ``fixed``: indices bound around it (free inside)."""
    return _LATEX[type(e)](e, fixed)


def _latex_tensor(e: Tensor, fixed: frozenset) -> str:
    name = latex_name(e.name)
    text = f"{name}_{{{latex_indices(e.indices)}}}" if e.indices else name
    if len(set(e.indices)) < len(e.indices) and not set(e.indices) <= fixed:
        return rf"\left[{text}\right]_{{{latex_indices(e.free)}}}"  # the diagonal
    return text


def _latex_delta(e: Delta, fixed: frozenset) -> str:
    if e.i == e.j:
        return rf"\mathbf{{1}}_{{{latex_indices((e.i,))}}}"  # alone, it is ones
    return rf"\delta_{{{latex_indices((e.i, e.j))}}}"


def _latex_word(e: Word, fixed: frozenset) -> str:
    name = e.name.replace("_", r"\_")
    inner = _latex(e.arg, fixed | {e.index})
    return rf"\operatorname{{{name}}}_{{{latex_indices((e.index,))}}}\left({inner}\right)"


def _latex_inv(e: Inv, fixed: frozenset) -> str:
    text = rf"\left({_latex_matrix(e.arg)}^{{-1}}\right)_{{{latex_indices(e.indices)}}}"
    if e.indices[0] == e.indices[1] and e.indices[0] not in fixed:
        return rf"\left[{text}\right]_{{{latex_indices(e.free)}}}"
    return text


def _latex_matrix(arg: Expr) -> str:
    """The argument of inv/det/logdet (a closed scope: nothing bound around it)."""
    if isinstance(arg, Tensor) and len(set(arg.indices)) == 2:
        return latex_name(arg.name)
    inner = _latex(arg, frozenset(arg.free))
    return rf"\left[{inner}\right]_{{{latex_indices(arg.free)}}}"


def _latex_atom(e: Expr, fixed: frozenset) -> str:
    if isinstance(e, (Tensor, Delta, Func)) or (value := const_value(e)) is not None and value >= 0:
        return _latex(e, fixed)
    if isinstance(e, Product) and (_lone_size(e) is not None or
                                   (e.coeff > 0 and _latex_plan(e, fixed)[1])):
        return _latex(e, fixed)  # size(x, 0) or [...]_{i}: delimited already
    return rf"\left({_latex(e, fixed)}\right)"


def _latex_factor(e: Expr, fixed: frozenset) -> str:
    if isinstance(e, Product) and (_lone_size(e) is not None or
                                   (e.coeff > 0 and _latex_plan(e, fixed)[1])):
        return _latex(e, fixed)
    if isinstance(e, (Sum, Product)):
        return rf"\left({_latex(e, fixed)}\right)"
    return _latex(e, fixed)


def _shown_labels(f: Expr, p: Product) -> tuple[Index, ...]:
    r"""The indices factor ``f`` of ``p`` shows in LaTeX (``\mathbf{1}_{i}`` one,
    ``\operatorname{size}(x, 0)`` none)."""
    if isinstance(f, Delta) and f.i == f.j:
        if size_marker(f, p):
            return ()
        if f.i in p.out and sum(factor_indices(g).count(f.i) for g in p.factors) == 2:
            return (f.i,)
    return factor_indices(f)


def _latex_plan(p: Product, fixed: frozenset) -> tuple[list[Index], bool, frozenset]:
    r"""How ``p`` is printed: the indices of an explicit ``\sum`` (all it sums, where
    the Einstein reading would miss one), whether it needs ``\left[...\right]_{out}``
    (it keeps an index free that the reading would sum), and what is bound inside."""
    counts: dict[Index, int] = {}
    for f in p.factors:
        for i in _shown_labels(f, p):
            counts[i] = counts.get(i, 0) + 1
    out = set(p.out)
    summed = set(counts) - out
    read_summed = {i for i, c in counts.items() if c >= 2 and i not in fixed}
    explicit = sorted(summed) if summed - read_summed else []
    bracket = any(counts.get(i, 0) >= 2 and i not in fixed for i in out)
    inside = fixed | frozenset(explicit) | (frozenset(out) if bracket else frozenset())
    return explicit, bracket, inside


def _latex_product(p: Product, fixed: frozenset) -> str:
    explicit, bracket, inside = _latex_plan(p, fixed)
    num, den = _split(p)
    c = abs(p.coeff)
    sign = "-" if p.coeff < 0 else ""

    def factor(f: Expr) -> str:
        if isinstance(f, Delta) and f.i == f.j and f in p.factors:
            if size_marker(f, p):
                assert isinstance(f.size, tuple)  # a size marker's hint is (variable, axis)
                name, axis = f.size
                return rf"\operatorname{{size}}({latex_name(name)}, {axis})"
            if _shown_labels(f, p) == (f.i,):
                return rf"\mathbf{{1}}_{{{latex_indices((f.i,))}}}"
        if isinstance(f, Delta):
            return rf"\delta_{{{latex_indices((f.i, f.j))}}}"
        if isinstance(f, (Tensor, Inv)):  # its labels count in the product, repeats too
            if isinstance(f, Tensor):
                name = latex_name(f.name)
                return f"{name}_{{{latex_indices(f.indices)}}}" if f.indices else name
            return rf"\left({_latex_matrix(f.arg)}^{{-1}}\right)_{{{latex_indices(f.indices)}}}"
        return _latex_factor(f, inside)

    top = [factor(f) for f in num]
    bottom = [_latex_atom(f, inside) if isinstance(f, Pow) else factor(f) for f in den]
    if c.numerator != 1 or not top:
        top.insert(0, str(c.numerator))
    if c.denominator != 1:
        bottom.insert(0, str(c.denominator))
    body = " ".join(top)
    if bottom:
        body = rf"\frac{{{body}}}{{{' '.join(bottom)}}}"
    if explicit:
        body = rf"\sum_{{{latex_indices(tuple(explicit))}}} {body}"
    if bracket:
        body = rf"\left[{body}\right]_{{{latex_indices(p.out)}}}"
    return sign + body


def _latex_sum(s: Sum, fixed: frozenset) -> str:
    if not s.terms:
        return "0"
    bare = tuple(unbroadcast(t, keep_scalars=False) for t in s.terms)
    if {i for t in bare for i in t.free} == set(s.out):  # broadcasting by name
        s = Sum(bare, s.out, s.hints)
    out = []
    for k, t in enumerate(s.terms):
        negative = isinstance(t, Product) and t.coeff < 0
        if negative:
            assert isinstance(t, Product)
            t = Product(-t.coeff, t.factors, t.out)
        body = _latex(t, fixed)
        out.append(("-" if negative else "") + body if k == 0 else (" - " if negative else " + ") + body)
    return "".join(out)


# ========================================================= the printers' node tables

#: Text of each node type: ``(node, top) -> str`` (one entry per type, looked up by
#: the exact type: a :class:`Word` is printed as a word, not as a function).
_TEXT: dict[type, Callable[[Any, bool], str]] = {
    Tensor: lambda e, top: e.name + (f"[{','.join(e.indices)}]" if e.indices else ""),
    Delta: lambda e, top: f"delta[{e.i},{e.j}]",
    Word: _word_text,
    Func: lambda e, top: f"{e.name}({_standalone(e.arg, parens=False)})",
    Pow: lambda e, top: f"{_atom(e.base)}**{_atom(e.exponent)}",
    Inv: lambda e, top: f"inv({_matrix_arg(e.arg)})[{','.join(e.indices)}]",
    Det: lambda e, top: f"det({_matrix_arg(e.arg)})",
    LogDet: lambda e, top: f"logdet({_matrix_arg(e.arg)})",
    Product: _product_text,
    Sum: lambda e, top: _sum_text(e),
}

#: LaTeX of each node type: ``(node, fixed) -> str``, ``fixed`` the indices bound
#: around it.
_LATEX: dict[type, Callable[[Any, frozenset], str]] = {
    Tensor: _latex_tensor,
    Delta: _latex_delta,
    Word: _latex_word,
    Func: lambda e, fixed: FUNCTIONS[e.name].latex.format(_latex(e.arg, fixed)),
    Pow: lambda e, fixed: f"{_latex_atom(e.base, fixed)}^{{{_latex(e.exponent, fixed)}}}",
    Inv: _latex_inv,
    Det: lambda e, fixed: rf"\det\left({_latex_matrix(e.arg)}\right)",
    LogDet: lambda e, fixed: rf"\log\left|\det\left({_latex_matrix(e.arg)}\right)\right|",
    Product: _latex_product,
    Sum: _latex_sum,
}
