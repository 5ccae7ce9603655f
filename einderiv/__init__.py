"""einderiv: tensor derivatives in Einstein index notation.

>>> import einderiv
>>> print(einderiv.diff("x[i]*A[i,j]*x[j]", "x"))
A[a,c]*x[a] + A[c,b]*x[b]
"""

from .api import diff, hvp, jvp, parse
from .compile import CompiledExpr, compile_expr
from .check import CheckResult, check
from .errors import (EinderivError, EvaluationError, IndexMismatchError, LimitError,
                     NotMatrixExpressible, ParseError, ShapeError)
from .inspect import StructureReport
from .ir import Expr
from .layout import flatten
from .matrix import MatrixExpr
from .matrix_syntax import parse_matrix
from .plot import plot
from .steps import Derivation, Step, derive_steps

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
