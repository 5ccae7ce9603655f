"""Matrix notation both ways, in denominator layout (docs/matrix.md): ``to_matrix``
reads an index expression as matrices, ``parse_matrix`` reads matrix notation into
index form. The layer above ``symbolic``: its modules import ``errors``, ``core``,
``symbolic``, each other, numpy and the standard library; never ``numeric``, ``api``,
``tools`` or the package face.

Out (index -> matrix): ``nodes`` (the MatrixExpr node types) <- ``printing`` (ASCII,
Unicode, LaTeX) and ``evaluate`` (numpy), which install themselves in the nodes;
``algebra`` (tidying constructors, common factors) <- ``factor_graph`` (a product as
chains and traces) and ``kronecker`` (flattened derivatives) <- ``from_index``
(``to_matrix``). In (matrix -> index): ``lexer`` <- ``lowering`` (values with row and
column labels) <- ``syntax`` (the parser, ``parse_matrix``).
"""

from . import evaluate, printing  # noqa: F401  (install the printers and the evaluator)
from .from_index import to_matrix
from .nodes import MatrixExpr
from .syntax import parse_matrix

__all__ = ["MatrixExpr", "parse_matrix", "to_matrix"]
