"""Reading matrix notation: :func:`parse_matrix` (docs/matrix.md).

The text is tokenised (:mod:`einderiv.matrix.lexer`), parsed by the recursive
descent below and lowered to the index-labelled IR in the same pass
(:mod:`einderiv.matrix.lowering`: every value carries its row and column labels).

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

from collections.abc import Mapping
from fractions import Fraction

from ..core.functions import FUNCTIONS
from ..core.ir import Expr, Product, rename
from ..core.shapes import check_shapes, normalize_shapes
from ..core.structures import apply_assumptions
from ..errors import LimitError, ParseError, ShapeError, guard_recursion
from ..symbolic.simplify import simplify as simplify_expr
from ..symbolic.syntax import MAX_DEPTH
from .lexer import Token, tokenize
from .statements import read_matrix_program, split_statements
from ..symbolic.definitions import with_program
from .lowering import MATRIX_FUNCTIONS, SOFTMAX_FUNCTIONS, Lowering, Val, fill_sizes

__all__ = ["parse_matrix"]

RESERVED = frozenset(FUNCTIONS) | set(MATRIX_FUNCTIONS) | set(SOFTMAX_FUNCTIONS) | \
    {"I", "ones", "kron"}


class _Parser:
    """Recursive descent over the tokens; each rule returns the lowered value."""

    def __init__(self, text: str, shapes: Mapping[str, tuple]):
        self.text = text
        self.tokens = tokenize(text)
        self.k = 0
        self.depth = 0
        self.low = Lowering(text, shapes)

    # ---------------------------------------------------------------- helpers
    @property
    def tok(self) -> Token:
        return self.tokens[self.k]

    def at(self, text: str) -> bool:
        return self.tok.kind == "op" and self.tok.text == text

    def error(self, message: str, pos: int | None = None) -> ParseError:
        return ParseError(message, self.text, self.tok.pos if pos is None else pos)

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise LimitError(f"matrix expression nested deeper than {MAX_DEPTH} levels at "
                             f"position {self.tok.pos}; split it into parts")

    # ---------------------------------------------------------------- grammar
    def parse(self) -> Val:
        if not self.text.strip():
            raise self.error("empty expression", 0)
        v = self.expr()
        if self.tok.kind != "end":
            if self.at(")"):
                raise self.error("unmatched ')'")
            raise self.error(f"unexpected {self.tok.text!r} after a complete expression")
        return v

    def expr(self) -> Val:
        v = self.term()
        while self.at("+") or self.at("-"):
            op = self.tok
            self.k += 1
            v = self.low.add(v, self.term(), op.pos, subtract=op.text == "-")
        return v

    def _starts_primary(self) -> bool:
        t = self.tok
        return t.kind in ("name", "number") or (t.kind == "op" and t.text == "(")

    def term(self) -> Val:
        v = self.unary()
        while True:
            op = self.tok
            if op.kind == "op" and op.text in ("*", "@", "/", ".*", "⊙"):
                self.k += 1
                rhs = self.unary()
                if op.text == "/":
                    v = self.low.divide(v, rhs, op.pos)
                elif op.text in (".*", "⊙"):
                    v = self.low.hadamard(v, rhs, op.pos)
                else:
                    v = self.low.matmul(v, rhs, op.pos)
            elif op.kind == "op" and op.text == "⊗":
                raise self.error("Kronecker products have no index form here: write the "
                                 "derivative in index notation and use to_matrix(flatten=...)")
            elif self._starts_primary():
                v = self.low.matmul(v, self.unary(), op.pos)
            else:
                return v

    def unary(self) -> Val:
        if self.at("-") or self.at("+"):
            sign = self.tok
            self.k += 1
            self.enter()
            v = self.unary()
            self.depth -= 1
            return self.low.negate(v, sign.pos) if sign.text == "-" else v
        return self.postfix()

    def _previous_end(self) -> int:
        """Where the text consumed so far ends (trailing spaces excluded)."""
        end = self.tok.pos
        while end > 0 and self.text[end - 1].isspace():
            end -= 1
        return end

    def postfix(self) -> Val:
        v = self.primary()
        while True:
            if self.k > 0:
                v.end = max(v.end, self._previous_end())
            t = self.tok
            if t.kind == "op" and t.text in ("'", "^T"):
                self.k += 1
                v = self.low.transpose(v, t.pos)
            elif t.kind == "op" and t.text in ("^-1", "^-T"):
                self.k += 1
                v = self.low.inverse(v, t.pos)
                if t.text == "^-T":
                    v = self.low.transpose(v, t.pos)
            elif t.kind == "sup":
                self.k += 1
                exponent = self.low.const(Fraction(t.text), t.pos)
                v = self.low.power(v, exponent, t.pos, elementwise=False)
            elif t.kind == "op" and t.text in ("^", ".^"):
                self.k += 1
                v = self._caret(v, t)
            else:
                return v

    def _caret(self, v: Val, t: Token) -> Val:
        """After ``^`` or ``.^``: ``^T``, ``^-T`` and ``^-1`` spelled out, or a power."""
        if t.text == "^" and self.tok.kind == "name" and self.tok.text == "T":
            self.k += 1
            return self.low.transpose(v, t.pos)
        if t.text == "^" and self.at("-"):
            after = self.tokens[self.k + 1]
            if after.kind == "name" and after.text == "T":
                self.k += 2
                return self.low.transpose(self.low.inverse(v, t.pos), t.pos)
            if after.kind == "number" and Fraction(after.text) == 1:
                self.k += 2
                return self.low.inverse(v, t.pos)
        return self.low.power(v, self.exponent(), t.pos, elementwise=t.text == ".^")

    def exponent(self) -> Val:
        t = self.tok
        if self.at("-") or self.at("+"):
            self.k += 1
            if self.tok.kind != "number":
                raise self.error("expected a number after the sign of an exponent")
            value = Fraction(self.tok.text) * (-1 if t.text == "-" else 1)
            self.k += 1
            return self.low.const(value, t.pos)
        if t.kind == "number":
            self.k += 1
            return self.low.const(Fraction(t.text), t.pos)
        if t.kind == "name" and t.text not in RESERVED:
            self.k += 1
            return self.low.variable(t.text, t.pos)
        if self.at("("):
            return self.primary()
        raise self.error("expected an exponent: T, -1, -T, a number, a scalar name or (...)")

    def primary(self) -> Val:
        t = self.tok
        if t.kind == "number":
            self.k += 1
            return self.low.const(Fraction(t.text), t.pos, t.pos + len(t.text))
        if t.kind == "name":
            self.k += 1
            if t.text in FUNCTIONS or t.text in MATRIX_FUNCTIONS or t.text == "kron" or \
                    t.text in SOFTMAX_FUNCTIONS:
                return self.call(t)
            if t.text == "I":
                return self.low.identity(t.pos)
            if t.text == "ones":
                return self.low.ones(t.pos)
            return self.low.variable(t.text, t.pos)
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

    def call(self, t: Token) -> Val:
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
        v = self.low.apply(name, arg, t.pos)
        v.start, v.end = t.pos, end
        return v


def parse_matrix(text: str, shapes: Mapping[str, object] | None = None, *,
                 simplify: bool = True, assume: Mapping[str, str] | None = None) -> Expr:
    """Read matrix notation (docs/matrix.md) into an index expression.

    ``shapes`` gives every name's shape: ``()`` a scalar, ``(n,)`` a vector (a column),
    ``(n, m)`` a matrix; capitals mean nothing by themselves. Products are written
    by juxtaposition, ``*`` or ``@``; ``^T`` or ``'`` transposes, ``^-1`` / ``inv()``
    inverts, ``^-T`` does both; ``.*`` or ``⊙`` is the element-wise product, ``/``
    divides by a scalar; ``det() logdet() tr() diag() sum() norm2()`` and the
    element-wise functions (``tanh``, ``exp``, ...) apply to matrices; ``I`` and
    ``ones`` take their size from what they multiply or add to. The result is
    simplified unless ``simplify=False``; its free indices are ``i`` (rows) and
    ``j`` (columns), a vector's is ``i``. ``assume`` marks square matrices as
    ``"symmetric"`` or ``"diagonal"`` (docs/structured.md).

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
    return guard_recursion(_parse_matrix)(text, shapes, simplify=simplify, assume=assume)


