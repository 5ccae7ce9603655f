"""Planning a program for one set of input shapes.

:func:`plan_shapes` propagates shapes through the program, one step at a time by its
kind's planner in :data:`PLANNERS` (the kind's shape rule and FLOP count from
:mod:`einderiv.numeric.program`; each product planned by
:func:`einderiv.numeric.contraction.plan_einsum`), and checks the result and every
intermediate against the memory limit, so a 8 TB Hessian raises
:class:`~einderiv.errors.LimitError` instead of swapping. :func:`make_plan` then
applies the rewrites of :mod:`einderiv.numeric.rewrites` (products multiplied out where
opt_einsum counts that cheaper; on numpy also diagonals added in place and element-wise
steps in place), binds each step to a closure (:mod:`einderiv.numeric.execution`),
decides the early releases and writes the straight-line function
(:mod:`einderiv.numeric.straightline`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.ir import Expr
from ..core.shapes import check_shapes, normalize_shapes
from ..errors import EvaluationError, LimitError, ShapeError
from .contraction import plan_einsum
from .execution import Bound, bind_add, bind_step, skipped
from .program import KINDS, Add, Einsum, Embed, Program, ShapeContext, Step
from .rewrites import (absorbed_diagonals, bind_distribution, bind_in_place, distributions,
                       in_place_steps, releases)
from .straightline import straight_line

__all__ = ["PlanInfo", "Plan", "Shapes", "ShapeOnly", "PLANNERS", "plan_shapes", "make_plan",
           "known_shapes", "check_sizes", "format_bytes", "default_memory_limit",
           "RELEASE_MIN_BYTES", "MAX_RANK"]

#: Plans whose largest array takes at least this many bytes free each intermediate
#: after its last use (see :func:`einderiv.numeric.rewrites.releases`).
RELEASE_MIN_BYTES = 1 << 17

#: numpy's limit on the number of axes of an array.
MAX_RANK = 64


def default_memory_limit() -> int:
    """Half the machine's RAM (8 GiB where that cannot be told)."""
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
    (:func:`~einderiv.numeric.rewrites.distributions`) at its new cost, a term on a
    diagonal at the diagonal's size; ``largest_bytes`` is the largest array the plan
    creates, ``result_bytes`` the result's size."""

    flops: int
    largest_bytes: int
    result_bytes: int
    result_shape: tuple[int, ...]
    contractions: int


@dataclass
class Shapes:
    """The shapes pass of a plan: each step's shape, planned contraction (None for
    other kinds) and FLOPs, and the totals."""
    shapes: list[tuple[int, ...]]
    contractions: list[Any]
    costs: list[int]
    flops: int
    largest: int
    result_shape: tuple[int, ...]
    result_bytes: int


@dataclass
class Plan:
    """Everything decided for one input shape signature
    (:meth:`einderiv.numeric.compiled.CompiledExpr.plan_for` returns it).

    ``info``: its cost (:class:`PlanInfo`); ``shapes``: each step's shape;
    ``contractions``: each step's planned contraction (None for other kinds);
    ``bound``: each step's closure ``run(values, inputs, dtype)``
    (:data:`einderiv.numeric.execution.skipped` for a step another one does in place);
    ``release``: per step, the slots let go of after it (None: none are);
    ``run``: the straight-line function on numpy (None: the loop over ``bound``)."""
    info: PlanInfo
    shapes: list[tuple[int, ...]]
    contractions: list[Any]
    bound: list[Bound]
    release: list[tuple[int, ...]] | None
    run: Callable[..., Any] | None


class ShapeOnly:
    """Stands in for an array when only its shape is known (eager planning)."""

    def __init__(self, shape: tuple):
        self.shape = shape
        self.dtype = np.dtype(float)


# --------------------------------------------------------------------- planners
# ``planner(step, ctx, optimize, backend)`` -> (shape, planned contraction or None,
# FLOPs, largest intermediate in elements).

Planned = tuple[tuple[int, ...], Any, int, int]


def _plan_by_rule(step: Step, ctx: ShapeContext, optimize: str, backend: str) -> Planned:
    """A step with nothing to plan: its kind's shape rule and FLOP count."""
    shape = step.shape(ctx)
    return shape, None, step.flops(ctx.shapes, shape), 0


def _plan_contraction(step: Einsum, ctx: ShapeContext, optimize: str, backend: str
                      ) -> Planned:
    return plan_einsum(step, ctx.shapes, optimize, backend)


#: Each kind's planner.
PLANNERS: dict[type[Step], Callable[..., Planned]] = {
    **{kind: _plan_by_rule for kind in KINDS.values()},
    Einsum: _plan_contraction,
}


def check_sizes(expr: Expr | tuple[Expr, ...], inputs: Mapping[str, Any]) -> None:
    """The arrays keep the rule parse's shapes follow (docs/language.md): an index
    name has one size everywhere it is used (inv/det/logdet arguments apart), the
    two indices of a delta one size (in each expression of a tuple)."""
    shapes = {name: tuple(int(n) for n in a.shape) for name, a in inputs.items()
              if all(isinstance(n, (int, np.integer)) for n in a.shape)}
    try:
        for e in expr if isinstance(expr, tuple) else (expr,):
            check_shapes(e, shapes)
    except ShapeError as exc:
        raise EvaluationError(f"{exc}; check the shapes of the arrays") from None


