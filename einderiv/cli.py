"""Command line: ``einderiv diff "EXPR" --wrt NAME [--shape X=4,3] [--order 2] [--latex]
[--layout numerator] [--emit python [--backend jax] [--no-multiply-out]]``.

The first line names the layout (``--layout``: denominator, the default, or
numerator; docs/layout.md).

With ``--latex`` the derivative is one line that pastes into a document,
``\\frac{\\partial f}{\\partial w_{d}} = ...``; the other lines are ``f = ...`` and
LaTeX comments.

``-`` as the expression reads it from standard input. Output is written in the
console's encoding; where that cannot show a character (a Greek name on an ASCII
console) it is spelt out in ASCII (``theta``). Flags that another flag would make
pointless (``--steps --emit python``) are errors, as are ``--shape`` and
``--assume`` names that the expression does not have (with the closest name).

Exit status 0 on success, 2 on bad input (one-line error with the caret excerpt;
``--debug`` shows the traceback), 141 (128 + SIGPIPE, what the shell reports for
other programs) when the reader of the output went away (``einderiv diff | head -3``):
no traceback, and the work still finishes (``inspect --plot`` writes its picture).
"""

from __future__ import annotations

import argparse
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypedDict

import numpy as np

from einderiv import __version__

from .api import diff, parse, with_axes
from .core.definitions import names_text, used_definitions
from .core.ir import Expr, iter_tensors
from .core.layouts import DENOMINATOR, LAYOUTS
from .core.printing import latex_indices, latex_name
from .core.scopes import outer_origins
from .core.shapes import check_shapes
from .core.structures import apply_assumptions
from .console import EXIT_BROKEN_PIPE, console, quiet_stdout
from .errors import EinderivError, did_you_mean
from .matrix.nodes import MatrixExpr
from .matrix.syntax import parse_matrix
from .numeric.codegen import BACKENDS as CODE_BACKENDS
from .tools.inspect import structure
from .tools.plot import plot
from .tools.steps import derive_steps

__all__ = ["main", "DEMO"]

#: Variable name -> sizes (ints, or size names such as "n"), as --shape gives them.
_Shapes = dict[str, tuple[int | str, ...]]


class _DemoSpec(TypedDict):
    expr: str
    wrt: str
    shapes: dict[str, tuple[int | str, ...]]


#: The linear-regression example of the notes (001_*, A.5, eq. A.17).
DEMO: _DemoSpec = {
    "expr": "(X[a,b]*theta[b] - Y[a])*(X[a,c]*theta[c] - Y[a])/n",
    "wrt": "theta",
    "shapes": {"X": ("n", "d"), "theta": ("d",), "Y": ("n",), "n": ()},
}


def _parse_assume(specs: Sequence[str] | None) -> dict[str, str]:
    """``--assume S=symmetric`` (repeatable) as a dict."""
    out = {}
    for spec in specs or ():
        name, sep, kind = spec.partition("=")
        if not sep:
            raise EinderivError(f"--assume takes NAME=KIND (S=symmetric), got {spec!r}")
        out[name.strip()] = kind.strip()
    return out


def _parse_shape(spec: str) -> tuple[str, tuple[int | str, ...]]:
    if "=" not in spec:
        raise EinderivError(f"--shape takes NAME=SIZES such as X=4,3 or n=, got {spec!r}")
    name, _, sizes = spec.partition("=")
    dims: list[int | str] = []
    for part in filter(None, (p.strip() for p in sizes.split(","))):
        dims.append(int(part) if part.lstrip("-").isdigit() else part)
    return name.strip(), tuple(dims)


_MATRIX_MARKS = ("'", "^", "@", "\u2299", "tr(", "norm2(")


def _looks_like_matrix(text: str) -> bool:
    """Matrix notation uses marks the index language does not have (' ^ @ tr() ...)."""
    return "[" not in text and any(mark in text for mark in _MATRIX_MARKS)


