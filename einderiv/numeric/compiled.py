"""Compiled evaluation: plan once, evaluate many times.

:func:`compile_expr` runs a simplified expression through five stages, one module each
(this module uses the others; none of them imports it):

* :mod:`einderiv.numeric.lowering` turns it into a straight-line program. **Common
  subexpressions** are computed once: nodes equal up to the names of their summed
  indices and the order of their free axes (the residual ``X theta - Y`` in both
  terms) share one slot; stable forms replace ``log(sum exp)``, softmax factors and
  ``inv(M) g``.
* Here, per input shape signature, shapes are propagated through the program and the
  result and every intermediate are checked against ``memory_limit`` (default: half
  the machine's RAM), so a 8 TB Hessian raises :class:`~einderiv.errors.LimitError`
  instead of swapping. Products with a sum factor are multiplied out where
  opt_einsum counts that cheaper (``2 (U (V^T V) - M V)``).
* :mod:`einderiv.numeric.contraction` plans **each product**: BLAS for two operands, one syrk
  for a product whose factors pair up into two halves (:mod:`einderiv.numeric.gram`:
  ``X^T diag(w) X``, a two-layer network's Gauss-Newton block), otherwise
  ``opt_einsum.contract_expression`` (exhaustive search for small terms, dynamic
  programming for chains such as ``x^T A1 ... A16 x``, one factor at a time beyond 40
  factors).
* :mod:`einderiv.numeric.execution` binds each step to a closure. **Kronecker deltas** never
  become dense identities on numpy: a delta with both indices free is applied by
  computing the term with the two indices merged and writing it into a strided
  diagonal view; a ones-marker becomes a broadcast.
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

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.ir import Expr, Index, iter_tensors
from ..core.shapes import check_shapes, normalize_shapes
from ..errors import EinderivError, EvaluationError, LimitError, ShapeError
from .contraction import plan_einsum
from .execution import (
    MAKES_CONSTANTS,
    absorbed_diagonals,
    bind_add,
    bind_in_place,
    bind_step,
    check_square,
    count_readers,
    in_place_steps,
    releases,
    skipped,
    sum_of_products,
)
from .lowering import Lowering, SizeRef
from .straightline import entry, straight_line

__all__ = ["compile_expr", "CompiledExpr", "PlanInfo", "BACKENDS"]


_FLOAT64 = np.dtype(np.float64)

#: Plans whose largest array takes at least this many bytes free each intermediate
#: after its last use (see :func:`einderiv.numeric.execution.releases`).
RELEASE_MIN_BYTES = 1 << 17

#: numpy's limit on the number of axes of an array.
MAX_RANK = 64


#: Supported backends and what they need.
BACKENDS: dict[str, str] = {
    "numpy": "numpy arrays in and out (default)",
    "dask": "dask arrays in, a lazy dask array out (requires dask)",
    "jax": "jax arrays in and out: the plan exported as JAX code, run under jax.jit "
           "(requires jax)",
    "torch": "torch tensors in and out: the plan exported as torch code (requires torch)",
}
#: Backends run by the plan exported as code of their library (einderiv.numeric.codegen).
EXPORTED = frozenset({"jax", "torch"})


def _default_memory_limit() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 * 2**30


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"  # pragma: no cover


@dataclass(frozen=True)
class PlanInfo:
    """What a plan for one set of input shapes costs.

    ``flops`` is opt_einsum's estimate summed over the contractions plus one
    operation per element for element-wise steps (and per term after the first for
    sums), counted for the plan as it runs: a product multiplied out
    (``_distributions``) at its new cost, a term on a diagonal at the diagonal's size;
    ``largest_bytes`` is the largest array the plan creates, ``result_bytes`` the
    result's size."""

    flops: int
    largest_bytes: int
    result_bytes: int
    result_shape: tuple[int, ...]
    contractions: int


