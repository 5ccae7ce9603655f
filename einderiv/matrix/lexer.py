"""The lexer of matrix notation (:func:`einderiv.parse_matrix`): text -> tokens.

Unicode marks become their ASCII spellings here (``ᵀ`` is ``^T``, ``⁻¹`` is ``^-1``,
``𝟏`` is ``ones``, Greek letters their names), so the parser sees one language.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ParseError
from ..symbolic.syntax import check_number
from .printing import GREEK_LETTERS

__all__ = ["Token", "tokenize", "SUPER_DIGITS", "SPECIAL"]

_NUMBER = re.compile(r"(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", re.ASCII)
_OPERATORS = (".*", ".^", "+", "-", "*", "@", "/", "(", ")", ",", "^", "'", "⊙", "⊗")
SUPER_DIGITS = "⁰¹²³⁴⁵⁶⁷⁸⁹"
#: Characters that end a name (marks, not letters).
SPECIAL = set("ᵀ⁻⊙⊗𝟏") | set(SUPER_DIGITS)
_FROM_GREEK = {letter: name for name, letter in GREEK_LETTERS.items()}


@dataclass
class Token:
    kind: str  # 'name', 'number', 'op', 'sup' (superscript integer), 'end'
    text: str
    pos: int


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``, ending with an ``'end'`` token."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        token, i = _next_token(text, i)
        tokens.append(token)
    tokens.append(Token("end", "", n))
    return tokens


def _next_token(text: str, i: int) -> tuple[Token, int]:
    """The token at ``text[i]`` (not a space) and where the next one starts."""
    ch = text[i]
    if text.startswith("⁻ᵀ", i):
        return Token("op", "^-T", i), i + 2
    if ch == "ᵀ":
        return Token("op", "^T", i), i + 1
    if ch in SUPER_DIGITS or ch == "⁻":
        return _superscript(text, i)
    if ch == "𝟏":
        return Token("name", "ones", i), i + 1
    if (ch.isalpha() and ch not in SPECIAL) or ch == "_":
        return _name(text, i)
    if ch in "0123456789" or (ch == "." and i + 1 < len(text) and text[i + 1] in "0123456789"):
        return _number(text, i)
    for op in _OPERATORS:
        if text.startswith(op, i):
            return Token("op", op, i), i + len(op)
    shown = repr(ch) if ch.isprintable() else f"U+{ord(ch):04X}"
    hint = " (index notation goes through einderiv.parse)" if ch in "[]" else ""
    raise ParseError(f"unexpected character {shown}{hint}", text, i)


def _superscript(text: str, i: int) -> tuple[Token, int]:
    """``⁻¹`` (an inverse) or a superscript integer (a power)."""
    j = i + 1
    while j < len(text) and text[j] in SUPER_DIGITS:
        j += 1
    raw = text[i:j].translate(str.maketrans(SUPER_DIGITS + "⁻", "0123456789-"))
    if raw == "-":
        raise ParseError("'⁻' must be followed by 'ᵀ' or superscript digits", text, i)
    return (Token("op", "^-1", i) if raw == "-1" else Token("sup", raw, i)), j


def _name(text: str, i: int) -> tuple[Token, int]:
    """A name; a Greek letter reads as its name (``θ`` is ``theta``)."""
    j = i + 1
    while j < len(text) and ((text[j].isalpha() and text[j] not in SPECIAL)
                             or text[j] in "0123456789_"):
        j += 1
    word = text[i:j]
    return Token("name", _FROM_GREEK.get(word, word), i), j


def _number(text: str, i: int) -> tuple[Token, int]:
    m = _NUMBER.match(text, i)
    assert m is not None
    check_number(m.group(0), text, i)
    j = m.end()
    if text[j - 1] == "." and j < len(text) and text[j] in "*^":  # 2.*x is 2 .* x
        j -= 1
    return Token("number", text[i:j], i), j
