"""One product of a program: how it is contracted.

:func:`plan_einsum` turns an einsum step, for given operand shapes, into a callable:
a direct BLAS call for products of two vectors/matrices, one symmetric product
(syrk) for ``X^T diag(w) X``, a matrix scaled along its axes before one BLAS call,
one outer-product loop for outer products, an ``opt_einsum.contract_expression``
(exhaustive search for a few operands, dynamic programming for chains such as
``x^T A1 ... A16 x``, which then run as matrix-vector products), or, beyond
:data:`MANY_FACTORS` factors or with an empty axis, one contraction per factor in an
order that follows shared indices. Axes that only one operand carries and the output
does not are summed in that operand first.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import opt_einsum as oe

from ..core.ir import Index
from .direct_products import identity_plan, matmul_plan, outer_plan, pairwise_plan, scaled_matrix_plan
from .gram import symmetric_plan
from .paths import connected_order, einsum_spec, path_strategy
from .program import Einsum

__all__ = ["plan_einsum"]


def plan_einsum(step: Einsum, shapes: list, optimize: str = "auto", backend: str = "numpy"
                ) -> tuple[tuple[int, ...], Any, int, int]:
    """Shape, callable, FLOP estimate and largest intermediate (elements) of one einsum
    step given the shapes of the slots; ``optimize`` is ``"auto"`` or an opt_einsum
    strategy. The coefficient is applied by the caller."""
    sizes = step.label_sizes(shapes)
    operands, out = step.operands, step.out
    local = [shapes[slot] for slot, _ in operands]
    operands, local, lonely = _sum_lonely_axes(operands, local, out)
    shape, planned, cost, widest = _plan_product(operands, local, out, sizes, optimize, backend)
    if lonely:
        planned = _pre_summed(planned, lonely)
        cost += sum(math.prod(shapes[step.operands[k].slot]) for k in lonely)
    return shape, planned, cost, widest


def _plan_product(operands: tuple, local: list, out: tuple[Index, ...],
                  sizes: Mapping[Index, int], optimize: str, backend: str
                  ) -> tuple[tuple[int, ...], Any, int, int]:
    """The contraction of ``operands`` (their own axes already summed): a symmetric
    product, a sequence of contractions, or one opt_einsum expression."""
    shape = tuple(sizes[i] for i in out)
    symmetric = symmetric_plan(operands, out, sizes) if backend == "numpy" else None
    if symmetric is not None and len(symmetric.half) == 1:  # X^T diag(w) X: always cheaper
        return shape, symmetric, symmetric.flops, max(math.prod(shape), *map(math.prod, local))
    split = _split_plan(operands, local, out, sizes, optimize) if backend == "numpy" else None
    if split is not None:
        return shape, split[0], split[1], max(split[2], math.prod(shape))
    strategy = path_strategy(optimize, [labels for _, labels in operands])
    if strategy is None or any(0 in sh for sh in local):
        # Many factors (path search would dominate) or an empty axis (every path
        # costs nothing and opt_einsum's dynamic programming finds none): contract
        # one connected factor after another into a running result.
        order = connected_order(operands)
        operands = tuple(operands[k] for k in order)
        planned, cost, widest = _sequential(operands, [local[k] for k in order], out, sizes)
        if order != sorted(order):
            planned = _permuted(planned, order)
        return tuple(sizes[i] for i in out), planned, cost, widest
    spec = einsum_spec([labels for _, labels in operands], out)
    op_shapes = local
    path, info = oe.contract_path(spec, *op_shapes, shapes=True, optimize=strategy)
    if symmetric is not None and symmetric.flops <= info.opt_cost:
        return shape, symmetric, symmetric.flops, max(math.prod(shape), *map(math.prod, local))
    direct = _scalars_apart(operands, out, op_shapes, strategy, backend)
    if direct is None and backend == "numpy" and len(operands) > 2:
        direct = pairwise_plan(operands, out, path, sizes)
    if direct is None:
        direct = oe.contract_expression(spec, *op_shapes, optimize=strategy)
    return shape, direct, int(info.opt_cost), int(info.largest_intermediate)


def _linked_groups(operands: tuple, out: tuple[Index, ...]) -> list[list[int]]:
    """The operands (positions) in groups linked by summed indices: two operands are in
    one group where a chain of summed indices joins them. Numbers (0-d) are left out."""
    group_of: dict[Index, int] = {}  # a summed index -> the group holding it
    groups: list[list[int]] = []
    for k, (_, labels) in enumerate(operands):
        if not labels:
            continue
        joined = sorted({group_of[i] for i in labels if i in group_of})
        target = joined[0] if joined else len(groups)
        if not joined:
            groups.append([])
        for g in joined[1:]:  # this operand links groups: merge them into the first
            groups[target] += groups[g]
            groups[g] = []
            for i, h in group_of.items():
                if h == g:
                    group_of[i] = target
        groups[target].append(k)
        for i in labels:
            if i not in out:
                group_of[i] = target
    return [sorted(g) for g in groups if g]


class _Split:
    """A product whose factors fall into groups that share no summed index, one of
    them at least a :class:`~einderiv.numeric.gram.SymmetricProduct`: each group contracted
    on its own, the numbers (``coeff`` and 0-d operands) multiplied into the smallest
    result, the results multiplied (broadcast) into the output by ``combine``. The
    Gauss-Newton block of a two-layer network,
    ``2 W2[a,f] W2[a,g] X[h,b] X[i,b] D[b,f] D[b,g]``, is ``2 (W2^T W2)[f,g]`` times one
    syrk over ``b``, as an expert writes it, not a path through a 3-tensor."""

    scale_after = True  # the coefficient is folded in by with_coefficient

    def __init__(self, parts: list[tuple[Callable[..., Any], list[int]]], scalars: list[int],
                 combine: Callable[..., Any], coeff: float = 1.0):
        self.parts, self.scalars, self.combine, self.coeff = parts, scalars, combine, coeff

    def with_coefficient(self, coeff: float) -> _Split:
        """The same product times ``coeff``."""
        return _Split(self.parts, self.scalars, self.combine, self.coeff * coeff)

    def __call__(self, *ops: Any, backend: str = "numpy") -> Any:
        results = [plan(*(ops[k] for k in ks)) for plan, ks in self.parts]
        if self.coeff != 1.0 or self.scalars:
            factor = self.coeff
            for k in self.scalars:
                factor = factor * ops[k]
            results[-1] = results[-1] * factor  # the smallest
        return self.combine(*results)


def _split_plan(operands: tuple, local: list, out: tuple[Index, ...],
                sizes: Mapping[Index, int], optimize: str
                ) -> tuple[_Split, int, int] | None:
    """A :class:`_Split` (with its FLOP estimate and largest array) for a product of
    two or more groups (:func:`_linked_groups`) one of which is a symmetric product;
    None otherwise."""
    groups = _linked_groups(operands, out)
    if len(groups) < 2:
        return None
    own = [tuple(i for i in out if any(i in operands[k][1] for k in g)) for g in groups]
    symmetric = [symmetric_plan(tuple(operands[k] for k in g), labels, sizes, transpose=False)
                 if len(g) > 1 else None for g, labels in zip(groups, own)]
    if not any(symmetric):
        return None
    parts: list[tuple[int, Callable[..., Any], list[int], tuple[Index, ...]]] = []
    flops = largest = 0
    for group, labels, sym in zip(groups, own, symmetric):
        if sym is not None:  # in its own axis order: one transposed view at the end
            plan, cost, widest, labels = sym, sym.flops, 0, sym.labels
        else:
            _, plan, cost, widest = _plan_product(tuple(operands[k] for k in group),
                                                  [local[k] for k in group], labels,
                                                  sizes, optimize, "numpy")
        size = math.prod(sizes[i] for i in labels)
        parts.append((size, plan, group, labels))
        flops += cost + math.prod(sizes[i] for i in out)
        largest = max(largest, widest, size)
    parts.sort(key=lambda p: -p[0])  # largest first: it takes the products in place
    # Only a group of two or more factors is a new array: a lone factor's "product" is
    # that operand as it came (an input, or a transposed view of one), never written.
    combine = pairwise_plan(tuple((None, labels) for *_, labels in parts), out,
                             [(0, 1)] * (len(parts) - 1), sizes,
                             made=[len(group) > 1 for _, _, group, _ in parts])
    if combine is None:  # pragma: no cover - every pair is a broadcast product
        return None
    scalars = [k for k, (_, labels) in enumerate(operands) if not labels]
    return _Split([(plan, group) for _, plan, group, _ in parts], scalars, combine), flops, \
        largest


def _sequential(operands: tuple, op_shapes: list, out: tuple[Index, ...],
                sizes: Mapping[Index, int]) -> tuple[Callable[..., Any], int, int]:
    """Contract the operands in order into one running result, one opt_einsum
    expression (BLAS where it can) per step, each index summed as soon as no later
    operand holds it. Linear in the number of operands, where opt_einsum's own
    handling of an explicit path is quadratic. Returns the callable, its FLOP
    estimate and its largest intermediate (elements)."""
    later: dict[Index, int] = {}
    for _, labels in operands:
        for lab in dict.fromkeys(labels):
            later[lab] = later.get(lab, 0) + 1
    wanted = set(out)
    steps: list[Any] = []
    acc: tuple[Index, ...] = ()
    acc_shape: tuple[int, ...] = ()
    flops = largest = 0
    for k, (_, labels) in enumerate(operands):
        for lab in dict.fromkeys(labels):
            later[lab] -= 1
        last = k == len(operands) - 1
        seen = tuple(dict.fromkeys(acc + labels))
        new = out if last else tuple(i for i in seen if later[i] or i in wanted)
        letters = {lab: oe.get_symbol(n) for n, lab in enumerate(seen)}

        def word(labs: tuple[Index, ...], letters: dict[Index, str] = letters) -> str:
            return "".join(letters[i] for i in labs)
        if k == 0:
            spec, shapes = f"{word(labels)}->{word(new)}", [op_shapes[0]]
        else:
            spec, shapes = f"{word(acc)},{word(labels)}->{word(new)}", [acc_shape, op_shapes[k]]
        steps.append(oe.contract_expression(spec, *shapes))
        flops += math.prod(sizes[i] for i in seen) * (1 if k == 0 else 2)
        acc, acc_shape = new, tuple(sizes[i] for i in new)
        largest = max(largest, math.prod(acc_shape))

    def run(*ops: Any, backend: str = "numpy") -> Any:
        result = steps[0](ops[0], backend=backend)
        for step, op in zip(steps[1:], ops[1:]):
            result = step(result, op, backend=backend)
        return result
    return run, flops, largest


def _sum_lonely_axes(operands: tuple, shapes: list, out: tuple[Index, ...]
                     ) -> tuple[tuple, list, dict[int, tuple[int, ...]]]:
    """Indices that occur once in the whole product and not in the output are summed
    inside their own operand first (``y[a] * p[c] -> [c]`` is ``sum(y) * p``, not an
    outer product): the operands and shapes after that, and the axes summed per
    operand position."""
    count: dict[Index, int] = {}
    for _, labels in operands:
        for lab in labels:
            count[lab] = count.get(lab, 0) + 1
    kept = set(out)
    lonely: dict[int, tuple[int, ...]] = {}
    new_ops, new_shapes = list(operands), list(shapes)
    for k, (slot, labels) in enumerate(operands):
        axes = tuple(a for a, lab in enumerate(labels) if count[lab] == 1 and lab not in kept)
        if axes:
            lonely[k] = axes
            # a new value: another occurrence of the slot is not the same array any more
            new_ops[k] = ((slot, axes), tuple(lab for a, lab in enumerate(labels)
                                              if a not in axes))
            new_shapes[k] = tuple(n for a, n in enumerate(shapes[k]) if a not in axes)
    return tuple(new_ops), new_shapes, lonely


def _pre_summed(planned: Callable[..., Any], lonely: Mapping[int, tuple[int, ...]]
                ) -> Callable[..., Any]:
    def run(*ops: Any, backend: str = "numpy") -> Any:
        ops_list = list(ops)
        for k, axes in lonely.items():
            ops_list[k] = ops_list[k].sum(axis=axes)
        return planned(*ops_list, backend=backend)
    run.scale_after = getattr(planned, "scale_after", False)  # type: ignore[attr-defined]
    inner = getattr(planned, "template", None)
    if inner is not None and "{f}" not in inner:  # sum(y) * p as one expression
        n = 1 + max(map(int, re.findall(r"\{(\d+)\}", inner)))
        run.template = inner.format(*(  # type: ignore[attr-defined]
            f"{{{k}}}.sum(axis={lonely[k]!r})" if k in lonely else f"{{{k}}}"
            for k in range(n)))
    return run


def _permuted(planned: Callable[..., Any], order: list[int]) -> Callable[..., Any]:
    def run(*ops: Any, backend: str = "numpy") -> Any:
        return planned(*(ops[k] for k in order), backend=backend)
    run.scale_after = getattr(planned, "scale_after", False)  # type: ignore[attr-defined]
    return run


def _scalars_apart(operands: tuple, out: tuple[Index, ...], shapes: list, optimize: Any,
                   backend: str) -> Callable[..., Any] | None:
    """Scalar (0-d) operands multiply the result; the rest is contracted by the BLAS
    fast path where it applies. None: use one opt_einsum expression for everything."""
    if backend != "numpy":
        return None
    scalar_at = [k for k, (_, labels) in enumerate(operands) if not labels]
    rest = tuple(op for k, op in enumerate(operands) if k not in scalar_at)
    if not rest:
        return None
    inner = matmul_plan(rest, out) or scaled_matrix_plan(rest, out) or outer_plan(rest, out)
    if inner is None and len(rest) == 1 and rest[0][1] == out:
        inner = identity_plan  # one array times numbers: nothing to contract
    if inner is None:
        if not scalar_at:
            return None
        spec = einsum_spec([labels for _, labels in rest], out)
        rest_shapes = [sh for k, sh in enumerate(shapes) if k not in scalar_at]
        inner = oe.contract_expression(spec, *rest_shapes, optimize=optimize)
    if not scalar_at:
        return inner
    keep = [k for k in range(len(operands)) if k not in scalar_at]
    # The numbers multiply the smallest array involved: an operand or the result.
    sizes = {lab: n for (_, labels), sh in zip(operands, shapes) for lab, n in zip(labels, sh)}
    smallest = min(range(len(keep)), key=lambda j: math.prod(shapes[keep[j]]))
    into = smallest if math.prod(shapes[keep[smallest]]) < math.prod(sizes[i] for i in out) \
        else None

    def run(*ops: Any, backend: str = "numpy") -> Any:
        factor = ops[scalar_at[0]]
        for k in scalar_at[1:]:
            factor = factor * ops[k]
        arrays = [ops[k] for k in keep]
        if into is None:
            return inner(*arrays, backend=backend) * factor
        arrays[into] = arrays[into] * factor
        return inner(*arrays, backend=backend)
    inner_template = getattr(inner, "template", None)
    if inner_template is not None and "{f}" not in inner_template:  # as one expression
        factor = " * ".join(f"{{{k}}}" for k in scalar_at)
        args = [f"{{{k}}}" for k in keep]
        if into is None:
            run.template = f"({inner_template.format(*args)}) * {factor}"  # type: ignore
        else:
            args[into] = f"({args[into]} * {factor})"
            run.template = inner_template.format(*args)  # type: ignore[attr-defined]
    return run


