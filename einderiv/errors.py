"""The one exception family einderiv raises.

Every error is an :class:`EinderivError`, itself a :class:`ValueError`, so callers
can catch a single type.  Subclasses say which stage rejected the input.
"""

from __future__ import annotations

import difflib
import functools
import os
import sys
import warnings
from collections.abc import Callable, Iterable
from typing import TypeVar

__all__ = [
    "EinderivError",
    "ParseError",
    "IndexMismatchError",
    "ShapeError",
    "EvaluationError",
    "LimitError",
    "guard_recursion",
    "NotMatrixExpressible",
    "LayoutError",
    "did_you_mean",
    "DefinitionWarning",
]


class EinderivError(ValueError):
    """Base class of every error einderiv raises on bad input."""


class ParseError(EinderivError):
    """Malformed expression text.

    The message shows the text with a caret under the offending character;
    ``text`` and ``position`` (0-based) are kept as attributes.

    >>> import einderiv
    >>> try:
    ...     einderiv.parse("x[i] + * y[i]")
    ... except einderiv.ParseError as e:
    ...     print(e)
    unexpected '*': expected a number, a name or '('
      x[i] + * y[i]
             ^
    """

    def __init__(self, message: str, text: str = "", position: int | None = None):
        self.reason = message
        self.text = text
        self.position = position
        super().__init__(format_caret(message, text, position))


class IndexMismatchError(EinderivError):
    """Index sets that do not fit: terms of a sum with different free indices,
    an output index that does not occur, a tensor used with two ranks, ..."""


class ShapeError(EinderivError):
    """Sizes that conflict: one index with two sizes, a shape of the wrong rank."""


class EvaluationError(EinderivError):
    """Arrays passed to ``evaluate`` that are missing, of the wrong shape or type."""


class LimitError(EinderivError):
    """An input beyond a documented limit (nesting depth, tensor rank, memory)."""


class LayoutError(EinderivError):
    """An unknown layout name (``layout=`` of ``diff``, ``flatten``, ...); the message
    lists the valid names."""


class NotMatrixExpressible(EinderivError):
    """An expression with no matrix-notation form (more than two free axes, or an
    index pattern that needs indices). The message says why and what to use instead:
    the index form, or ``einderiv.flatten`` / ``to_matrix(flatten=...)``."""


class DefinitionWarning(UserWarning):
    """A definition that nothing uses (``Z[i] = ...; x[i]*y[i]``): a warning, not an
    error, with a caret under the name; filter it with
    ``warnings.simplefilter("ignore", einderiv.DefinitionWarning)``."""


def warn(warning: Warning) -> None:
    """Issue ``warning`` attributed to the first frame outside einderiv (the user's
    line, however deep inside the package it was found)."""
    package = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1  # type: ignore[assignment]
    warnings.warn(warning, stacklevel=level + 1)


def format_caret(message: str, text: str, position: int | None) -> str:
    """``message`` followed by the line of ``text`` holding ``position`` and a caret under it."""
    if not text or position is None:
        return message
    position = max(0, min(position, len(text)))
    line_start = text.rfind("\n", 0, position) + 1
    line_end = text.find("\n", position)
    line = text[line_start: len(text) if line_end < 0 else line_end]
    column = position - line_start
    # Keep very long lines readable: show a window around the caret.
    if len(line) > 100:
        lo = max(0, column - 50)
        shown = ("..." if lo else "") + line[lo: lo + 100] + ("..." if lo + 100 < len(line) else "")
        column = column - lo + (3 if lo else 0)
        line = shown
    line = "".join(ch if ch.isprintable() else "?" for ch in line)
    return f"{message}\n  {line}\n  {' ' * column}^"


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """A hint for a misspelt ``name``: ``"did you mean 'theta'?"`` naming the closest
    of ``candidates`` (up to three, by :func:`difflib.get_close_matches`), or ``""``
    where none is close. Callers append it to their message.

    >>> did_you_mean("thetaa", ["X", "theta", "Y"])
    "did you mean 'theta'?"
    >>> did_you_mean("W", ["W1", "W2", "b1"])
    "did you mean 'W1' or 'W2'?"
    >>> did_you_mean("q", ["X", "theta"])
    ''
    """
    pool = sorted({c for c in candidates if isinstance(c, str) and c != name})
    close = difflib.get_close_matches(name, pool, n=3, cutoff=0.6)
    close.sort(key=lambda c: (-difflib.SequenceMatcher(None, name, c).ratio(), c))
    if not close:  # a different case: "x" for "X", "Theta" for "theta"
        close = [c for c in pool if c.lower() == name.lower()]
    if not close:
        return ""
    quoted = [repr(c) for c in close]
    said = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
    return f"did you mean {said}?"


F = TypeVar("F", bound=Callable)


def guard_recursion(fn: F) -> F:
    """Turn a RecursionError deep inside einderiv into a :class:`LimitError`."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        # The parser bounds nesting at syntax.MAX_DEPTH; each level costs a few
        # frames in every pass, so make sure Python's limit is not the one hit first.
        old = sys.getrecursionlimit()
        if old < _RECURSION_HEADROOM:
            sys.setrecursionlimit(_RECURSION_HEADROOM)
        try:
            return fn(*args, **kwargs)
        except RecursionError:
            raise LimitError(
                "the expression is nested too deeply for einderiv to process; "
                "split it into smaller parts") from None
        finally:
            if old < _RECURSION_HEADROOM:
                sys.setrecursionlimit(old)
    return wrapper  # type: ignore[return-value]


#: Python's recursion limit while einderiv works (restored after).
_RECURSION_HEADROOM = 8000

