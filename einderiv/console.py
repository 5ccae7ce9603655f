"""The command line's console: output in the console's encoding with an ASCII
fallback for what it cannot show (``θ`` as ``theta``), and a quiet end when the reader
of the output goes away (``einderiv diff ... | head``). Part of the face, beside
:mod:`einderiv.cli`."""

from __future__ import annotations

import codecs
import io
import os
import sys
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager

from .matrix.printing import GREEK_LETTERS

__all__ = ["console", "quiet_stdout", "EXIT_BROKEN_PIPE"]

#: ASCII for the symbols the printers use, where the console cannot show them.
_ASCII_SYMBOLS = {"\u1d40": "^T", "\u207b": "^-", "\u00b9": "1", "\u2299": ".*",
                  "\u2297": " kron ", "\U0001d7cf": "ones", "\u00b7": "*", "\u2026": "...",
                  "\u00d7": "x", "\u2212": "-"}
_ASCII_GREEK = {letter: name for name, letter in GREEK_LETTERS.items()}


def _ascii(char: str) -> str:
    """One character the console cannot show, in ASCII: a Greek letter by its name
    (as einderiv reads it: theta), a symbol by its ASCII spelling, else its name."""
    if char in _ASCII_GREEK:
        return _ASCII_GREEK[char]
    if char in _ASCII_SYMBOLS:
        return _ASCII_SYMBOLS[char]
    plain = unicodedata.normalize("NFKD", char).encode("ascii", "ignore").decode()
    return plain or "\\N{" + unicodedata.name(char, f"U+{ord(char):04X}") + "}"


def _ascii_fallback(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    return "".join(_ascii(c) for c in exc.object[exc.start:exc.end]), exc.end


codecs.register_error("einderiv.ascii", _ascii_fallback)


@contextmanager
def console() -> Iterator[None]:
    """Standard output and error in the console's encoding, with characters it has
    not got spelt in ASCII (``θ`` as ``theta``) instead of an encoding error."""
    changed = []
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            changed.append((stream, stream.errors))
            stream.reconfigure(errors="einderiv.ascii")
    try:
        yield
    finally:
        for stream, errors in changed:
            try:
                stream.reconfigure(errors=errors)
            except (ValueError, OSError):  # closed meanwhile
                pass


def quiet_stdout() -> None:
    """After the reader went away: send what is still buffered to /dev/null, so
    that Python's flush at exit raises no second BrokenPipeError."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, io.UnsupportedOperation):
        pass


#: Exit status when the output's reader went away: 128 + SIGPIPE, as the shell
#: reports for a program that SIGPIPE ended (yes | head).
EXIT_BROKEN_PIPE = 141