def _parse_either(text: str, shapes: _Shapes, matrix: bool) -> Expr:
    """Index notation, or matrix notation with --matrix. Without the flag, text that
    index notation rejects but that has matrix marks (' ^ @ tr() ...) is read as
    matrix notation; if that fails too, the index-notation error is the one shown."""
    if matrix:
        return parse_matrix(text, shapes=shapes)
    try:
        return parse(text, shapes)
    except EinderivError as exc:
        if not _looks_like_matrix(text):
            raise
        first = exc
    try:
        return parse_matrix(text, shapes=shapes)
    except EinderivError:
        raise first from None


def _matrix_form(e: Expr, wrt_rank: int, layout: str = DENOMINATOR
                 ) -> tuple[MatrixExpr | None, str]:
    """The matrix form in ``layout``, or None and the reason in a few words.
    ``wrt_rank`` tells which axes are the variable's (a vector by a scalar is a row)."""
    try:
        return e.to_matrix(wrt_rank=wrt_rank, layout=layout), ""
    except EinderivError as exc:
        return None, str(exc).splitlines()[0]


def _shape_text(e: Expr, shapes: _Shapes) -> str:
    origins = outer_origins(e)
    sizes = []
    for i in e.free:
        origin = origins.get(i)
        size = "?"
        if isinstance(origin, tuple) and origin[0] in shapes and origin[1] < len(shapes[origin[0]]):
            size = str(shapes[origin[0]][origin[1]])
        elif isinstance(origin, (int, str)):
            size = str(origin)
        sizes.append(size)
    inner = ", ".join(sizes) + ("," if len(sizes) == 1 else "")
    return f"({inner})"


def _layout_line(layout: str, name: str) -> str:
    """What the layout means for this derivative, for the header and the last line."""
    order = f"{name}'s axes first, then f's" if layout == DENOMINATOR else \
        f"f's axes first, then {name}'s"
    return f"{order} ({layout} layout)"


def _print_header(layout: str, name: str, latex: bool) -> None:
    """The first line of the output (after the demo's title): the layout."""
    print(f"{'% ' if latex else ''}layout: {_layout_line(layout, name)}")


#: Combinations of diff's flags where one would be dropped silently: (the test, the
#: message). Each is an error instead.
_DIFF_CONFLICTS: tuple[tuple[Callable[[argparse.Namespace], object], str], ...] = (
    (lambda a: a.steps and a.emit,
     "--steps prints the derivation and --emit the derivative alone: give one of them"),
    (lambda a: a.latex and a.emit == "python",
     "--emit python prints code, which --latex does not change: drop --latex (for "
     "LaTeX alone, --emit latex)"),
    (lambda a: a.name and a.emit != "python",
     "--name names the function of --emit python; without --emit python there is none"),
    (lambda a: a.backend and a.emit != "python",
     "--backend chooses the array library of --emit python's code; without --emit "
     "python there is none"),
    (lambda a: a.no_multiply_out and a.emit != "python",
     "--no-multiply-out shapes the code of --emit python; without --emit python there "
     "is none"),
    (lambda a: a.no_multiply_out and not a.shape,
     "--no-multiply-out keeps products with a sum factor as derived where integer "
     "--shape sizes would have them multiplied out; without --shape nothing is "
     "multiplied out: drop it"),
    (lambda a: a.expr is None and a.wrt,
     "--wrt needs an expression: without one diff runs the built-in example (by theta)"),
    (lambda a: a.expr is None and a.matrix,
     "--matrix reads the expression as matrix notation, but none was given (the "
     "built-in example is index notation)"),
)


def _check_flags(args: argparse.Namespace,
                 rules: tuple[tuple[Callable[[argparse.Namespace], object], str], ...]) -> None:
    for applies, message in rules:
        if applies(args):
            raise EinderivError(message)


