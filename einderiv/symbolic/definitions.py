"""Reading definitions: ``Z[i,n] = W[j,i]*X[j,n]; A[i,n] = tanh(Z[i,n]); EXPR``.

A text is one or more *statements*, separated by ``;`` or, where the text defines
anything, by new lines (a line that ends in an operator, or a next line that starts
with one -- ``+ - * / ** -> =`` or a closing bracket -- continues the statement, and
inside brackets a new line is only a space). A statement ``NAME[i,j] = EXPR``
defines ``NAME``; its indices are bound to the left-hand side (the body's free indices
must be exactly those), and at each use ``NAME[a,b]`` they are renamed to the use's,
so a definition never captures an index of the text around it. A name is defined
once, before it is used. The last statement is the expression; if it is a definition,
its body is.

The expression returned keeps each use of a definition as a
:class:`~einderiv.core.named.Named` node around the definition's one body (read once,
simplified once: a text of ``d`` layers costs ``O(d)``); the
:class:`~einderiv.core.definitions.Program` beside it keeps the definitions as written. Every mistake is an
:class:`~einderiv.errors.EinderivError` with a caret; a definition nothing uses is a
:class:`~einderiv.errors.DefinitionWarning`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields, replace

from ..core.definitions import Definition, Program, materialize
from ..core.ir import Expr, Index, cached, remember, rename
from ..core.named import Named, own_labels, use
from ..errors import (DefinitionWarning, EinderivError, IndexMismatchError, ParseError, warn,
                      format_caret)
from . import syntax as S
from .einstein import build
from .simplify import simplify

__all__ = ["read", "with_program"]

#: A new line after one of these continues the statement.
_CONTINUES_AFTER = frozenset({"+", "-", "*", "/", "**", "->", "=", ",", "(", "["})
#: A new line before one of these continues the statement.
_CONTINUES_BEFORE = frozenset({"+", "-", "*", "/", "**", "->", "=", ")", "]", ","})


@dataclass
class _Statement:
    tokens: list[S.Token]          # the body, ending in an 'end' token
    start: int                     # position of the statement's first token
    name: str | None = None        # None: an expression
    name_pos: int = 0
    indices: tuple[Index, ...] = ()
    index_pos: tuple[int, ...] = ()  # where each index of the left-hand side is


def _is_op(tok: S.Token, *texts: str) -> bool:
    return tok.kind == "op" and tok.text in texts


def _groups(text: str, tokens: list[S.Token]) -> Iterator[tuple[list[S.Token], int]]:
    """The statements' tokens, each with the position where it ends."""
    defines = any(_is_op(t, "=") for t in tokens)
    group: list[S.Token] = []
    depth = 0
    for tok in tokens[:-1]:
        if group and depth == 0 and defines:
            prev = group[-1]
            gap = text[prev.pos + len(prev.text): tok.pos]
            if "\n" in gap and not (prev.kind == "op" and prev.text in _CONTINUES_AFTER) \
                    and not (tok.kind == "op" and tok.text in _CONTINUES_BEFORE):
                yield group, prev.pos + len(prev.text)
                group = []
        if _is_op(tok, ";") and depth == 0:
            if group:
                yield group, tok.pos
            group = []
            continue
        depth += _is_op(tok, "(", "[") - _is_op(tok, ")", "]")
        group.append(tok)
    if group:
        yield group, tokens[-1].pos


