"""Contraction orders: einsum subscripts, opt_einsum's path strategy per product, and
the order of :func:`connected_order` for products too large for a path search.

Used by the planner of each product (:mod:`einderiv.numeric.contraction`) and by code
export (:mod:`einderiv.numeric.code_writer`), so exported code contracts in the order
compile does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import opt_einsum as oe

from ..core.ir import Index

__all__ = ["einsum_spec", "path_strategy", "connected_order", "MANY_FACTORS", "DP_FACTORS"]


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
