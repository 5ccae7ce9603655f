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
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import opt_einsum as oe

from ..core.ir import Index
from ..errors import EvaluationError
from .gram import symmetric_plan

__all__ = ["plan_einsum", "path_strategy", "connected_order", "einsum_spec", "writable",
           "MANY_FACTORS"]


def plan_einsum(args: tuple, shapes: list, optimize: str = "auto", backend: str = "numpy"
                ) -> tuple[tuple[int, ...], Any, int, int]:
    """Shape, callable, FLOP estimate and largest intermediate (elements) of one einsum
    step (``args``: coefficient, ``(slot, labels)`` operands, output labels, factor
    names for messages) given the shapes of the slots; ``optimize`` is ``"auto"`` or an
    opt_einsum strategy. The coefficient is applied by the caller."""
    _, operands, out, names = args
    sizes: dict[Index, int] = {}
    where: dict[Index, str] = {}
    for k, (slot, labels) in enumerate(operands):
        if len(labels) != len(shapes[slot]):  # pragma: no cover - lowering bug guard
            raise EvaluationError(f"rank mismatch in a contraction: {labels} vs {shapes[slot]}")
        name = names[k] if k < len(names) else "a factor"
        for lab, n in zip(labels, shapes[slot]):
            if sizes.setdefault(lab, n) != n:
                raise EvaluationError(
                    f"index {lab!r} has size {sizes[lab]} in {where[lab]} but size {n} "
                    f"in {name}; check the shapes of the arrays")
            where.setdefault(lab, name)
    local = [shapes[slot] for slot, _ in operands]
    operands, local, lonely = _sum_lonely_axes(operands, local, out)
    shape, planned, cost, widest = _plan_product(operands, local, out, sizes, optimize, backend)
    if lonely:
        planned = _pre_summed(planned, lonely)
        cost += sum(math.prod(shapes[args[1][k][0]]) for k in lonely)
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
    planned = _scalars_apart(operands, out, op_shapes, strategy, backend)
    if planned is None and backend == "numpy" and len(operands) > 2:
        planned = _pairwise_plan(operands, out, path, sizes)
    if planned is None:
        planned = oe.contract_expression(spec, *op_shapes, optimize=strategy)
    return shape, planned, int(info.opt_cost), int(info.largest_intermediate)


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
    combine = _pairwise_plan(tuple((None, labels) for *_, labels in parts), out,
                             [(0, 1)] * (len(parts) - 1), sizes,
                             made=[len(group) > 1 for _, _, group, _ in parts])
    if combine is None:  # pragma: no cover - every pair is a broadcast product
        return None
    scalars = [k for k, (_, labels) in enumerate(operands) if not labels]
    return _Split([(plan, group) for _, plan, group, _ in parts], scalars, combine), flops, \
        largest


#: Above this many factors in one product, "auto" skips opt_einsum's path search.
MANY_FACTORS = 40
#: Up to this many operands, dynamic programming plans every product (see path_strategy).
DP_FACTORS = 8


def einsum_spec(operands: list[tuple[Index, ...]], out: tuple[Index, ...]) -> str:
    """The einsum subscripts for operands and output given by index labels, one
    letter per label in order of first appearance: ``[("i","k"), ("k","j")], ("i","j")``
    -> ``"ab,bc->ac"``."""
    symbols: dict[Index, str] = {}
    for labels in (*operands, out):
        for i in labels:
            if i not in symbols:
                symbols[i] = oe.get_symbol(len(symbols))
    return ",".join("".join(symbols[i] for i in labels) for labels in operands) + \
        "->" + "".join(symbols[i] for i in out)


def path_strategy(requested: str, labels: Sequence[tuple[Index, ...]]) -> Any:
    """opt_einsum's strategy for one product of operands with these ``labels``, or None
    for :func:`connected_order`. ``"auto"``: exhaustive search for a few operands;
    dynamic programming (optimal, and fast for chains such as x^T A1 ... A16 x, which
    it runs as matrix-vector products) up to DP_FACTORS operands, and beyond that for
    products that link up as chains; greedy for the others; beyond MANY_FACTORS, path
    search itself would dominate (greedy is quadratic). Dynamic programming visits every
    connected set of operands, exponentially many where many operands share an index:
    16 vectors on one index took 195 s to plan (issue 21). Any other value is passed
    to opt_einsum as it is."""
    if requested != "auto":
        return requested
    n = len(labels)
    if n <= 4:
        return "optimal"
    if n > MANY_FACTORS:
        return None
    return "dp" if n <= DP_FACTORS or _chain_like(labels) else "greedy"


