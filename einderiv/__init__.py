"""einderiv: tensor derivatives in Einstein index notation.

>>> import einderiv
>>> print(einderiv.diff("x[i]*A[i,j]*x[j]", "x"))
A[a,c]*x[a] + A[c,b]*x[b]
"""

from .api import diff, parse
from .check import CheckResult, check
from .errors import (EinderivError, EvaluationError, IndexMismatchError, LimitError,
                     ParseError, ShapeError)
from .ir import Expr
from .layout import flatten

__version__ = "0.1.0"

__all__ = [
    "parse",
    "diff",
    "check",
    "flatten",
    "Expr",
    "CheckResult",
    "EinderivError",
    "ParseError",
    "IndexMismatchError",
    "ShapeError",
    "EvaluationError",
    "LimitError",
]
