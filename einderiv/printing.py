"""Index-notation printers: plain text that :func:`einderiv.parse` reads back to an
equal expression, and LaTeX.

Text rules: a product prints its factors joined by ``*`` with negative powers as
divisions (``2*X[a,d]*r[a]/n``); where the Einstein rule would not give the product's
free indices, it adds ``sum[i](...)`` or an explicit ``-> [i,j]``. At the root the
axis order is part of the expression, so ``-> [...]`` is added whenever the order
differs from the einsum implicit (sorted) order.
"""

from __future__ import annotations

from collections import Counter
from fractions import Fraction

from .functions import FUNCTIONS
from .ir import (Delta, Det, Expr, Func, Index, Inv, LogDet, Pow, Product, Sum, Tensor,
                 const_value, factor_indices)

__all__ = ["to_text", "to_latex", "format_number"]


def format_number(value: Fraction) -> str:
    """``2``, ``-1/3``: integers plain, other rationals as a fraction."""
    if max(value.numerator.bit_length(), value.denominator.bit_length()) > 13000:
        from .errors import LimitError  # ~3900 digits: what the lexer reads back
        raise LimitError("a number in the expression has more than 3900 digits; "
                         "einderiv cannot print it")
    if value.denominator == 1:
        return str(value.numerator)
    return f"{value.numerator}/{value.denominator}"


def _implicit(factors: tuple[Expr, ...]) -> tuple[Index, ...]:
    """The free indices the Einstein rule gives ``factors``: those occurring once."""
    counts: dict[Index, int] = {}  # a plain dict: Counter.update is slow for small inputs
    for f in factors:
        for i in factor_indices(f):
            counts[i] = counts.get(i, 0) + 1
    return tuple(sorted(i for i, c in counts.items() if c == 1))


def _split(p: Product) -> tuple[list[Expr], list[Expr]]:
    num, den = [], []
    for f in p.factors:
        k = const_value(f.exponent) if isinstance(f, Pow) else None
        if k is not None and k < 0:
            den.append(f.base if k == -1 else Pow(f.base, _number(-k)))
        else:
            num.append(f)
    return num, den


def _number(k: Fraction) -> Product:
    return Product(k, (), ())


# ============================================================================== text


def to_text(e: Expr) -> str:
    """Index notation for ``e``, with the root's axis order made explicit if needed."""
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
    return tuple(sorted(e.free))


def _summation_only(p: Product) -> bool:
    """Printed as ``sum[...](...)``: only single-occurrence indices are summed."""
    implicit = set(_implicit(p.factors))
    return set(p.out) <= implicit and bool(implicit - set(p.out))


def _is_plain(p: Product) -> bool:
    return set(_implicit(p.factors)) == set(p.out) and len(p.out) == len(set(p.out))


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
    if isinstance(e, Tensor):
        return e.name + (f"[{','.join(e.indices)}]" if e.indices else "")
    if isinstance(e, Delta):
        return f"delta[{e.i},{e.j}]"
    if isinstance(e, Func):
        return f"{e.name}({_standalone(e.arg, parens=False)})"
    if isinstance(e, Pow):
        return f"{_atom(e.base)}**{_atom(e.exponent)}"
    if isinstance(e, Inv):
        return f"inv({_matrix_arg(e.arg)})[{','.join(e.indices)}]"
    if isinstance(e, Det):
        return f"det({_matrix_arg(e.arg)})"
    if isinstance(e, LogDet):
        return f"logdet({_matrix_arg(e.arg)})"
    if isinstance(e, Product):
        return _product_text(e, top)
    if isinstance(e, Sum):
        return _sum_text(e)
    raise TypeError(e)  # pragma: no cover


def _matrix_arg(arg: Expr) -> str:
    if isinstance(arg, Tensor) and len(set(arg.indices)) == 2 and arg.free == arg.indices:
        return arg.name
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
    return f"({_text(e, top=True)})"


def _factor(e: Expr) -> str:
    value = const_value(e)
    if value is not None and value >= 0:
        return format_number(value) if value.denominator == 1 else f"({format_number(value)})"
    if isinstance(e, (Sum, Product)) and not (isinstance(e, Sum) and len(e.terms) == 1):
        return f"({_text(e)})"
    return _text(e)


def _flat_labels(f: Expr) -> list[Index]:
    """The labels parse counts for factor ``f`` of a product: a parenthesised product
    that needs no '->' is only grouping (``x[i]*(y[i]*z[i])`` is ``x[i]*y[i]*z[i]``),
    so its factors' labels count in the enclosing product."""
    if isinstance(f, Product) and _is_plain(f):
        return [i for g in f.factors for i in _flat_labels(g)]
    return list(factor_indices(f))


def _nested_product(f: Product, around: set[Index]) -> str:
    """A product factor of a product whose other factors use ``around``. Printed
    plain, parse would merge its factors into the enclosing product: where it sums an
    index that is also used around it (its factors' groupings included), it keeps
    ``-> [...]`` to stay a scope of its own (``w[i,j]*(y[i]*z[i] -> [])``; fuzz --seed 28)."""
    if const_value(f) is not None or not _is_plain(f):
        return _factor(f)
    if set(_flat_labels(f)) - set(f.out) & around:
        return f"({_product_text(f, top=True)} -> [{','.join(f.out)}])"
    return f"({_product_text(f, top=False)})"