def _expression_text(text: str) -> str:
    """The expression argument; ``-`` reads it from standard input, ``@path`` from that
    file (definitions one per line, docs/language.md, "Definitions")."""
    if text.startswith("@"):
        try:
            return Path(text[1:]).read_text(encoding="utf-8")
        except (OSError, ValueError) as exc:  # ValueError: a NUL or a lone surrogate in the name
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise EinderivError(f"cannot read the expression file {text[1:]!r}: {why}") from None
    if text != "-":
        return text
    try:
        read = sys.stdin.read().strip() if sys.stdin is not None else ""
    except (OSError, ValueError) as exc:  # closed, or not readable (captured)
        raise EinderivError(f"the expression is '-', to be read from standard input, "
                            f"which cannot be read: {exc}") from None
    if not read:
        raise EinderivError("the expression is '-', to be read from standard input, "
                            "but standard input is empty")
    return read


def _check_names(e: Expr, flag: str, names: Sequence[str]) -> None:
    """Every name given to ``--shape`` or ``--assume`` is a variable of ``e``."""
    for name in names:
        if name not in e.variables:
            have = ", ".join(sorted(e.variables)) or "none"
            hint = did_you_mean(name, e.variables)
            raise EinderivError(f"{flag} names {name!r}, which the expression does not use "
                                f"(its variables: {have})" + (f"; {hint}" if hint else ""))


def _run_diff(args: argparse.Namespace) -> int:
    layout = getattr(args, "layout", DENOMINATOR)
    if args.expr is None:
        expr, wrt, shapes = DEMO["expr"], DEMO["wrt"], dict(DEMO["shapes"])
        if not getattr(args, "emit", None):  # --emit prints the derivative alone
            print("Linear regression, notes 001_* A.5 (eq. A.17):")
    else:
        if args.wrt is None:
            raise EinderivError("--wrt is required: the variable to differentiate by")
        expr, wrt, shapes = _expression_text(args.expr), args.wrt, {}
    given = dict(_parse_shape(s) for s in args.shape or ())
    shapes.update(given)
    e = _parse_either(expr, shapes, getattr(args, "matrix", False))
    assume = _parse_assume(getattr(args, "assume", None))
    _check_names(e, "--shape", list(given))
    _check_names(e, "--assume", list(assume))
    e = apply_assumptions(e, assume, shapes)
    name = wrt.split("[")[0]
    if getattr(args, "steps", False):
        return _print_steps(e, wrt, shapes, args.order, args.latex, layout)
    result = diff(e, wrt, shapes, layout=layout)
    rank = len(result.free) - len(e.free)
    for _ in range(args.order - 1):  # later orders: the variable may have dropped out
        result = diff(result, with_axes(result, name, rank), shapes, layout=layout)
    label = f"d{'^' + str(args.order) if args.order > 1 else ''} f / d {name}"
    matrix, why_not = _matrix_form(result, rank, layout)
    if getattr(args, "emit", None):
        return _emit(args, e, result, label, matrix, shapes, layout)
    _print_header(layout, name, args.latex)
    if args.latex:
        f_tex = _latex_function(e)
        print(f"{f_tex} = {e.to_latex()}")
        var_labels = result.free[:args.order * rank] if layout == DENOMINATOR else \
            result.free[len(e.free):]
        print(f"{_latex_derivative(f_tex, name, var_labels, rank, args.order)} = "
              f"{result.to_latex()}")
        if matrix is not None:
            print(f"% matrix form, {layout} layout: {matrix.to_latex()}")
    else:
        for line in _definition_lines(e, result):
            print(f"where {line}")
        print(f"f = {names_text(e)}")
        print(f"{label} = {names_text(result)}")
        print(f"matrix form: {matrix}" if matrix is not None else f"matrix form: none ({why_not})")
    free = ", ".join(result.free)
    print(f"{'% ' if args.latex else ''}free indices: ({free})   shape: "
          f"{_shape_text(result, shapes)}   layout: {_layout_line(layout, name)}")
    return 0


