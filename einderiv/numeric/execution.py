"""Running a planned program: one closure per step.

:func:`bind_step` turns a step, with everything that depends only on the shapes
decided at plan time, into ``run(values, inputs, dtype)``, so a call does no planning.
Each kind of step (:mod:`einderiv.numeric.program`) has its binder in :data:`BINDERS`
(a specialised closure for the common kinds on numpy, often marked with the
:class:`Inline` expression it stands for) and its general runner in :data:`RUNNERS`
(any backend). Sums with one term on a diagonal add that term onto the diagonal of the
rest in place (:func:`bind_add`; found by :mod:`einderiv.numeric.rewrites`); deltas never
become dense identities on numpy (strided diagonal views, :mod:`einderiv.numeric.kernels`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.functions import FUNCTIONS, ElementwiseFunction
from ..core.ir import Index
from ..errors import EvaluationError
from .direct_products import writable
from .kernels import (aligned, broadcast, determinant, diagonal_view, embed, label_sizes,
                      linalg_back, linalg_ready, logsumexp, softmax, softmax_all)
from .program import (Add, Broadcast, Const, Det, Einsum, Embed, Eye, Func, Input, Inv, LogDet,
                      LogSumExp, Ones, Pow, PowSlot, Scale, Softmax, Solve, Step, Transpose, Zeros)

__all__ = ["Inline", "bind_step", "bind_add", "skipped", "run_step", "BINDERS", "RUNNERS"]

#: A bound step: ``run(values, inputs, dtype)`` -> the step's value.
Bound = Callable[[list, Mapping[str, Any], Any], Any]


@dataclass(frozen=True)
class Inline:
    """What a bound step computes as one Python expression, for the straight-line
    function of a plan (:mod:`einderiv.numeric.straightline`): ``template`` reads the values
    of ``slots`` as ``{0}``, ``{1}``, ... and ``fn`` (a callable or a number) as ``{f}``:
    ``Inline("{0} @ {1}", (3, 1))``, ``Inline("{f}({0})", (2,), np.tanh)``."""

    template: str
    slots: tuple[int, ...]
    fn: Any = None


def inlined(run: Callable[..., Any], template: str, slots: tuple[int, ...], fn: Any = None
            ) -> Callable[..., Any]:
    """``run`` marked with the :class:`Inline` expression it stands for."""
    run.inline = Inline(template, slots, fn)  # type: ignore[attr-defined]
    return run


#: Powers as straight-line code, as :func:`_run_pow` computes them (``{f}``: np.sqrt).
_POWERS = {2.0: "{0} * {0}", -1.0: "1.0 / {0}", 0.5: "{f}({0})"}


def _call_template(plan: Any, n: int) -> str:
    """How a plan with ``n`` operands reads in a straight-line function: its own
    ``template`` (a matrix product: ``{0}.T @ {1}``) or a call."""
    call = "{f}(" + ", ".join(f"{{{j}}}" for j in range(n)) + ")"
    return getattr(plan, "template", None) or call


def _bind_einsum(step: Einsum, plan: Any, shapes: list, k: int) -> Callable[..., Any]:
    coeff = step.coeff
    slots = step.reads()
    if coeff != 1.0 and hasattr(plan, "with_coefficient"):
        plan, coeff = plan.with_coefficient(coeff), 1.0  # the plan puts it where it is cheapest
    scale_at = None
    if coeff != 1.0 and not getattr(plan, "scale_after", False):
        # scale the smallest array involved: the output or one operand
        smallest = min(range(len(slots)), key=lambda j: math.prod(shapes[slots[j]]))
        if math.prod(shapes[slots[smallest]]) < math.prod(shapes[k]):
            scale_at = smallest
    if coeff == 1.0 and len(slots) == 2:
        i, j = slots
        return inlined(lambda values, inputs, dtype: plan(values[i], values[j]),
                       _call_template(plan, 2), slots, plan)
    if coeff == 1.0 and len(slots) == 1:
        (i,) = slots
        return inlined(lambda values, inputs, dtype: plan(values[i]), _call_template(plan, 1),
                       slots, plan)

    template = getattr(plan, "template", None)
    if scale_at is not None and template is not None and "{f}" not in template:
        args = [f"{{{j}}}" for j in range(len(slots))]
        args[scale_at] = f"({args[scale_at]} * {{f}})"  # the smallest operand scaled
        template = template.format(*args)
    else:
        template = None

    def run(values: list, inputs: Any, dtype: Any) -> Any:
        ops = [values[s] for s in slots]
        if scale_at is not None:
            ops[scale_at] = ops[scale_at] * coeff
            return plan(*ops)
        result = plan(*ops)
        if coeff == 1.0:
            return result
        # a product of two or more arrays is a new array: scale it in place
        return np.multiply(result, coeff, out=result) if len(slots) > 1 and \
            writable(result) else result * coeff
    return run if template is None else inlined(run, template, slots, coeff)


def skipped(values: list, inputs: Any, dtype: Any) -> None:
    return None  # a step whose value another step computes in place


def bind_add(step: Add, shapes: list, k: int,
             diagonal: tuple[int, Embed, int | None] | None = None,
             into: int | None = None) -> Callable[..., Any]:
    """The sum step ``k``; ``diagonal``: a term written onto the diagonal of the rest
    (:func:`absorbed_diagonals`); ``into``: the part that takes the sum in place
    (:func:`in_place_steps`)."""
    parts, out = step.terms, step.out
    onto = None  # the diagonal term: (inner slot, view shape, view strides (in items), sign)
    if diagonal is not None:
        embed_at, embed_step, owned = diagonal
        inner, rest_labels, embed_out, pairs = \
            embed_step.inner, embed_step.rest, embed_step.out, embed_step.pairs
        (part,) = [p for p in parts if p[0] == embed_at]
        rename = dict(zip(embed_out, part[1]))
        parts = tuple(p for p in parts if p[0] != embed_at)
        onto = (inner, tuple(rename[i] for i in rest_labels),
                tuple((rename[keep], rename[gone]) for keep, gone in pairs), part[2], owned)
    prepared = []  # (slot, transpose or None, reshape or None, sign)
    aligned_shapes = []
    for slot, labels, sign in parts:
        present = [i for i in out if i in labels]
        perm = tuple(labels.index(i) for i in present)
        have = dict(zip(labels, shapes[slot]))
        target = tuple(have[i] if i in have else 1 for i in out)
        prepared.append((slot, None if perm == tuple(range(len(perm))) else perm,
                         None if target == tuple(shapes[slot][p] for p in perm) or not labels
                         else target,  # (a 0-d part broadcasts as it is)
                         sign))
        aligned_shapes.append(target if labels else ())  # (as it is: 0-d)
    full = tuple(shapes[k])
    needs_broadcast = np.broadcast_shapes(*aligned_shapes) != full if aligned_shapes else True
    plain = into is None and onto is None and not needs_broadcast and \
        all(perm is None and target is None for _, perm, target, _ in prepared)

    def run(values: list, inputs: Any, dtype: Any) -> Any:
        if into is not None:
            total = _added_in_place(prepared, into, values)
            if total is not None:
                return total
        total = None
        for slot, perm, target, sign in prepared:
            v = values[slot]
            if perm is not None:
                v = v.transpose(perm)
            if target is not None:
                v = v.reshape(target)
            if total is None:
                total = v if sign == 1.0 else -v
            else:
                total = total + v if sign == 1.0 else total - v
        total = broadcast(total, full, "numpy") if needs_broadcast else total
        if onto is not None:
            total = _add_diagonal(total, out, onto, values, inputs)
        return total
    if plain:  # a + b - c as it stands
        signs = [sign for _, _, _, sign in prepared]
        template = ("" if signs[0] == 1.0 else "-") + "{0}" + "".join(
            f" {'+' if sign == 1.0 else '-'} {{{j}}}" for j, sign in enumerate(signs[1:], 1))
        return inlined(run, template, tuple(slot for slot, _, _, _ in prepared))
    return run


def _added_in_place(prepared: list, into: int, values: list) -> Any:
    """The sum of the prepared parts accumulated in part ``into``'s array, or None
    where that array cannot take it (read-only, or a part of another dtype)."""
    slot, perm, _, sign = prepared[into]
    total = values[slot] if perm is None else values[slot].transpose(perm)
    if not writable(total) or any(getattr(values[p[0]], "dtype", None) != total.dtype
                                   for p in prepared):
        return None
    if sign != 1.0:
        np.negative(total, out=total)
    for j, (slot, perm, target, sign) in enumerate(prepared):
        if j == into:
            continue
        v = values[slot]
        if perm is not None:
            v = v.transpose(perm)
        if target is not None:
            v = v.reshape(target)
        if sign == 1.0:
            np.add(total, v, out=total)
        else:
            np.subtract(total, v, out=total)
    return total


def _add_diagonal(total: Any, out: tuple[Index, ...], onto: tuple, values: list,
                  inputs: Mapping[str, Any]) -> Any:
    """``total`` plus (or minus) a term that lives on a diagonal: written through a
    strided view, in place where ``total`` is a new array no one else reads."""
    inner_slot, rest_labels, pairs, sign, owned = onto
    inner = values[inner_slot]
    dtype = np.result_type(total, inner)
    fresh = owned is not None and isinstance(total, np.ndarray) and total.flags.writeable \
        and total.dtype == dtype and not any(
            np.may_share_memory(total, v) for v in inputs.values() if isinstance(v, np.ndarray))
    if not fresh:
        total = np.array(total, dtype=dtype)  # a copy of our own
    view = diagonal_view(total, out, rest_labels, pairs)
    if sign == 1.0:
        view += inner
    else:
        view -= inner
    return total


def _applied(fn: ElementwiseFunction) -> Callable[[Any], Any]:
    """The function as evaluation applies it: its numpy implementation, after a check
    that the argument is real where the function is defined for real input only."""
    if not fn.real_only:
        return fn.numpy

    def apply(x: Any) -> Any:
        if np.iscomplexobj(x):
            raise EvaluationError(f"{fn.name}(...) is defined for real input only, "
                                  "but its argument is complex")
        return fn.numpy(x)
    return apply


def _size(ref: Any, values: list, inputs: Mapping[str, Any]) -> int:
    return int(ref.size(lambda name, axis: int(inputs[name].shape[axis]),
                        lambda slot, axis: int(values[slot].shape[axis])))


# ------------------------------------------------------------------ general runners
# ``run(step, plan, values, inputs, backend, dtype)``: the step's value on any backend.


def _run_input(step: Input, plan: Any, values: list, inputs: Mapping[str, Any], backend: str,
               dtype: Any) -> Any:
    return inputs[step.name]


def _run_einsum(step: Einsum, plan: Any, values: list, inputs: Mapping[str, Any], backend: str,
                dtype: Any) -> Any:
    coeff = step.coeff
    ops = [values[slot] for slot in step.reads()]
    if coeff != 1.0:
        # Scale the smallest operand (this path does not know the output's size).
        smallest = min(range(len(ops)), key=lambda k: math.prod(ops[k].shape))
        if math.prod(ops[smallest].shape) < 10**18:
            ops[smallest] = ops[smallest] * coeff
            coeff = 1.0
    result = plan(*ops, backend=backend)
    return result if coeff == 1.0 else result * coeff


def _run_func(step: Func, plan: Any, values: list, inputs: Mapping[str, Any], backend: str,
              dtype: Any) -> Any:
    return _applied(FUNCTIONS[step.name])(values[step.arg])


def _run_pow(step: Pow, plan: Any, values: list, inputs: Mapping[str, Any], backend: str,
             dtype: Any) -> Any:
    base, k = values[step.arg], step.exponent
    if k == 2.0:
        return base * base
    if k == -1.0:
        return 1.0 / base
    if k == 0.5:
        return np.sqrt(base)
    if k < 0 and float(k).is_integer():
        return 1.0 / base ** (-k)
    return base ** k


def _run_powslot(step: PowSlot, plan: Any, values: list, inputs: Mapping[str, Any],
                 backend: str, dtype: Any) -> Any:
    return values[step.base] ** values[step.exponent]


def _run_transpose(step: Transpose, plan: Any, values: list, inputs: Mapping[str, Any],
                   backend: str, dtype: Any) -> Any:
    return values[step.arg].transpose(step.perm)


def _run_logsumexp(step: LogSumExp, plan: Any, values: list, inputs: Mapping[str, Any],
                   backend: str, dtype: Any) -> Any:
    return logsumexp(values[step.arg], step.axes, step.coeff)


def _run_softmax(step: Softmax, plan: Any, values: list, inputs: Mapping[str, Any],
                 backend: str, dtype: Any) -> Any:
    return softmax(values[step.arg], step.axes)


def _run_scale(step: Scale, plan: Any, values: list, inputs: Mapping[str, Any], backend: str,
               dtype: Any) -> Any:
    return values[step.arg] * step.coeff


def _run_solve(step: Solve, plan: Any, values: list, inputs: Mapping[str, Any], backend: str,
               dtype: Any) -> Any:
    given = values[step.matrix], values[step.rhs]
    m, rhs = linalg_ready(given[0]), linalg_ready(given[1])
    flat = rhs if rhs.ndim == 1 else rhs.reshape(rhs.shape[0], math.prod(rhs.shape[1:]))
    try:
        x = np.linalg.solve(m.T if step.transposed else m, flat)
    except np.linalg.LinAlgError:
        raise EvaluationError("inv(...) of a singular matrix") from None
    return linalg_back(x.reshape(rhs.shape), *given)


def _run_inv(step: Inv, plan: Any, values: list, inputs: Mapping[str, Any], backend: str,
             dtype: Any) -> Any:
    try:
        return linalg_back(np.linalg.inv(linalg_ready(values[step.arg])), values[step.arg])
    except np.linalg.LinAlgError:
        raise EvaluationError("inv(...) of a singular matrix") from None


def _run_det(step: Det, plan: Any, values: list, inputs: Mapping[str, Any], backend: str,
             dtype: Any) -> Any:
    return linalg_back(determinant(linalg_ready(values[step.arg])), values[step.arg])


def _run_logdet(step: LogDet, plan: Any, values: list, inputs: Mapping[str, Any],
                backend: str, dtype: Any) -> Any:
    return linalg_back(determinant(linalg_ready(values[step.arg]), log=True), values[step.arg])


def _run_ones(step: Ones, plan: Any, values: list, inputs: Mapping[str, Any], backend: str,
              dtype: Any) -> Any:
    return np.ones(_size(step.size, values, inputs), dtype=dtype)


def _run_eye(step: Eye, plan: Any, values: list, inputs: Mapping[str, Any], backend: str,
             dtype: Any) -> Any:
    return np.eye(_size(step.size, values, inputs), dtype=dtype)


def _run_const(step: Const, plan: Any, values: list, inputs: Mapping[str, Any], backend: str,
               dtype: Any) -> Any:
    return np.asarray(step.value, dtype=dtype)


def _run_zeros(step: Zeros, plan: Any, values: list, inputs: Mapping[str, Any], backend: str,
               dtype: Any) -> Any:
    return np.zeros(tuple(_size(r, values, inputs) for r in step.sizes), dtype=dtype)


def _run_add(step: Add, plan: Any, values: list, inputs: Mapping[str, Any], backend: str,
             dtype: Any) -> Any:
    total = None
    for slot, labels, sign in step.terms:
        v = aligned(values[slot], labels, step.out)
        if total is None:
            total = v if sign == 1.0 else -v
        else:
            total = total + v if sign == 1.0 else total - v
    assert total is not None
    full = tuple(label_sizes(step.terms, values).get(i) for i in step.out)
    return total if tuple(total.shape) == full else broadcast(total, full, backend)  # type: ignore[arg-type]


def _run_embed(step: Embed, plan: Any, values: list, inputs: Mapping[str, Any], backend: str,
               dtype: Any) -> Any:
    return embed(values[step.inner], step.rest, step.out, step.pairs, backend, dtype)


def _run_broadcast(step: Broadcast, plan: Any, values: list, inputs: Mapping[str, Any],
                   backend: str, dtype: Any) -> Any:
    sizes = dict(zip(step.rest, values[step.inner].shape))
    sizes.update({lab: _size(ref, values, inputs) for lab, ref in step.extra})
    v = aligned(values[step.inner], step.rest, step.out)
    return broadcast(v, tuple(sizes[i] for i in step.out), backend)


#: Each kind's general runner: ``run(step, plan, values, inputs, backend, dtype)``.
RUNNERS: dict[type[Step], Callable[..., Any]] = {
    Input: _run_input,
    Einsum: _run_einsum,
    Func: _run_func,
    Pow: _run_pow,
    PowSlot: _run_powslot,
    Transpose: _run_transpose,
    LogSumExp: _run_logsumexp,
    Softmax: _run_softmax,
    Scale: _run_scale,
    Solve: _run_solve,
    Inv: _run_inv,
    Det: _run_det,
    LogDet: _run_logdet,
    Ones: _run_ones,
    Eye: _run_eye,
    Const: _run_const,
    Zeros: _run_zeros,
    Add: _run_add,
    Embed: _run_embed,
    Broadcast: _run_broadcast,
}


def run_step(step: Step, plan: Any, values: list, inputs: Mapping[str, Any], backend: str,
             dtype: Any) -> Any:
    """Step's value by its kind's general runner."""
    return RUNNERS[type(step)](step, plan, values, inputs, backend, dtype)


# ------------------------------------------------------------------------ binders
# ``bind(step, plan, shapes, k, backend)``: step ``k`` as a closure
# ``run(values, inputs, dtype)``.


def _bind_general(step: Step, plan: Any, shapes: list, k: int, backend: str) -> Bound:
    """The kind's general runner, bound to the step."""
    run = RUNNERS[type(step)]
    return lambda values, inputs, dtype: run(step, plan, values, inputs, backend, dtype)


