"""Products run as direct numpy calls, without opt_einsum's dispatch: ``a @ b`` on
transposed views (BLAS), a matrix scaled along its axes before one matrix-vector
product, broadcast multiplies, outer products, and a contraction path run pair by pair
with the plainest call for each pair.

Each ``*_plan`` function returns a callable ``run(*operands, backend="numpy")`` or
None where its pattern does not apply; a callable with a ``template`` attribute
(``"{0} @ {1}"``) can be written as that expression in straight-line code
(:mod:`einderiv.numeric.straightline`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import opt_einsum as oe

from ..core.ir import Index
from .paths import einsum_spec

__all__ = ["pairwise_plan", "matmul_plan", "scaled_matrix_plan", "outer_plan", "identity_plan",
           "outer", "writable", "OUTER_EINSUM_MIN"]


def pairwise_plan(operands: tuple, out: tuple[Index, ...], path: list[tuple[int, ...]],
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
        product = matmul_plan(((0, la), (1, lb)), natural)
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


def identity_plan(op: Any, backend: str = "numpy") -> Any:
    return op


identity_plan.template = "{0}"  # type: ignore[attr-defined]


def matmul_plan(operands: tuple, out: tuple[Index, ...]) -> Callable[..., Any] | None:
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
        t: dict[Any, str] = {None: "", _transposed: ".T"}
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


def scaled_matrix_plan(operands: tuple, out: tuple[Index, ...]) -> Callable[..., Any] | None:
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


def outer_plan(operands: tuple, out: tuple[Index, ...]) -> Callable[..., Any] | None:
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