def plan_shapes(expr: Expr | tuple[Expr, ...], program: Program, inputs: Mapping[str, Any], *, optimize: str,
                backend: str, memory_limit: int) -> Shapes:
    """Shapes, contractions and FLOPs of ``program`` (lowered from ``expr``) for these
    inputs (anything with a ``.shape``); :class:`~einderiv.errors.EvaluationError`
    where the shapes do not fit, :class:`~einderiv.errors.LimitError` where an array
    would have more than :data:`MAX_RANK` axes or more than ``memory_limit`` bytes."""
    check_sizes(expr, inputs)
    ctx = ShapeContext([], inputs)
    contractions: list[Any] = []
    costs: list[int] = []  # FLOPs per step, for choosing between plans
    flops = largest = 0
    itemsize = 16 if any(np.dtype(getattr(v, "dtype", float)).kind == "c"
                         for v in inputs.values()) else 8
    for step in program.steps:
        shape, planned, cost, widest = PLANNERS[type(step)](step, ctx, optimize, backend)
        flops += cost
        largest = max(largest, widest * itemsize, math.prod(shape) * itemsize)
        ctx.shapes.append(shape)
        contractions.append(planned)
        costs.append(int(cost))
    shapes = ctx.shapes
    result_shape = shapes[program.output]
    result_bytes = math.prod(result_shape) * itemsize
    deepest = max((len(sh) for sh in shapes), default=0)
    if deepest > MAX_RANK:
        raise LimitError(f"evaluating needs an array with {deepest} axes; numpy supports "
                         f"at most {MAX_RANK}")
    if largest > memory_limit:
        what = "the result" if largest == result_bytes else "an intermediate"
        raise LimitError(
            f"evaluating would need {format_bytes(largest)} for {what} (result shape "
            f"{result_shape}, {format_bytes(result_bytes)}), over the memory limit of "
            f"{format_bytes(memory_limit)}; use einderiv.hvp/jvp to apply the "
            "derivative without forming it, or raise memory_limit")
    return Shapes(shapes, contractions, costs, flops, largest, result_shape, result_bytes)


def make_plan(expr: Expr | tuple[Expr, ...], program: Program, inputs: Mapping[str, Any], *, optimize: str,
              backend: str, memory_limit: int, needs_dtype: bool,
              multiply_out: bool = True) -> Plan:
    """The plan of ``program`` for inputs of these shapes (see :func:`plan_shapes`);
    ``multiply_out=False``: every product as derived (no :func:`distributions`)."""
    sized = plan_shapes(expr, program, inputs, optimize=optimize, backend=backend,
                        memory_limit=memory_limit)
    shapes, flops, steps = sized.shapes, sized.flops, program.steps
    numpy = backend == "numpy"
    bound = [bind_step(step, plan, shapes, k, backend)
             for k, (step, plan) in enumerate(zip(steps, sized.contractions))]
    taken_over: dict[int, list[int]] = {}
    absorbed = absorbed_diagonals(program) if numpy else {}
    rewritten: set[int] = set(absorbed)  # steps no other rewrite may touch
    for add_at, (embed_at, owned) in absorbed.items():
        total, embed = steps[add_at], steps[embed_at]
        assert isinstance(total, Add) and isinstance(embed, Embed)
        bound[embed_at] = skipped
        bound[add_at] = bind_add(total, shapes, add_at, diagonal=(embed_at, embed, owned))
        rewritten.update((embed_at,) if owned is None else (embed_at, owned))
        taken_over[add_at] = [embed_at]
        # the term is added onto a diagonal, not over the whole sum
        flops += math.prod(shapes[embed.inner]) - math.prod(shapes[add_at])
    # products multiplied out where cheaper: on numpy and on dask (lazily, chunk by chunk)
    multiplied = distributions(program, shapes, sized.costs, set(absorbed), optimize,
                               backend) if multiply_out else {}
    for at, found in multiplied.items():
        flops -= found.saved
        bound[at] = bind_distribution(found)
        taken_over[at] = found.dead
        rewritten.update((at, *found.dead))
        for slot in found.dead:
            bound[slot] = skipped
    if numpy:
        for at, into in in_place_steps(program, shapes, rewritten).items():
            bound[at] = bind_in_place(steps[at], shapes, at, into)
    # Letting go of each array after its last use costs a little per step: worth it
    # where arrays are large enough for their memory to matter.
    release = releases(program, taken_over) if sized.largest >= RELEASE_MIN_BYTES else None
    straight = straight_line(steps, bound, release, program.inputs,
                             program.outputs or program.output, needs_dtype) if numpy else None
    info = PlanInfo(int(flops), int(sized.largest), int(sized.result_bytes), sized.result_shape,
                    sum(1 for s in steps if isinstance(s, Einsum)))
    return Plan(info, shapes, sized.contractions, bound, release, straight)


def known_shapes(expr: Expr | tuple[Expr, ...], program: Program, shapes: Mapping[str, Any] | None
                 ) -> dict[str, ShapeOnly] | None:
    """Stand-ins for the inputs where ``shapes`` (name -> sizes, as compile takes them)
    gives every input of the program in integers, for planning ahead; None otherwise.
    :class:`~einderiv.errors.ShapeError` where the shapes conflict (as parse says)."""
    if shapes:
        shapes = normalize_shapes(shapes)
        for e in expr if isinstance(expr, tuple) else (expr,):
            check_shapes(e, shapes)
    if not shapes or not all(n in shapes for n in program.inputs):
        return None
    known = {n: ShapeOnly(tuple(shapes[n])) for n in program.inputs}
    if not all(isinstance(d, int) for s in known.values() for d in s.shape):
        return None
    return known