def _bind_input(step: Input, plan: Any, shapes: list, k: int, backend: str) -> Bound:
    name = step.name
    return lambda values, inputs, dtype: inputs[name]


def _bind_einsum_step(step: Einsum, plan: Any, shapes: list, k: int, backend: str) -> Bound:
    if backend != "numpy":
        return _bind_general(step, plan, shapes, k, backend)
    return _bind_einsum(step, plan, shapes, k)


def _bind_add_step(step: Add, plan: Any, shapes: list, k: int, backend: str) -> Bound:
    if backend != "numpy":
        return _bind_general(step, plan, shapes, k, backend)
    return bind_add(step, shapes, k)


def _bind_scale(step: Scale, plan: Any, shapes: list, k: int, backend: str) -> Bound:
    slot, c = step.arg, step.coeff
    return inlined(lambda values, inputs, dtype: values[slot] * c, "{0} * {f}", (slot,), c)


def _bind_func(step: Func, plan: Any, shapes: list, k: int, backend: str) -> Bound:
    if backend != "numpy":
        return _bind_general(step, plan, shapes, k, backend)
    fn, slot = _applied(FUNCTIONS[step.name]), step.arg
    return inlined(lambda values, inputs, dtype: fn(values[slot]), "{f}({0})", (slot,), fn)