def _chain_like(labels: Sequence[tuple[Index, ...]]) -> bool:
    """Whether the operands link up as chains or rings: each index on at most two
    operands, each operand linked to at most two others. Then there are about n**2
    connected sets of operands for dynamic programming to visit (a star or a tree
    has exponentially many)."""
    where: dict[Index, set[int]] = {}
    for k, labs in enumerate(labels):
        for i in labs:
            where.setdefault(i, set()).add(k)
    links: dict[int, set[int]] = {}
    for ks in where.values():
        if len(ks) > 2:
            return False
        if len(ks) == 2:
            a, b = ks
            links.setdefault(a, set()).add(b)
            links.setdefault(b, set()).add(a)
    return all(len(linked) <= 2 for linked in links.values())


def connected_order(operands: tuple) -> list[int]:
    """An order of the factors in which each one, where it can, shares an index with
    those before it: breadth first through each group of factors linked by indices,
    starting from the factor with the fewest axes (a vector ends a chain, so a chain
    runs as matrix-vector products). Groups with nothing in common follow each other,
    so an outer product of groups is formed only once each group is contracted."""
    holders: dict[Index, list[int]] = {}
    for k, (_, labels) in enumerate(operands):
        for lab in dict.fromkeys(labels):
            holders.setdefault(lab, []).append(k)
    seen = [False] * len(operands)
    order: list[int] = []
    for start in sorted(range(len(operands)), key=lambda k: (len(operands[k][1]), k)):
        if seen[start]:
            continue
        seen[start] = True
        queue = [start]
        for k in queue:  # the list grows while it is walked: breadth first
            order.append(k)
            for lab in operands[k][1]:
                for j in holders.pop(lab, ()):  # each index is followed once
                    if not seen[j]:
                        seen[j] = True
                        queue.append(j)
    return order


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
    inner = _matmul_plan(rest, out) or _scaled_matrix_plan(rest, out) or _outer_plan(rest, out)
    if inner is None and len(rest) == 1 and rest[0][1] == out:
        inner = _identity  # one array times numbers: nothing to contract
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


def _pairwise_plan(operands: tuple, out: tuple[Index, ...], path: list[tuple[int, ...]],
                   sizes: Mapping[Index, int], made: bool | list[bool] = False
                   ) -> Callable[..., Any] | None:
    """opt_einsum's contraction path run pair by pair, each pair by the plainest
    numpy call for it: ``@`` on transposed views where it is a matrix product (BLAS
    reads a transposed view without a copy, where ``tensordot`` reshapes it into a
    copy), a broadcast multiply where nothing is summed, a two-operand opt_einsum
    expression otherwise. None where the path is not all pairs. ``made``: which
    operands (one flag each, or one for all) are new arrays of the caller's, which an
    element-wise product may overwrite; the others (inputs, views of inputs) are
    never written."""
    labels = [tuple(lab) for _, lab in operands]
    # made here (or by the caller): may take a result in place
    owned = [made] * len(labels) if isinstance(made, bool) else list(made)
    steps: list[tuple[int, int, Callable[..., Any]]] = []
    for pair in path:
        if len(pair) != 2:
            return None
        i, j = sorted(pair)
        la, lb = labels[i], labels[j]
        rest = [lab for k, lab in enumerate(labels) if k not in (i, j)]
        needed = set(out).union(*rest)
        keep = tuple(dict.fromkeys(x for x in la + lb if x in needed))
        fn, result = _pair_plan(la, lb, keep, sizes, owned[i])
        steps.append((i, j, fn))
        labels = rest + [result]
        owned = [m for k, m in enumerate(owned) if k not in (i, j)] + [True]
    (final,) = labels
    if set(final) != set(out) or len(final) != len(out):  # pragma: no cover - path guard
        return None
    perm = _view(tuple(final.index(x) for x in out))

    def run(*ops: Any, backend: str = "numpy") -> Any:
        arrays = list(ops)
        for i, j, fn in steps:
            b = arrays.pop(j)
            a = arrays.pop(i)
            arrays.append(fn(a, b))
        (r,) = arrays
        return r if perm is None else perm(r)
    return run