def _definition_lines(*exprs: Expr) -> list[str]:
    """``Z[i,n] = ...`` for each definition the expressions use, each after those it
    uses (docs/language.md, "Definitions")."""
    lines: dict[str, str] = {}
    for x in exprs:
        for d in used_definitions(x):
            lines.setdefault(d.name, f"{d.lhs()} = {d.written}")
    return list(lines.values())


def _latex_function(e: Expr) -> str:
    """``f``, with its free indices as subscripts: ``f_{i}``."""
    return f"f_{{{latex_indices(e.free)}}}" if e.free else "f"


def _latex_derivative(f_tex: str, name: str, var_labels: tuple[str, ...], rank: int,
                      order: int) -> str:
    r"""The left side of ``--latex``: ``\frac{\partial f}{\partial w_{d}}``, or for
    order 2 ``\frac{\partial^2 f}{\partial w_{e} \partial w_{d}}`` (the variable's
    labels ``var_labels`` in the result's order: in denominator layout the last
    derivative's first); ``\partial s^{2}`` for a scalar."""
    var = latex_name(name)
    power = f"^{order}" if order > 1 else ""
    if rank == 0:
        below = rf"\partial {var}" + (f"^{{{order}}}" if order > 1 else "")
    else:
        below = " ".join(rf"\partial {var}_{{{latex_indices(var_labels[k * rank:(k + 1) * rank])}}}"
                         for k in range(order))
    return rf"\frac{{\partial{power} {f_tex}}}{{{below}}}"


def _print_steps(e: Expr, wrt: str, shapes: _Shapes, order: int, latex: bool,
                 layout: str = DENOMINATOR) -> int:
    """``--steps``: the numbered steps of each derivative (``--latex``: align* blocks)."""
    name = wrt.split("[")[0]
    current, variable, rank = e, wrt, None
    for k in range(1, order + 1):
        if rank is not None:  # later orders: the variable may have dropped out
            variable = with_axes(current, name, rank)
        steps = derive_steps(current, variable, shapes, layout=layout)
        if k == 1:
            _print_header(layout, name, latex)
        rank = len(steps.result.free) - len(current.free)
        if order > 1:
            print(f"% order {k}" if latex else f"order {k}: d/d {name} of {current}")
        print(steps.to_latex() if latex else steps)
        current = steps.result
    return 0


def _emit(args: argparse.Namespace, e: Expr, result: Expr, label: str,
          matrix: MatrixExpr | None, shapes: _Shapes,
          layout: str = DENOMINATOR) -> int:
    """``--emit python``: the generated function (:mod:`einderiv.numeric.codegen`), named
    grad, jacobian or hessian unless ``--name`` says; ``--emit latex``: the LaTeX of
    the index form and, where one exists, of the matrix form."""
    if args.emit == "latex":
        print(f"% {label}, {layout} layout")
        print(result.to_latex())
        if matrix is not None:
            print("% matrix form")
            print(matrix.to_latex())
        return 0
    name = args.name or ("grad" if args.order == 1 and not e.free else
                         "jacobian" if args.order == 1 else
                         "hessian" if args.order == 2 and not e.free else "derivative")
    print(result.to_python(name=name, backend=args.backend or "numpy", shapes=shapes,
                           multiply_out=not args.no_multiply_out), end="")
    return 0


