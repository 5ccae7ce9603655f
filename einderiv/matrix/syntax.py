"""Reading matrix notation: :func:`parse_matrix` (docs/matrix.md).

The text is parsed and lowered to the index-labelled IR in one pass: every value
carries its row and column labels (``None`` for a vector's missing axis), so a
transpose only swaps the two labels and a matrix product renames the right
operand's row label to the left operand's column label. Shapes come from
``shapes``: a name's rank decides whether it is a scalar, a (column) vector or a
matrix, whatever its case.

Grammar (lowest precedence first)::

    expr    := term ( ('+' | '-') term )*
    term    := unary ( ('*' | '@' | '/' | '.*' | '⊙' | <juxtaposition>) unary )*
    unary   := ('-' | '+') unary | postfix
    postfix := primary ( "'" | '^T' | '^-1' | '^-T' | '^' power | '.^' power
                       | 'ᵀ' | '⁻¹' | '⁻ᵀ' | SUPERSCRIPT_DIGITS )*
    power   := ['-' | '+'] NUMBER | NAME | '(' expr ')'
    primary := NUMBER | NAME | 'I' | 'ones' | FUNC '(' expr ')' | '(' expr ')'
    FUNC    := inv det logdet tr diag sum norm2 | the element-wise functions
             | softmax log_softmax logsumexp, each also with _rows or _cols
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

from ..core.functions import FUNCTIONS
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
    children,
    fresh_index,
    number,
    rename,
    with_children,
)
from ..core.shapes import check_shapes, normalize_shapes
from ..core.softmax import WORDS
from ..core.softmax import expand as expand_word
from ..errors import LimitError, ParseError, ShapeError, format_caret, guard_recursion
from ..symbolic.syntax import MAX_DEPTH, check_number
from .nodes import GREEK_LETTERS

__all__ = ["parse_matrix"]

MATRIX_FUNCTIONS = ("inv", "det", "logdet", "tr", "diag", "sum", "norm2")
#: softmax(z), log_softmax(z), logsumexp(z) of a vector; of each row or column of a
#: matrix with the suffix _rows / _cols (docs/matrix.md).
SOFTMAX_FUNCTIONS = tuple(f"{w}{s}" for w in WORDS for s in ("", "_rows", "_cols"))
RESERVED = frozenset(FUNCTIONS) | set(MATRIX_FUNCTIONS) | set(SOFTMAX_FUNCTIONS) | \
    {"I", "ones", "kron"}

_NUMBER = re.compile(r"(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", re.ASCII)
_OPERATORS = (".*", ".^", "+", "-", "*", "@", "/", "(", ")", ",", "^", "'", "⊙", "⊗")
_SUPER_DIGITS = "⁰¹²³⁴⁵⁶⁷⁸⁹"
_SPECIAL = set("ᵀ⁻⊙⊗𝟏") | set(_SUPER_DIGITS)
_FROM_GREEK = {letter: name for name, letter in GREEK_LETTERS.items()}


@dataclass
class _Token:
    kind: str  # 'name', 'number', 'op', 'sup' (superscript integer), 'end'
    text: str
    pos: int


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if text.startswith("⁻ᵀ", i):
            tokens.append(_Token("op", "^-T", i))
            i += 2
            continue
        if ch == "ᵀ":
            tokens.append(_Token("op", "^T", i))
            i += 1
            continue
        if ch in _SUPER_DIGITS or ch == "⁻":
            j = i + 1
            while j < n and text[j] in _SUPER_DIGITS:
                j += 1
            raw = text[i:j].translate(str.maketrans(_SUPER_DIGITS + "⁻", "0123456789-"))
            if raw == "-":
                raise ParseError("'⁻' must be followed by 'ᵀ' or superscript digits", text, i)
            tokens.append(_Token("op", "^-1", i) if raw == "-1" else _Token("sup", raw, i))
            i = j
            continue
        if ch == "𝟏":
            tokens.append(_Token("name", "ones", i))
            i += 1
            continue
        if (ch.isalpha() and ch not in _SPECIAL) or ch == "_":
            j = i + 1
            while j < n and ((text[j].isalpha() and text[j] not in _SPECIAL)
                             or text[j] in "0123456789_"):
                j += 1
            word = text[i:j]
            tokens.append(_Token("name", _FROM_GREEK.get(word, word), i))
            i = j
            continue
        if ch in "0123456789" or (ch == "." and i + 1 < n and text[i + 1] in "0123456789"):
            m = _NUMBER.match(text, i)
            assert m is not None
            check_number(m.group(0), text, i)
            j = m.end()
            if text[j - 1] == "." and j < n and text[j] in "*^":  # 2.*x is 2 .* x
                j -= 1
            tokens.append(_Token("number", text[i:j], i))
            i = j
            continue
        for op in _OPERATORS:
            if text.startswith(op, i):
                tokens.append(_Token("op", op, i))
                i += len(op)
                break
        else:
            shown = repr(ch) if ch.isprintable() else f"U+{ord(ch):04X}"
            hint = " (index notation goes through einderiv.parse)" if ch in "[]" else ""
            raise ParseError(f"unexpected character {shown}{hint}", text, i)
    tokens.append(_Token("end", "", n))
    return tokens


# ============================================================================ values


class _Dim:
    """The size of an axis. Sizes of ``I`` and ``ones`` start unknown and are unified
    with the sizes they meet (a union-find cell); ``hint`` is the size hint for
    evaluation, ``(variable, axis)`` where known."""

    __slots__ = ("size", "hint", "parent", "source", "pos")

    def __init__(self, size: int | str | None, hint: SizeHint = None, source: str = "",
                 pos: int = 0):
        self.size = size
        self.hint = hint
        self.parent: _Dim | None = None
        self.source = source  # 'I' or 'ones' for an unknown size
        self.pos = pos

    def find(self) -> _Dim:
        d = self
        while d.parent is not None:
            d = d.parent
        return d


def _unify(a: _Dim | None, b: _Dim | None) -> bool:
    """Make ``a`` and ``b`` one size; False where both are known and differ."""
    if a is None or b is None:
        return True
    a, b = a.find(), b.find()
    if a is b:
        return True
    if a.size is not None and b.size is not None and a.size != b.size:
        return False
    if a.size is None:  # keep the known one as the root
        a, b = b, a
    b.parent = a
    if a.hint is None:
        a.hint = b.hint
    return True


@dataclass
class _Val:
    """A lowered value: ``expr`` with free labels ``row`` / ``col`` (None: size 1)."""

    expr: Expr
    row: Index | None
    col: Index | None
    rdim: _Dim | None
    cdim: _Dim | None
    start: int
    end: int

    @property
    def labels(self) -> tuple[Index, ...]:
        return tuple(x for x in (self.row, self.col) if x is not None)

    @property
    def is_scalar(self) -> bool:
        return self.row is None and self.col is None


def _size_text(d: _Dim | None, label: Index | None) -> str:
    if label is None:
        return "1"
    size = None if d is None else d.find().size
    return "?" if size is None else str(size)


class _Parser:
    def __init__(self, text: str, shapes: Mapping[str, tuple]):
        self.text = text
        self.shapes = shapes
        self.tokens = _tokenize(text)
        self.k = 0
        self.depth = 0
        self.unknown: dict[str, _Dim] = {}  # placeholder size of a delta -> its size

    # ---------------------------------------------------------------- helpers
    @property
    def tok(self) -> _Token:
        return self.tokens[self.k]

    def at(self, text: str) -> bool:
        return self.tok.kind == "op" and self.tok.text == text

    def error(self, message: str, pos: int | None = None) -> ParseError:
        return ParseError(message, self.text, self.tok.pos if pos is None else pos)

    def shape_error(self, message: str, pos: int) -> ShapeError:
        return ShapeError(format_caret(message, self.text, pos))

    def describe(self, v: _Val) -> str:
        span = self.text[v.start:v.end].strip()
        if v.is_scalar:
            return f"{span} (a scalar)"
        return f"{span} ({_size_text(v.rdim, v.row)}x{_size_text(v.cdim, v.col)})"

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise LimitError(f"matrix expression nested deeper than {MAX_DEPTH} levels at "
                             f"position {self.tok.pos}; split it into parts")

    # ---------------------------------------------------------------- grammar
    def parse(self) -> _Val:
        if not self.text.strip():
            raise self.error("empty expression", 0)
        v = self.expr()
        if self.tok.kind != "end":
            if self.at(")"):
                raise self.error("unmatched ')'")
            raise self.error(f"unexpected {self.tok.text!r} after a complete expression")
        return v

    def expr(self) -> _Val:
        v = self.term()
        while self.at("+") or self.at("-"):
            op = self.tok
            self.k += 1
            v = self.add(v, self.term(), op)
        return v

    def _starts_primary(self) -> bool:
        t = self.tok
        return t.kind in ("name", "number") or (t.kind == "op" and t.text == "(")

    def term(self) -> _Val:
        v = self.unary()
        while True:
            op = self.tok
            if op.kind == "op" and op.text in ("*", "@", "/", ".*", "⊙"):
                self.k += 1
                rhs = self.unary()
                if op.text == "/":
                    v = self.divide(v, rhs, op)
                elif op.text in (".*", "⊙"):
                    v = self.hadamard(v, rhs, op)
                else:
                    v = self.matmul(v, rhs, op.pos)
            elif op.kind == "op" and op.text == "⊗":
                raise self.error("Kronecker products have no index form here: write the "
                                 "derivative in index notation and use to_matrix(flatten=...)")
            elif self._starts_primary():
                v = self.matmul(v, self.unary(), op.pos)
            else:
                return v

    def unary(self) -> _Val:
        if self.at("-") or self.at("+"):
            sign = self.tok
            self.k += 1
            self.enter()
            v = self.unary()
            self.depth -= 1
            return self.negate(v, sign.pos) if sign.text == "-" else v
        return self.postfix()

    def _previous_end(self) -> int:
        """Where the text consumed so far ends (trailing spaces excluded)."""
        end = self.tok.pos
        while end > 0 and self.text[end - 1].isspace():
            end -= 1
        return end

    def postfix(self) -> _Val:
        v = self.primary()
        while True:
            if self.k > 0:
                v.end = max(v.end, self._previous_end())
            t = self.tok
            if t.kind == "op" and t.text in ("'", "^T"):
                self.k += 1
                v = self.transpose(v, t.pos)
            elif t.kind == "op" and t.text in ("^-1", "^-T"):
                self.k += 1
                v = self.inverse(v, t.pos)
                if t.text == "^-T":
                    v = self.transpose(v, t.pos)
            elif t.kind == "sup":
                self.k += 1
                v = self.power(v, self.const(Fraction(t.text), t.pos), t, elementwise=False)
            elif t.kind == "op" and t.text in ("^", ".^"):
                self.k += 1
                if t.text == "^" and self.tok.kind == "name" and self.tok.text == "T":
                    self.k += 1
                    v = self.transpose(v, t.pos)
                    continue
                if t.text == "^" and self.at("-") and self.tokens[self.k + 1].kind == "name" \
                        and self.tokens[self.k + 1].text == "T":
                    self.k += 2
                    v = self.transpose(self.inverse(v, t.pos), t.pos)
                    continue
                if t.text == "^" and self.at("-") and self.tokens[self.k + 1].kind == "number" \
                        and Fraction(self.tokens[self.k + 1].text) == 1:
                    self.k += 2
                    v = self.inverse(v, t.pos)
                    continue
                v = self.power(v, self.exponent(), t, elementwise=t.text == ".^")
            else:
                return v

    def exponent(self) -> _Val:
        t = self.tok
        if self.at("-") or self.at("+"):
            self.k += 1
            if self.tok.kind != "number":
                raise self.error("expected a number after the sign of an exponent")
            value = Fraction(self.tok.text) * (-1 if t.text == "-" else 1)
            self.k += 1
            return self.const(value, t.pos)
        if t.kind == "number":
            self.k += 1
            return self.const(Fraction(t.text), t.pos)
        if t.kind == "name" and t.text not in RESERVED:
            self.k += 1
            return self.variable(t)
        if self.at("("):
            return self.primary()
        raise self.error("expected an exponent: T, -1, -T, a number, a scalar name or (...)")

    def primary(self) -> _Val:
        t = self.tok
        if t.kind == "number":
            self.k += 1
            return self.const(Fraction(t.text), t.pos, t.pos + len(t.text))
        if t.kind == "name":
            self.k += 1
            if t.text in FUNCTIONS or t.text in MATRIX_FUNCTIONS or t.text == "kron" or \
                    t.text in SOFTMAX_FUNCTIONS:
                return self.call(t)
            if t.text == "I":
                return self.identity(t.pos)
            if t.text == "ones":
                return self.ones(t.pos)
            return self.variable(t)
        if self.at("("):
            self.k += 1
            self.enter()
            if self.at(")"):
                raise self.error("empty parentheses")
            v = self.expr()
            if not self.at(")"):
                if self.tok.kind == "end":
                    raise self.error("'(' is never closed", t.pos)
                raise self.error(f"expected ')', found {self.tok.text!r}")
            self.k += 1
            self.depth -= 1
            v.start, v.end = t.pos, self.tok.pos
            return v
        if t.kind == "end":
            raise self.error("unexpected end of input: expected a number, a name or '('")
        raise self.error(f"unexpected {t.text!r}: expected a number, a name or '('")

    def call(self, t: _Token) -> _Val:
        name = t.text
        if name == "kron":
            raise self.error("kron(...) has no index form: a Kronecker product is a flattened "
                             "4-axis derivative; write it in index notation", t.pos)
        if not self.at("("):
            raise self.error(f"{name!r} is a function: write {name}(...)", t.pos)
        self.k += 1
        self.enter()
        arg = self.expr()
        if not self.at(")"):
            raise self.error(f"expected ')' to close {name}(...), found "
                             f"{self.tok.text or 'end of input'!r}")
        end = self.tok.pos + 1
        self.k += 1
        self.depth -= 1
        v = self.apply(name, arg, t.pos)
        v.start, v.end = t.pos, end
        return v

    # -------------------------------------------------------------- atoms
    def const(self, value: Fraction, pos: int, end: int | None = None) -> _Val:
        return _Val(number(value), None, None, None, None, pos, end or pos + 1)

    def variable(self, t: _Token) -> _Val:
        name, pos = t.text, t.pos
        end = self._name_end(pos)
        if name not in self.shapes and self.text[pos:end] in self.shapes:
            name = self.text[pos:end]  # a Greek letter that is itself the name
        if name not in self.shapes:
            raise self.shape_error(
                f"unknown name {name!r}: give its shape in shapes (() for a scalar, (n,) for "
                "a vector, (n, m) for a matrix)", pos)
        shape = self.shapes[name]
        if len(shape) == 0:
            return _Val(Tensor(name, ()), None, None, None, None, pos, end)
        if len(shape) == 1:
            r = fresh_index()
            return _Val(Tensor(name, (r,)), r, None, _Dim(shape[0], (name, 0)), None, pos, end)
        if len(shape) == 2:
            r, c = fresh_index(), fresh_index()
            return _Val(Tensor(name, (r, c)), r, c, _Dim(shape[0], (name, 0)),
                        _Dim(shape[1], (name, 1)), pos, end)
        raise self.shape_error(f"{name!r} has shape {shape} ({len(shape)} axes); matrix notation "
                               "has scalars, vectors and matrices (use einderiv.parse)", pos)

    def _name_end(self, pos: int) -> int:
        j = pos + 1
        while j < len(self.text) and (self.text[j].isalnum() or self.text[j] == "_") and \
                self.text[j] not in _SPECIAL:
            j += 1
        return j

    def _placeholder(self, source: str, pos: int) -> tuple[_Dim, str]:
        d = _Dim(None, None, source, pos)
        key = f"?{len(self.unknown)}"
        self.unknown[key] = d
        return d, key

    def identity(self, pos: int) -> _Val:
        d, key = self._placeholder("I", pos)
        r, c = fresh_index(), fresh_index()
        return _Val(Delta(r, c, key), r, c, d, d, pos, pos + 1)

    def ones(self, pos: int) -> _Val:
        d, key = self._placeholder("ones", pos)
        r = fresh_index()
        return _Val(Delta(r, r, key), r, None, d, None, pos, pos + len("ones"))

    def sizes_of_unknowns(self) -> dict[str, SizeHint]:
        """The sizes of ``I`` and ``ones``, from what they met or from shapes."""
        sizes: dict[str, SizeHint] = {}
        for key, d in self.unknown.items():
            root = d.find()
            if root.size is None and root.hint is None:
                given = self.shapes.get(d.source)
                if not given:
                    raise self.shape_error(
                        f"cannot tell the size of {d.source} here: write it next to a matrix "
                        f"it multiplies or adds to, or give shapes={{'{d.source}': n}}", d.pos)
                _unify(root, _Dim(given[0], given[0] if isinstance(given[0], int) else None))
            sizes[key] = _delta_size(root)
        return sizes

    # ---------------------------------------------------------------- operations
    def negate(self, v: _Val, pos: int) -> _Val:
        return _Val(_mul(-1, (v.expr,), v.labels), v.row, v.col, v.rdim, v.cdim,
                    pos, v.end)

    def transpose(self, v: _Val, pos: int) -> _Val:
        return _Val(v.expr, v.col, v.row, v.cdim, v.rdim, v.start, pos + 1)

    def scale(self, s: _Val, v: _Val, start: int, end: int) -> _Val:
        return _Val(_mul(1, (s.expr, v.expr), v.labels), v.row, v.col, v.rdim,
                    v.cdim, start, end)

    def matmul(self, a: _Val, b: _Val, pos: int) -> _Val:
        start, end = a.start, b.end
        if a.is_scalar:
            return self.scale(a, b, start, end)
        if b.is_scalar:
            return self.scale(b, a, start, end)
        assert a.expr is not None and b.expr is not None
        if a.col is None and b.row is None:  # column times row: an outer product
            return _Val(_mul(1, (a.expr, b.expr), _labels(a.row, b.col)),
                        a.row, b.col, a.rdim, b.cdim, start, end)
        if a.col is not None and b.row is not None:
            if not _unify(a.cdim, b.rdim):
                raise self.shape_error(
                    f"cannot multiply {self.describe(a)} by {self.describe(b)}: "
                    f"{_size_text(a.cdim, a.col)} columns against "
                    f"{_size_text(b.rdim, b.row)} rows", pos)
            right = rename(b.expr, {b.row: a.col})
            return _Val(_mul(1, (a.expr, right), _labels(a.row, b.col)),
                        a.row, b.col, a.rdim, b.cdim, start, end)
        raise self.shape_error(
            f"cannot multiply {self.describe(a)} by {self.describe(b)}: the inner sizes "
            f"{_size_text(a.cdim, a.col)} and {_size_text(b.rdim, b.row)} differ", pos)

    def _same_shape(self, a: _Val, b: _Val, op: _Token, what: str) -> _Val:
        """``b`` relabelled onto ``a``'s labels (both non-scalar, equal shapes)."""
        same = (a.row is None) == (b.row is None) and (a.col is None) == (b.col is None) and \
            _unify(a.rdim, b.rdim) and _unify(a.cdim, b.cdim)
        if not same:
            raise self.shape_error(f"cannot {what} {self.describe(a)} and {self.describe(b)}: "
                                   "the shapes differ", op.pos)
        assert b.expr is not None
        mapping = {k: v for k, v in ((b.row, a.row), (b.col, a.col)) if k is not None}
        return _Val(rename(b.expr, mapping), a.row, a.col, a.rdim, a.cdim, b.start, b.end)

    def add(self, a: _Val, b: _Val, op: _Token) -> _Val:
        if op.text == "-":
            b = self.negate(b, op.pos)
        start, end = a.start, b.end
        assert a.expr is not None and b.expr is not None
        if a.is_scalar or b.is_scalar:
            wide = b if a.is_scalar else a
            return _Val(_add((a.expr, b.expr), wide.labels), wide.row, wide.col, wide.rdim,
                        wide.cdim, start, end)
        b = self._same_shape(a, b, op, "add")
        assert b.expr is not None
        return _Val(_add((a.expr, b.expr), a.labels), a.row, a.col, a.rdim, a.cdim, start, end)

    def hadamard(self, a: _Val, b: _Val, op: _Token) -> _Val:
        if a.is_scalar or b.is_scalar:
            s, v = (a, b) if a.is_scalar else (b, a)
            return self.scale(s, v, a.start, b.end)
        b2 = self._same_shape(a, b, op, "multiply element-wise")
        assert a.expr is not None and b2.expr is not None
        return _Val(_mul(1, (a.expr, b2.expr), a.labels), a.row, a.col, a.rdim,
                    a.cdim, a.start, b.end)

    def divide(self, a: _Val, b: _Val, op: _Token) -> _Val:
        if not b.is_scalar:
            raise self.shape_error(f"cannot divide by {self.describe(b)}: only by a scalar "
                                   "(multiply by inv(...) for a matrix)", op.pos)
        assert b.expr is not None
        recip = _Val(Pow(b.expr, number(-1)), None, None, None, None, b.start, b.end)
        return self.matmul(a, recip, op.pos)

    def power(self, v: _Val, exponent: _Val, op: _Token, elementwise: bool) -> _Val:
        if not exponent.is_scalar:
            raise self.shape_error(f"the exponent {self.describe(exponent)} must be a scalar",
                                   op.pos)
        if v.row is not None and v.col is not None and not elementwise:
            raise self.shape_error(
                f"{self.describe(v)} is a matrix: '^' would be ambiguous; write .^ for an "
                "element-wise power or a product (A A) for a matrix power", op.pos)
        assert v.expr is not None and exponent.expr is not None
        return _Val(Pow(v.expr, exponent.expr), v.row, v.col, v.rdim, v.cdim, v.start,
                    exponent.end)

    def inverse(self, v: _Val, pos: int) -> _Val:
        if v.is_scalar:
            return _Val(Pow(v.expr, number(-1)), None, None, None, None, v.start, pos + 2)
        self._require_square(v, "an inverse", pos)
        r, c = fresh_index(), fresh_index()
        return _Val(Inv(self._closed(v), (r, c)), r, c, v.cdim, v.rdim, v.start, pos + 2)

    def _require_square(self, v: _Val, what: str, pos: int) -> None:
        if v.row is None or v.col is None:
            raise self.shape_error(f"{what} needs a square matrix, got {self.describe(v)}", pos)
        if not _unify(v.rdim, v.cdim):
            raise self.shape_error(f"{what} needs a square matrix, got {self.describe(v)}", pos)

    @staticmethod
    def _closed(v: _Val) -> Expr:
        """The argument of inv/det/logdet with its free labels in (row, column) order."""
        assert v.expr is not None
        order = (v.row, v.col)
        if v.expr.free == order:
            return v.expr
        return Product(Fraction(1), (v.expr,), order)  # type: ignore[arg-type]

    def apply(self, name: str, v: _Val, pos: int) -> _Val:
        assert v.expr is not None
        e = v.expr
        if name in FUNCTIONS:
            return _Val(Func(name, e), v.row, v.col, v.rdim, v.cdim, pos, v.end)
        if name in SOFTMAX_FUNCTIONS:
            return self.softmax(name, v, pos)
        if name == "inv":
            return self.inverse(v, pos)
        if name in ("det", "logdet"):
            if v.is_scalar:
                if name == "det":
                    return v
                return _Val(Func("log", Func("abs", e)), None, None, None, None, pos, v.end)
            self._require_square(v, f"{name}(...)", pos)
            node = Det(self._closed(v)) if name == "det" else LogDet(self._closed(v))
            return _Val(node, None, None, None, None, pos, v.end)
        if name == "tr":
            if v.is_scalar:
                return v
            self._require_square(v, "tr(...)", pos)
            assert v.row is not None and v.col is not None
            trace = Product(Fraction(1), (e, Delta(v.row, v.col, _delta_size(v.rdim))), ())
            return _Val(trace, None, None, None, None, pos, v.end)
        if name == "diag":
            if v.is_scalar:
                return v
            if v.row is not None and v.col is not None:  # the diagonal of a matrix
                self._require_square(v, "diag(matrix)", pos)
                diagonal = Product(Fraction(1), (e, Delta(v.row, v.col, _delta_size(v.rdim))),
                                   (v.row,))
                return _Val(diagonal, v.row, None, v.rdim, None, pos, v.end)
            lab = v.row if v.row is not None else v.col
            dim = v.rdim if v.row is not None else v.cdim
            assert lab is not None
            other = fresh_index()
            matrix = Product(Fraction(1), (e, Delta(lab, other, _delta_size(dim))), (lab, other))
            return _Val(matrix, lab, other, dim, dim, pos, v.end)
        if name == "sum":
            return _Val(Product(Fraction(1), (e,), ()), None, None, None, None, pos, v.end)
        if name == "norm2":
            squares = Product(Fraction(1), (e, e), ())
            return _Val(Func("sqrt", squares), None, None, None, None, pos, v.end)
        raise AssertionError(name)  # pragma: no cover


    def softmax(self, name: str, v: _Val, pos: int) -> _Val:
        """``softmax(z)`` of a vector; ``softmax_rows(Z)`` normalises each row of a
        matrix (the sum runs over the column index), ``softmax_cols(Z)`` each column.
        ``logsumexp`` of a vector is a scalar, of the rows a column vector, of the
        columns a row vector (einderiv.core.softmax gives the index form)."""
        word = name.rsplit("_", 1)[0] if name.endswith(("_rows", "_cols")) else name
        over = name[len(word) + 1:]
        e = v.expr
        if v.is_scalar:
            raise self.shape_error(f"{name}(...) needs a vector or matrix, got "
                                   f"{self.describe(v)}", pos)
        is_matrix = v.row is not None and v.col is not None
        if is_matrix and not over:
            raise self.shape_error(
                f"{name}(...) of a matrix needs the axis: {name}_rows(...) runs over each "
                f"row, {name}_cols(...) over each column; got {self.describe(v)}", pos)
        if over and not is_matrix:
            raise self.shape_error(f"{name}(...) needs a matrix; for a vector write "
                                   f"{word}(...); got {self.describe(v)}", pos)
        if not over:
            k = v.row if v.row is not None else v.col
            assert k is not None
            expr = expand_word(word, e, k)
            if word == "logsumexp":
                return _Val(expr, None, None, None, None, pos, v.end)
            return _Val(expr, v.row, v.col, v.rdim, v.cdim, pos, v.end)
        k = v.col if over == "rows" else v.row
        assert k is not None
        expr = expand_word(word, e, k)
        if word != "logsumexp":
            return _Val(expr, v.row, v.col, v.rdim, v.cdim, pos, v.end)
        if over == "rows":  # one value per row: a column vector
            return _Val(expr, v.row, None, v.rdim, None, pos, v.end)
        return _Val(expr, None, v.col, None, v.cdim, pos, v.end)  # per column: a row