def _pair_plan(la: tuple[Index, ...], lb: tuple[Index, ...], keep: tuple[Index, ...],
               sizes: Mapping[Index, int], a_made: bool = False
               ) -> tuple[Callable[..., Any], tuple[Index, ...]]:
    """One pair of a contraction path: the callable ``fn(a, b)`` and its result's
    labels (a subset of ``la + lb``: those in ``keep``). ``a_made``: ``a`` is an
    intermediate of this product, which an element-wise product may overwrite."""
    distinct = len(set(la)) == len(la) and len(set(lb)) == len(lb)
    shared = set(la) & set(lb)
    if distinct and len(la) <= 2 and len(lb) <= 2 and len(shared) == 1 \
            and not shared & set(keep) and set(keep) == (set(la) | set(lb)) - shared:
        (c,) = shared
        natural = tuple(x for x in la if x != c) + tuple(x for x in lb if x != c)
        product = _matmul_plan(((0, la), (1, lb)), natural)
        assert product is not None
        return (lambda a, b: product(a, b)), natural
    if distinct and set(keep) == set(la) | set(lb):  # nothing summed: a broadcast multiply
        result = la + tuple(x for x in lb if x not in la)
        b_view = _view(tuple(lb.index(x) for x in result if x in lb))
        expand_a = (Ellipsis,) + (None,) * (len(result) - len(la))
        expand_b = tuple(slice(None) if x in lb else None for x in result)
        if a_made and result == la:  # into a's array: one large temporary fewer

            def into_a(a: Any, b: Any) -> Any:
                b = (b if b_view is None else b_view(b))[expand_b]
                if writable(a) and a.dtype == b.dtype:
                    return np.multiply(a, b, out=a)
                return a * b
            return into_a, result
        if lb and not shared:
            return outer, result
        return (lambda a, b: a[expand_a] * (b if b_view is None else b_view(b))[expand_b]), \
            result
    expr = oe.contract_expression(einsum_spec([la, lb], keep), tuple(sizes[x] for x in la),
                                  tuple(sizes[x] for x in lb))
    return (lambda a, b: expr(a, b)), keep


def writable(x: Any) -> bool:
    """Whether ``x`` can take a floating result in place (a broadcast view cannot)."""
    return isinstance(x, np.ndarray) and x.flags.writeable and x.dtype.kind in "fc"


def _identity(op: Any, backend: str = "numpy") -> Any:
    return op


_identity.template = "{0}"  # type: ignore[attr-defined]


def _matmul_plan(operands: tuple, out: tuple[Index, ...]) -> Callable[..., Any] | None:
    """A direct BLAS call for the commonest products: two operands of at most two
    axes, one contracted index, no batch or diagonal indices (matrix-vector, matrix-
    matrix, ``X^T r``). ``a @ b`` on transposed views needs no copy, and numpy runs
    ``X.T @ X`` as the symmetric syrk. Anything else goes to opt_einsum."""
    if len(operands) != 2:
        return None
    (_, la), (_, lb) = operands
    if len(la) > 2 or len(lb) > 2 or len(set(la)) != len(la) or len(set(lb)) != len(lb):
        return None
    shared = set(la) & set(lb)
    if len(shared) != 1 or shared & set(out):
        return None
    (c,) = shared
    ka = tuple(i for i in la if i != c)
    kb = tuple(i for i in lb if i != c)
    if set(ka + kb) != set(out) or len(ka + kb) != len(out):
        return None
    ta = ka + (c,)  # a as (kept, contracted)
    tb = (c,) + kb  # b as (contracted, kept)
    perm_a = tuple(la.index(i) for i in ta)
    perm_b = tuple(lb.index(i) for i in tb)
    natural = ka + kb
    perm_out = tuple(natural.index(i) for i in out)
    view_a, view_b, view_out = _view(perm_a), _view(perm_b), _view(perm_out)
    if view_a is None and view_b is None and view_out is None:
        return _matmul  # per-call overhead matters for small operands

    def run(a: Any, b: Any, backend: str = "numpy") -> Any:
        r = (a if view_a is None else view_a(a)) @ (b if view_b is None else view_b(b))
        return r if view_out is None else view_out(r)
    if view_out is None and view_b is None and view_a is _transposed and len(lb) == 1:
        run.template = "{1} @ {0}"  # type: ignore[attr-defined]  # x A, not A^T x: no view
    elif all(v in (None, _transposed) for v in (view_a, view_b, view_out)):
        t = {None: "", _transposed: ".T"}
        run.template = f"{{0}}{t[view_a]} @ {{1}}{t[view_b]}"  # type: ignore[attr-defined]
        if view_out is not None:
            run.template = f"({run.template}).T"  # type: ignore[attr-defined]
    return run


