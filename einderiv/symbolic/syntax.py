"""Lexer and recursive-descent parser for index expressions (docs/language.md).

The parser produces a small positioned AST; :mod:`einderiv.symbolic.einstein` turns it into
the IR, applying the Einstein summation rule. Every syntax error is a
:class:`~einderiv.errors.ParseError` with a caret under the offending character.

Grammar (lowest precedence first)::

    expr    := sum ( '->' '[' [names] ']' )?
    sum     := product ( ('+' | '-') product )*
    product := unary ( ('*' | '/' | <juxtaposition>) unary )*
    unary   := ('-' | '+')* power
    power   := primary ( '**' unary )?            # right-associative
    primary := NUMBER | NAME | NAME '[' names ']' | '(' expr ')'
             | FUNC '(' expr ')' | 'sum' '[' names ']' '(' expr ')'
             | 'delta' '[' NAME ',' NAME ']' | 'inv' '(' expr ')' '[' NAME ',' NAME ']'
             | 'det' '(' expr ')' | 'logdet' '(' expr ')'
             | 'size' '(' NAME ',' INTEGER ')'
             | WORD '[' NAME ']' '(' expr ')'    # WORD: softmax, log_softmax, logsumexp
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from ..core.functions import FUNCTIONS
from ..core.ir import Index, gc_paused
from ..core.softmax import WORDS
from ..errors import IndexMismatchError, LimitError, ParseError, format_caret

__all__ = ["parse_ast", "parse_tokens", "tokenize", "Token", "parse_wrt", "MAX_DEPTH", "MAX_SIGNS",
           "RESERVED"]

#: Deepest nesting of parentheses, function calls and powers accepted. Derivatives
#: of deeply nested expressions grow quickly (a Hessian of tanh nested 30 deep takes
#: seconds), so the limit stops input where processing would stop being interactive.
MAX_DEPTH = 32
#: Longest run of unary signs (``- - x``) accepted.
MAX_SIGNS = 200
MATRIX_FUNCTIONS = ("inv", "det", "logdet")
RESERVED = frozenset(FUNCTIONS) | {"sum", "delta", "size", *MATRIX_FUNCTIONS, *WORDS}

# ------------------------------------------------------------------------ AST nodes


@dataclass
class Num:
    value: Fraction
    pos: int


@dataclass
class Ref:
    name: str
    indices: list[tuple[str, int]] | None  # None: a bare name (scalar variable)
    pos: int


@dataclass
class DeltaRef:
    i: tuple[str, int]
    j: tuple[str, int]
    pos: int


@dataclass
class Call:
    func: str
    arg: Node
    pos: int
    indices: list[tuple[str, int]] | None = None  # inv(M)[i,j]


@dataclass
class SizeOf:
    """``size(x, 0)``: the length of axis 0 of the variable ``x`` (a number)."""
    name: str
    axis: int
    pos: int
    name_pos: int
    axis_pos: int


@dataclass
class SumOver:
    indices: list[tuple[str, int]]
    arg: Node
    pos: int


@dataclass
class WordCall:
    """``softmax[k](EXPR)``, ``log_softmax[k](EXPR)``, ``logsumexp[k](EXPR)``."""
    word: str
    index: tuple[str, int]
    arg: Node
    pos: int


@dataclass
class Neg:
    arg: Node
    pos: int


@dataclass
class Power:
    base: Node
    exponent: Node
    pos: int


@dataclass
class Mul:
    items: list[tuple[str, Node]]  # ('*' | '/', node); the first item's op is '*'
    pos: int


@dataclass
class Add:
    items: list[tuple[str, Node, int]]  # ('+' | '-', node, position of the operator)
    pos: int


@dataclass
class Arrow:
    arg: Node
    indices: list[tuple[str, int]]
    pos: int


Node = (Num | Ref | DeltaRef | Call | SizeOf | SumOver | WordCall | Neg | Power | Mul | Add
        | Arrow)

# -------------------------------------------------------------------------- lexer

_NUMBER = re.compile(r"(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", re.ASCII)
_DIGITS = "0123456789"
#: ``=`` and ``;`` separate definitions (:mod:`einderiv.symbolic.definitions`); inside one
#: expression the parser refuses them.
_OPERATORS = ("->", "**", "+", "-", "*", "/", "(", ")", "[", "]", ",", "=", ";")
#: The ASCII characters that may continue a name (any identifier character may; the
#: others are checked one by one).
_ASCII_NAME_TAIL = re.compile(r"[A-Za-z0-9_]*")


#: Bounds on numeric literals: digits and decimal exponent (evaluation overflows to
#: inf beyond float64's range, as numpy does; exact arithmetic stays bounded).
MAX_NUMBER_DIGITS = 4000


def check_number(literal: str, text: str, pos: int) -> None:
    """Refuse a numeric literal beyond :data:`MAX_NUMBER_DIGITS` digits or decimal
    exponent (shared with :mod:`einderiv.matrix.syntax`)."""
    mantissa, _, exponent = literal.lower().partition("e")
    if len(mantissa) > MAX_NUMBER_DIGITS or len(exponent) > 8:
        raise LimitError(format_caret(f"number too long: at most {MAX_NUMBER_DIGITS} digits",
                                      text, pos))
    value = Decimal(literal)
    if value and not -MAX_NUMBER_DIGITS <= value.adjusted() <= MAX_NUMBER_DIGITS:
        raise LimitError(format_caret(
            f"number out of range: its decimal exponent must lie within "
            f"+-{MAX_NUMBER_DIGITS}", text, pos))


@dataclass(slots=True)
class Token:
    kind: str  # 'name', 'number', 'op', 'end'
    text: str
    pos: int


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch.isidentifier():
            j = _ASCII_NAME_TAIL.match(text, i + 1).end()  # type: ignore[union-attr] # always matches
            while j < n and ("a" + text[j]).isidentifier():
                j += 1
            tokens.append(Token("name", text[i:j], i))
            i = j
            continue
        if ch in _DIGITS or (ch == "." and i + 1 < n and text[i + 1] in _DIGITS):
            m = _NUMBER.match(text, i)
            if m is None:  # pragma: no cover - guarded by the test above
                raise ParseError("malformed number", text, i)
            j = m.end()
            _check_number_end(text, m, i)
            check_number(m.group(0), text, i)
            tokens.append(Token("number", m.group(0), i))
            i = j
            continue
        op = _operator_at(text, i)
        if op:
            tokens.append(Token("op", op, i))
            i += len(op)
        else:
            shown = repr(ch) if ch.isprintable() else f"U+{ord(ch):04X}"
            hint = ""
            if ch == "^" or ch in "\u00b2\u00b3\u00b9\u2070\u2074\u2075\u2076\u2077\u2078\u2079":
                hint = " (powers are written '**', as in x**2)"
            elif ch in "{}":
                hint = " (indices go in square brackets: x[i])"
            raise ParseError(f"unexpected character {shown}{hint}", text, i)
    tokens.append(Token("end", "", n))
    return tokens


def _check_number_end(text: str, m: re.Match, i: int) -> None:
    """Refuse a number that runs on into another (``1..2``, ``1.2.3``, read as a
    product of two numbers) or an exponent without digits (``1e``, read as ``1*e``)."""
    j = m.end()
    if j < len(text) and (text[j] == "." or text[j] in _DIGITS):
        end = j
        while end < len(text) and (text[end] == "." or text[end] in _DIGITS):
            end += 1
        raise ParseError(f"malformed number {text[i:end]!r}: one decimal point at most",
                         text, j)
    if m.group(2) is None and j < len(text) and text[j] in "eE":
        k = j + 1 + (j + 1 < len(text) and text[j + 1] in "+-")
        if k >= len(text) or text[k] not in _DIGITS:
            raise ParseError(
                f"malformed number {text[i:k]!r}: an exponent needs digits, as in "
                f"{m.group(0)}{text[j]}3; to multiply by a variable, write {m.group(0)}*{text[j]}",
                text, j)


def _operator_at(text: str, i: int) -> str:
    """The operator of :data:`_OPERATORS` that starts at ``text[i]`` (two-character
    ones first), or ``""``."""
    two = text[i:i + 2]
    if two == "->" or two == "**":
        return two
    return text[i] if text[i] in _SINGLE_OPERATORS else ""


_SINGLE_OPERATORS = frozenset(op for op in _OPERATORS if len(op) == 1)


# ------------------------------------------------------------------------- parser


def _describe(tok: Token) -> str:
    return "end of input" if tok.kind == "end" else repr(tok.text)


class _Parser:
    def __init__(self, text: str, tokens: list[Token] | None = None):
        self.text = text
        self.tokens = tokenize(text) if tokens is None else tokens
        self.k = 0
        self.depth = 0

    # -- token helpers
    @property
    def tok(self) -> Token:
        return self.tokens[self.k]

    def error(self, message: str, tok: Token | None = None) -> ParseError:
        tok = tok or self.tok
        return ParseError(message, self.text, tok.pos)

    def at(self, text: str) -> bool:
        tok = self.tokens[self.k]
        return tok.text == text and tok.kind == "op"

    def expect(self, text: str, context: str = "") -> Token:
        if not self.at(text):
            extra = f" {context}" if context else ""
            raise self.error(f"expected {text!r}{extra}, found {_describe(self.tok)}")
        tok = self.tok
        self.k += 1
        return tok

    def enter(self, tok: Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise LimitError(
                f"expression nested deeper than {MAX_DEPTH} levels (parentheses, calls and "
                f"powers) at position {tok.pos}; split it into parts")

    # -- grammar
    def parse(self) -> Node:
        node = self.expr()
        if self.tok.kind != "end":
            if self.at(")"):
                raise self.error("unmatched ')'")
            if self.at("=") or self.at(";"):
                raise self.error(f"unexpected {_describe(self.tok)}: a definition is written "
                                 "'NAME[i,j] = EXPR' at the start of a statement, statements "
                                 "are separated by ';' or new lines")
            raise self.error(f"unexpected {_describe(self.tok)} after a complete expression")
        return node

    def expr(self) -> Node:
        node = self.sum()
        if self.at("->"):
            arrow = self.tok
            self.k += 1
            indices = self.index_list(allow_empty=True, what="after '->'")
            node = Arrow(node, indices, arrow.pos)
            if self.at("->"):
                raise self.error("a second '->' needs parentheses around the first: "
                                 "(EXPR -> [i]) -> [j]")
        return node

    def sum(self) -> Node:
        start = self.tok.pos
        first = self.product()
        items: list[tuple[str, Node, int]] = [("+", first, start)]
        while self.at("+") or self.at("-"):
            op = self.tok
            self.k += 1
            items.append((op.text, self.product(), op.pos))
        return first if len(items) == 1 else Add(items, start)

    def _starts_primary(self) -> bool:
        tok = self.tok
        return tok.kind in ("name", "number") or (tok.kind == "op" and tok.text == "(")

    def product(self) -> Node:
        start = self.tok.pos
        items: list[tuple[str, Node]] = [("*", self.unary())]
        while True:
            if self.at("*") or self.at("/"):
                op = self.tok.text
                self.k += 1
                items.append((op, self.unary()))
            elif self._starts_primary():  # juxtaposition: X[a,b] theta[b]
                if self.tok.kind == "number":
                    prev = self.tokens[self.k - 1].text
                    if self.tokens[self.k - 1].kind == "number":
                        raise self.error(f"two numbers in a row: write {prev}*{self.tok.text} "
                                         f"for their product, or {prev}{self.tok.text}")
                    raise self.error(
                        f"a number right after an operand is not read as a product: write "
                        f"'*' before {self.tok.text}, or put the number first (2 x, not x 2)")
                items.append(("*", self.unary()))
            else:
                break
        return items[0][1] if len(items) == 1 else Mul(items, start)

    def unary(self) -> Node:
        signs: list[Token] = []
        while self.at("-") or self.at("+"):
            signs.append(self.tok)
            self.k += 1
            if len(signs) > MAX_SIGNS:
                raise LimitError(f"more than {MAX_SIGNS} signs in a row at position {signs[0].pos}")
        node = self.power()
        for sign in reversed(signs):
            if sign.text == "-":
                node = Neg(node, sign.pos)
        return node

    def power(self) -> Node:
        base = self.primary()
        if self.at("**"):
            op = self.tok
            self.k += 1
            self.enter(op)
            exponent = self.unary()
            self.depth -= 1
            return Power(base, exponent, op.pos)
        return base

    def index_list(self, *, allow_empty: bool = False, what: str = "") -> list[tuple[str, int]]:
        self.expect("[", what)
        names: list[tuple[str, int]] = []
        if self.at("]"):
            if not allow_empty:
                raise self.error("empty index list: write a bare name for a scalar")
            self.k += 1
            return names
        while True:
            tok = self.tok
            if tok.kind != "name":
                raise self.error(f"expected an index name, found {_describe(tok)}")
            if tok.text in RESERVED:
                raise self.error(f"{tok.text!r} is reserved and cannot be an index name")
            names.append((tok.text, tok.pos))
            self.k += 1
            if self.at(","):
                self.k += 1
                continue
            if self.at("]"):
                self.k += 1
                return names
            raise self.error(f"expected ',' or ']' in the index list, found {_describe(self.tok)}")

    def parenthesized(self, opener: Token, what: str) -> Node:
        open_tok = self.tok
        self.expect("(", what)
        self.enter(opener)
        if self.at(")"):
            raise self.error(f"empty parentheses {what}".rstrip())
        node = self.expr()
        if not self.at(")"):
            if self.tok.kind == "end":
                raise self.error("'(' is never closed", open_tok)
            raise self.error(f"expected ')' , found {_describe(self.tok)}")
        self.k += 1
        self.depth -= 1
        return node

    def primary(self) -> Node:
        tok = self.tok
        if tok.kind == "number":
            self.k += 1
            return Num(Fraction(tok.text), tok.pos)
        if tok.kind == "name":
            return self.named(tok)
        if self.at("("):
            return self.parenthesized(tok, "")
        if tok.kind == "end":
            raise self.error("unexpected end of input: expected a number, a name or '('")
        raise self.error(f"unexpected {tok.text!r}: expected a number, a name or '('")

    def refuse_call_after(self, what: str) -> None:
        """``delta[i,j](x[j])``, ``inv(M)[i,j](...)``: '(' right after an indexed
        reference reads as a function call to some, a product to others."""
        if self.at("("):
            raise self.error(f"{what} followed by '(' is not a function call; to multiply, "
                             f"write {what}*(...)")

    def named(self, tok: Token) -> Node:
        name = tok.text
        self.k += 1
        if name == "delta":
            idx = self.index_list(what="after 'delta'")
            if len(idx) != 2:
                raise self.error(f"delta takes exactly two indices, got {len(idx)}", tok)
            self.refuse_call_after(f"delta[{idx[0][0]},{idx[1][0]}]")
            return DeltaRef(idx[0], idx[1], tok.pos)
        if name == "size":
            return self.size_of(tok)
        if name == "sum":
            if not self.at("["):
                raise self.error("sum needs the indices to sum over: sum[i](EXPR)")
            idx = self.index_list(what="after 'sum'")
            arg = self.parenthesized(tok, "after sum[...]")
            return SumOver(idx, arg, tok.pos)
        if name in WORDS:
            return self.word_call(tok)
        if name in FUNCTIONS or name in MATRIX_FUNCTIONS:
            if not self.at("("):
                raise self.error(f"{name!r} is a function: write {name}(...)", tok)
            arg = self.parenthesized(tok, f"after {name!r}")
            indices = None
            if name == "inv":
                if not self.at("["):
                    raise self.error("inv(M) needs indices for its axes: inv(M)[i,j]")
                indices = self.index_list(what="after inv(...)")
                if len(indices) != 2:
                    raise self.error(f"inv(M)[i,j] takes two indices, got {len(indices)}", tok)
            elif self.at("["):
                raise self.error(f"{name}(...) cannot be indexed")
            if indices is not None:
                self.refuse_call_after(f"inv(...)[{','.join(i for i, _ in indices)}]")
            return Call(name, arg, tok.pos, indices)
        if self.at("("):
            known = ", ".join(sorted(FUNCTIONS) + list(MATRIX_FUNCTIONS))
            raise self.error(f"unknown function {name!r} (known functions: {known}); to "
                             f"multiply, write {name}*(...)", tok)
        indices = self.index_list() if self.at("[") else None
        if indices is not None and self.at("("):
            ref = f"{name}[{','.join(i for i, _ in indices)}]"
            raise self.error(
                f"{ref} followed by '(' is not a function of the language (is {name!r} "
                f"meant as one? known functions: "
                f"{', '.join(sorted(FUNCTIONS) + list(MATRIX_FUNCTIONS))}, and "
                f"{', '.join(f'{w}[k](...)' for w in WORDS)}); to multiply, "
                f"write {ref}*(...)")
        return Ref(name, indices, tok.pos)

    def word_call(self, tok: Token) -> WordCall:
        """``softmax[k](EXPR)`` and its kin: the axis ``k`` in brackets, then the argument."""
        name = tok.text
        usage = f"{name}[k](EXPR), k the axis it runs over, as in {name}[k](z[k])"
        if not self.at("["):
            raise self.error(f"{name} needs the axis it runs over: write {usage}")
        idx = self.index_list(what=f"after {name!r}")
        if len(idx) != 1:
            raise self.error(f"{name}[...] takes exactly one index, got {len(idx)}: write "
                             f"{usage}", tok)
        arg = self.parenthesized(tok, f"after {name}[...]")
        if self.at("["):
            raise self.error(f"{name}[...](...) cannot be indexed")
        return WordCall(name, idx[0], arg, tok.pos)

    def size_of(self, tok: Token) -> SizeOf:
        """``size(NAME, AXIS)``: the length of an axis of a variable, as ``np.size(x, 0)``."""
        usage = "size(NAME, AXIS), the length of axis AXIS of variable NAME, as in size(x, 0)"
        if not self.at("("):
            raise self.error(f"'size' is reserved: write {usage}", tok)
        self.k += 1
        name = self.tok
        if name.kind != "name" or name.text in RESERVED:
            raise self.error(f"expected a variable name in {usage}")
        self.k += 1
        self.expect(",", f"in {usage}")
        axis = self.tok
        if axis.kind != "number" or not axis.text.isdigit():
            raise self.error(f"the axis must be a non-negative integer literal in {usage}")
        self.k += 1
        self.expect(")", f"to close {usage}")
        if self.at("["):
            raise self.error("size(...) is a number and cannot be indexed")
        return SizeOf(name.text, int(axis.text), tok.pos, name.pos, axis.pos)


def parse_ast(text: str) -> Node:
    """Parse ``text`` into the positioned AST (no index semantics yet)."""
    if not isinstance(text, str):
        raise ParseError(f"expected the expression as a string, got {type(text).__name__}")
    if not text.strip():
        raise ParseError("empty expression", text, 0)
    with gc_paused():
        return _Parser(text).parse()


def parse_tokens(text: str, tokens: list[Token]) -> Node:
    """Parse the expression made of ``tokens`` (a slice of ``tokenize(text)`` ending in
    an ``end`` token): positions, and so carets, stay those of the whole ``text``."""
    if len(tokens) < 2:
        raise ParseError("empty expression", text, tokens[-1].pos if tokens else 0)
    with gc_paused():
        return _Parser(text, tokens).parse()


_WRT = re.compile(r"^\s*([^\W\d]\w*)\s*(?:\[\s*([^\]]*)\])?\s*$")


def parse_wrt(wrt: str) -> tuple[str, tuple[Index, ...] | None]:
    """``(name, indices)`` of a ``wrt`` argument: ``"theta"`` is ``("theta", None)``,
    ``"W[i,j]"`` is ``("W", ("i", "j"))``; a ParseError with a caret otherwise."""
    if not isinstance(wrt, str):
        raise ParseError(f"wrt must be a variable name such as 'theta' or 'theta[d]', "
                         f"got {type(wrt).__name__}")
    m = _WRT.match(wrt)
    if not m:
        pos = next((k for k, ch in enumerate(wrt) if not (ch.isalnum() or ch in "_[], ")), 0)
        raise ParseError("wrt must be a variable name such as 'theta' or 'theta[d]'", wrt, pos)
    name, idx = m.group(1), m.group(2)
    if name in RESERVED:
        raise ParseError(f"{name!r} is reserved, not a variable", wrt, wrt.index(name))
    if idx is None:
        return name, None
    names = tuple(s.strip() for s in idx.split(",")) if idx.strip() else ()
    for n in names:
        if not n.isidentifier() or n in RESERVED:
            raise ParseError(f"bad index name {n!r} in wrt", wrt, wrt.index("[") + 1)
    if len(set(names)) != len(names):
        raise IndexMismatchError(f"wrt indices must be distinct: {wrt!r}")
    return name, names
