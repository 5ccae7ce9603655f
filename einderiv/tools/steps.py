"""Step-by-step derivations: what the engine did, one rule at a time.

:func:`derive_steps` runs the same code as :func:`einderiv.diff` and records the
expression after each stage, the way the notes derive the least-squares gradient
(001_*, A.17-A.22):

1. **index form** -- the expression as parsed: every tensor with explicit indices,
   repeated indices summed (A.17).
2. **differentiate** -- the rules of :mod:`einderiv.symbolic.diff`, applied node by node:
   the product rule, the chain rule for element-wise functions, the quotient and
   power rules, the rules for inv/det/logdet, and ``d theta[b] / d theta[d] =
   delta[d,b]`` for the variable (A.18). The step lists the rules it used.
3. **flatten products** -- products of products written as one einsum term each,
   numbers folded (:func:`einderiv.symbolic.terms.flatten_product`); shown only when it
   changes the expression.
4. **contract deltas** -- each ``delta[d,b]`` with ``b`` summed renames ``b`` to
   ``d`` (:func:`einderiv.symbolic.simplify.contract_deltas`, A.18 -> A.19).
5. **rename dummies** -- each term's summed indices renamed by the term's canonical
   factor order, so terms that are equal up to dummy names read the same.
6. **collect like terms** -- the engine's full simplification
   (:func:`einderiv.symbolic.simplify.simplify`): equal terms added (A.19 -> A.20), numbers
   folded. Its expression is exactly the result of :func:`einderiv.diff`.
7. **matrix form** -- the matrix form (A.21-A.22) in the chosen layout
   (denominator by default), where one exists (:meth:`einderiv.Expr.to_matrix`).

Stages 3-6 are :data:`einderiv.symbolic.pipeline.PIPELINE`, iterated here: the
engine's own rule functions applied to the whole expression one rule at a time (the
simplifier interleaves them node by node); every step's expression has the same
value as the next, which the tests check on random data.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import overload

from ..api import differentiate, parse_with_ranks
from ..core.ir import Expr, Sum
from ..core.layouts import DENOMINATOR, check_layout
from ..core.printing import latex_indices, latex_name
from ..core.scopes import outer_origins
from ..core.shapes import normalize_shapes
from ..errors import EinderivError, guard_recursion
from ..matrix.nodes import MatrixExpr
from ..symbolic.identities import IDENTITIES, recording
from ..symbolic.naming import prettify
from ..symbolic.pipeline import PIPELINE, rename_dummies
from ..symbolic.terms import with_order
from ..core.definitions import Program, fold, names_text
from ..symbolic.definitions import with_program
from .definitions import chain_steps

__all__ = ["Step", "Derivation", "derive_steps"]


@dataclass(frozen=True)
class Step:
    """One step of a derivation: the rule applied, what it did, and the expression
    after it (index notation; for the ``"matrix form"`` step also ``matrix``)."""

    rule: str
    detail: str
    expr: Expr
    matrix: MatrixExpr | None = None  # for the "matrix form" step

    @property
    def text(self) -> str:
        """The expression after this step as text (matrix notation for the last)."""
        if self.matrix is not None:
            return str(self.matrix)
        # in the names of the definitions, which the first step lists
        return str(self.expr) if self.rule == "index form" else names_text(self.expr)

    def to_latex(self) -> str:
        return self.matrix.to_latex() if self.matrix is not None else self.expr.to_latex()


@dataclass(frozen=True)
class Derivation(Sequence[Step]):
    """The ordered steps of one derivative; a sequence of :class:`Step`.

    ``str()`` numbers the steps; :meth:`to_latex` is an ``align*`` block; in a
    notebook the steps render as LaTeX. ``result`` is what :func:`einderiv.diff`
    returns."""

    steps: tuple[Step, ...]
    wrt: str
    result: Expr
    #: Through definitions (``Z[i,n] = ...; A[i,n] = tanh(Z[i,n]); ...``): the
    #: derivatives by the named pieces between the expression and the variable, the
    #: last first (backpropagation, notes 003_*, X.21-X.23); rule "chain rule".
    chain: tuple[Step, ...] = ()

    def __len__(self) -> int:
        return len(self.steps)

    @overload
    def __getitem__(self, k: int) -> Step: ...

    @overload
    def __getitem__(self, k: slice) -> tuple[Step, ...]: ...

    def __getitem__(self, k: int | slice) -> Step | tuple[Step, ...]:
        return self.steps[k]

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def __str__(self) -> str:
        lines = ["chain rule through the definitions:"] if self.chain else []
        lines += [f"   {c.detail}" for c in self.chain]
        for n, step in enumerate(self.steps, 1):
            head = f"{n}. {step.rule}" + (f": {step.detail}" if step.detail else "")
            lines.append(head)
            lines.append(f"   {step.text}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Derivation({len(self.steps)} steps, wrt={self.wrt!r})"

    def to_latex(self) -> str:
        r"""An ``align*`` block: one line per step, the rule as a ``\text`` tag."""
        name = self.wrt.split("[")[0]
        recorded = self.result.derivative_of
        axes = recorded.axes if recorded is not None else \
            self.result.free[: len(self.result.free) - len(self.steps[0].expr.free)]
        var = latex_name(name) + (f"_{{{latex_indices(axes)}}}" if axes else "")
        lines = [r"\begin{align*}"]
        for n, step in enumerate(self.steps):
            if n == 0:
                left = "f"
            elif n == 1:
                left = rf"\frac{{\partial f}}{{\partial {var}}}"
            else:
                left = ""
            note = step.rule.replace("_", r"\_")
            lines.append(rf"{left} &= {step.to_latex()} && \text{{{note}}} \\")
        lines[-1] = lines[-1].removesuffix(r" \\")
        lines.append(r"\end{align*}")
        return "\n".join(lines)

    def _repr_latex_(self) -> str:
        return "$$" + self.to_latex() + "$$"

    def _repr_markdown_(self) -> str:
        rows = [f"{n}. **{s.rule}**" + (f" ({s.detail})" if s.detail else "")
                + f"\n\n   $$ {s.to_latex()} $$" for n, s in enumerate(self.steps, 1)]
        return "\n\n".join(rows)


@guard_recursion
def derive_steps(expr: Expr | str, wrt: str, shapes: Mapping[str, object] | None = None, *,
                 layout: str = DENOMINATOR, assume: Mapping[str, str] | None = None
                 ) -> Derivation:
    """The derivative of ``expr`` by ``wrt`` with the steps that lead to it.

    The last index-notation step is exactly ``diff(expr, wrt, shapes, layout=layout,
    assume=assume)``; by a structured variable (``assume``, docs/structured.md) the
    "differentiate" step names the projection onto its space;
    a final ``"matrix form"`` step (in ``layout``) is added where a matrix form exists.
    Every step shows its free indices in ``layout``'s order.

    >>> import einderiv
    >>> steps = einderiv.derive_steps("(X[a,b]*theta[b] - Y[a])*(X[a,c]*theta[c] - Y[a])/n",
    ...                               "theta")
    >>> [s.rule for s in steps]  # doctest: +NORMALIZE_WHITESPACE
    ['index form', 'differentiate', 'flatten products', 'contract deltas',
     'rename dummies', 'collect like terms', 'matrix form']
    >>> print(steps[3].expr)
    X[a,d]*(X[a,b]*theta[b] - Y[a])/n + X[c,d]*(X[c,e]*theta[e] - Y[c])/n
    >>> print(steps[5].expr)
    2*X[a,d]*(X[a,b]*theta[b] - Y[a])/n
    >>> print(steps[-1].matrix)
    2/n X^T (X theta - Y)
    >>> print(einderiv.derive_steps("A[i,j]*x[j]", "x", layout="numerator")[-1].matrix)
    A
    >>> sym = einderiv.derive_steps("x[i]*S[i,j]*x[j]", "S", assume={"S": "symmetric"})
    >>> print(sym[1].detail.split("; ")[-1], "|", sym[-1].matrix)
    projected onto symmetric matrices | x x^T
    """
    layout = check_layout(layout)
    shape_map = normalize_shapes(shapes)
    with recording() as read_with:
        e, ranks = parse_with_ranks(expr, shape_map, assume)
    if not isinstance(e, Expr):
        raise EinderivError(f"expected an expression or its text, got {type(expr).__name__}")
    log: list[str] = []
    with recording() as collected_with:
        raw, result = differentiate(e, wrt, shape_map, log, ranks, layout, assume)
    raw = fold(raw)  # through definitions: the steps read the names as tensors
    order = result.free
    hints = outer_origins(raw)
    hints.update(outer_origins(result))
    program = e.definitions.without_written() if isinstance(e.definitions, Program) else None
    result = with_program(result, program)  # as diff returns it

    def shown(x: Expr) -> Expr:
        return with_program(with_order(prettify(x), order, hints), program)

    steps = [Step("index form", "repeated indices are summed" + _identities(read_with), e),
             Step("differentiate", "; ".join(log) or "no term depends on the variable",
                  shown(raw))]
    current = raw
    *stages, last = PIPELINE
    for stage in stages:
        current = stage.apply(current)
        # Dummy names are this stage's point: shown as renamed, not prettified apart.
        renaming = stage.apply is rename_dummies
        display = with_program(with_order(current, order, hints), program) if renaming \
            else shown(current)
        if renaming and not _repeated_terms(display):
            continue  # renaming shows nothing new unless it makes terms read alike
        if str(display) != str(steps[-1].expr):
            steps.append(Step(stage.name, stage.detail, display))
    # the last pass is simplify(), which diff() already ran: its result is `result`
    steps.append(Step(last.name,
                      _collect_detail(steps[-1].expr, result) + _identities(collected_with),
                      result))
    matrix = _matrix_form(result, len(order) - len(e.free), layout)
    if matrix is not None:
        steps.append(Step("matrix form", f"{layout} layout", result, matrix))
    chain = tuple(Step("chain rule", f"d f / d {d.name} = {names_text(g)}" + (
        f"   (through {through.lhs()} = {through.written})" if through else ""), g)
        for d, through, g in chain_steps(e, wrt, shape_map))
    return Derivation(tuple(steps), wrt, result, chain)


# ------------------------------------------------------------------------- details


def _repeated_terms(e: Expr) -> bool:
    texts = [str(t) for t in e.terms] if isinstance(e, Sum) else []
    return len(set(texts)) < len(texts)


def _identities(names: list[str]) -> str:
    """The identities of :mod:`einderiv.symbolic.identities` that fired, for a step's detail."""
    if not names:
        return ""
    return "; identities: " + "; ".join(f"{IDENTITIES[n].statement} [{n}]" for n in names)


def _collect_detail(before: Expr, after: Expr) -> str:
    n_before = len(before.terms) if isinstance(before, Sum) else 1
    n_after = len(after.terms) if isinstance(after, Sum) else 1
    if n_after < n_before:
        return f"{n_before} terms -> {n_after}: terms equal up to dummy names added"
    return "numbers folded and the result put in canonical form"


def _matrix_form(result: Expr, wrt_rank: int, layout: str) -> MatrixExpr | None:
    try:
        return result.to_matrix(wrt_rank=wrt_rank, layout=layout)
    except EinderivError:
        return None