def _mul(coeff: int, factors: tuple[Expr, ...], out: tuple[Index, ...]) -> Product:
    """A product, with products among the factors spliced in (every label the parser
    makes is fresh, so nothing is captured); keeps long chains flat, not deep."""
    c = Fraction(coeff)
    flat: list[Expr] = []
    for f in factors:
        if isinstance(f, Product) and sum(g is f for g in factors) == 1:
            c *= f.coeff
            flat.extend(f.factors)
        else:
            flat.append(f)
    return Product(c, tuple(flat), out)


def _add(terms: tuple[Expr, ...], out: tuple[Index, ...]) -> Sum:
    """A sum, with sums among the terms (on the same labels) spliced in."""
    flat: list[Expr] = []
    for t in terms:
        if isinstance(t, Sum) and set(t.out) == set(out) and t.terms:
            flat.extend(t.terms)
        else:
            flat.append(t)
    return Sum(tuple(flat), out)


def _labels(*labels: Index | None) -> tuple[Index, ...]:
    return tuple(x for x in labels if x is not None)


def _delta_size(d: _Dim | None) -> SizeHint:
    if d is None:
        return None
    d = d.find()
    if d.hint is not None:
        return d.hint
    return d.size if isinstance(d.size, int) else None


def _fill_sizes(e: Expr, sizes: Mapping[str, SizeHint]) -> Expr:
    """``e`` with the placeholder sizes of its deltas replaced by ``sizes``."""
    if isinstance(e, Delta):
        return Delta(e.i, e.j, sizes[e.size]) if e.size in sizes else e  # type: ignore[index]
    return with_children(e, [_fill_sizes(c, sizes) for c in children(e)])


