"""einderiv: tensor derivatives in Einstein index notation.

>>> import einderiv
>>> print(einderiv.diff("x[i]*A[i,j]*x[j]", "x"))
A[a,c]*x[a] + A[c,b]*x[b]
"""

from .api import diff, hvp, jvp, parse
from .core.ir import Expr
from .errors import (
                     EinderivError,
                     EvaluationError,
                     IndexMismatchError,
                     LimitError,
                     NotMatrixExpressible,
                     ParseError,
                     ShapeError,
)
from .matrix.nodes import MatrixExpr
from .matrix.syntax import parse_matrix
from .numeric.compiled import CompiledExpr, compile_expr
from .numeric.layout import flatten
from .tools.check import CheckResult, check
from .tools.inspect import StructureReport
from .tools.plot import plot
from .tools.steps import Derivation, Step, derive_steps

__version__ = "0.1.0"

__all__ = [
    "parse",
    "diff",
    "derive_steps",
    "Derivation",
    "Step",
    "jvp",
    "hvp",
    "check",
    "flatten",
    "plot",
    "StructureReport",
    "compile_expr",
    "CompiledExpr",
    "Expr",
    "CheckResult",
    "EinderivError",
    "ParseError",
    "IndexMismatchError",
    "ShapeError",
    "EvaluationError",
    "LimitError",
    "parse_matrix",
    "MatrixExpr",
    "NotMatrixExpressible",
]
