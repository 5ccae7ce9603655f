"""Running a planned program: one closure per step.

:func:`bind_step` turns a step, with everything that depends only on the shapes
decided at plan time, into ``run(values, inputs, dtype)``, so a call does no planning.
Sums with one term on a diagonal add that term onto the diagonal of the rest in
place (:func:`absorbed_diagonals`: the softmax Hessian ``diag(p) - p p^T``);
deltas never become dense identities on numpy (strided diagonal views).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import opt_einsum as oe

from ..core.functions import FUNCTIONS, ElementwiseFunction
from ..core.ir import Index
from ..errors import EvaluationError
from .contraction import einsum_spec, writable
from .lowering import Program, SizeRef, Step

__all__ = ["Inline", "bind_step", "bind_add", "bind_in_place", "skipped", "absorbed_diagonals",
           "in_place_steps", "count_readers", "releases", "sum_of_products", "check_square",
           "MAKES_CONSTANTS"]


def _linalg_ready(m: Any) -> Any:
    """numpy.linalg supports float32/64 and complex64/128: promote other floats
    (float16, longdouble) to float64 and other complex numbers (clongdouble) to
    complex128, as numpy does for integers."""
    if isinstance(m, np.ndarray) and m.dtype.kind == "f" and m.dtype.itemsize not in (4, 8):
        return m.astype(np.float64)
    if isinstance(m, np.ndarray) and m.dtype.kind == "c" and m.dtype.itemsize not in (8, 16):
        return m.astype(np.complex128)
    return m


def check_square(shape: tuple[int, ...], what: str) -> None:
    if len(shape) != 2 or shape[0] != shape[1]:
        raise EvaluationError(f"{what}(...) needs a square matrix, got shape {shape}")


def _size(ref: SizeRef, values: list, inputs: Mapping[str, Any]) -> int:
    if ref[0] == "unknown":  # pragma: no cover - planning raises first
        raise EvaluationError(f"cannot tell the size of index {ref[1]!r}")
    if ref[0] == "input":
        return int(inputs[ref[1]].shape[ref[2]])
    if ref[0] == "slot":
        return int(values[ref[1]].shape[ref[2]])
    return int(ref[1])


#: Step kinds that create arrays of their own, in the inputs' common dtype.
MAKES_CONSTANTS = frozenset({"ones", "eye", "const", "zeros", "embed"})


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


#: Powers as straight-line code, as :func:`_run` computes them (``{f}``: np.sqrt).
_POWERS = {2.0: "{0} * {0}", -1.0: "1.0 / {0}", 0.5: "{f}({0})"}


def _call_template(plan: Any, n: int) -> str:
    """How a plan with ``n`` operands reads in a straight-line function: its own
    ``template`` (a matrix product: ``{0}.T @ {1}``) or a call."""
    call = "{f}(" + ", ".join(f"{{{j}}}" for j in range(n)) + ")"
    return getattr(plan, "template", None) or call


def bind_step(step: Step, plan: Any, shapes: list, k: int, backend: str) -> Callable[..., Any]:
    """Step ``k`` as a closure ``run(values, inputs, dtype)`` with everything that
    depends only on the shapes decided now, so a call does no planning: the common
    kinds on numpy get a specialised closure, the rest go through :func:`_run`."""
    kind, a = step.kind, step.args
    if kind == "input":
        name = a[0]
        return lambda values, inputs, dtype: inputs[name]
    if backend == "numpy" and kind == "einsum":
        return _bind_einsum(a, plan, shapes, k)
    if backend == "numpy" and kind == "add":
        return bind_add(a, shapes, k)
    if kind == "scale":
        slot, c = a
        return inlined(lambda values, inputs, dtype: values[slot] * c, "{0} * {f}", (slot,), c)
    if backend == "numpy" and kind == "func":
        fn, slot = _applied(FUNCTIONS[a[0]]), a[1]
        return inlined(lambda values, inputs, dtype: fn(values[slot]), "{f}({0})", (slot,), fn)
    if backend == "numpy" and kind == "pow" and a[1] in _POWERS:
        slot, template = a[0], _POWERS[a[1]]
        return inlined(lambda values, inputs, dtype: _run(step, plan, values, inputs, backend,
                                                          dtype), template, (slot,), np.sqrt)
    if backend == "numpy" and kind == "softmax":
        slot, axes = a
        if axes == tuple(range(len(shapes[slot]))) and math.prod(shapes[slot]):
            return inlined(lambda values, inputs, dtype: _softmax_all(values[slot]),
                           "{f}({0})", (slot,), _softmax_all)
        return inlined(lambda values, inputs, dtype: _softmax(values[slot], axes),
                       f"{{f}}({{0}}, {axes!r})", (slot,), _softmax)
    if backend == "numpy" and kind == "transpose":
        slot, perm = a
        return inlined(lambda values, inputs, dtype: values[slot].transpose(perm),
                       "{0}.T" if perm == (1, 0) else f"{{0}}.transpose({perm!r})", (slot,))
    return lambda values, inputs, dtype: _run(step, plan, values, inputs, backend, dtype)


def _bind_einsum(a: tuple, plan: Any, shapes: list, k: int) -> Callable[..., Any]:
    coeff, operands, _, _ = a
    slots = tuple(slot for slot, _ in operands)
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


def reads(step: Step) -> list[int]:
    """The slots a step reads (sizes included)."""
    kind, a = step.kind, step.args
    if kind == "einsum":
        return [slot for slot, _ in a[1]]
    if kind == "add":
        return [slot for slot, _, _ in a[0]]
    if kind == "func":
        return [a[1]]
    if kind in ("pow", "logsumexp", "softmax", "scale", "transpose", "inv", "det", "logdet",
                "embed"):
        return [a[0]]
    if kind in ("solve", "powslot"):
        return [a[0], a[1]]
    refs: list = []
    if kind in ("ones", "eye"):
        refs = [a[0]]
    elif kind == "zeros":
        refs = list(a[0])
    elif kind == "broadcast":
        refs = [ref for _, ref in a[3]]
    slots = [ref[1] for ref in refs if ref[0] == "slot"]
    return slots + ([a[0]] if kind == "broadcast" else [])


#: Step kinds whose value is always a new array that no other slot shares (see
#: :func:`plan_owned` for the einsum and add kinds, whose value may be an operand).
_FRESH = frozenset({"func", "pow", "scale", "softmax"})


def count_readers(program: Program) -> list[int]:
    """How many steps read each slot (the program's output counts as one more)."""
    readers = [0] * len(program.steps)
    for step in program.steps:
        for slot in reads(step):
            readers[slot] += 1
    readers[program.output] += 1
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
        for slot in reads(step):
            last[slot] = k
    for k, others in taken_over.items():
        for other in others:
            for slot in reads(program.steps[other]):
                last[slot] = max(last[slot], k)
    last.pop(program.output, None)
    found: list[list[int]] = [[] for _ in program.steps]
    for slot, k in last.items():
        found[k].append(slot)
    return [tuple(f) for f in found]


def plan_owned(step: Step) -> bool:
    """Whether the step's value is an array the plan allocated itself (or a view of
    one) that no other slot and no input shares: the only arrays an in-place write
    (:func:`in_place_steps`, :func:`absorbed_diagonals`) may touch. Not so: inputs,
    transposes, a product of one operand (np.einsum returns a permutation or a
    diagonal as a view, a lone factor comes back as it is), a sum of one term with
    sign +1 (that term, maybe transposed). Where an input is among the operands (the
    same array under two names, views of each other), none of these is written."""
    kind, a = step.kind, step.args
    if kind in _FRESH:
        return True
    if kind == "einsum":  # every plan of two or more operands returns a new array
        return len(a[1]) > 1
    if kind == "add":  # two or more parts (a + b is new), or -a
        return len(a[0]) > 1 or a[0][0][2] != 1.0
    return False


#: Below this many entries, writing into an operand saves nothing worth a check.
IN_PLACE_MIN_SIZE = 1024


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
        kind, a = step.kind, step.args
        if k in excluded or math.prod(shapes[k]) < IN_PLACE_MIN_SIZE:
            continue
        if kind == "scale" or (kind == "pow" and a[1] == 2.0):
            candidates = [a[0]]
        elif kind == "func" and isinstance(FUNCTIONS[a[0]].numpy, np.ufunc):
            candidates = [a[1]]
        elif kind == "add":  # a part that carries every axis of the sum
            candidates = [slot if len(labels) == len(a[1]) and set(labels) == set(a[1]) else -1
                          for slot, labels, _ in a[0]]
        else:
            continue
        for j, slot in enumerate(candidates):
            # (a part of a sum with every axis has the sum's shape, up to the order)
            if slot >= 0 and slot not in excluded and readers[slot] == 1 and \
                    plan_owned(steps[slot]) and (kind == "add" or shapes[slot] == shapes[k]):
                found[k] = j
                break
    return found


def bind_in_place(step: Step, shapes: list, k: int, into: int) -> Callable[..., Any]:
    """Step ``k`` (see :func:`in_place_steps`) writing into its operand ``into``;
    an operand that cannot take the result (read-only, another dtype) is left alone."""
    kind, a = step.kind, step.args
    if kind == "add":
        return bind_add(a, shapes, k, into=into)
    if kind == "func":
        fn, slot = FUNCTIONS[a[0]], a[1]
        ufunc = fn.numpy
        if fn.real_only:  # the checks and messages of the general path
            return lambda values, inputs, dtype: _run(step, None, values, inputs, "numpy", dtype)

        def run(values: list, inputs: Any, dtype: Any) -> Any:
            x = values[slot]
            return ufunc(x, out=x) if writable(x) else ufunc(x)
        return run
    slot = a[0]
    if kind == "pow":
        return lambda values, inputs, dtype: np.multiply(values[slot], values[slot],
                                                         out=_out(values[slot]))
    c = a[1]
    return lambda values, inputs, dtype: np.multiply(values[slot], c, out=_out(values[slot]))


def _out(x: Any) -> Any:
    return x if writable(x) else None


def absorbed_diagonals(program: Program) -> dict[int, tuple[int, int | None]]:
    """Sums with one term on a diagonal (a delta with both indices free, an
    ``embed`` step read by that sum only): the sum adds the term onto the diagonal
    of the rest instead of forming a zero array around it (the softmax Hessian
    ``diag(p) - p p^T``). Maps the sum's slot to the embed's slot and, where the
    rest is a single new array read only by this sum, its slot (updated in place)."""
    readers = count_readers(program)
    found: dict[int, tuple[int, int | None]] = {}
    for k, step in enumerate(program.steps):
        if step.kind != "add":
            continue
        parts = step.args[0]
        # only an embed with all of the sum's axes: one broadcast along an axis it
        # lacks (delta[d1,d2] + q[i,d1], named broadcasting) is not one diagonal
        embeds = [slot for slot, labels, _ in parts
                  if program.steps[slot].kind == "embed" and readers[slot] == 1
                  and set(labels) == set(step.args[1])]
        if len(embeds) != 1 or len(parts) < 2:
            continue
        rest = [(slot, sign) for slot, _, sign in parts if slot != embeds[0]]
        owned = None
        if len(rest) == 1 and rest[0][1] == 1.0 and readers[rest[0][0]] == 1 and \
                plan_owned(program.steps[rest[0][0]]):
            owned = rest[0][0]
        found[k] = (embeds[0], owned)
    return found


def sum_of_products(terms: list[tuple[float, list[int], Callable[..., Any]]]
                     ) -> Callable[..., Any]:
    """A closure adding planned products (coefficient, operand slots, callable)."""
    def run(values: list, inputs: Any, dtype: Any) -> Any:
        total = None
        for coeff, slots, plan in terms:
            v = plan(*(values[s] for s in slots))
            v = v if coeff == 1.0 else v * coeff
            total = v if total is None else total + v
        return total
    return run


def skipped(values: list, inputs: Any, dtype: Any) -> None:
    return None  # a step whose value another step computes in place


def bind_add(a: tuple, shapes: list, k: int,
             diagonal: tuple[int, tuple, int | None] | None = None,
             into: int | None = None) -> Callable[..., Any]:
    """The sum step ``k``; ``diagonal``: a term written onto the diagonal of the rest
    (:func:`absorbed_diagonals`); ``into``: the part that takes the sum in place
    (:func:`in_place_steps`)."""
    parts, out = a
    onto = None  # the diagonal term: (inner slot, view shape, view strides (in items), sign)
    if diagonal is not None:
        embed_at, (inner, rest_labels, embed_out, pairs), owned = diagonal
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
        total = _broadcast(total, full, "numpy") if needs_broadcast else total
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
    view = _diagonal_view(total, out, rest_labels, pairs)
    if sign == 1.0:
        view += inner
    else:
        view -= inner
    return total


def _run(step: Step, plan: Any, values: list, inputs: Mapping[str, Any], backend: str,
         dtype: np.dtype) -> Any:
    kind, a = step.kind, step.args
    if kind == "input":
        return inputs[a[0]]
    if kind == "einsum":
        coeff, operands, _, _ = a
        ops = [values[slot] for slot, _ in operands]
        if coeff != 1.0:
            # Scale the smallest array involved: the output or one operand.
            smallest = min(range(len(ops)), key=lambda k: math.prod(ops[k].shape))
            if math.prod(ops[smallest].shape) < math.prod(step.shape or (10**18,)):
                ops[smallest] = ops[smallest] * coeff
                coeff = 1.0
        result = plan(*ops, backend=backend)
        return result if coeff == 1.0 else result * coeff
    if kind == "func":
        return _applied(FUNCTIONS[a[0]])(values[a[1]])
    if kind == "pow":
        base, k = values[a[0]], a[1]
        if k == 2.0:
            return base * base
        if k == -1.0:
            return 1.0 / base
        if k == 0.5:
            return np.sqrt(base)
        if k < 0 and float(k).is_integer():
            return 1.0 / base ** (-k)
        return base ** k
    if kind == "logsumexp":
        u, axes, c = values[a[0]], a[1], a[2]
        if not axes:
            return np.log(c * np.exp(u))
        m = u.max(axis=axes, keepdims=True) if u.size else np.zeros(
            tuple(1 if k in axes else n for k, n in enumerate(u.shape)))
        if _all_finite(m):
            # the common case: each sum of exp(u - m) is >= 1 (a lazy array: below)
            total = np.log(np.exp(u - m).sum(axis=axes, keepdims=True)) + m
        else:  # all -inf (log 0), or inf/nan: shift by 0 there, as numpy would compute
            m = np.where(np.isfinite(m), m, 0.0)
            with np.errstate(divide="ignore"):
                total = np.log(np.sum(np.exp(u - m), axis=axes, keepdims=True)) + m
        total = total.squeeze(axis=axes)
        return total + np.log(c) if c != 1.0 else total
    if kind == "softmax":
        return _softmax(values[a[0]], a[1])
    if kind == "scale":
        return values[a[0]] * a[1]
    if kind == "solve":
        m, rhs, transposed = _linalg_ready(values[a[0]]), _linalg_ready(values[a[1]]), a[2]
        flat = rhs if rhs.ndim == 1 else rhs.reshape(rhs.shape[0], math.prod(rhs.shape[1:]))
        try:
            x = np.linalg.solve(m.T if transposed else m, flat)
        except np.linalg.LinAlgError:
            raise EvaluationError("inv(...) of a singular matrix") from None
        return x.reshape(rhs.shape)
    if kind == "powslot":
        return values[a[0]] ** values[a[1]]
    if kind == "transpose":
        return values[a[0]].transpose(a[1])
    if kind == "inv":
        try:
            return np.linalg.inv(_linalg_ready(values[a[0]]))
        except np.linalg.LinAlgError:
            raise EvaluationError("inv(...) of a singular matrix") from None
    if kind == "det":
        return np.linalg.det(_linalg_ready(values[a[0]]))
    if kind == "logdet":
        return np.linalg.slogdet(_linalg_ready(values[a[0]]))[1]
    if kind == "ones":
        return np.ones(_size(a[0], values, inputs), dtype=dtype)
    if kind == "eye":
        return np.eye(_size(a[0], values, inputs), dtype=dtype)
    if kind == "const":
        return np.asarray(a[0], dtype=dtype)
    if kind == "zeros":
        return np.zeros(tuple(_size(r, values, inputs) for r in a[0]), dtype=dtype)
    if kind == "add":
        parts, out = a
        total = None
        for slot, labels, sign in parts:
            v = _aligned(values[slot], labels, out)
            if total is None:
                total = v if sign == 1.0 else -v
            else:
                total = total + v if sign == 1.0 else total - v
        full = tuple(_label_sizes(parts, values).get(i) for i in out)
        return total if tuple(total.shape) == full else _broadcast(total, full, backend)
    if kind == "embed":
        return _embed(values[a[0]], a[1], a[2], a[3], backend, dtype)
    if kind == "broadcast":
        inner, rest_labels, out, extra = a
        sizes = dict(zip(rest_labels, values[inner].shape))
        sizes.update({lab: _size(ref, values, inputs) for lab, ref in extra})
        v = _aligned(values[inner], rest_labels, out)
        return _broadcast(v, tuple(sizes[i] for i in out), backend)
    raise AssertionError(kind)  # pragma: no cover


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


def _all_finite(m: Any) -> bool:
    """Whether ``m`` is a numpy array of finite numbers (False for a lazy array: the
    caller then takes the path that needs no answer)."""
    if not isinstance(m, np.ndarray):
        return False
    if m.size == 1 and m.dtype.kind == "f":
        return math.isfinite(m.item())  # one number: no temporary array
    return bool(np.isfinite(m).all())


def _softmax(u: Any, axes: tuple[int, ...]) -> Any:
    """``exp(u) / sum exp(u)`` over ``axes``, shifted by the max (no overflow, issue 6);
    where the max is not finite (all -inf: 0/0; inf or nan) the shift is 0, so the
    result is nan there, as ``exp(u - logsumexp(u))`` would be."""
    m = u.max(axis=axes, keepdims=True) if u.size else np.zeros(
        tuple(1 if k in axes else n for k, n in enumerate(u.shape)))
    if not _all_finite(m):
        m = np.where(np.isfinite(m), m, 0.0)
    e = np.exp(u - m)
    total = e.sum(axis=axes, keepdims=True)
    if isinstance(e, np.ndarray):
        e /= total  # e is a new array: divide in place
        return e
    return e / total


def _softmax_all(u: np.ndarray) -> np.ndarray:
    """:func:`_softmax` over every axis of a non-empty numpy array (a softmax over a
    vector): the same arithmetic, with the max and the sum as numbers."""
    if u.dtype.kind != "f":
        return _softmax(u, tuple(range(u.ndim)))
    m = u.max()
    if not math.isfinite(m):
        m = 0.0  # all -inf (0/0), or inf or nan: nan, as the general way gives
    e = np.exp(u - m)
    e /= e.sum()
    return e


def _label_sizes(parts, values) -> dict[Index, int]:
    sizes: dict[Index, int] = {}
    for slot, labels, _ in parts:
        sizes.update(zip(labels, values[slot].shape))
    return sizes


def _aligned(v: Any, have: tuple[Index, ...], want: tuple[Index, ...]) -> Any:
    """``v`` transposed to the order of ``want`` with size-1 axes for missing labels."""
    if have == want:
        return v
    present = [i for i in want if i in have]
    perm = [have.index(i) for i in present]
    if perm != list(range(len(perm))):
        v = v.transpose(perm)
    shape = []
    it = iter(v.shape)
    for i in want:
        shape.append(next(it) if i in have else 1)
    return v.reshape(tuple(shape))


def _broadcast(v: Any, shape: tuple[int, ...], backend: str) -> Any:
    if backend == "numpy":
        return np.array(np.broadcast_to(v, shape))  # a real array, not a read-only view
    return np.broadcast_to(v, shape)


def _embed(inner: Any, rest_labels: tuple[Index, ...], out: tuple[Index, ...],
           pairs: tuple[tuple[Index, Index], ...], backend: str, dtype: np.dtype) -> Any:
    """Place ``inner`` (axes ``rest_labels``) on the diagonal ``keep == gone`` of a
    zero array with axes ``out``."""
    sizes = dict(zip(rest_labels, inner.shape))
    for keep, gone in pairs:
        sizes[gone] = sizes[keep]
    shape = tuple(sizes[i] for i in out)
    if backend != "numpy":
        # Lazy backends: multiply by a dense identity (no in-place writes).
        operands = [inner] + [np.eye(sizes[keep], dtype=dtype) for keep, _ in pairs]
        labels = [rest_labels] + [(keep, gone) for keep, gone in pairs]
        return oe.contract(einsum_spec(labels, out), *operands, backend=backend)
    result = np.zeros(shape, dtype=np.result_type(inner, dtype))
    _diagonal_view(result, out, rest_labels, pairs)[...] = inner
    return result


def _diagonal_view(total: np.ndarray, out: tuple[Index, ...], rest_labels: tuple[Index, ...],
                   pairs: tuple[tuple[Index, Index], ...]) -> np.ndarray:
    """The writable strided view of ``total`` (axes ``out``) on its diagonal
    ``keep == gone`` for each pair, with axes ``rest_labels``: no copy, no identity."""
    strides = dict(zip(out, total.strides))
    sizes = dict(zip(out, total.shape))
    for keep, gone in pairs:
        strides[keep] += strides.pop(gone)
    return np.lib.stride_tricks.as_strided(
        total, shape=tuple(sizes[i] for i in rest_labels),
        strides=tuple(strides[i] for i in rest_labels), writeable=True)
