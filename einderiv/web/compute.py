"""What ``POST /api/diff`` answers: a JSON request in, a JSON-ready dict out.

Runs in a worker process of :mod:`einderiv.web.pool` (never in the server's own
process), so a derivation over its time budget can be stopped by ending the
worker. Nothing here executes what the user typed: the text only goes to
:func:`einderiv.parse` / :func:`einderiv.parse_matrix`.

>>> out = answer({"expr": "(X[a,b]*theta[b] - Y[a])*(X[a,c]*theta[c] - Y[a])/n",
...               "wrt": "theta"})
>>> out["matrix"], out["index"], out["free"]
('2/n X^T (X theta - Y)', '2*X[a,d]*(X[a,b]*theta[b] - Y[a])/n', ['d'])
>>> out["structure"], out["reasons"]["structure"]
(None, 'the derivative has 1 axis; the structure report is for 3 or more')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..api import diff, parse, with_axes
from ..core.ir import Expr
from ..core.layouts import DENOMINATOR
from ..core.scopes import outer_origins
from ..core.structures import apply_assumptions
from ..errors import EinderivError, LimitError, ParseError
from ..matrix.syntax import parse_matrix
from ..tools.inspect import structure
from ..tools.steps import derive_steps
from .heatmap import heatmap

__all__ = ["answer", "read_request", "parse_either", "error_answer", "RequestError",
           "MAX_EXPR_CHARS", "BACKENDS"]

#: The longest expression (and variable) text a request may carry.
MAX_EXPR_CHARS = 2000
#: Exported code tabs.
BACKENDS = ("numpy", "jax", "torch")
_MAX_SHAPE_NAMES = 64
_MAX_ORDER = 4

#: What matrix notation has and index notation lacks (the CLI's rule, cli._looks_like_matrix;
#: tests/test_web_api.py checks that both read the same texts the same way).
_MATRIX_MARKS = ("'", "^", "@", "\u2299", "tr(", "norm2(")


class RequestError(ValueError):
    """A request that is not the JSON the API takes (a field of the wrong type, ...):
    the web API's own error, not one of einderiv's (docs/errors.md lists those)."""


def parse_either(text: str, shapes: Mapping[str, Any], matrix: bool = False) -> tuple[Expr, str]:
    """The expression and the notation it was read in (``"index"`` or ``"matrix"``),
    detected as on the command line: text that index notation refuses but that has
    matrix marks (' ^ @ tr() ...) is read as matrix notation; if that fails too, the
    index-notation error is the one raised."""
    if matrix:
        return parse_matrix(text, shapes=shapes), "matrix"
    try:
        return parse(text, shapes), "index"
    except EinderivError as exc:
        if "[" in text or not any(mark in text for mark in _MATRIX_MARKS):
            raise
        first = exc
    try:
        return parse_matrix(text, shapes=shapes), "matrix"
    except EinderivError:
        raise first from None


def _text(request: Mapping[str, Any], key: str, required: bool = True) -> str:
    value = request.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise RequestError(f"{key!r} must be a non-empty string, got {type(value).__name__}")
    if len(value) > MAX_EXPR_CHARS:
        raise LimitError(f"{key!r} has {len(value)} characters; the server takes at most "
                         f"{MAX_EXPR_CHARS}")
    return value


def _shapes(raw: Any) -> dict[str, tuple[int | str, ...]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or len(raw) > _MAX_SHAPE_NAMES:
        raise RequestError(f"'shapes' must be an object of at most {_MAX_SHAPE_NAMES} names "
                           f"-> lists of sizes, such as {{\"X\": [4, 3]}}")
    out: dict[str, tuple[int | str, ...]] = {}
    for name, sizes in raw.items():
        if not isinstance(sizes, list) or len(sizes) > 8 or not all(
                (isinstance(s, int) and not isinstance(s, bool) and 0 < s <= 10**6)
                or (isinstance(s, str) and 0 < len(s) <= 32) for s in sizes):
            raise RequestError(f"shapes[{name[:40]!r}] must be a list of at most 8 sizes, each "
                               f"a positive integer or a size name, got {str(sizes)[:60]}")
        out[name[:64]] = tuple(sizes)
    return out


def read_request(request: Any) -> dict[str, Any]:
    """Check a request's fields and types; the normalized request
    (:class:`RequestError` or :class:`~einderiv.errors.LimitError` where it is wrong)."""
    if not isinstance(request, dict):
        raise RequestError(f"the body must be a JSON object, got {type(request).__name__}")
    order = request.get("order", 1)
    if not isinstance(order, int) or isinstance(order, bool) or not 1 <= order <= _MAX_ORDER:
        raise RequestError(f"'order' must be an integer from 1 to {_MAX_ORDER}, got {order!r:.40}")
    layout = request.get("layout", DENOMINATOR)
    if not isinstance(layout, str) or len(layout) > 40:
        raise RequestError("'layout' must be a string: denominator or numerator")
    assume = request.get("assume") or {}
    if not isinstance(assume, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and len(v) < 40 for k, v in assume.items()):
        raise RequestError("'assume' must map names to kinds: {\"S\": \"symmetric\"}")
    values = request.get("values") or {}
    if not isinstance(values, dict):
        raise RequestError("'values' must map variable names to (nested lists of) numbers")
    return {"expr": _text(request, "expr"), "wrt": _text(request, "wrt"),
            "shapes": _shapes(request.get("shapes")), "order": order, "layout": layout,
            "assume": assume, "matrix": bool(request.get("matrix", False)),
            "heatmap": bool(request.get("heatmap", False)), "values": values}


def error_answer(exc: EinderivError | RequestError) -> dict[str, Any]:
    """The body of a 400 answer: the message (with its caret excerpt), the error's
    class name and, for a syntax error, the 0-based position in the text."""
    position = exc.position if isinstance(exc, ParseError) else None
    return {"error": str(exc), "kind": type(exc).__name__, "position": position}


def _shape(e: Expr, shapes: Mapping[str, tuple]) -> list[int | str | None]:
    """The size of each free axis, where the shapes or the expression say it."""
    origins = outer_origins(e)
    sizes: list[int | str | None] = []
    for i in e.free:
        origin = origins.get(i)
        size: int | str | None = None
        if isinstance(origin, tuple) and origin[0] in shapes and origin[1] < len(shapes[origin[0]]):
            size = shapes[origin[0]][origin[1]]
        elif isinstance(origin, (int, str)):
            size = origin
        sizes.append(size)
    return sizes


def _steps(e: Expr, wrt: str, name: str, shapes: Mapping[str, tuple], order: int,
           layout: str) -> list[dict[str, Any]]:
    """Each derivative's steps (as ``einderiv diff --steps``), one list entry per step."""
    out: list[dict[str, Any]] = []
    current, variable, rank = e, wrt, None
    for k in range(1, order + 1):
        if rank is not None:  # later orders: the variable may have dropped out
            variable = with_axes(current, name, rank)
        steps = derive_steps(current, variable, shapes, layout=layout)
        rank = len(steps.result.free) - len(current.free)
        out += [{"order": k, "rule": s.rule, "detail": s.detail, "text": s.text,
                 "latex": s.to_latex()} for s in steps]
        current = steps.result
    return out


def _optional(reasons: dict[str, str], key: str, fn: Any) -> Any:
    """``fn()``, or None with the first line of its error as ``reasons[key]``."""
    try:
        return fn()
    except EinderivError as exc:
        reasons[key] = str(exc).splitlines()[0]
        return None


def answer(raw: Any) -> dict[str, Any]:
    """The JSON answer to one ``/api/diff`` request (see docs/web.md); raises an
    :class:`~einderiv.errors.EinderivError` or a :class:`RequestError` for a bad input."""
    req = read_request(raw)
    shapes, layout, order = req["shapes"], req["layout"], req["order"]
    e, notation = parse_either(req["expr"], shapes, req["matrix"])
    e = apply_assumptions(e, req["assume"], shapes)
    wrt = req["wrt"]
    name = wrt.split("[")[0].strip()
    result = diff(e, wrt, shapes, layout=layout)
    rank = len(result.free) - len(e.free)
    for _ in range(order - 1):
        result = diff(result, with_axes(result, name, rank), shapes, layout=layout)
    reasons: dict[str, str] = {}
    matrix = _optional(reasons, "matrix", lambda: result.to_matrix(wrt_rank=rank, layout=layout))
    if len(result.free) >= 3:
        report = _optional(reasons, "structure", lambda: structure(
            result, name, shapes=shapes, var_axes=rank * order, layout=layout))
    else:
        report = None
        axes = len(result.free)
        reasons["structure"] = (f"the derivative has {axes} ax{'is' if axes == 1 else 'es'}; "
                                f"the structure report is for 3 or more")
    steps = _optional(reasons, "steps", lambda: _steps(e, wrt, name, shapes, order, layout))
    code = _optional(reasons, "code", lambda: {
        b: result.to_python(name="grad" if order == 1 and not e.free else "derivative",
                            backend=b, shapes=shapes) for b in BACKENDS})
    out: dict[str, Any] = {
        "notation": notation,
        "input": str(e),
        "input_latex": e.to_latex(),
        "index": str(result),
        "index_latex": result.to_latex(),
        "matrix": None if matrix is None else str(matrix),
        "matrix_latex": None if matrix is None else matrix.to_latex(),
        "free": list(result.free),
        "shape": _shape(result, shapes),
        "layout": layout,
        "steps": steps,
        "structure": None if report is None else {
            "text": str(report), "compressed": str(report.compressed),
            "compressed_latex": report.compressed.to_latex(),
            "nonzeros": _jsonable(report.nonzeros), "dense_size": _jsonable(report.dense_size)},
        "code": code,
    }
    if req["heatmap"]:
        out["heatmap"] = _optional(reasons, "heatmap", lambda: heatmap(
            e, result, name, order, shapes, layout, req["values"]))
    else:
        reasons["heatmap"] = "not asked for (\"heatmap\": true)"
        out["heatmap"] = None
    out["reasons"] = reasons
    return out


def _jsonable(size: Any) -> int | str | None:
    return size if size is None or isinstance(size, int) else str(size)