def parse_matrix(text: str, shapes: Mapping[str, object] | None = None, *,
                 simplify: bool = True) -> Expr:
    """Read matrix notation (docs/matrix.md) into an index expression.

    ``shapes`` gives every name's shape: ``()`` a scalar, ``(n,)`` a vector (a column),
    ``(n, m)`` a matrix; capitals mean nothing by themselves. Products are written
    by juxtaposition, ``*`` or ``@``; ``^T`` or ``'`` transposes, ``^-1`` / ``inv()``
    inverts, ``^-T`` does both; ``.*`` or ``⊙`` is the element-wise product, ``/``
    divides by a scalar; ``det() logdet() tr() diag() sum() norm2()`` and the
    element-wise functions (``tanh``, ``exp``, ...) apply to matrices; ``I`` and
    ``ones`` take their size from what they multiply or add to. The result is
    simplified unless ``simplify=False``; its free indices are ``i`` (rows) and
    ``j`` (columns), a vector's is ``i``.

    Syntax errors are :class:`~einderiv.ParseError` with a caret; sizes that do not
    fit are :class:`~einderiv.ShapeError` naming both shapes.

    >>> import numpy as np, einderiv
    >>> shapes = {"X": (4, 3), "theta": (3,), "Y": (4,), "n": ()}
    >>> loss = einderiv.parse_matrix("(X*theta - Y)'*(X*theta - Y)/n", shapes)
    >>> print(einderiv.diff(loss, "theta").to_matrix())
    2/n X^T (X theta - Y)
    >>> einderiv.parse_matrix("X theta", {"X": (4, 3), "theta": (4,)})
    Traceback (most recent call last):
    ...
    einderiv.errors.ShapeError: cannot multiply X (4x3) by theta (4x1): 3 columns against 4 rows
      X theta
       ^
    """
    return guard_recursion(_parse_matrix)(text, shapes, simplify=simplify)


def _parse_matrix(text: str, shapes: Mapping[str, object] | None = None, *,
                  simplify: bool = True) -> Expr:
    from ..symbolic.simplify import simplify as _simplify
    if not isinstance(text, str):
        raise ParseError(f"expected the matrix expression as a string, got {type(text).__name__}")
    shape_map = normalize_shapes(shapes)
    for key in ("I", "ones"):
        if key in shape_map and len(shape_map[key]) not in (1, 2):
            raise ShapeError(f"shapes[{key!r}] is the size of {key}: give n or (n, n)")
    parser = _Parser(text, shape_map)
    v = parser.parse()
    e = _fill_sizes(v.expr, parser.sizes_of_unknowns()) if parser.unknown else v.expr
    order = v.labels
    if e.free != order:
        e = Product(Fraction(1), (e,), order)
    e = rename(e, dict(zip(order, ("i", "j"))))
    check_shapes(e, {k: s for k, s in shape_map.items() if k not in ("I", "ones")})
    return _simplify(e) if simplify else e
