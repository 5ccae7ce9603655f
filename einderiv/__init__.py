"""einderiv: tensor derivatives in Einstein index notation.

>>> import einderiv
>>> print(einderiv.diff("x[i]*A[i,j]*x[j]", "x"))
A[a,c]*x[a] + A[c,b]*x[b]

The package face: the public names below, nothing else. Layers, each importing only
those before it (tests/test_layers.py checks it): ``errors``; ``core`` (the IR,
function table, canonical keys, printing, shapes); ``symbolic`` (parser, Einstein
rule, derivative and simplification rules); ``matrix`` (matrix notation both ways);
``numeric`` (lowering to a program, contraction plans, execution, code export);
``api`` (parse, diff, jvp, hvp); ``tools`` (steps, inspect, plot, check); ``web``
(``einderiv serve``, loaded only by that command); then this face and the command
line. ``numeric`` and ``matrix`` never import each other.
"""

from .api import diff, hvp, jvp, parse
from .core.ir import Expr
from .errors import (
                     DefinitionWarning,
                     EinderivError,
                     EvaluationError,
                     IndexMismatchError,
                     LayoutError,
                     LimitError,
                     NotMatrixExpressible,
                     ParseError,
                     ShapeError,
)
from .matrix import MatrixExpr, parse_matrix, to_matrix
from .numeric.codegen import to_python
from .numeric.compiled import CompiledExpr, compile_expr
from .numeric.layout import flatten
from .tools.check import CheckResult, check
from .tools.definitions import evaluate_named
from .tools.inspect import StructureReport, structure
from .tools.plot import Picture, plot
from .tools.steps import Derivation, Step, derive_steps

__version__ = "0.1.0"

__all__ = [
    "parse",
    "diff",
    "derive_steps",
    "evaluate_named",
    "Derivation",
    "Step",
    "jvp",
    "hvp",
    "check",
    "flatten",
    "plot",
    "Picture",
    "StructureReport",
    "structure",
    "to_matrix",
    "to_python",
    "compile_expr",
    "CompiledExpr",
    "Expr",
    "CheckResult",
    "EinderivError",
    "DefinitionWarning",
    "ParseError",
    "IndexMismatchError",
    "LayoutError",
    "ShapeError",
    "EvaluationError",
    "LimitError",
    "parse_matrix",
    "MatrixExpr",
    "NotMatrixExpressible",
]