class CompiledExpr:
    """A planned expression; call it with the arrays as keyword arguments.

    Plans (contraction orders, shapes, memory checks) are cached per input shape
    signature, so repeated calls with same-shaped arrays only run the arithmetic.
    """

    def __init__(self, expr: Expr, backend: str, memory_limit: int | None,
                 optimize: str = "auto"):
        if backend not in BACKENDS:
            valid = ", ".join(f"{k!r} ({v})" for k, v in BACKENDS.items())
            raise EinderivError(f"unknown backend {backend!r}; valid backends: {valid}")
        self.expr = expr
        self.backend = backend
        self.memory_limit = _default_memory_limit() if memory_limit is None else memory_limit
        self.optimize = optimize
        lowering = Lowering()
        slot, labels = lowering.value(expr)
        lowering.program.output = lowering.align(slot, labels, expr.free)
        lowering.program.output_labels = expr.free
        self.program = lowering.program
        self.variables = sorted({t.name for t in iter_tensors(expr)})
        self._ranks = {t.name: len(t.indices) for t in iter_tensors(expr)}
        # (name, rank or None) of each input, in the program's order
        self._expected = [(n, self._ranks.get(n)) for n in self.program.inputs]
        self._plans: dict[tuple, tuple[list, PlanInfo]] = {}
        self._bound: dict[tuple, list[Callable[..., Any]]] = {}  # per plan: one closure a step
        self._release: dict[tuple, list[tuple[int, ...]] | None] = {}  # per plan and step
        self._shapes: dict[tuple, list[tuple[int, ...]]] = {}  # per plan: each step's shape
        self._needs_dtype = any(s.kind in MAKES_CONSTANTS for s in self.program.steps)
        # per plan on numpy: the steps as one straight-line function (einderiv.numeric.straightline)
        self._runs: dict[tuple, Callable[..., Any]] = {}
        self._call = entry(list(self.program.inputs),
                           [n for n, rank in self._expected if rank == 0], self._runs,
                           self._general) \
            if backend == "numpy" else self._general

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
        return self._plan(self._inputs(arrays))[1]

    def _check_sizes(self, inputs: Mapping[str, Any]) -> None:
        """The arrays keep the rule parse's shapes follow (docs/language.md): an index
        name has one size everywhere it is used (inv/det/logdet arguments apart), the
        two indices of a delta one size. Checked once per new set of shapes."""
        shapes = {name: tuple(int(n) for n in a.shape) for name, a in inputs.items()
                  if all(isinstance(n, (int, np.integer)) for n in a.shape)}
        try:
            check_shapes(self.expr, shapes)
        except ShapeError as exc:
            raise EvaluationError(f"{exc}; check the shapes of the arrays") from None

    def _key(self, inputs: Mapping[str, Any]) -> tuple:
        """The plan cache key: the inputs' shapes, in the program's input order."""
        return tuple([tuple(inputs[n].shape) for n in self.program.inputs])

    def _plan(self, inputs: Mapping[str, Any]) -> tuple[list, PlanInfo]:
        key = self._key(inputs)
        cached = self._plans.get(key)
        if cached is not None:
            return cached
        self._check_sizes(inputs)
        shapes: list[tuple[int, ...]] = []
        exprs: list[Any] = []
        flops = 0
        largest = 0
        itemsize = 16 if any(np.dtype(getattr(v, "dtype", float)).kind == "c"
                             for v in inputs.values()) else 8

        def size(ref: SizeRef) -> int:
            if ref[0] == "input":
                return int(inputs[ref[1]].shape[ref[2]])
            if ref[0] == "slot":
                return shapes[ref[1]][ref[2]]
            if ref[0] == "unknown":
                raise EvaluationError(
                    f"cannot tell the size of index {ref[1]!r}: it occurs on no tensor given "
                    "(the tensor that carried it cancelled or was differentiated away)")
            return int(ref[1])

        costs: list[int] = []  # FLOPs per step, for choosing between plans
        for step in self.program.steps:
            kind, a = step.kind, step.args
            planned = None
            before = flops
            if kind == "input":
                shape = tuple(int(d) for d in inputs[a[0]].shape)
            elif kind == "einsum":
                shape, planned, cost, widest = plan_einsum(a, shapes, self.optimize, self.backend)
                flops += cost
                largest = max(largest, widest * itemsize)
            elif kind in ("func", "pow", "powslot"):
                shape = shapes[a[1] if kind == "func" else a[0]]
                flops += math.prod(shape)
            elif kind == "transpose":
                shape = tuple(shapes[a[0]][k] for k in a[1])
            elif kind == "logsumexp":
                shape = tuple(n for k, n in enumerate(shapes[a[0]]) if k not in a[1])
                flops += 3 * math.prod(shapes[a[0]])
            elif kind == "softmax":
                shape = shapes[a[0]]
                flops += 4 * math.prod(shape)
            elif kind == "scale":
                shape = shapes[a[0]]
            elif kind == "solve":
                check_square(shapes[a[0]], "inv")
                shape = shapes[a[1]]
                if shape[0] != shapes[a[0]][0]:
                    raise EvaluationError(
                        f"inv(...) is {shapes[a[0]][0]} x {shapes[a[0]][0]} but the factor it "
                        f"multiplies has size {shape[0]} along the shared index; check the "
                        "shapes of the arrays")
                flops += 2 * shapes[a[0]][0] ** 3 // 3 + 2 * shapes[a[0]][0] * math.prod(shape)
            elif kind == "inv":
                shape = shapes[a[0]]
                check_square(shape, "inv")
                flops += 2 * shape[0] ** 3
            elif kind in ("det", "logdet"):
                check_square(shapes[a[0]], kind)
                shape = ()
                flops += shapes[a[0]][0] ** 3
            elif kind in ("ones", "eye"):
                n = size(a[0])
                shape = (n,) if kind == "ones" else (n, n)
            elif kind == "const":
                shape = ()
            elif kind == "zeros":
                shape = tuple(size(r) for r in a[0])
            elif kind == "add":
                sizes: dict[Index, int] = {}
                for slot, labels, _ in a[0]:
                    for lab, n in zip(labels, shapes[slot]):
                        if sizes.setdefault(lab, n) != n:
                            raise EvaluationError(
                                f"index {lab!r} has size {sizes[lab]} in one term of a sum "
                                f"but size {n} in another; check the shapes of the arrays")
                shape = tuple(sizes[i] for i in a[1])
                flops += math.prod(shape) * (len(a[0]) - 1)
            elif kind == "embed":
                inner, rest_labels, out, pairs = a
                sizes = dict(zip(rest_labels, shapes[inner]))
                for keep, gone in pairs:
                    sizes[gone] = sizes[keep]
                shape = tuple(sizes[i] for i in out)
            elif kind == "broadcast":
                inner, rest_labels, out, extra = a
                sizes = dict(zip(rest_labels, shapes[inner]))
                for lab, ref in extra:
                    sizes[lab] = size(ref)
                shape = tuple(sizes[i] for i in out)
            else:  # pragma: no cover
                raise AssertionError(kind)
            shapes.append(shape)
            exprs.append(planned)
            costs.append(int(flops - before))
            largest = max(largest, math.prod(shape) * itemsize)
        result_shape = shapes[self.program.output]
        result_bytes = math.prod(result_shape) * itemsize
        deepest = max((len(sh) for sh in shapes), default=0)
        if deepest > MAX_RANK:
            raise LimitError(f"evaluating needs an array with {deepest} axes; numpy supports "
                             f"at most {MAX_RANK}")
        if largest > self.memory_limit:
            what = "the result" if largest == result_bytes else "an intermediate"
            raise LimitError(
                f"evaluating would need {format_bytes(largest)} for {what} (result shape "
                f"{result_shape}, {format_bytes(result_bytes)}), over the memory limit of "
                f"{format_bytes(self.memory_limit)}; use einderiv.hvp/jvp to apply the "
                "derivative without forming it, or raise memory_limit")
        self._shapes[key] = shapes
        steps = self.program.steps
        absorbed = absorbed_diagonals(self.program) if self.backend == "numpy" else {}
        bound = [bind_step(step, plan, shapes, k, self.backend)
                 for k, (step, plan) in enumerate(zip(steps, exprs))]
        taken_over: dict[int, list[int]] = {}
        for add_at, (embed_at, owned) in absorbed.items():
            bound[embed_at] = skipped
            bound[add_at] = bind_add(steps[add_at].args, shapes, add_at,
                                     diagonal=(embed_at, steps[embed_at].args, owned))
            taken_over[add_at] = [embed_at]
            # the term is added onto a diagonal, not over the whole sum
            flops += math.prod(shapes[steps[embed_at].args[0]]) - math.prod(shapes[add_at])
        if self.backend == "numpy":
            rewritten = set(absorbed).union(*((e, o) for e, o in absorbed.values()))
            for at, (run, dead, saved) in self._distributions(shapes, costs,
                                                              set(absorbed)).items():
                flops -= saved
                bound[at] = run
                taken_over[at] = dead
                rewritten.update((at, *dead))
                for slot in dead:
                    bound[slot] = skipped
            for at, into in in_place_steps(self.program, shapes, rewritten).items():
                bound[at] = bind_in_place(steps[at], shapes, at, into)
        self._bound[key] = bound
        # Letting go of each array after its last use costs a little per step: worth it
        # where arrays are large enough for their memory to matter.
        self._release[key] = releases(self.program, taken_over) \
            if largest >= RELEASE_MIN_BYTES else None
        if self.backend == "numpy":
            run = straight_line(steps, bound, self._release[key], self.program.inputs,
                                self.program.output, self._needs_dtype)
            if run is not None:
                self._runs[key] = run
        info = PlanInfo(int(flops), int(largest), int(result_bytes), result_shape,
                        sum(1 for s in self.program.steps if s.kind == "einsum"))
        self._plans[key] = (exprs, info)
        return exprs, info

    def _distributions(self, shapes: list, costs: list[int], absorbed: set[int]
                       ) -> dict[int, tuple[Callable[..., Any], list[int], int]]:
        """Products with a sum factor that are cheaper multiplied out, for these shapes:
        ``V[a,f] (M[e,a] - U[e,b] V[a,b])`` never forms the m x n residual when
        ``M V - U (V^T V)`` costs less (the low-rank fit; 001_*-style algebra, chosen
        by opt_einsum's FLOP counts). Maps the product's slot to its new closure, the
        steps it makes unnecessary (the sum and the terms' own products) and the FLOPs
        that saves."""
        steps = self.program.steps
        readers = count_readers(self.program)
        chosen: dict[int, tuple[Callable[..., Any], list[int], int]] = {}
        taken: set[int] = set()
        for k, step in enumerate(steps):
            if step.kind != "einsum":
                continue
            coeff, operands, out, _ = step.args
            for j, (slot, _) in enumerate(operands):
                add = steps[slot]
                if add.kind != "add" or readers[slot] != 1 or slot in absorbed or slot in taken:
                    continue
                plan = self._distributed(k, j, shapes, readers)
                if plan is None:
                    continue
                terms, dead = plan
                if any(d in taken for d in dead):
                    continue
                planned = [plan_einsum((1.0, ops, out, ()), shapes, self.optimize, self.backend)
                           for _, ops in terms]
                new_cost = sum(p[2] for p in planned) + math.prod(shapes[k]) * (len(terms) - 1)
                old_cost = costs[k] + sum(costs[d] for d in dead)
                if new_cost < 0.7 * old_cost:
                    chosen[k] = (sum_of_products([(c, [s for s, _ in ops], p[1])
                                                   for (c, ops), p in zip(terms, planned)]), dead,
                                 old_cost - new_cost)
                    taken.update(dead)
                    taken.add(k)
                break
        return chosen

    def _distributed(self, k: int, j: int, shapes: list, readers: list[int]
                     ) -> tuple[list[tuple[float, tuple]], list[int]] | None:
        """The terms of einsum step ``k`` with its ``j``-th operand (a sum) multiplied
        out: ``(coefficient, operands)`` each, and the steps no longer needed."""
        steps = self.program.steps
        coeff, operands, out, _ = steps[k].args
        sum_slot, sum_labels = operands[j]
        parts, sum_out = steps[sum_slot].args
        others = operands[:j] + operands[j + 1:]
        to_outer = dict(zip(sum_out, sum_labels))  # the sum's labels -> this product's
        terms: list[tuple[float, tuple]] = []
        dead = [sum_slot]
        for t, (slot, labels, sign) in enumerate(parts):
            producer = steps[slot]
            if producer.kind == "embed" or set(labels) != set(sum_out):
                return None  # a diagonal term, or one broadcast along an axis of the sum
            if producer.kind == "einsum" and readers[slot] == 1:
                t_coeff, t_ops, t_out, _ = producer.args
                mapping = {lab: to_outer[part_lab] for lab, part_lab in zip(t_out, labels)}
                own = [(s, tuple(mapping.setdefault(i, f"_d{k}_{t}_{i}") for i in labs))
                       for s, labs in t_ops]
                dead.append(slot)
                term_coeff = coeff * sign * t_coeff
            else:
                own = [(slot, tuple(to_outer[i] for i in labels))]
                term_coeff = coeff * sign
            terms.append((term_coeff, tuple(others) + tuple(own)))
        return terms, dead

    # ------------------------------------------------------------------- running
    def __call__(self, **arrays: Any) -> Any:
        return self._call(arrays)

    def _general(self, arrays: dict[str, Any]) -> Any:
        """A call the straight-line entry does not take: inputs to convert, a new
        shape signature, the dask backend, a program too long to write out."""
        inputs = self._inputs(arrays)
        key = self._key(inputs)
        runners = self._bound.get(key)
        if runners is None:
            self._plan(inputs)
            runners = self._bound[key]
        run = self._runs.get(key)
        if run is not None:
            return run(*(inputs[n] for n in self.program.inputs))
        # Constants (deltas, ones, zeros) take the inputs' common dtype, as numpy would.
        dtype = np.result_type(*(getattr(v, "dtype", np.float64) for v in inputs.values())) \
            if inputs and self._needs_dtype else _FLOAT64
        values: list[Any] = []
        append = values.append
        release = self._release[key]
        if release is None:
            for run in runners:
                append(run(values, inputs, dtype))
        else:
            for run, done in zip(runners, release):
                append(run(values, inputs, dtype))
                for slot in done:
                    values[slot] = None
        result = values[self.program.output]
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
    if backend in EXPORTED:
        from .codegen import ExportedExpr  # codegen builds on this module
        return ExportedExpr(expr, backend, shapes)  # type: ignore[return-value]
    compiled = CompiledExpr(expr, backend, memory_limit, optimize)
    if shapes:
        shapes = normalize_shapes(shapes)
        check_shapes(expr, shapes)  # ShapeError: the shapes conflict (as parse says)
    if shapes and all(n in shapes for n in compiled.program.inputs):
        known = {n: _ShapeOnly(tuple(shapes[n])) for n in compiled.program.inputs}
        if all(isinstance(d, int) for s in known.values() for d in s.shape):
            compiled._plan(known)
    return compiled


class _ShapeOnly:
    """Stands in for an array when only its shape is known (eager planning)."""

    def __init__(self, shape: tuple[int, ...]):
        self.shape = shape
        self.dtype = np.dtype(float)
