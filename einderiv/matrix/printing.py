"""Printing matrix expressions: ASCII (``str()``, what :func:`einderiv.parse_matrix`
reads back), Unicode (``Xᵀ``, ``⊙``, ``θ``) and LaTeX.

One printer serves the three styles: :data:`_SHOW` has one function per node type,
and what differs between the styles is in :class:`_Style` (the marks) and in the few
places that test ``p.latex``. Importing this module installs the printers in
:data:`einderiv.matrix.nodes.PRINTERS`, which ``MatrixExpr.__str__``,
``to_unicode`` and ``to_latex`` call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from ..core.functions import FUNCTIONS
from ..core.printing import format_number
from .nodes import (MATRIX, PRINTERS, ROW, SCALAR, Add, Diag, Elementwise, Hadamard, Identity,
                    Inverse, Kron, MatMul, MatrixExpr, Number, Ones, Power, Reduce, Softmax, Symbol,
                    Transpose, Zero, const_number)

__all__ = ["GREEK_LETTERS", "format_fraction"]


@dataclass(frozen=True)
class _Style:
    name: str
    transpose: str
    inverse: str
    inverse_transpose: str
    hadamard: str
    elementwise_power: str
    ones: str
    names: Mapping[str, str]


_GREEK = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota",
          "kappa", "lambda", "mu", "nu", "xi", "omicron", "pi", "rho", "varsigma", "sigma",
          "tau", "upsilon", "phi", "chi", "psi", "omega"]
GREEK_LETTERS = {n: chr(0x3B1 + k) for k, n in enumerate(_GREEK)}
GREEK_LETTERS.update({n.capitalize(): chr(0x391 + k) for k, n in enumerate(_GREEK)
                      if n not in ("varsigma",)})
GREEK_LETTERS.pop("Varsigma", None)

_ASCII = _Style("ascii", "^T", "^-1", "^-T", ".*", ".^", "ones", {})
_UNICODE = _Style("unicode", "ᵀ", "⁻¹", "⁻ᵀ", "⊙", ".^", "𝟏", GREEK_LETTERS)
_LATEX = _Style("latex", "^{\\top}", "^{-1}", "^{-\\top}", " \\odot ", "^", "\\mathbf{1}", {})

_SUPERSCRIPTS = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")

# precedence of printed forms: a child printed below its context gets parentheses
ADD, MUL, NEG, POST, ATOM = 1, 2, 3, 4, 5

Shown = tuple[str, int]  # (text, precedence)


def format_fraction(value: Fraction) -> str:
    """``2``, ``1/3`` (LimitError beyond the digits the parsers read back)."""
    return format_number(value)


def _digits(n: int) -> str:
    return format_fraction(Fraction(n))


class _Printer:
    def __init__(self, style: _Style):
        self.s = style
        self.latex = style is _LATEX

    def text(self, m: MatrixExpr) -> str:
        return self.show(m)[0]

    def show(self, m: MatrixExpr) -> Shown:
        rule = _SHOW.get(type(m))
        if rule is None:  # pragma: no cover - every node type has a rule
            raise TypeError(m)
        return rule(self, m)

    def wrap(self, m: MatrixExpr, at_least: int) -> str:
        text, prec = self.show(m)
        if prec >= at_least:
            return text
        return f"\\left({text}\\right)" if self.latex else f"({text})"

    def name(self, name: str) -> str:
        if self.latex:
            if name in GREEK_LETTERS and name != "omicron":
                return "\\" + name
            if len(name) == 1:
                return name
            return "\\mathit{" + name.replace("_", "\\_") + "}"
        return self.s.names.get(name, name)

    def call(self, name: str, arg: MatrixExpr) -> str:
        inner = self.text(arg)
        if not self.latex:
            return f"{name}({inner})"
        if name in FUNCTIONS:
            return FUNCTIONS[name].latex.format(inner)
        if name == "det":
            return f"\\det\\left({inner}\\right)"
        if name == "logdet":
            return f"\\log\\left|\\det\\left({inner}\\right)\\right|"
        return f"\\operatorname{{{name}}}\\left({inner}\\right)"

    def number(self, value: Fraction) -> Shown:
        if value < 0:
            text, _ = self.number(-value)
            return "-" + text, NEG
        if value.denominator == 1:
            return _digits(value.numerator), ATOM
        if self.latex:
            return f"\\frac{{{_digits(value.numerator)}}}{{{_digits(value.denominator)}}}", ATOM
        return format_fraction(value), MUL

    def chain(self, factors: list[MatrixExpr]) -> str:
        parts = []
        for k, f in enumerate(factors):
            nxt = factors[k + 1] if k + 1 < len(factors) else None
            if isinstance(f, MatMul) and f.coeff == 1 and f.kind == SCALAR and \
                    (nxt is None or nxt.kind in (MATRIX, ROW)):
                parts.append(self.chain(list(f.factors)))  # the notes' b^T x C^T
            elif isinstance(f, MatMul) and f.coeff == 1 and f.kind != SCALAR:
                parts.append(self.chain(list(f.factors)))
            else:
                parts.append(self.wrap(f, POST))
        return " ".join(parts)


# ================================================================ one rule per node


def _symbol(p: _Printer, m: Symbol) -> Shown:
    return p.name(m.name), ATOM


def _number(p: _Printer, m: Number) -> Shown:
    return p.number(m.value)


def _identity(p: _Printer, m: Identity) -> Shown:
    return "I", ATOM


def _ones(p: _Printer, m: Ones) -> Shown:
    return p.s.ones, ATOM


def _zero(p: _Printer, m: Zero) -> Shown:
    return "0", ATOM


def _transpose(p: _Printer, m: Transpose) -> Shown:
    if isinstance(m.arg, Inverse):
        return p.wrap(m.arg.arg, ATOM) + p.s.inverse_transpose, POST
    if m.arg.kind == SCALAR:
        return p.show(m.arg)
    return p.wrap(m.arg, ATOM) + p.s.transpose, POST


def _inverse(p: _Printer, m: Inverse) -> Shown:
    return p.wrap(m.arg, ATOM) + p.s.inverse, POST


def _softmax(p: _Printer, m: Softmax) -> Shown:
    if p.latex:
        word = m.word.replace("_", "\\_")
        return f"\\operatorname{{{word}}}\\left({p.text(m.arg)}\\right)", ATOM
    return p.call(m.word, m.arg), ATOM


def _function(p: _Printer, m: Elementwise | Reduce) -> Shown:
    return p.call(m.name, m.arg), ATOM


def _diag(p: _Printer, m: Diag) -> Shown:
    return p.call("diag", m.arg), ATOM


def _hadamard(p: _Printer, m: Hadamard) -> Shown:
    sep = p.s.hadamard if p.latex else f" {p.s.hadamard} "
    return sep.join(p.wrap(f, POST) for f in m.factors), MUL


def _kron(p: _Printer, m: Kron) -> Shown:
    if p.s is _ASCII:
        return f"kron({p.text(m.left)}, {p.text(m.right)})", ATOM
    sep = " \\otimes " if p.latex else " ⊗ "
    return p.wrap(m.left, POST) + sep + p.wrap(m.right, POST), MUL


def _power(p: _Printer, m: Power) -> Shown:
    k = const_number(m.exponent)
    if m.kind == SCALAR and k is not None and k < 0:
        return _matmul(p, MatMul(Fraction(1), (m,)))
    base = p.wrap(m.base, ATOM)
    if p.latex:
        return f"{base}^{{{p.text(m.exponent)}}}", POST
    if k is not None and k.denominator == 1 and k >= 0:
        exponent = _digits(k.numerator)
    elif isinstance(m.exponent, Symbol) and m.exponent.name != "T":  # x^T: transpose
        exponent = p.text(m.exponent)
    else:
        exponent = "(" + p.text(m.exponent) + ")"
        if k is not None and k.denominator == 1:
            exponent = _digits(k.numerator)  # negative integer: ^-2 is element-wise
    elementwise_marker = m.kind == MATRIX or (m.kind != SCALAR and k == -1)
    if p.s is _UNICODE and not elementwise_marker and k is not None \
            and k.denominator == 1 and k >= 0:
        return base + exponent.translate(_SUPERSCRIPTS), POST
    op = p.s.elementwise_power if elementwise_marker else "^"
    return f"{base}{op}{exponent}", POST


def _matmul(p: _Printer, m: MatMul) -> Shown:
    """A coefficient with its numerator and denominator (``2 alpha/n``), then the
    chain of the other factors."""
    sign = "-" if m.coeff < 0 else ""
    coeff = abs(m.coeff)
    numer, denom, rest = _split_scalars(p, m.factors)
    if coeff.denominator != 1:
        denom.insert(0, _digits(coeff.denominator))
    if coeff.numerator != 1:
        numer.insert(0, _digits(coeff.numerator))
    rest_text = p.chain(rest)
    prec = NEG if sign else MUL
    if p.latex:
        if denom:
            top = " ".join(numer) or "1"
            head = f"\\frac{{{top}}}{{{' '.join(denom)}}}"
            return sign + " ".join(q for q in (head, rest_text) if q), prec
        return sign + (" ".join(q for q in (" ".join(numer), rest_text) if q) or "1"), prec
    den_text = ""
    if denom:
        den_text = denom[0] if len(denom) == 1 else "(" + " ".join(denom) + ")"
    if den_text and not numer and rest_text:
        text = f"{rest_text}/{den_text}"
    elif den_text:
        text = (" ".join(numer) or "1") + "/" + den_text
        text += " " + rest_text if rest_text else ""
    else:
        text = " ".join(numer + ([rest_text] if rest_text else [])) or "1"
    if len(m.factors) == 1 and not numer and not den_text and not sign:
        return p.show(m.factors[0])
    return sign + text, prec


def _split_scalars(p: _Printer, factors: tuple[MatrixExpr, ...]
                   ) -> tuple[list[str], list[str], list[MatrixExpr]]:
    """The factors of a product as the printed numerator and denominator of its
    scalar part, and the factors left for the chain."""
    numer: list[str] = []
    denom: list[str] = []
    rest: list[MatrixExpr] = []
    for f in factors:
        k = const_number(f.exponent) if isinstance(f, Power) else None
        if isinstance(f, Power) and f.kind == SCALAR and k is not None and k < 0:
            base = f.base if k == -1 else Power(f.base, Number(-k))
            denom.append(p.wrap(base, POST))
        elif f.kind == SCALAR and _simple_scalar(f) and not rest:
            numer.append(p.wrap(f, POST))
        else:
            rest.append(f)
    return numer, denom, rest


def _add(p: _Printer, m: Add) -> Shown:
    pieces = []
    for k, t in enumerate(m.terms):
        negative, body = _negated(t)
        text = p.wrap(body, MUL)
        if k == 0:
            pieces.append(("-" if negative else "") + text)
        else:
            pieces.append((" - " if negative else " + ") + text)
    return "".join(pieces), ADD


def _negated(t: MatrixExpr) -> tuple[bool, MatrixExpr]:
    """(True, -t) when ``t`` prints with a leading minus, else (False, t)."""
    if isinstance(t, MatMul) and t.coeff < 0:
        return True, MatMul(-t.coeff, t.factors)
    if isinstance(t, Number) and t.value < 0:
        return True, Number(-t.value)
    return False, t


def _simple_scalar(f: MatrixExpr) -> bool:
    """A scalar printed before the ``/`` of a coefficient (``2 alpha/n``)."""
    return isinstance(f, (Symbol, Reduce, Elementwise, Number)) or \
        (isinstance(f, Power) and isinstance(f.base, (Symbol, Reduce, Elementwise)))


#: The printed form (text, precedence) by node type, in every style.
_SHOW: dict[type[MatrixExpr], Callable[[_Printer, Any], Shown]] = {
    Symbol: _symbol, Number: _number, Identity: _identity, Ones: _ones, Zero: _zero,
    Transpose: _transpose, Inverse: _inverse, Power: _power, Softmax: _softmax,
    Elementwise: _function, Reduce: _function, Diag: _diag, Hadamard: _hadamard,
    Kron: _kron, MatMul: _matmul, Add: _add,
}

PRINTERS.update({style.name: _Printer(style).text for style in (_ASCII, _UNICODE, _LATEX)})