def _statement(text: str, group: list[S.Token], end: int) -> _Statement:
    first = group[0]
    eq = None
    if first.kind == "name" and len(group) > 1:
        if _is_op(group[1], "="):
            eq = 1
        elif _is_op(group[1], "["):
            close = next((k for k, t in enumerate(group) if _is_op(t, "]")), None)
            if close is not None and close + 1 < len(group) and _is_op(group[close + 1], "="):
                eq = close + 1
    if eq is None:
        return _Statement(group + [S.Token("end", "", end)], first.pos)
    if first.text in S.RESERVED:
        raise ParseError(f"{first.text!r} is a word of the language and cannot be defined",
                         text, first.pos)
    indices: list[Index] = []
    where: list[int] = []
    if eq > 1:
        inner = group[2: eq - 1]
        if not inner:
            raise ParseError("a definition without indices is written without brackets: "
                             f"{first.text} = ...", text, group[1].pos)
        for k, tok in enumerate(inner):
            want_name = k % 2 == 0
            if want_name and (tok.kind != "name" or tok.text in S.RESERVED) \
                    or not want_name and not _is_op(tok, ","):
                raise ParseError(f"expected {'an index name' if want_name else chr(44)!r} "
                                 f"in the left-hand side {first.text}[...]", text, tok.pos)
            if want_name:
                if tok.text in indices:
                    raise IndexMismatchError(format_caret(
                        f"index {tok.text!r} occurs twice in {first.text}[...]: the indices "
                        "of a definition are distinct", text, tok.pos))
                indices.append(tok.text)
                where.append(tok.pos)
        if len(inner) % 2 == 0:
            raise ParseError(f"expected an index name before ']' in {first.text}[...]",
                             text, group[eq - 1].pos)
    body = group[eq + 1:]
    if not body:
        raise ParseError(f"nothing after '=': write the body of {first.text}", text, end)
    return _Statement(body + [S.Token("end", "", end)], first.pos, first.text, first.pos,
                      tuple(indices), tuple(where))


def _refs(node: object) -> Iterator[S.Ref | S.SizeOf]:
    """The references to names in an AST (variables, and the names in size(x, k))."""
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, (S.Ref, S.SizeOf)):
            yield n
        if isinstance(n, list):
            stack.extend(n)
        elif isinstance(n, tuple):
            stack.extend(x for x in n if not isinstance(x, (str, int)))
        elif hasattr(n, "__dataclass_fields__"):
            stack.extend(getattr(n, f.name) for f in fields(n))  # type: ignore[arg-type]


def read(text: str) -> tuple[Expr, Program | None]:
    """The expression of ``text`` (built, not simplified; each use of a name a
    :class:`~einderiv.core.named.Named` node) and its definitions (None where the text
    defines nothing: a plain expression).

    >>> e, program = read("Z[i] = W[j,i]*x[j]; tanh(Z[i])*v[i]")
    >>> print(e)
    Z[i] = W[a,i]*x[a]; tanh(Z[i])*v[i]
    >>> program.names
    ('Z',)
    """
    if not isinstance(text, str):
        raise ParseError(f"expected the expression as a string, got {type(text).__name__}")
    if "=" not in text and ";" not in text:  # one expression (tokenized once)
        return build(S.parse_ast(text), text), None
    tokens = S.tokenize(text)
    if not any(_is_op(t, "=", ";") for t in tokens):
        return build(S.parse_tokens(text, tokens), text), None
    statements = [_statement(text, g, end) for g, end in _groups(text, tokens)]
    if not statements:
        raise ParseError("empty expression", text, 0)
    for st in statements[:-1]:
        if st.name is None:
            raise ParseError("only the last statement may be an expression without a name; "
                             "name this one (y = ...) or remove it", text, st.start)
    return _build(text, statements)


