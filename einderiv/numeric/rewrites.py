"""Rewrites of a planned program that save memory and passes, per shape signature: a
sum with one term on a diagonal adds it onto the rest in place
(:func:`absorbed_diagonals`: the softmax Hessian ``diag(p) - p p^T``), element-wise
steps write into an operand nobody else reads (:func:`in_place_steps`), products with a
sum factor are multiplied out where that is cheaper (:func:`distributions`), and each
intermediate can be let go of after its last use (:func:`releases`). All on numpy;
the products multiplied out on dask and in exported code too.

Which kinds may write in place, into which operand, is the table :data:`IN_PLACE`;
which kinds' values are arrays of the plan's own, :data:`OWNS_VALUE`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

from ..core.functions import FUNCTIONS
from .contraction import plan_einsum
from .direct_products import writable
from .execution import Bound, bind_add, run_step
from .program import Add, Einsum, Embed, Func, Operand, Pow, Program, Scale, Softmax, Step

__all__ = ["count_readers", "releases", "plan_owned", "in_place_steps", "bind_in_place",
           "absorbed_diagonals", "sum_of_products", "distributions", "Distribution",
           "bind_distribution", "IN_PLACE", "OWNS_VALUE",
           "IN_PLACE_MIN_SIZE"]


def count_readers(program: Program) -> list[int]:
    """How many steps read each slot (each of the program's results counts as one more)."""
    readers = [0] * len(program.steps)
    for step in program.steps:
        for slot in step.reads():
            readers[slot] += 1
    for out in program.results:
        readers[out] += 1
    return readers


def releases(program: Program, taken_over: Mapping[int, list[int]]) -> list[tuple[int, ...]]:
    """For each step, the slots to let go of once it has run: those no later step
    reads. A call then holds only the arrays it still needs, as hand-written code
    does, so large temporaries are freed and their memory reused within the call
    (instead of each call faulting in fresh pages for all of them).
    ``taken_over``: a step rewritten to do the work of others (a diagonal added in
    place, a product multiplied out) -> those steps, whose reads become its own."""
    last: dict[int, int] = {}
    for k, step in enumerate(program.steps):
        for slot in step.reads():
            last[slot] = k
    for k, others in taken_over.items():
        for other in others:
            for slot in program.steps[other].reads():
                last[slot] = max(last[slot], k)
    for out in program.results:
        last.pop(out, None)
    found: list[list[int]] = [[] for _ in program.steps]
    for slot, k in last.items():
        found[k].append(slot)
    return [tuple(f) for f in found]


def _always(step: Step) -> bool:
    return True


#: Kinds whose value may be an array of the plan's own that no other slot and no
#: input shares, and when it is (see :func:`plan_owned`); other kinds never.
OWNS_VALUE: dict[type[Step], Callable[[Any], bool]] = {
    Func: _always,
    Pow: _always,
    Scale: _always,
    Softmax: _always,
    # every plan of two or more operands returns a new array
    Einsum: lambda step: len(step.operands) > 1,
    # two or more parts (a + b is new), or -a
    Add: lambda step: len(step.terms) > 1 or step.terms[0].sign != 1.0,
}


def plan_owned(step: Step) -> bool:
    """Whether the step's value is an array the plan allocated itself (or a view of
    one) that no other slot and no input shares: the only arrays an in-place write
    (:func:`in_place_steps`, :func:`absorbed_diagonals`) may touch. Not so: inputs,
    transposes, a product of one operand (np.einsum returns a permutation or a
    diagonal as a view, a lone factor comes back as it is), a sum of one term with
    sign +1 (that term, maybe transposed). Where an input is among the operands (the
    same array under two names, views of each other), none of these is written."""
    owns = OWNS_VALUE.get(type(step))
    return owns is not None and owns(step)


#: Below this many entries, writing into an operand saves nothing worth a check.
IN_PLACE_MIN_SIZE = 1024


def _out(x: Any) -> Any:
    return x if writable(x) else None


def _bind_func_in_place(step: Func, shapes: list, k: int, into: int) -> Bound:
    fn, slot = FUNCTIONS[step.name], step.arg
    ufunc = fn.numpy
    if fn.real_only:  # the checks and messages of the general path
        return lambda values, inputs, dtype: run_step(step, None, values, inputs, "numpy", dtype)

    def run(values: list, inputs: Any, dtype: Any) -> Any:
        x = values[slot]
        return ufunc(x, out=x) if writable(x) else ufunc(x)
    return run


def _bind_square_in_place(step: Pow, shapes: list, k: int, into: int) -> Bound:
    slot = step.arg
    return lambda values, inputs, dtype: np.multiply(values[slot], values[slot],
                                                     out=_out(values[slot]))


def _bind_scale_in_place(step: Scale, shapes: list, k: int, into: int) -> Bound:
    slot, c = step.arg, step.coeff
    return lambda values, inputs, dtype: np.multiply(values[slot], c, out=_out(values[slot]))


def _bind_add_in_place(step: Add, shapes: list, k: int, into: int) -> Bound:
    return bind_add(step, shapes, k, into=into)


class InPlace(NamedTuple):
    """How a kind writes its result into an operand: ``operands(step)``, the slots it
    may write into (-1: not this one), ``same_shape``, whether that operand must have
    the result's shape, and ``bind(step, shapes, k, into)``, the closure that does."""
    operands: Callable[[Any], list[int]]
    same_shape: bool
    bind: Callable[..., Bound]


#: The kinds that may write their result into an operand's array.
IN_PLACE: dict[type[Step], InPlace] = {
    Scale: InPlace(lambda step: [step.arg], True, _bind_scale_in_place),
    Pow: InPlace(lambda step: [step.arg] if step.exponent == 2.0 else [], True,
                 _bind_square_in_place),
    Func: InPlace(lambda step: [step.arg] if isinstance(FUNCTIONS[step.name].numpy, np.ufunc)
                  else [], True, _bind_func_in_place),
    # a part that carries every axis of the sum (it has the sum's shape, up to the order)
    Add: InPlace(lambda step: [slot if len(labels) == len(step.out) and
                               set(labels) == set(step.out) else -1
                               for slot, labels, _ in step.terms], False, _bind_add_in_place),
}


def in_place_steps(program: Program, shapes: list, excluded: set[int]) -> dict[int, int]:
    """Element-wise steps that may write their result into an operand's array: one
    that an earlier step of the same call made, that only this step reads, and that
    has the result's shape. The tanh derivative ``1 - tanh(u)**2`` then makes one array
    instead of three; every large temporary costs page faults on every call (the
    two-layer gradient: 1.8x -> 1.05x hand-written). Maps each such step to the
    position of the operand it writes into (the part of a sum; 0 otherwise).
    ``excluded``: steps already rewritten (diagonals added in place, sums multiplied out)."""
    readers = count_readers(program)
    steps = program.steps
    found: dict[int, int] = {}
    for k, step in enumerate(steps):
        rule = IN_PLACE.get(type(step))
        if rule is None or k in excluded or math.prod(shapes[k]) < IN_PLACE_MIN_SIZE:
            continue
        for j, slot in enumerate(rule.operands(step)):
            if slot >= 0 and slot not in excluded and readers[slot] == 1 and \
                    plan_owned(steps[slot]) and (not rule.same_shape or shapes[slot] == shapes[k]):
                found[k] = j
                break
    return found


def bind_in_place(step: Step, shapes: list, k: int, into: int) -> Bound:
    """Step ``k`` (see :func:`in_place_steps`) writing into its operand ``into``;
    an operand that cannot take the result (read-only, another dtype) is left alone."""
    return IN_PLACE[type(step)].bind(step, shapes, k, into)


def absorbed_diagonals(program: Program) -> dict[int, tuple[int, int | None]]:
    """Sums with one term on a diagonal (a delta with both indices free, an
    ``embed`` step read by that sum only): the sum adds the term onto the diagonal
    of the rest instead of forming a zero array around it (the softmax Hessian
    ``diag(p) - p p^T``). Maps the sum's slot to the embed's slot and, where the
    rest is a single new array read only by this sum, its slot (updated in place)."""
    readers = count_readers(program)
    found: dict[int, tuple[int, int | None]] = {}
    for k, step in enumerate(program.steps):
        if not isinstance(step, Add):
            continue
        parts = step.terms
        # only an embed with all of the sum's axes: one broadcast along an axis it
        # lacks (delta[d1,d2] + q[i,d1], named broadcasting) is not one diagonal
        embeds = [slot for slot, labels, _ in parts
                  if isinstance(program.steps[slot], Embed) and readers[slot] == 1
                  and set(labels) == set(step.out)]
        if len(embeds) != 1 or len(parts) < 2:
            continue
        rest = [(slot, sign) for slot, _, sign in parts if slot != embeds[0]]
        owned = None
        if len(rest) == 1 and rest[0][1] == 1.0 and readers[rest[0][0]] == 1 and \
                plan_owned(program.steps[rest[0][0]]):
            owned = rest[0][0]
        found[k] = (embeds[0], owned)
    return found


def sum_of_products(terms: list[tuple[float, list[int], Callable[..., Any]]]) -> Bound:
    """A closure adding planned products (coefficient, operand slots, callable)."""
    def run(values: list, inputs: Any, dtype: Any) -> Any:
        total = None
        for coeff, slots, plan in terms:
            v = plan(*(values[s] for s in slots))
            v = v if coeff == 1.0 else v * coeff
            total = v if total is None else total + v
        return total
    return run


class Distribution(NamedTuple):
    """A product multiplied out (see :func:`distributions`): its ``terms``
    (coefficient and operands each), each term's contraction as
    :func:`~einderiv.numeric.contraction.plan_einsum` plans it (``planned``), the steps
    it makes unnecessary (``dead``: the sum and the terms' own products) and the FLOPs
    that saves."""
    terms: list[tuple[float, tuple[Operand, ...]]]
    planned: list[Any]
    dead: list[int]
    saved: int


def distributions(program: Program, shapes: list, costs: list[int], absorbed: set[int],
                  optimize: str, backend: str) -> dict[int, Distribution]:
    """Products with a sum factor that are cheaper multiplied out, for these shapes:
    ``V[a,f] (M[e,a] - U[e,b] V[a,b])`` never forms the m x n residual when
    ``M V - U (V^T V)`` costs less (the low-rank fit; 001_*-style algebra, chosen
    by opt_einsum's FLOP counts). Maps the product's slot to its terms
    (:class:`Distribution`); numpy's and dask's plans run them as
    :func:`sum_of_products`, exported code writes them out. Rounding: near an exact fit
    ``M - U V^T`` is a difference of nearly equal numbers either way, and both forms'
    error relative to the gradient grows as ``eps |M| / |M - U V^T|``; multiplied out,
    the long sum over ``j`` runs on the large terms, and the error is 10-30x that of the
    form as derived (the trade of the normal equations; benchmarks/multiplied_out.py).
    ``costs``: each step's FLOPs as planned."""
    steps = program.steps
    readers = count_readers(program)
    chosen: dict[int, Distribution] = {}
    taken: set[int] = set()
    for k, step in enumerate(steps):
        if not isinstance(step, Einsum):
            continue
        for j, (slot, _) in enumerate(step.operands):
            if not isinstance(steps[slot], Add) or readers[slot] != 1 or slot in absorbed or \
                    slot in taken:
                continue
            plan = _distributed(program, k, j, readers)
            if plan is None:
                continue
            terms, dead = plan
            if any(d in taken for d in dead):
                continue
            planned = [plan_einsum(Einsum(1.0, ops, step.out), shapes, optimize, backend)
                       for _, ops in terms]
            new_cost = sum(p[2] for p in planned) + math.prod(shapes[k]) * (len(terms) - 1)
            old_cost = costs[k] + sum(costs[d] for d in dead)
            if new_cost < 0.7 * old_cost:
                chosen[k] = Distribution(terms, planned, dead, old_cost - new_cost)
                taken.update(dead)
                taken.add(k)
            break
    return chosen


def bind_distribution(found: Distribution) -> Bound:
    """The closure running a product multiplied out (:func:`distributions`) on numpy
    or dask arrays."""
    return sum_of_products([(c, [s for s, _ in ops], p[1])
                            for (c, ops), p in zip(found.terms, found.planned)])


def _distributed(program: Program, k: int, j: int, readers: list[int]
                 ) -> tuple[list[tuple[float, tuple[Operand, ...]]], list[int]] | None:
    """The terms of einsum step ``k`` with its ``j``-th operand (a sum) multiplied
    out: ``(coefficient, operands)`` each, and the steps no longer needed."""
    steps = program.steps
    product = steps[k]
    assert isinstance(product, Einsum)
    sum_slot, sum_labels = product.operands[j]
    total = steps[sum_slot]
    assert isinstance(total, Add)
    others = product.operands[:j] + product.operands[j + 1:]
    to_outer = dict(zip(total.out, sum_labels))  # the sum's labels -> this product's
    terms: list[tuple[float, tuple[Operand, ...]]] = []
    dead = [sum_slot]
    for t, (slot, labels, sign) in enumerate(total.terms):
        producer = steps[slot]
        if isinstance(producer, Embed) or set(labels) != set(total.out):
            return None  # a diagonal term, or one broadcast along an axis of the sum
        if isinstance(producer, Einsum) and readers[slot] == 1:
            mapping = {lab: to_outer[part_lab] for lab, part_lab in zip(producer.out, labels)}
            own = [Operand(s, tuple(mapping.setdefault(i, f"_d{k}_{t}_{i}") for i in labs))
                   for s, labs in producer.operands]
            dead.append(slot)
            term_coeff = product.coeff * sign * producer.coeff
        else:
            own = [Operand(slot, tuple(to_outer[i] for i in labels))]
            term_coeff = product.coeff * sign
        terms.append((term_coeff, tuple(others) + tuple(own)))
    return terms, dead