def _product_text(p: Product, top: bool) -> str:
    num, den = _split(p)
    coeff = p.coeff
    sign = "-" if coeff < 0 else ""
    c = abs(coeff)
    counts: Counter[Index] = Counter()  # the labels parse counts here, if a factor nests
    if any(isinstance(f, Product) for f in num):
        counts.update(i for g in p.factors for i in _flat_labels(g))
    parts = []
    for f in num:
        if isinstance(f, Product):  # the labels used around f: more than f's own
            own = Counter(_flat_labels(f))
            around = {i for i, n in counts.items() if n > own[i]} | set(p.out)
            parts.append(_nested_product(f, around))
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
    text = sign + text
    if _is_plain(p):
        return text
    implicit = set(_implicit(p.factors))
    summed_single = sorted(implicit - set(p.out))
    if set(p.out) <= implicit and summed_single:
        if len(p.factors) == 1 and p.coeff == 1 and isinstance(p.factors[0], Sum):
            text = _text(p.factors[0])
        return f"sum[{','.join(summed_single)}]({text})"  # the root adds its order
    if len(p.factors) == 1 and p.coeff == 1 and isinstance(p.factors[0], Sum):
        # '(a + b) -> [i]' would apply '->' to each term; one factor keeps it whole.
        text = "1*" + text
    arrow = f"{text} -> [{','.join(p.out)}]"
    return arrow if top else f"({arrow})"


def _printable_sum(s: Sum) -> Sum:
    """``s`` with broadcast terms written out (``t*delta[i,i] -> [...]``) where the
    language needs it: an index-free term broadcasts by itself only next to a term
    that carries all the indices."""
    carried = any(set(t.free) == set(s.out) for t in s.terms)
    terms = tuple(_explicit_broadcast(t, s) if set(t.free) != set(s.out) and
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
        body = _text(Product(-t.coeff, t.factors, t.out)) if negative else \
            _standalone(t, parens=True)  # type: ignore[union-attr]
        if isinstance(t, Sum):
            body = f"({body})"
        pieces.append((" - " if negative else " + ") + body)
    return "".join(pieces)


def _explicit_broadcast(t: Expr, s: Sum) -> Expr:
    from .simplify import _broadcast_term
    return _broadcast_term(t, s)


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


def _latex_name(name: str) -> str:
    if name in _GREEK:
        return "\\" + name
    if len(name) == 1 and name in _UNICODE_GREEK and _UNICODE_GREEK[name] != "omicron":
        return "\\" + _UNICODE_GREEK[name]
    if len(name) == 1:
        return name
    escaped = name.replace("_", r"\_")
    return rf"\mathit{{{escaped}}}"


def _latex_indices(indices: tuple[Index, ...]) -> str:
    names = [_latex_name(i) for i in indices]
    sep = "" if all(len(i) == 1 for i in indices) else ","
    return sep.join(names)


def to_latex(e: Expr) -> str:
    """LaTeX index notation for ``e`` (implicit summation over repeated indices;
    explicit ``\\sum`` where a repeated index stays free)."""
    return _latex(e)


def _latex(e: Expr) -> str:
    if isinstance(e, Tensor):
        name = _latex_name(e.name)
        return f"{name}_{{{_latex_indices(e.indices)}}}" if e.indices else name
    if isinstance(e, Delta):
        return rf"\delta_{{{_latex_indices((e.i, e.j))}}}"
    if isinstance(e, Func):
        return FUNCTIONS[e.name].latex.format(_latex(e.arg))
    if isinstance(e, Pow):
        return f"{_latex_atom(e.base)}^{{{_latex(e.exponent)}}}"
    if isinstance(e, Inv):
        return rf"\left({_latex_matrix(e.arg)}^{{-1}}\right)_{{{_latex_indices(e.indices)}}}"
    if isinstance(e, Det):
        return rf"\det\left({_latex_matrix(e.arg)}\right)"
    if isinstance(e, LogDet):
        return rf"\log\left|\det\left({_latex_matrix(e.arg)}\right)\right|"
    if isinstance(e, Product):
        return _latex_product(e)
    if isinstance(e, Sum):
        return _latex_sum(e)
    raise TypeError(e)  # pragma: no cover


def _latex_matrix(arg: Expr) -> str:
    if isinstance(arg, Tensor) and len(set(arg.indices)) == 2:
        return _latex_name(arg.name)
    return rf"\left[{_latex(arg)}\right]_{{{_latex_indices(arg.free)}}}"


def _latex_atom(e: Expr) -> str:
    if isinstance(e, (Tensor, Delta, Func)) or const_value(e) is not None and const_value(e) >= 0:
        return _latex(e)
    return rf"\left({_latex(e)}\right)"


def _latex_factor(e: Expr) -> str:
    if isinstance(e, (Sum, Product)):
        return rf"\left({_latex(e)}\right)"
    return _latex(e)


def _latex_product(p: Product) -> str:
    num, den = _split(p)
    c = abs(p.coeff)
    sign = "-" if p.coeff < 0 else ""
    top = [_latex_factor(f) for f in num]
    bottom = [_latex_factor(f) for f in den]
    if c.numerator != 1 or not top:
        top.insert(0, str(c.numerator))
    if c.denominator != 1:
        bottom.insert(0, str(c.denominator))
    body = " ".join(top)
    if bottom:
        body = rf"\frac{{{body}}}{{{' '.join(bottom)}}}"
    if not _is_plain(p):
        from .ir import bound_indices
        summed = sorted(bound_indices(p))
        if summed:
            body = rf"\sum_{{{_latex_indices(tuple(summed))}}} {body}"
    return sign + body


def _latex_sum(s: Sum) -> str:
    if not s.terms:
        return "0"
    out = []
    for k, t in enumerate(s.terms):
        negative = isinstance(t, Product) and t.coeff < 0
        body = _latex(Product(-t.coeff, t.factors, t.out) if negative else t)  # type: ignore[union-attr]
        out.append(("-" if negative else "") + body if k == 0 else (" - " if negative else " + ") + body)
    return "".join(out)