def _build(text: str, statements: list[_Statement]) -> tuple[Expr, Program | None]:
    where: dict[str, int] = {}
    for k, st in enumerate(statements):
        if st.name is not None:
            if st.name in where:
                raise EinderivError(format_caret(
                    f"{st.name!r} is defined twice (first at position "
                    f"{statements[where[st.name]].name_pos}); a name is defined once",
                    text, st.name_pos))
            where[st.name] = k
    ranks: dict[str, tuple[int, int]] = {}
    table: dict[str, Definition] = {}
    uses: dict[str, Named] = {}  # a use of each definition, by name (what materialize reads)
    used: set[str] = set()
    written: Expr | None = None
    for k, st in enumerate(statements):
        ast = S.parse_tokens(text, st.tokens)
        for ref in _refs(ast):
            _check_use(text, ref, k, where, statements, table)
            used.add(ref.name)
        written = build(ast, text, ranks)
        if st.name is None or k == len(statements) - 1:
            break
        written = _checked_body(text, st, written, ast)
        ranks[st.name] = (len(st.indices), st.name_pos)
        # the body's own labels are fresh: no label of the text around a use meets them
        params = dict(zip(st.indices, own_labels(st.name, len(st.indices))))
        body = rename(materialize(written, uses), params)
        remember(body, "simplified", tuple(params[i] for i in st.indices))
        named = use(st.name, body, st.indices, st.indices)
        assert isinstance(named, Named)
        uses[st.name] = named
        table[st.name] = Definition(st.name, st.indices, written, body)
    assert written is not None
    for name in table:
        if name not in used:
            st = statements[where[name]]
            warn(DefinitionWarning(format_caret(
                f"{name!r} is defined but never used", text, st.name_pos)))
    if statements[-1].name is not None:
        written = _checked_body(text, statements[-1], written, S.parse_tokens(
            text, statements[-1].tokens))
    if not table:  # statements, but nothing defined ("x[i]*y[i];")
        return written, None
    # an unused definition is not a name to print results in (its body is folded nowhere)
    return materialize(written, uses), Program(
        tuple(d for d in table.values() if d.name in used), written)


def _check_use(text: str, ref: S.Ref | S.SizeOf, k: int, where: dict[str, int],
               statements: list[_Statement], table: dict[str, Definition]) -> None:
    name = ref.name
    if name not in where:
        return
    if isinstance(ref, S.SizeOf):
        raise EinderivError(format_caret(
            f"size({name}, ...) of a definition: take the size of a variable instead",
            text, ref.pos))
    at = where[name]
    if at == k:
        raise EinderivError(format_caret(
            f"{name!r} is defined in terms of itself; a definition may use only the names "
            "defined before it", text, ref.pos))
    if at > k:
        raise EinderivError(format_caret(
            f"{name!r} is used before its definition (at position "
            f"{statements[at].name_pos}); define a name before using it", text, ref.pos))


def _checked_body(text: str, st: _Statement, body: Expr, ast: object) -> Expr:
    """``body`` with its free indices in the order of the left-hand side, which must
    name exactly them."""
    lhs = f"{st.name}[{','.join(st.indices)}]" if st.indices else st.name
    if set(body.free) != set(st.indices):
        extra = [i for i in body.free if i not in st.indices]
        missing = [i for i in st.indices if i not in body.free]
        pos = st.tokens[0].pos
        if missing:
            pos = st.index_pos[st.indices.index(missing[0])]
        else:
            pos = next((p for ref in _refs(ast) if isinstance(ref, S.Ref)
                        for i, p in (ref.indices or ()) if i == extra[0]), pos)
        said = f"; it has free indices ({', '.join(body.free)})" if body.free else \
            "; it has no free indices"
        what = (f"index {extra[0]!r} is free in the body but not on the left" if extra
                else f"index {missing[0]!r} of the left-hand side is not free in the body")
        raise IndexMismatchError(format_caret(
            f"{what} of {lhs} = ...{said}; a definition's free indices are those of its "
            "left-hand side (sum the others with sum[...](...))", text, pos))
    return simplify(body, st.indices)


def with_program(e: Expr, program: Program | None) -> Expr:
    """``e`` (a fresh copy of the node) carrying ``program`` as its ``definitions``."""
    if program is None:
        return e
    copy = replace(e)
    simplified = cached(e, "simplified")
    if simplified is not None:
        remember(copy, "simplified", simplified)
    derivative_of = e.derivative_of
    if derivative_of is not None:
        object.__setattr__(copy, "derivative_of", derivative_of)
    object.__setattr__(copy, "definitions", program)
    return copy
