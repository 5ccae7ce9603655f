"""Products that are Gram matrices, run as one symmetric BLAS product (syrk).

A product whose factors pair up into two halves equal up to a renaming of their free
indices, ``Z[F1,S] Z[F2,S] w[S]`` summed over the shared indices ``S`` (``F2`` the
renamed ``F1``), is ``M diag(w) M^T`` with ``M`` the half ``Z`` flattened to a matrix
(rows ``F1``, columns ``S``). Where ``w >= 0`` that is ``N N^T`` with
``N = M sqrt(w)``, which numpy hands to BLAS syrk: half the work of a general
product, and it never forms the product's full index space. Two products of the
benchmarks are of this kind:

* ``X[a,c] X[a,d] w[a]``, the Hessian ``X^T diag(w) X`` of every generalised linear
  model (halves ``X[a,c]`` and ``X[a,d]``);
* ``X[h,b] D[b,f] X[i,b] D[b,g]``, the Gauss-Newton block of a two-layer network's
  Hessian (halves ``X[h,b] D[b,f]`` and ``X[i,b] D[b,g]``; ``M`` is (f h) x b).

:func:`symmetric_plan` finds the halves; :class:`SymmetricProduct` runs them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..core.ir import Index

__all__ = ["SymmetricProduct", "symmetric_plan", "weighted_gram"]

# An operand of the product prepared for broadcasting: (position, transpose or None,
# reshape or None) that puts its axes in a target order, with 1 for the axes it lacks.
Prepared = tuple[int, "tuple[int, ...] | None", "tuple[int, ...] | None"]


def weighted_gram(m: Any, w: Any) -> Any:
    """``m diag(w) m^T`` for a matrix ``m`` (rows x summed) and weights ``w`` along
    its columns (None: all ones): one syrk on ``m sqrt(w)`` where ``w >= 0`` and both
    are real (checked at run time, O(columns)), otherwise ``(m w) m^T``."""
    if w is None:
        return m @ m.T
    if np.isrealobj(w) and np.isrealobj(m) and w.min() >= 0:
        z = m * np.sqrt(w)
        return z @ z.T
    return (m * w) @ m.T


def _product(ops: tuple, prepared: list[Prepared]) -> Any:
    """The broadcast product of the prepared operands (None for none)."""
    result = None
    for k, perm, shape in prepared:
        a = ops[k]
        if perm is not None:
            a = a.transpose(perm)
        if shape is not None:
            a = a.reshape(shape)
        result = a if result is None else result * a
    return result


class SymmetricProduct:
    """A product ``Z[F1,S] Z[F2,S] w[S] c`` (see the module's text) as one symmetric
    matrix product. ``half``, ``weights``: the operands of one half and the weights,
    prepared for the axis orders ``F1 + S`` and ``S``; ``scalars``: positions of 0-d
    operands (numbers multiply the result, never ``w``, so ``w >= 0`` survives);
    ``rows``, ``summed``: the sizes of F1 and S; ``perm``: the Gram matrix, unflattened
    to ``F1 + F2``, transposed to the axes ``labels`` of the result."""

    scale_after = True  # a coefficient multiplies the result, never w (keeps w >= 0)

    def __init__(self, half: list[Prepared], weights: list[Prepared], scalars: list[int],
                 rows: tuple[int, ...], summed: tuple[int, ...],
                 perm: tuple[int, ...] | None, labels: tuple[Index, ...]):
        self.half, self.weights, self.scalars = half, weights, scalars
        self.rows, self.summed, self.perm, self.labels = rows, summed, perm, labels
        self.flops = math.prod(summed) * math.prod(rows) * (math.prod(rows) + len(half))

    def __call__(self, *ops: Any, backend: str = "numpy") -> Any:
        n_rows, n_summed = math.prod(self.rows), math.prod(self.summed)
        m = _product(ops, self.half).reshape(n_rows, n_summed)
        w = _product(ops, self.weights)
        if w is not None and w.shape != self.summed:  # broadcast_to costs ~10 us: only if needed
            w = np.broadcast_to(w, self.summed)
        if w is not None and w.ndim != 1:
            w = w.reshape(n_summed)
        result = weighted_gram(m, w)
        if len(self.rows) != 1:
            result = result.reshape(self.rows + self.rows)
        if self.perm is not None:
            result = result.transpose(self.perm)
        for k in self.scalars:
            result = result * ops[k]
        return result


def _prepare(k: int, labels: tuple[Index, ...], target: tuple[Index, ...],
             sizes: Mapping[Index, int]) -> Prepared:
    """Operand ``k`` (axes ``labels``) aligned to the axis order ``target``."""
    present = [i for i in target if i in labels]
    perm = tuple(labels.index(i) for i in present)
    shape = tuple(sizes[i] if i in labels else 1 for i in target)
    return (k, None if perm == tuple(range(len(perm))) else perm,
            None if len(present) == len(target) else shape)


def symmetric_plan(operands: tuple, out: tuple[Index, ...], sizes: Mapping[Index, int],
                   transpose: bool = True) -> SymmetricProduct | None:
    """A :class:`SymmetricProduct` for the product of ``operands`` (``(slot, labels)``
    each) with output axes ``out``, or None where its factors do not pair up: each
    factor that carries a free index must occur exactly twice (the same slot), the
    two occurrences equal up to a renaming ``sigma`` of free indices that is the same
    for every pair and keeps the summed ones; one of each pair goes to the first
    half, whose free indices ``F1`` and their renamings ``F2 = sigma(F1)`` make up
    ``out``. Factors with summed indices only are the weights ``w``; 0-d ones numbers.
    ``transpose=False``: the result's axes stay in the product's own order, ``F1`` (as
    they come in ``out``) then ``F2``: the plan's ``labels``."""
    free = set(out)
    summed = {i for _, labels in operands for i in labels} - free
    if not summed:
        return None  # an outer product (p p^T): np.multiply.outer, not a product over nothing
    if any(len(set(labels)) < len(labels) for _, labels in operands):
        return None  # a diagonal (M[a,a]): the einsum takes it
    scalars = [k for k, (_, labels) in enumerate(operands) if not labels]
    weights = [k for k, (_, labels) in enumerate(operands) if labels and set(labels) <= summed]
    by_slot: dict[int, list[int]] = {}
    for k, (slot, _) in enumerate(operands):
        if k not in scalars and k not in weights:
            by_slot.setdefault(slot, []).append(k)
    if not by_slot or any(len(ks) != 2 for ks in by_slot.values()):
        return None
    sigma: dict[Index, Index] = {}
    f1: list[Index] = []
    half: list[int] = []
    for first, second in by_slot.values():
        l1, l2 = operands[first][1], operands[second][1]
        if len(l1) != len(l2) or len(set(l1)) != len(l1) or len(set(l2)) != len(l2):
            return None  # a diagonal inside a factor
        for x, y in zip(l1, l2):
            if (x == y) != (x in summed) or (x != y and (y in summed or
                                                         sigma.setdefault(x, y) != y or
                                                         sigma.setdefault(y, x) != x)):
                return None  # a free index kept, a summed one renamed, or two renamings
        if any(sigma[i] in f1 for i in l1 if i in free):
            first, l1 = second, l2  # this pair's other factor belongs to the first half
        half.append(first)
        f1 += [i for i in l1 if i in free and i not in f1]
    f2 = [sigma[i] for i in f1]
    if set(f1) & set(f2) or set(f1) | set(f2) != free or \
            not summed <= {i for k in half for i in operands[k][1]}:
        return None
    rows = tuple(i for i in out if i in f1)  # F1 in the order of the output
    s_order = tuple(sorted(summed, key=lambda i: min(
        (k, labels.index(i)) for k, (_, labels) in enumerate(operands) if i in labels)))
    natural = rows + tuple(sigma[i] for i in rows)
    perm = tuple(natural.index(i) for i in out)
    k = len(rows)
    if perm == tuple(range(k, 2 * k)) + tuple(range(k)):
        perm = tuple(range(2 * k))  # F2 then F1: the Gram matrix is its own transpose
    transpose = transpose and perm != tuple(range(len(perm)))
    return SymmetricProduct(
        [_prepare(k, operands[k][1], rows + s_order, sizes) for k in half],
        [_prepare(k, operands[k][1], s_order, sizes) for k in weights], scalars,
        tuple(sizes[i] for i in rows), tuple(sizes[i] for i in s_order),
        perm if transpose else None, out if transpose else natural)
