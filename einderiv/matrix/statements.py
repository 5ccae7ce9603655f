"""Definitions in matrix notation: ``Z = W' X; A = tanh(Z); L = sum((V A - T).^2)``.

Statements are separated by ``;`` or, where the text defines anything, by new lines
(a line ending in an operator, or a next line starting with one, continues; inside
parentheses a new line is a space). ``NAME = EXPR`` defines ``NAME`` as a scalar, a
column vector or a matrix, with the shape ``EXPR`` has; a name is defined once, before
it is used; the last statement (or its body, if it is a definition) is the expression.
Each body is read by :func:`einderiv.parse_matrix`'s own parser, with the shapes of the
names before it, and becomes a definition of the index form (rows ``i``, columns
``j``), so the result is what :func:`einderiv.parse` gives for the same definitions
in index notation (:mod:`einderiv.symbolic.definitions`): it prints, differentiates
and evaluates in the names.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..core.ir import Expr
from ..errors import DefinitionWarning, EinderivError, ParseError, format_caret, warn
from ..symbolic.definitions import read

__all__ = ["split_statements", "read_matrix_program"]

_DEFINES = re.compile(r"\s*([^\W\d]\w*)\s*=")
_NAME = re.compile(r"[^\W\d]\w*")
_CONTINUES_AFTER = tuple("+-*/@(,=^⊙⊗") + (".*", ".^")
_CONTINUES_BEFORE = tuple("+-*/@),'^⊙⊗ᵀ") + (".*", ".^")


@dataclass
class Statement:
    start: int           # where the body starts in the text
    end: int             # where it ends
    name: str | None = None
    name_pos: int = 0


def split_statements(text: str) -> list[Statement] | None:
    """The statements of ``text``, or None where it is one plain expression."""
    if "=" not in text and ";" not in text:
        return None
    cuts: list[tuple[int, int]] = []  # (end of a statement, start of the next)
    depth, start = 0, 0
    for k, ch in enumerate(text):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif depth == 0 and ch == ";":
            cuts.append((start, k))
            start = k + 1
        elif depth == 0 and ch == "\n" and "=" in text:
            before, after = text[start:k].rstrip(), text[k + 1:].lstrip()
            if before and after and not before.endswith(_CONTINUES_AFTER) \
                    and not after.startswith(_CONTINUES_BEFORE):
                cuts.append((start, k))
                start = k + 1
    cuts.append((start, len(text)))
    out = []
    for a, b in cuts:
        if not text[a:b].strip():
            continue
        m = _DEFINES.match(text, a)
        if m and m.end() <= b and not text.startswith("=", m.end()):
            out.append(Statement(m.end(), b, m.group(1), m.start(1)))
        else:
            out.append(Statement(a, b))
    return out


def read_matrix_program(text: str, statements: list[Statement], shapes: Mapping[str, tuple],
                        parse_one: Callable[[str, Mapping[str, tuple], bool], tuple[Expr, tuple]]
                        ) -> tuple[Expr, object]:
    """The index expression of a matrix program and its definitions (as
    :func:`einderiv.symbolic.definitions.read` returns them). ``parse_one(text, shapes,
    definition)`` reads one body given as the whole text with the rest blanked out (so
    carets stay in place) and returns its index form (free ``i``, ``j``) and, for a
    definition, its shape."""
    where: dict[str, int] = {}
    for k, st in enumerate(statements):
        if st.name is not None and st.name in where:
            raise EinderivError(format_caret(
                f"{st.name!r} is defined twice; a name is defined once", text, st.name_pos))
        if st.name is not None:
            where[st.name] = k
    for st in statements[:-1]:
        if st.name is None:
            raise ParseError("only the last statement may be an expression without a name; "
                             "name this one (y = ...) or remove it", text,
                             st.start + len(text[st.start:]) - len(text[st.start:].lstrip()))
    known = dict(shapes)
    lines: list[str] = []
    used: set[str] = set()
    for k, st in enumerate(statements):
        for m in _NAME.finditer(text, st.start, st.end):
            at = where.get(m.group())
            if at is not None and at >= k:
                what = "in terms of itself" if at == k else "before its definition"
                raise EinderivError(format_caret(
                    f"{m.group()!r} is used {what}; a definition may use only the names "
                    "defined before it", text, m.start()))
            used.add(m.group())
        blanked = "".join(ch if st.start <= p < st.end or ch == "\n" else " "
                          for p, ch in enumerate(text))
        if not blanked.strip():
            raise ParseError(f"nothing after '=': write the body of {st.name}", text, st.end)
        last = st.name is None or k == len(statements) - 1
        body, shape = parse_one(blanked, known, not last)
        if last or st.name is None:
            lines.append(str(body))
            break
        labels = ("i", "j")[: len(shape)]
        lhs = f"{st.name}[{','.join(labels)}]" if labels else st.name
        lines.append(f"{lhs} = {body}")
        known[st.name] = shape
    for name, k in where.items():
        if name not in used and k < len(statements) - 1:
            warn(DefinitionWarning(format_caret(
                f"{name!r} is defined but never used", text, statements[k].name_pos)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DefinitionWarning)  # said above, on this text
        return read("; ".join(lines))