def _bind_pow(step: Pow, plan: Any, shapes: list, k: int, backend: str) -> Bound:
    if backend != "numpy" or step.exponent not in _POWERS:
        return _bind_general(step, plan, shapes, k, backend)
    slot, template = step.arg, _POWERS[step.exponent]
    return inlined(lambda values, inputs, dtype: _run_pow(step, plan, values, inputs, backend,
                                                          dtype), template, (slot,), np.sqrt)


def _bind_softmax(step: Softmax, plan: Any, shapes: list, k: int, backend: str) -> Bound:
    if backend != "numpy":
        return _bind_general(step, plan, shapes, k, backend)
    slot, axes = step.arg, step.axes
    if axes == tuple(range(len(shapes[slot]))) and math.prod(shapes[slot]):
        return inlined(lambda values, inputs, dtype: softmax_all(values[slot]),
                       "{f}({0})", (slot,), softmax_all)
    return inlined(lambda values, inputs, dtype: softmax(values[slot], axes),
                   f"{{f}}({{0}}, {axes!r})", (slot,), softmax)


def _bind_transpose(step: Transpose, plan: Any, shapes: list, k: int, backend: str) -> Bound:
    if backend != "numpy":
        return _bind_general(step, plan, shapes, k, backend)
    slot, perm = step.arg, step.perm
    return inlined(lambda values, inputs, dtype: values[slot].transpose(perm),
                   "{0}.T" if perm == (1, 0) else f"{{0}}.transpose({perm!r})", (slot,))


#: Each kind's binder: specialised closures for the common kinds on numpy, the
#: general runner (:data:`RUNNERS`) for the others.
BINDERS: dict[type[Step], Callable[..., Bound]] = {
    Input: _bind_input,
    Einsum: _bind_einsum_step,
    Func: _bind_func,
    Pow: _bind_pow,
    PowSlot: _bind_general,
    Transpose: _bind_transpose,
    LogSumExp: _bind_general,
    Softmax: _bind_softmax,
    Scale: _bind_scale,
    Solve: _bind_general,
    Inv: _bind_general,
    Det: _bind_general,
    LogDet: _bind_general,
    Ones: _bind_general,
    Eye: _bind_general,
    Const: _bind_general,
    Zeros: _bind_general,
    Add: _bind_add_step,
    Embed: _bind_general,
    Broadcast: _bind_general,
}


def bind_step(step: Step, plan: Any, shapes: list, k: int, backend: str) -> Bound:
    """Step ``k`` as a closure ``run(values, inputs, dtype)`` with everything that
    depends only on the shapes decided now, so a call does no planning: the common
    kinds on numpy get a specialised closure, the rest run their kind's general runner."""
    return BINDERS[type(step)](step, plan, shapes, k, backend)
