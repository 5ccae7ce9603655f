"""Shapes: a ``shapes`` mapping validated, and an expression checked against it.

Sizes are not part of an expression (:mod:`einderiv.core.ir`); here they are checked
scope by scope: a product's summed indices are its own, the argument of
inv/det/logdet is closed, a delta is square.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import cast

from ..errors import ShapeError
from .named import Named, body_of, use_labels
from .ir import (Delta, Det, Expr, Index, Inv, LogDet, Product, Tensor, bound_indices, children,
                 iter_tensors, walk)

__all__ = ["Shape", "normalize_shapes", "check_shapes"]

#: A shape: sizes that are ints or size names (``("n", 3)``).
Shape = tuple[int | str, ...]


def normalize_shapes(shapes: Mapping[str, object] | None) -> dict[str, Shape]:
    """Validate a ``shapes`` mapping: name -> tuple of ints or size names (an int or
    a size name alone is a vector; ``()`` a scalar)."""
    if shapes is None:
        return {}
    if not isinstance(shapes, Mapping):
        raise ShapeError(f"shapes must be a mapping of names to shapes, got {type(shapes).__name__}")
    result: dict[str, Shape] = {}
    for name, shape in shapes.items():
        if isinstance(shape, (int, str)) and not isinstance(shape, bool):
            shape = (shape,)
        try:
            # tuple() is itself the check: anything it cannot iterate raises TypeError
            # (an object with only __getitem__ iterates, so no isinstance(Iterable) test).
            dims = tuple(cast("Iterable[object]", shape))
        except TypeError:
            raise ShapeError(f"shape of {name!r} must be a tuple of sizes, got {shape!r}") from None
        sizes: list[int | str] = []
        for d in dims:
            if isinstance(d, bool) or not isinstance(d, (int, str)) or (isinstance(d, int) and d < 0):
                raise ShapeError(
                    f"shape of {name!r} has the size {d!r}: sizes are non-negative integers "
                    "or size names such as 'n'")
            if isinstance(d, str) and not d.isidentifier():
                raise ShapeError(f"shape of {name!r} has the size name {d!r}, not an identifier")
            sizes.append(d)
        result[str(name)] = tuple(sizes)
    return result


def check_shapes(e: Expr, shapes: Mapping[str, Shape]) -> dict[Index, int | str]:
    """Check ``e`` against ``shapes``; return the size of every index that has one.

    Each tensor's rank must match its shape, and an index must have one size in its
    scope. A product's summed indices are its own (``x[i]*sum[i](y[i])``: the summed
    ``i`` is another index than the free one, and may have another size); so is the
    argument of inv/det/logdet, which must be square, and ``inv(M)[i,j]`` gives ``i``
    and ``j`` the sizes of M's rows and columns. The two indices of a delta have one
    size. The result maps each index name to its size where all its scopes agree.
    """
    for t in iter_tensors(e):
        shape = shapes.get(t.name)
        if shape is not None and len(shape) != len(t.indices):
            raise ShapeError(
                f"{t.name!r} has shape {shape} ({len(shape)} axes) but is used with "
                f"{len(t.indices)} indices: {_ref(t)}")
    if shapes:
        for n in walk(e):  # size(x, k): x needs an axis k
            if isinstance(n, Delta) and n.i == n.j and isinstance(n.size, tuple) and \
                    n.size[0] in shapes and n.size[1] >= len(shapes[n.size[0]]):
                raise ShapeError(f"size({n.size[0]}, {n.size[1]}): {n.size[0]!r} has shape "
                                 f"{shapes[n.size[0]]}, without an axis {n.size[1]}")
    cells: list[tuple[Index, _Cell]] = []
    _ScopeSizes(shapes, cells).check(e)
    found: dict[Index, int | str | None] = {}
    for idx, cell in cells:
        if cell.size is not None:
            found[idx] = cell.size if found.get(idx, cell.size) == cell.size else None
    return {i: d for i, d in found.items() if d is not None}


def _ref(t: Tensor) -> str:
    return t.name + ("[" + ",".join(t.indices) + "]" if t.indices else "")


class _Cell:
    """The size of one index in one scope, and where it was first seen."""
    __slots__ = ("size", "where")

    def __init__(self) -> None:
        self.size: int | str | None = None
        self.where = ""

    def note(self, idx: Index, d: int | str, where: str) -> None:
        if self.size is None:
            self.size, self.where = d, where
        elif self.size != d:
            raise ShapeError(f"index {idx!r} has size {self.size} in {self.where} but size {d} "
                             f"in {where}")


class _ScopeSizes:
    """Index sizes by scope: an environment maps a label to the cell of the scope that
    binds it; a product gives its summed labels new cells, an inv/det/logdet argument
    starts an environment of its own."""

    def __init__(self, shapes: Mapping[str, Shape], cells: list[tuple[Index, _Cell]]):
        self.bodies: dict[int, dict[Index, _Cell]] = {}  # a definition's body, checked once
        self.shapes = shapes
        self.cells = cells

    def cell(self, env: dict[Index, _Cell], idx: Index) -> _Cell:
        found = env.get(idx)
        if found is None:
            found = env[idx] = _Cell()
            self.cells.append((idx, found))
        return found

    def check(self, e: Expr) -> dict[Index, _Cell]:
        """Note the sizes in ``e``; return the environment of its top scope."""
        env: dict[Index, _Cell] = {}
        deltas: list[tuple[Delta, _Cell, _Cell]] = []
        stack: list[tuple[Expr, dict[Index, _Cell]]] = [(e, env)]
        while stack:
            n, here = stack.pop()
            if isinstance(n, Tensor):
                for axis, idx in enumerate(n.indices):
                    cell = self.cell(here, idx)
                    if n.name in self.shapes:
                        cell.note(idx, self.shapes[n.name][axis], _ref(n))
            elif isinstance(n, Delta):
                if n.i != n.j:
                    deltas.append((n, self.cell(here, n.i), self.cell(here, n.j)))
            elif isinstance(n, (Inv, Det, LogDet)):
                self.closed(n, here)
            elif isinstance(n, Named):  # its body's labels are its own, tied to the use's
                body = body_of(n)
                inner = self.bodies.get(id(body))
                if inner is None:
                    inner = self.bodies[id(body)] = self.check(body)
                deltas.extend((Delta(p, i), inner[p], self.cell(here, i))
                              for p, i in zip(body.free, use_labels(n)) if p in inner)
            elif isinstance(n, Product):
                for idx in n.free:  # the scope's own indices: one cell, whichever term
                    self.cell(here, idx)  # of a sum is checked first (x[i] + 2*y[i])
                inner = dict(here)
                for idx in sorted(bound_indices(n)):
                    inner[idx] = _Cell()
                    self.cells.append((idx, inner[idx]))
                stack.extend((f, inner) for f in n.factors)
            else:
                stack.extend((c, here) for c in children(n))
        _tie_deltas(deltas)
        return env

    def closed(self, n: Inv | Det | LogDet, outside: dict[Index, _Cell]) -> None:
        inner = self.check(n.arg)
        rows, cols = (inner[i].size if i in inner else None for i in n.arg.free)
        what = type(n).__name__.lower()
        if rows is not None and cols is not None and rows != cols:
            raise ShapeError(f"the argument of {what}(...) is {rows} x {cols}, not square")
        if isinstance(n, Inv):
            for idx, d in zip(n.indices, (rows, cols)):
                if d is not None:
                    self.cell(outside, idx).note(idx, d, f"inv(...)[{','.join(n.indices)}]")


def _tie_deltas(deltas: list[tuple[Delta, _Cell, _Cell]]) -> None:
    """A delta is square: ``delta[i,j]`` gives ``i`` and ``j`` one size (chains of
    deltas too), so ``delta[i,j]*x[i]*y[j]`` with x and y of two sizes is refused."""
    changed = True
    while changed:
        changed = False
        for n, ci, cj in deltas:
            if ci.size is not None and cj.size is not None and ci.size != cj.size:
                raise ShapeError(f"delta[{n.i},{n.j}] is square, but index {n.i!r} has size "
                                 f"{ci.size} in {ci.where} and index {n.j!r} size {cj.size} "
                                 f"in {cj.where}")
            if (ci.size is None) != (cj.size is None):
                known, other, idx = (ci, cj, n.j) if cj.size is None else (cj, ci, n.i)
                other.note(idx, known.size, f"delta[{n.i},{n.j}] ({known.where})")  # type: ignore[arg-type]
                changed = True
