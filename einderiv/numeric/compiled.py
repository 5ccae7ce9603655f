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
ignored (except that one may give the size of an axis). Integer and boolean arrays
are promoted to float64; complex arrays are supported (functions marked real-only in
:mod:`einderiv.core.functions` refuse them); NaN and inf pass through as in numpy; inputs
are never modified and the result never aliases an input.

Backends: ``"numpy"`` (default) and ``"dask"`` (dask arrays in, a lazy dask array out;
``.compute()`` equals numpy). Element-wise functions go through numpy ufuncs, which
dask arrays implement; nothing calls ``np.asarray`` on a dask input. ``"jax"`` and
``"torch"`` run the plan exported as that library's code (:mod:`einderiv.numeric.codegen`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..core.ir import Expr, iter_tensors
from ..core.structures import check_values, structures_in
from ..errors import EinderivError, EvaluationError
from .codegen import ExportedExpr
from .lowering import lower
from .planning import Plan, PlanInfo, default_memory_limit, known_shapes, make_plan
from .straightline import entry

__all__ = ["compile_expr", "CompiledExpr", "PlanInfo", "BACKENDS"]


_FLOAT64 = np.dtype(np.float64)


#: Supported backends and what they need.
BACKENDS: dict[str, str] = {
    "numpy": "numpy arrays in and out (default)",
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

    def __init__(self, expr: Expr, backend: str, memory_limit: int | None,
                 optimize: str = "auto"):
        check_backend(backend)
        self.expr = expr
        self.backend = backend
        self.memory_limit = default_memory_limit() if memory_limit is None else memory_limit
        self.optimize = optimize
        self.program = lower(expr)
        self.variables = sorted({t.name for t in iter_tensors(expr)})
        self._ranks = {t.name: len(t.indices) for t in iter_tensors(expr)}
        # (name, rank or None) of each input, in the program's order
        self._expected = [(n, self._ranks.get(n)) for n in self.program.inputs]
        self._plans: dict[tuple, Plan] = {}  # per input shape signature
        self._needs_dtype = any(s.makes_constants for s in self.program.steps)
        # per plan on numpy: the steps as one straight-line function (einderiv.numeric.straightline)
        self._runs: dict[tuple, Callable[..., Any]] = {}
        self._call = entry(list(self.program.inputs),
                           [n for n, rank in self._expected if rank == 0], self._runs,
                           self._general) \
            if backend == "numpy" else self._general
        # symmetric or diagonal variables: their arrays are checked before each call
        self.structures = structures_in(expr)
        if self.structures:
            run, kinds = self._call, self.structures

            def checked(arrays: dict[str, Any]) -> Any:
                check_values(kinds, arrays)
                return run(arrays)

            self._call = checked

    def __repr__(self) -> str:
        return f"CompiledExpr({str(self.expr)!r}, backend={self.backend!r})"

    # -------------------------------------------------------------------- inputs
    def _inputs(self, arrays: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        numpy = self.backend == "numpy"
        try:
            for name, rank in self._expected:
                value = arrays[name]
                if not (numpy and type(value) is np.ndarray and value.dtype.kind in "fc"):
                    value = self._converted(name, value)  # the quick test covers most calls
                if rank is not None and len(value.shape) != rank:
                    raise EvaluationError(f"{name!r} is used with {rank} indices but was "
                                          f"given shape {tuple(value.shape)}")
                out[name] = value
        except KeyError:
            missing = [n for n in self.variables if n not in arrays]
            if missing:
                raise EvaluationError(f"missing value for {', '.join(map(repr, missing))}; "
                                      f"the expression uses {', '.join(self.variables)}"
                                      ) from None
            name = next(n for n in self.program.inputs if n not in arrays)
            raise EvaluationError(
                f"missing value for {name!r}: the expression uses the size of one of its "
                f"axes (size({name}, k), or an axis of the result)") from None
        return out

    def _converted(self, name: str, value: Any) -> Any:
        """An input as evaluation takes it: on numpy, an array of floats (integers and
        booleans promoted); elsewhere anything with a shape."""
        if self.backend != "numpy":
            return value if hasattr(value, "shape") else np.asarray(value, dtype=float)
        try:
            value = np.asarray(value)
        except (ValueError, TypeError) as exc:
            raise EvaluationError(f"{name!r} is not a valid array: {exc}") from None
        if value.dtype.kind in "biu":
            return value.astype(np.float64)
        if value.dtype.kind not in "fc":
            raise EvaluationError(f"{name!r} must be numeric, got dtype {value.dtype}")
        return value

    # ---------------------------------------------------------------- planning
    def plan_info(self, **arrays: Any) -> PlanInfo:
        """Cost of the plan for these arrays (or anything with a ``.shape``)."""
        return self._plan(self._inputs(arrays)).info

    def plan_for(self, **arrays: Any) -> Plan:
        """The plan for arrays of these shapes (or anything with a ``.shape``),
        planned now if it is new: a :class:`~einderiv.numeric.planning.Plan` with each
        step's shape (``shapes``, steps as in ``program.steps``), closure (``bound``),
        the slots let go of after each step (``release``, None: none) and the
        straight-line function (``run``, None where the plan runs as a loop). For
        inspection and tests; calling the expression needs none of it."""
        return self._plan(self._inputs(arrays))

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
                             needs_dtype=self._needs_dtype)
            if plan.run is not None:
                self._runs[key] = plan.run
            self._plans[key] = plan
        return plan

    # ------------------------------------------------------------------- running
    def __call__(self, **arrays: Any) -> Any:
        return self._call(arrays)

    def _general(self, arrays: dict[str, Any]) -> Any:
        """A call the straight-line entry does not take: inputs to convert, a new
        shape signature, the dask backend, a program too long to write out."""
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
        result = values[self.program.output]
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


def _compiled(expr: Expr, shapes: Mapping[str, Any] | None, backend: str,
              memory_limit: int | None, optimize: str) -> CompiledExpr:
    compiled = CompiledExpr(expr, backend, memory_limit, optimize)
    known = known_shapes(expr, compiled.program, shapes)
    if known is not None:
        compiled._plan(known)
    return compiled


def _exported(expr: Expr, shapes: Mapping[str, Any] | None, backend: str,
              memory_limit: int | None, optimize: str) -> ExportedExpr:
    return ExportedExpr(expr, backend, shapes)


#: How each backend compiles: the plan run here, or exported as its library's code.
COMPILERS: dict[str, Callable[..., CompiledExpr | ExportedExpr]] = {
    "numpy": _compiled,
    "dask": _compiled,
    "jax": _exported,
    "torch": _exported,
}


def compile_expr(expr: Expr, shapes: Mapping[str, Any] | None = None, backend: str = "numpy",
                 *, memory_limit: int | None = None, optimize: str = "auto") -> CompiledExpr:
    """Plan the evaluation of ``expr`` once; return a callable ``f(**arrays)``.

    ``backend`` is a key of :data:`BACKENDS`; ``memory_limit`` (bytes, default half
    the RAM) bounds the result and every intermediate; ``optimize`` is ``"auto"`` or an
    opt_einsum path strategy. ``shapes`` (name -> tuple of ints) plans eagerly, so a too-large
    result is refused at compile time. ``"jax"`` and ``"torch"`` return an
    :class:`einderiv.numeric.codegen.ExportedExpr`: the plan exported as that library's code
    (``Expr.to_python``), jitted on JAX; ``memory_limit`` and ``optimize`` do not apply.

    >>> import numpy as np, einderiv
    >>> g = einderiv.diff("(X[a,b]*theta[b] - Y[a])*(X[a,c]*theta[c] - Y[a])/n", "theta")
    >>> f = g.compile()
    >>> X, th, Y = np.ones((4, 3)), np.ones(3), np.zeros(4)
    >>> f(X=X, theta=th, Y=Y, n=4.0)
    array([6., 6., 6.])
    """
    check_backend(backend)
    return COMPILERS[backend](expr, shapes, backend, memory_limit,  # type: ignore[return-value]
                              optimize)
