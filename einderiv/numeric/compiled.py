"""Compiled evaluation: plan once, evaluate many times.

:func:`compile_expr` runs a simplified expression through these stages, one module each
(this module uses the others; none of them imports it):

* :mod:`einderiv.numeric.lowering` turns it into a straight-line program
  (:mod:`einderiv.numeric.program`: one table of step kinds). **Common
  subexpressions** are computed once: nodes equal up to the names of their summed
  indices and the order of their free axes (the residual ``X theta - Y`` in both
  terms) share one slot; stable forms replace ``log(sum exp)``, softmax factors and
  ``inv(M) g``.
* :mod:`einderiv.numeric.planning`, per input shape signature, propagates shapes
  through the program and checks the result and every intermediate against
  ``memory_limit`` (default: half the machine's RAM), so a 8 TB Hessian raises
  :class:`~einderiv.errors.LimitError` instead of swapping. Products with a sum factor
  are multiplied out where opt_einsum counts that cheaper (``2 (U (V^T V) - M V)``;
  :mod:`einderiv.numeric.rewrites`).
* :mod:`einderiv.numeric.contraction` plans **each product**: BLAS for two operands
  (:mod:`einderiv.numeric.direct_products`), one syrk for a product whose factors pair
  up into two halves (:mod:`einderiv.numeric.gram`: ``X^T diag(w) X``, a two-layer
  network's Gauss-Newton block), otherwise ``opt_einsum.contract_expression``
  (exhaustive search for small terms, dynamic programming for chains such as
  ``x^T A1 ... A16 x``, one factor at a time beyond 40 factors;
  :mod:`einderiv.numeric.paths`).
* :mod:`einderiv.numeric.execution` binds each step to a closure. **Kronecker deltas**
  never become dense identities on numpy: a delta with both indices free is applied by
  computing the term with the two indices merged and writing it into a strided
  diagonal view; a ones-marker becomes a broadcast (:mod:`einderiv.numeric.kernels`).
* :mod:`einderiv.numeric.straightline` writes a numpy plan's closures out as one generated
  function, the common steps as the expressions they stand for (``a1 @ a0``), and
  gives each compiled expression an entry that finds the plan for the arrays' shapes
  with one look-up: a call costs about a microsecond more than the arithmetic.

Inputs: every variable of the expression must be given; names it does not use are
ignored (except that one may give the size of an axis; a name close to a missing
one is reported as misspelt). The result's dtype is numpy's promotion of the arrays,
Python numbers weak (NEP 50: float32 arrays and ``n=100`` give float32); integer and
boolean arrays are promoted to that floating type (float64 where all are integers;
:mod:`einderiv.numeric.dtypes`); complex arrays are supported (functions marked
real-only in :mod:`einderiv.core.functions` refuse them); NaN and inf pass through as
in numpy; inputs are never modified and the result never aliases an input.

Backends: ``"auto"`` (default: each call's arrays decide, :mod:`einderiv.numeric.inputs`),
``"numpy"`` and ``"dask"`` (dask arrays in, a lazy dask array out;
``.compute()`` equals numpy). Element-wise functions go through numpy ufuncs, which
dask arrays implement; nothing calls ``np.asarray`` on a dask input. ``"jax"`` and
``"torch"`` run the plan exported as that library's code (:mod:`einderiv.numeric.codegen`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, overload

import numpy as np

from ..core.ir import Expr, iter_tensors
from ..core.structures import check_values, structures_in
from ..errors import EinderivError, EvaluationError
from .codegen import ExportedExpr
from .dtypes import promote_foreign, promote_numpy
from .inputs import (check_flag, expressions, infer_backend, missing_error, ordered_variables,
                     wrong_backend)
from .lowering import lower, lower_many
from .planning import Plan, PlanInfo, default_memory_limit, known_shapes, make_plan
from .straightline import entry

__all__ = ["compile_expr", "CompiledExpr", "PlanInfo", "BACKENDS"]


_FLOAT64 = np.dtype(np.float64)


#: Supported backends and what they need.
BACKENDS: dict[str, str] = {
    "auto": "the backend of the arrays of each call: numpy, dask, jax or torch (default)",
    "numpy": "numpy arrays in and out",
    "dask": "dask arrays in, a lazy dask array out (requires dask)",
    "jax": "jax arrays in and out: the plan exported as JAX code, run under jax.jit "
           "(requires jax)",
    "torch": "torch tensors in and out: the plan exported as torch code (requires torch)",
}


def check_backend(backend: str) -> None:
    """:class:`~einderiv.errors.EinderivError` naming the valid backends where
    ``backend`` is not a key of :data:`BACKENDS`."""
    if backend not in BACKENDS:
        valid = ", ".join(f"{k!r} ({v})" for k, v in BACKENDS.items())
        raise EinderivError(f"unknown backend {backend!r}; valid backends: {valid}")


class CompiledExpr:
    """A planned expression; call it with the arrays as keyword arguments.

    Plans (contraction orders, shapes, memory checks) are cached per input shape
    signature, so repeated calls with same-shaped arrays only run the arithmetic.
    :meth:`plan_info` tells what a plan costs; :meth:`plan_for` returns the plan
    itself (for inspection: each step's shape, closure and releases), and
    :attr:`straight_lines` counts the plans that run as one generated function.
    """

    def __init__(self, expr: Expr | tuple[Expr, ...], backend: str = "auto",
                 memory_limit: int | None = None, optimize: str = "auto",
                 multiply_out: bool = True):
        check_backend(backend)
        #: the expression, or a tuple of them (a call then returns a tuple of results)
        self.expr = expr
        exprs = expr if isinstance(expr, tuple) else (expr,)
        #: ``backend="auto"``: plans on numpy here, other libraries' arrays go to
        #: a compiled expression of their backend (:meth:`for_backend`)
        self.auto = backend == "auto"
        self.backend = "numpy" if self.auto else backend
        self._others: dict[str, CompiledExpr | ExportedExpr] = {}
        self.memory_limit = default_memory_limit() if memory_limit is None else memory_limit
        self.optimize = optimize
        #: products with a sum factor multiplied out where cheaper (compile_expr)
        self.multiply_out = multiply_out
        self.program = lower_many(exprs) if isinstance(expr, tuple) else lower(expr)
        self.variables = ordered_variables(exprs)
        self._ranks = {t.name: len(t.indices) for e in exprs for t in iter_tensors(e)}
        # (name, rank or None) of each input, in the program's order
        self._expected = [(n, self._ranks.get(n)) for n in self.program.inputs]
        self._plans: dict[tuple, Plan] = {}  # per input shape signature
        self._needs_dtype = any(s.makes_constants for s in self.program.steps)
        # per plan on numpy: the steps as one straight-line function (einderiv.numeric.straightline)
        self._runs: dict[tuple, Callable[..., Any]] = {}
        self._call = entry(list(self.program.inputs),
                           [n for n, rank in self._expected if rank == 0], self._runs,
                           self._general) \
            if self.backend == "numpy" else self._general
        # symmetric or diagonal variables: their arrays are checked before each call
        self.structures = {k: v for e in exprs for k, v in structures_in(e).items()}
        if self.structures:
            run, kinds = self._call, self.structures

            def checked(arrays: dict[str, Any]) -> Any:
                check_values(kinds, arrays)
                return run(arrays)

            self._call = checked

    def __repr__(self) -> str:
        backend = "auto" if self.auto else self.backend
        text = tuple(map(str, self.expr)) if isinstance(self.expr, tuple) else str(self.expr)
        return f"CompiledExpr({text!r}, backend={backend!r})"

    def for_backend(self, backend: str) -> CompiledExpr | ExportedExpr:
        """The expression compiled for ``backend`` (made once, then kept): what a call
        with that library's arrays runs where no backend was named."""
        if backend == self.backend:
            return self
        other = self._others.get(backend)
        if other is None:
            other = self._others[backend] = compile_expr(
                self.expr, backend=backend, memory_limit=self.memory_limit,
                optimize=self.optimize, multiply_out=self.multiply_out)
        return other

    def _repr_markdown_(self) -> str:
        """Jupyter: the expression in LaTeX, the backend, the inputs and output axes."""
        exprs = self.expr if isinstance(self.expr, tuple) else (self.expr,)
        free = "; ".join(", ".join(e.free) or "none (a scalar)" for e in exprs)
        what = "compiled expression" if len(exprs) == 1 else f"{len(exprs)} compiled expressions"
        return (f"**{what}** (backend `{self.backend}`; inputs "
                f"{', '.join(f'`{n}`' for n in self.variables) or 'none'}; output axes "
                f"{free})\n\n" + "\n\n".join(f"$$ {e.to_latex()} $$" for e in exprs))

    # -------------------------------------------------------------------- inputs
    def _inputs(self, arrays: Mapping[str, Any]) -> dict[str, Any]:
        try:
            given = {name: arrays[name] for name, _ in self._expected}
        except KeyError:
            raise missing_error(self.variables, self.program.inputs, arrays) from None
        if self.backend != "numpy":
            given = promote_foreign(given)
        elif not all(type(v) is np.ndarray and v.dtype.kind in "fc" for v in given.values()):
            given = promote_numpy(given)  # numbers take the arrays' dtype (NEP 50)
        for name, rank in self._expected:
            value = given[name]
            if rank is not None and len(value.shape) != rank:
                raise EvaluationError(f"{name!r} is used with {rank} indices but was "
                                      f"given shape {tuple(value.shape)}")
        return given

    # ---------------------------------------------------------------- planning
    def _planner(self, arrays: Mapping[str, Any]) -> CompiledExpr:
        """The compiled expression that plans for these arrays: this one, or (no
        backend named) the one of their library, where that library plans here (dask)."""
        library = infer_backend(arrays)
        if library == "numpy" or library == self.backend:
            return self
        if not self.auto:
            raise wrong_backend(arrays, self.backend)
        other = self.for_backend(library)
        if not isinstance(other, CompiledExpr):
            raise EinderivError(f"{library} arrays run the plan exported as {library} code, "
                                "which has no plan to inspect; pass numpy arrays")
        return other

    def plan_info(self, **arrays: Any) -> PlanInfo:
        """Cost of the plan for these arrays (or anything with a ``.shape``)."""
        planner = self._planner(arrays)
        return planner._plan(planner._inputs(arrays)).info

    def plan_for(self, **arrays: Any) -> Plan:
        """The plan for arrays of these shapes (or anything with a ``.shape``),
        planned now if it is new: a :class:`~einderiv.numeric.planning.Plan` with each
        step's shape (``shapes``, steps as in ``program.steps``), closure (``bound``),
        the slots let go of after each step (``release``, None: none) and the
        straight-line function (``run``, None where the plan runs as a loop). For
        inspection and tests; calling the expression needs none of it."""
        planner = self._planner(arrays)
        return planner._plan(planner._inputs(arrays))

    @property
    def straight_lines(self) -> int:
        """How many of the plans made so far run as one generated straight-line
        function (one per input shape signature on numpy, none on dask or for a
        program of more than :data:`einderiv.numeric.straightline.MAX_STEPS` steps)."""
        return len(self._runs)

    def _key(self, inputs: Mapping[str, Any]) -> tuple:
        """The plan cache key: the inputs' shapes, in the program's input order."""
        return tuple([tuple(inputs[n].shape) for n in self.program.inputs])

    def _plan(self, inputs: Mapping[str, Any]) -> Plan:
        key = self._key(inputs)
        plan = self._plans.get(key)
        if plan is None:
            plan = make_plan(self.expr, self.program, inputs, optimize=self.optimize,
                             backend=self.backend, memory_limit=self.memory_limit,
                             needs_dtype=self._needs_dtype, multiply_out=self.multiply_out)
            if plan.run is not None:
                self._runs[key] = plan.run
            self._plans[key] = plan
        return plan

    # ------------------------------------------------------------------- running
    def __call__(self, **arrays: Any) -> Any:
        return self._call(arrays)

    def _general(self, arrays: dict[str, Any]) -> Any:
        """A call the straight-line entry does not take: inputs to convert, a new
        shape signature, the dask backend, a program too long to write out, arrays of
        another library."""
        library = infer_backend(arrays)
        if library != "numpy" and library != self.backend:
            if not self.auto:
                raise wrong_backend(arrays, self.backend)
            result: Any = self.for_backend(library)(**arrays)
            return result
        inputs = self._inputs(arrays)
        plan = self._plan(inputs)
        if plan.run is not None:
            return plan.run(*(inputs[n] for n in self.program.inputs))
        # Constants (deltas, ones, zeros) take the inputs' common dtype, as numpy would.
        dtype = np.result_type(*(getattr(v, "dtype", np.float64) for v in inputs.values())) \
            if inputs and self._needs_dtype else _FLOAT64
        values: list[Any] = []
        append = values.append
        release = plan.release
        if release is None:
            for run in plan.bound:
                append(run(values, inputs, dtype))
        else:
            for run, done in zip(plan.bound, release):
                append(run(values, inputs, dtype))
                for slot in done:
                    values[slot] = None
        if not self.program.outputs:
            return self._handed_back(values[self.program.output], inputs)
        results: list[Any] = []
        for j, slot in enumerate(self.program.outputs):
            result = self._handed_back(values[slot], inputs)
            if slot in self.program.outputs[:j] and hasattr(result, "copy"):
                result = result.copy()  # one value for two results: each its own array
            results.append(result)
        return tuple(results)

    def _handed_back(self, result: Any, inputs: Mapping[str, Any]) -> Any:
        if self.backend == "dask" and not hasattr(result, "dask"):  # a constant (zeros)
            import dask.array as da
            return da.from_array(np.array(result))  # lazy out, as promised
        if self.backend == "numpy":
            if type(result) is not np.ndarray:
                result = np.asarray(result)
            # An array that owns its memory (base None) aliases no input unless it is one.
            if (result.base is not None or any(result is v for v in inputs.values())) and \
                    any(np.may_share_memory(result, v) for v in inputs.values()
                        if isinstance(v, np.ndarray)):
                result = result.copy()  # never hand back (a view of) an input
        return result

    def flops(self, **arrays: Any) -> int:
        """opt_einsum's FLOP estimate for evaluating with arrays of these shapes."""
        return self.plan_info(**arrays).flops


def _compiled(expr: Expr | tuple[Expr, ...], shapes: Mapping[str, Any] | None, backend: str,
              memory_limit: int | None, optimize: str, multiply_out: bool) -> CompiledExpr:
    compiled = CompiledExpr(expr, backend, memory_limit, optimize, multiply_out)
    known = known_shapes(expr, compiled.program, shapes)
    if known is not None:
        compiled._plan(known)
    return compiled


def _exported(expr: Expr | tuple[Expr, ...], shapes: Mapping[str, Any] | None, backend: str,
              memory_limit: int | None, optimize: str, multiply_out: bool) -> ExportedExpr:
    return ExportedExpr(expr, backend, shapes, multiply_out)


#: How each backend compiles: the plan run here, or exported as its library's code.
COMPILERS: dict[str, Callable[..., CompiledExpr | ExportedExpr]] = {
    "auto": _compiled,
    "numpy": _compiled,
    "dask": _compiled,
    "jax": _exported,
    "torch": _exported,
}


@overload
def compile_expr(expr: Expr | Sequence[Expr], shapes: Mapping[str, Any] | None = None,
                 backend: Literal["auto", "numpy", "dask"] = "auto", *,
                 memory_limit: int | None = None, optimize: str = "auto",
                 multiply_out: bool = True) -> CompiledExpr: ...
@overload
def compile_expr(expr: Expr | Sequence[Expr], shapes: Mapping[str, Any] | None = None, *,
                 backend: Literal["jax", "torch"],
                 memory_limit: int | None = None, optimize: str = "auto",
                 multiply_out: bool = True) -> ExportedExpr: ...
@overload
def compile_expr(expr: Expr | Sequence[Expr], shapes: Mapping[str, Any] | None = None,
                 backend: str = "auto", *, memory_limit: int | None = None,
                 optimize: str = "auto", multiply_out: bool = True) -> CompiledExpr | ExportedExpr: ...


def compile_expr(expr: Expr | Sequence[Expr], shapes: Mapping[str, Any] | None = None,
                 backend: str = "auto", *, memory_limit: int | None = None,
                 optimize: str = "auto", multiply_out: bool = True) -> CompiledExpr | ExportedExpr:
    """Plan the evaluation of ``expr`` once; return a callable ``f(**arrays)``.

    ``expr`` may be a list or tuple of expressions (the gradients of one loss by
    several variables, ``einderiv.diff(loss, ["W1", "b1"])``): one plan computes them
    all, each common subexpression once, and a call returns a tuple of results.

    ``backend`` is a key of :data:`BACKENDS`. The default, ``"auto"``, follows the
    arrays of each call, as opt_einsum's ``backend="auto"`` does: numpy arrays (and
    Python numbers, lists) run the plan here, dask arrays give a lazy dask array,
    jax arrays and torch tensors run the plan exported as their library's code;
    arrays of two of these libraries in one call are an
    :class:`~einderiv.errors.EvaluationError` naming them (numpy arrays go with any).
    A named backend refuses arrays of another library. The result's dtype is
    numpy's promotion of the arrays, Python numbers taking the arrays' dtype
    (float32 in, float32 out: :mod:`einderiv.numeric.dtypes`). ``memory_limit``
    (bytes, default half the RAM) bounds the result and every intermediate;
    ``optimize`` is ``"auto"`` or an opt_einsum path strategy. ``shapes`` (name ->
    tuple of ints) plans eagerly, so a too-large result is refused at compile time.
    ``"jax"`` and ``"torch"`` return an :class:`einderiv.numeric.codegen.ExportedExpr`:
    the plan exported as that library's code (``Expr.to_python``), jitted on JAX;
    ``memory_limit`` and ``optimize`` do not apply.

    ``multiply_out`` (default True): a product with a sum factor, such as the low-rank
    fit's gradient ``-2 (M - U V^T) V``, is computed multiplied out,
    ``2 (U (V^T V) - M V)``, where opt_einsum's FLOP counts say that saves 30% or
    more (half the FLOPs and no m x n residual there). Near an exact fit that costs
    accuracy: both forms' error relative to the gradient grows as
    ``eps |M| / |M - U V^T|``, multiplied out 10-30x more (docs/codegen.md). False
    keeps every product as derived.

    >>> import numpy as np, einderiv
    >>> g = einderiv.diff("(X[a,b]*theta[b] - Y[a])*(X[a,c]*theta[c] - Y[a])/n", "theta")
    >>> f = g.compile()
    >>> X, th, Y = np.ones((4, 3)), np.ones(3), np.zeros(4)
    >>> f(X=X, theta=th, Y=Y, n=4.0)
    array([6., 6., 6.])
    >>> f(X=X.astype(np.float32), theta=th.astype(np.float32), Y=Y.astype(np.float32), n=4)
    array([6., 6., 6.], dtype=float32)
    >>> gX, gtheta = einderiv.diff("(X[a,b]*theta[b] - Y[a])*(X[a,c]*theta[c] - Y[a])",
    ...                            ["X", "theta"])
    >>> both = einderiv.compile_expr([gX, gtheta])
    >>> [r.shape for r in both(X=X, theta=th, Y=Y)]
    [(4, 3), (3,)]
    """
    check_backend(backend)
    check_flag("multiply_out", multiply_out)
    return COMPILERS[backend](expressions(expr), shapes, backend, memory_limit, optimize,
                              multiply_out)