def _plot_arrays(e: Expr, shapes: _Shapes) -> tuple[dict[str, np.ndarray], str]:
    """Random values for every variable of ``e`` (fixed seed), for ``inspect --plot``."""
    ranks = {t.name: t.indices for t in iter_tensors(e)}
    index_sizes = check_shapes(e, shapes)
    arrays, described = {}, []
    rng = np.random.default_rng(0)
    for name in sorted(ranks):
        shape = shapes.get(name)
        if shape is None and all(i in index_sizes for i in ranks[name]):
            shape = tuple(index_sizes[i] for i in ranks[name])
        if shape is None or not all(isinstance(n, int) for n in shape):
            raise EinderivError(
                f"--plot draws random data, so every variable needs integer sizes: give "
                f"--shape {name}={','.join(['4'] * len(ranks[name]))} (say), got "
                f"{'no shape' if shape is None else 'the sizes ' + str(shape)} for {name!r}")
        arrays[name] = rng.uniform(0.5, 1.5, size=tuple(int(n) for n in shape))
        described.append(f"{name} {tuple(shape)}")
    note = (f"random data, uniform in [0.5, 1.5) with seed 0 (positive, away from zero, "
            f"so every blank cell is a structural zero): {', '.join(described)}")
    return arrays, note


#: inspect's flags that only the picture uses, and the old spelling of --flatten.
_INSPECT_CONFLICTS: tuple[tuple[Callable[[argparse.Namespace], object], str], ...] = (
    (lambda a: a.old_order is not None,
     "inspect's --order is now --flatten F|C (the flattening order of the picture); "
     "--order is the derivative order in diff"),
    (lambda a: a.slices and not a.plot, "--slices chooses the kind of --plot picture: "
     "give --plot FILE too"),
    (lambda a: a.flatten is not None and not a.plot,
     "--flatten orders the --plot picture (the report shows both orders): give --plot "
     "FILE too"),
)


def _run_inspect(args: argparse.Namespace) -> int:
    _check_flags(args, _INSPECT_CONFLICTS)
    shapes = dict(_parse_shape(s) for s in args.shape or ())
    e = parse(_expression_text(args.expr), shapes)
    _check_names(e, "--shape", list(shapes))
    d = diff(e, args.wrt, shapes, layout=args.layout)
    name = args.wrt.split("[")[0].strip()
    ranks = {t.name: len(t.indices) for t in iter_tensors(e)}
    rank = None if name in shapes or "[" in args.wrt else ranks.get(name)
    report = structure(d, args.wrt, shapes=shapes, var_axes=rank, layout=args.layout)
    drawn = ""
    if args.plot:  # drawn before anything is printed: a closed pipe cannot stop it
        arrays, note = _plot_arrays(e, shapes)
        order = args.flatten or "F"
        plot(report, values=arrays, kind="slices" if args.slices else "matrix", order=order,
             path=args.plot)
        what = "slices" if args.slices else f"flattened, order {order}"
        drawn = f"picture: {args.plot} ({what}); {note}"
    print(f"f = {e}")
    print(report._repr_markdown_() if args.markdown else report)
    if drawn:
        print(drawn)
    return 0


def _layout_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--layout", choices=tuple(LAYOUTS), default=DENOMINATOR, metavar="L",
                        help="denominator (default): the variable's axes first; numerator: "
                             "f's axes first (the Jacobian)")


_MAIN_EXAMPLES = """\
examples:
  einderiv diff                          the built-in example (linear regression)
  einderiv diff "x[i]*A[i,j]*x[j]" --wrt x --order 2
  einderiv diff "x'*A*x" --wrt x --shape x=3 --shape A=3,3     matrix notation
  echo "tanh(z[i])" | einderiv diff - --wrt z
  einderiv inspect "W[j,i]*A[j]" --wrt W --shape W=4,3 --plot dzdw.png
  einderiv diff -h                       the options of one command
"""

_DIFF_EXAMPLES = """\
examples:
  einderiv diff "(X[a,b]*theta[b] - Y[a])*(X[a,c]*theta[c] - Y[a])/n" --wrt theta \\
      --shape X=n,d                      gradient, shapes by name
  einderiv diff "x[i]*A[i,j]*x[j]" --wrt x --order 2 --latex
  einderiv diff "x[i]*S[i,j]*x[j]" --wrt S --assume S=symmetric
  einderiv diff "sum[a](softplus(X[a,b]*w[b]))" --wrt w --steps
  einderiv diff "x[i]*A[i,j]*x[j]" --wrt x --shape A=3,3 --emit python --name grad
  einderiv diff - --wrt theta < loss.txt     the expression from standard input
"""