def _parse_matrix(text: str, shapes: Mapping[str, object] | None = None, *,
                  simplify: bool = True, assume: Mapping[str, str] | None = None) -> Expr:
    if not isinstance(text, str):
        raise ParseError(f"expected the matrix expression as a string, got {type(text).__name__}")
    shape_map = normalize_shapes(shapes)
    for key in ("I", "ones"):
        if key in shape_map and len(shape_map[key]) not in (1, 2):
            raise ShapeError(f"shapes[{key!r}] is the size of {key}: give n or (n, n)")
    statements = split_statements(text)  # Z = W' X; A = tanh(Z); ...: matrix/statements.py
    program = None
    if statements is None:
        e = _parse_one(text, shape_map)[0]
    else:
        for st in statements:
            if st.name in RESERVED or st.name in ("I", "ones"):
                raise ParseError(f"{st.name!r} is a word of matrix notation and cannot be "
                                 "defined", text, st.name_pos)
        e, program = read_matrix_program(text, statements, shape_map, _parse_one)
    e = apply_assumptions(e, assume, shape_map)
    check_shapes(e, {k: s for k, s in shape_map.items() if k not in ("I", "ones")})
    return with_program(simplify_expr(e) if simplify else e, program)  # type: ignore[arg-type]


def _parse_one(text: str, shape_map: Mapping[str, tuple], definition: bool = False
               ) -> tuple[Expr, tuple]:
    """One expression: its index form (free ``i`` for rows, ``j`` for columns) and, for
    a ``definition``, its shape (``()``, ``(rows,)`` or ``(rows, columns)``)."""
    parser = _Parser(text, shape_map)
    v = parser.parse()
    low = parser.low
    e = fill_sizes(v.expr, low.sizes_of_unknowns()) if low.unknown else v.expr
    order = v.labels
    if e.free != order:
        e = Product(Fraction(1), (e,), order)
    e = rename(e, dict(zip(order, ("i", "j"))))
    if not definition:
        return e, ()
    dims = [d.find().size if d is not None else None for d in (v.rdim, v.cdim)]
    if v.row is None and v.col is not None:
        raise ParseError("a definition is a scalar, a column vector or a matrix; this is a "
                         "row vector: define its transpose", text, v.start)
    shape = tuple(d for d, label in zip(dims, (v.row, v.col)) if label is not None)
    if any(d is None for d in shape):
        raise ParseError("the size of this value is not known (I or ones alone): give it "
                         "through a variable", text, v.start)
    return e, shape