def _matmul(a: Any, b: Any, backend: str = "numpy") -> Any:
    return a @ b


_matmul.template = "{0} @ {1}"  # type: ignore[attr-defined]  # as straight-line code


def _view(perm: tuple[int, ...]) -> Callable[[Any], Any] | None:
    """The transposed view that puts axes in the order ``perm`` (None: as they are)."""
    if perm == tuple(range(len(perm))):
        return None
    if perm == (1, 0):
        return _transposed
    return lambda a: a.transpose(perm)


def _transposed(a: Any) -> Any:
    return a.T


def _scaled_matrix_plan(operands: tuple, out: tuple[Index, ...]) -> Callable[..., Any] | None:
    """One matrix ``M[p,q]`` times vectors along ``p`` and ``q`` (the gradients of
    generalised linear models: ``X[a,c] y[a] s[a] -> [c]`` is ``(y s) @ X``): the
    vectors along each axis are multiplied first, then one BLAS matrix-vector
    product, or an element-wise scaling when both axes stay. None otherwise."""
    mats = [k for k, (_, labels) in enumerate(operands) if len(labels) != 1]
    if len(mats) != 1 or len(operands) < 2:
        return None
    m_labels = operands[mats[0]][1]
    if len(m_labels) != 2 or m_labels[0] == m_labels[1] or not set(out) <= set(m_labels):
        return None
    along: dict[Index, list[int]] = {m_labels[0]: [], m_labels[1]: []}
    for k, (_, labels) in enumerate(operands):
        if k != mats[0]:
            if labels[0] not in along:
                return None
            along[labels[0]].append(k)
    p, q = m_labels
    if (p not in out and not along[p]) or (q not in out and not along[q]):
        return None  # an index summed by the matrix alone: not this pattern
    m_at = mats[0]

    def vector(ops: tuple, ks: list[int]) -> Any:
        v = ops[ks[0]]
        for k in ks[1:]:
            v = v * ops[k]
        return v

    def run(*ops: Any, backend: str = "numpy") -> Any:
        m = ops[m_at]
        vp = vector(ops, along[p]) if along[p] else None
        vq = vector(ops, along[q]) if along[q] else None
        if not out:
            return vp @ (m @ vq)
        if out == (p,) or out == (q,):
            keep = out[0]
            r = m @ vq if keep == p else vp @ m
            scale = vp if keep == p else vq
            return r if scale is None else r * scale
        r = m
        if vp is not None:
            r = r * vp[:, None]
        if vq is not None:
            r = r * vq
        return r if out == (p, q) else r.T
    return run


def _outer_plan(operands: tuple, out: tuple[Index, ...]) -> Callable[..., Any] | None:
    """An outer product of vectors with distinct indices (``p[c] q[d] -> [d,c]``, the
    ``p p^T`` of a softmax Hessian) as ``np.multiply.outer`` in the output's order."""
    if len(operands) < 2 or any(len(labels) != 1 for _, labels in operands):
        return None
    labels = [labels[0] for _, labels in operands]
    if len(set(labels)) != len(labels) or set(labels) != set(out) or len(out) != len(labels):
        return None
    order = [labels.index(i) for i in out]  # operand positions in output order

    def run(*ops: Any, backend: str = "numpy") -> Any:
        result = ops[order[0]]
        for k in order[1:]:
            result = outer(result, ops[k])
        return result
    return run


#: Outer products of at least this many entries run as ``np.einsum``.
OUTER_EINSUM_MIN = 4096


def outer(a: Any, b: Any) -> Any:
    """The outer product of two numpy arrays, ``a``'s axes then ``b``'s. numpy's
    broadcast multiply (``np.multiply.outer``) runs a 1000 x 1000 ``p p^T`` at 1.3-2x
    the time of ``np.einsum``'s outer-product loop (measured on a 2-core AMD EPYC,
    numpy 2.4.6), which is then about as fast as a copy of the result; below
    :data:`OUTER_EINSUM_MIN` entries the ufunc's smaller call overhead wins."""
    if type(a) is not np.ndarray or type(b) is not np.ndarray or a.dtype != b.dtype \
            or a.size * b.size < OUTER_EINSUM_MIN or a.ndim + b.ndim > 52:
        return np.multiply.outer(a, b)
    axes = list(range(a.ndim + b.ndim))
    return np.einsum(a, axes[:a.ndim], b, axes[a.ndim:], axes)