_INSPECT_EXAMPLES = """\
examples:
  einderiv inspect "W[j,i]*A[j]" --wrt W --shape W=4,3
  einderiv inspect "W[j,i]*A[j]" --wrt W --shape W=4,3 --plot dzdw.png --flatten C
  einderiv inspect "tanh(z[i])" --wrt z --shape z=5 --plot act.png --markdown
"""


def _subparser(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str,
               examples: str, help: str, usage: str | None = None) -> argparse.ArgumentParser:
    """A command whose --help ends with ``examples``, kept as written."""
    return sub.add_parser(name, help=help, usage=usage, epilog=examples,
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="einderiv", description="Tensor derivatives in Einstein index notation.",
        epilog=_MAIN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command")
    # The usage line written out: argparse's own would take 4 lines with all the options
    # (a usage error must stay a short message); -h lists them.
    d = _subparser(sub, "diff", _DIFF_EXAMPLES, help="differentiate an index expression", usage=(
        "%(prog)s [-h] [--wrt WRT] [--shape X=SIZES] [--order N] [--layout L]\n"
        "                     [--assume S=KIND] [--latex] [--steps] [--matrix] [expr]\n"
        "                     [--emit FORM] [--name FN] [--backend B] [--no-multiply-out]"))
    d.add_argument("expr", nargs="?", help="the expression; - reads it from standard input, "
                                           "@FILE from FILE; omitted: the linear-regression demo")
    d.add_argument("--wrt", help="variable, optionally with index names: theta or theta[d]")
    d.add_argument("--shape", action="append", metavar="NAME=SIZES",
                   help="shape of a variable, e.g. X=4,3 or X=n,d (repeatable; n= for a scalar)")
    d.add_argument("--order", type=int, default=1, choices=range(1, 5),
                   help="derivative order (2: Hessian)")
    d.add_argument("--assume", action="append", metavar="S=KIND",
                   help="a structured matrix: S=symmetric or D=diagonal (repeatable)")
    d.add_argument("--latex", action="store_true", help="print LaTeX")
    _layout_option(d)
    # Short metavars: argparse's usage line (shown with every usage error) stays short.
    d.add_argument("--emit", choices=("python", "latex"), metavar="FORM",
                   help="print only the derivative: python, a standalone numpy function "
                        "(paths fixed by integer --shape sizes); latex, index and matrix forms")
    d.add_argument("--name", metavar="FN", help="name of the --emit python function "
                                                "(default: grad, jacobian or hessian)")
    d.add_argument("--backend", choices=tuple(CODE_BACKENDS), metavar="B",
                   help="the array library of --emit python's code: "
                        + ", ".join(CODE_BACKENDS) + " (default numpy)")
    d.add_argument("--no-multiply-out", action="store_true",
                   help="--emit python with integer --shape sizes: keep a product with a "
                        "sum factor as derived (U (V^T V) - M V stays (U V^T - M) V; "
                        "better rounding near an exact fit, more FLOPs)")
    d.add_argument("--steps", action="store_true",
                   help="show the derivation step by step (with --latex: an align* block)")
    d.add_argument("--matrix", action="store_true",
                   help="read EXPR as matrix notation (X'*X, inv(A), tr(), ...); detected "
                        "automatically when EXPR has ' ^ @ or tr(")
    d.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help=argparse.SUPPRESS)
    ins = _subparser(sub, "inspect", _INSPECT_EXAMPLES, help="structure of a derivative: "
                     "deltas, nonzeros, compressed form, flattening; optionally a picture")
    ins.add_argument("expr", help="the expression; - reads it from standard input")
    ins.add_argument("--wrt", required=True, help="the variable: W or W[p,q]")
    ins.add_argument("--shape", action="append", metavar="NAME=SIZES",
                     help="shape of a variable, e.g. W=4,3 (repeatable; integers to --plot)")
    ins.add_argument("--plot", metavar="PNG", help="save a heat map of the flattened derivative")
    ins.add_argument("--flatten", choices=("F", "C"), default=None,
                     help="flattening order of the --plot picture (default F, column-major)")
    ins.add_argument("--order", dest="old_order", default=None, help=argparse.SUPPRESS)
    ins.add_argument("--slices", action="store_true",
                     help="--plot picture: one panel per entry of the last axis")
    _layout_option(ins)
    ins.add_argument("--markdown", action="store_true", help="print the report as Markdown")
    ins.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                     help=argparse.SUPPRESS)
    demo = _subparser(sub, "demo", "examples:\n  einderiv demo --order 2 --latex\n",
                      help="the linear-regression example from the notes")
    demo.add_argument("--latex", action="store_true", help="print LaTeX")
    demo.add_argument("--order", type=int, default=1, choices=range(1, 5),
                      help="derivative order (2: Hessian)")
    _layout_option(demo)
    demo.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                      help=argparse.SUPPRESS)
    _serve_parser(sub)
    return parser


def _serve_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``einderiv serve``: the local web page (docs/web.md)."""
    srv = sub.add_parser("serve", help="a local web page for deriving and inspecting")
    srv.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free one)")
    srv.add_argument("--host", default="127.0.0.1",
                     help="address to bind (default 127.0.0.1: this machine only)")
    srv.add_argument("--open", action="store_true", help="open the page in a browser")
    srv.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    srv.add_argument("--time-limit", type=float, default=10.0, metavar="S",
                     help="seconds one request may take (default 10)")
    srv.add_argument("--verbose", action="store_true", help="log every request")
    srv.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                     help=argparse.SUPPRESS)
    srv.set_defaults(handler=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    from .web import serve  # lazy: the page is optional; other commands never load it

    if args.workers < 1 or not args.time_limit > 0 or not 0 <= args.port < 65536:
        raise EinderivError("serve needs --workers >= 1, --time-limit > 0 and a port 0-65535")
    try:
        serve(args.host, args.port, open_browser=args.open, workers=args.workers,
              time_limit=args.time_limit, verbose=args.verbose)
    except OSError as exc:
        raise EinderivError(f"cannot serve on {args.host}:{args.port}: {exc.strerror or exc}") from None
    return 0


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "diff":
        _check_flags(args, _DIFF_CONFLICTS)
        return _run_diff(args)
    if args.command == "inspect":
        return _run_inspect(args)
    if hasattr(args, "handler"):  # serve
        return args.handler(args)
    args.expr, args.wrt, args.shape = None, None, None  # demo, or no command
    args.latex = getattr(args, "latex", False)
    args.order = getattr(args, "order", 1)
    return _run_diff(args)


def _show_warning(message: Warning | str, category: type[Warning], *_: object,
                  **__: object) -> None:
    """A warning on the command line, as einderiv's errors are shown (no source line)."""
    print(f"einderiv: {category.__name__}: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    with console(), warnings.catch_warnings():
        warnings.showwarning = _show_warning
        args = parser.parse_args(argv)
        debug = getattr(args, "debug", False)
        try:
            code = _dispatch(args)
            sys.stdout.flush()  # a closed pipe shows here, not at exit
            return code
        except BrokenPipeError:
            quiet_stdout()
            return EXIT_BROKEN_PIPE
        except EinderivError as exc:
            if debug:
                traceback.print_exc()
            print(f"einderiv: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 2
        except Exception:  # pragma: no cover - a bug: say so, with the trace under --debug
            if debug:
                raise
            print("einderiv: internal error (a bug; rerun with --debug and report it)",
                  file=sys.stderr)
            return 3


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
