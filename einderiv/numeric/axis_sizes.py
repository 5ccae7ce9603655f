"""The axes of an exported program that must have one size, and what is known of it.

Code export (:mod:`einderiv.numeric.codegen`) writes a docstring with every argument's
shape and, where the given shapes fix an intermediate's, the contraction path compile
would take for it. :class:`AxisSizes` joins the axes ``(slot, axis)`` that must be
equal, step by step through the rule of each kind in :data:`LINKS`, then gives each
class of axes its size (from the given shapes or a number in the program) or a name
(the result's free labels first, then the plan's labels).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..core.ir import Index
from ..errors import ShapeError
from .program import (Add, Broadcast, Const, Det, Einsum, Embed, Eye, FixedSize, Func, Input,
                      InputAxis, Inv, LogDet, LogSumExp, Ones, Pow, PowSlot, Program, Scale,
                      SizeRef, SlotAxis, Softmax, Solve, Step, Transpose, UnknownSize, Zeros)

__all__ = ["AxisSizes", "program_ranks", "LINKS"]


def program_ranks(program: Program, given: Mapping[str, int], shapes: Mapping[str, tuple]
                  ) -> list[int | None]:
    """The rank of each slot: an input's from the expression (``given``) or the given
    shapes (None: neither tells), the others by their kind's rank rule.
    :class:`~einderiv.errors.ShapeError` where a given shape has another rank."""
    ranks: list[int | None] = []
    for step in program.steps:
        if isinstance(step, Input):
            name = step.name
            ranks.append(given.get(name, len(shapes[name]) if name in shapes else None))
        else:
            ranks.append(step.rank(ranks))
    for name, slot in program.inputs.items():
        if name in shapes and ranks[slot] is not None and len(shapes[name]) != ranks[slot]:
            raise ShapeError(f"{name!r} has shape {shapes[name]} "
                             f"({len(shapes[name])} axes) but is used with {ranks[slot]}")
    return ranks


#: A key of a size class: ``(slot, axis)``, ``("L", step, label)`` (a label of a
#: step's einsum-like spec), ``("int", n)`` or ``("unknown", label)``.
Key = tuple


class AxisSizes:
    """Classes of axes of ``program`` that have one size (a union-find over keys),
    each with a value (an int from ``shapes`` or the program, or a label's name)."""

    def __init__(self, program: Program, ranks: list[int | None], shapes: Mapping[str, tuple]):
        self.program, self.rank = program, ranks
        self.parent: dict[Key, Key] = {}
        for k, step in enumerate(program.steps):
            for ax in range(ranks[k] or 0):
                self.find((k, ax))
            LINKS[type(step)](self, k, step)
        self.value: dict[Key, int | str] = {}
        for name, slot in program.inputs.items():
            for ax, d in enumerate(shapes.get(name, ())):
                self.value.setdefault(self.find((slot, ax)), d)
        for key in list(self.parent):
            if key[0] == "int":
                self.value.setdefault(self.find(key), key[1])
        self.label: dict[Key, str] = {}
        taken = {d for d in self.value.values() if isinstance(d, str)}
        named = [((out, pos), lab)
                 for out, labels in zip(program.results,
                                        program.outputs_labels or (program.output_labels,))
                 for pos, lab in enumerate(labels)]
        named += [(key, key[2]) for key in self.parent if key[0] == "L"]
        for key, lab in named:
            root = self.find(key)
            if root not in self.value and root not in self.label and lab not in taken \
                    and not lab.startswith("_"):
                self.label[root] = lab
                taken.add(lab)

    def find(self, x: Key) -> Key:
        parent = self.parent
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(self, *keys: Key) -> None:
        for key in keys[1:]:
            self.parent[self.find(key)] = self.find(keys[0])

    def ref_key(self, ref: SizeRef) -> Key:
        return REF_KEYS[type(ref)](self.program, ref)

    def axes_of(self, slot: int) -> list[int]:
        """The axes of ``slot`` the plan mentions, in order."""
        return sorted(key[1] for key in self.parent if key[0] == slot and len(key) == 2)

    def size_of(self, slot: int, axis: int) -> int | str | None:
        """The size of an axis where the given shapes or the program fix it."""
        return self.value.get(self.find((slot, axis)))

    def dim_text(self, key: Key) -> str:
        root = self.find(key)
        return str(self.value.get(root, self.label.get(root, "?")))

    def shape_text(self, slot: int) -> str:
        dims = [self.dim_text((slot, ax)) for ax in range(self.rank[slot] or 0)]
        return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


#: The key of each kind of size reference.
REF_KEYS: dict[type, Callable[[Program, Any], Key]] = {
    InputAxis: lambda program, ref: (program.inputs[ref.name], ref.axis),
    SlotAxis: lambda program, ref: (ref.slot, ref.axis),
    FixedSize: lambda program, ref: ("int", ref.n),
    UnknownSize: lambda program, ref: ("unknown", ref.label),
}


# ------------------------------------------------------------------ links per kind
# ``link(sizes, k, step)``: join the axes of step ``k`` with those it must equal.


def _no_link(sizes: AxisSizes, k: int, step: Step) -> None:
    return None


def _spec_links(sizes: AxisSizes, k: int, parts: Any, out: tuple[Index, ...]) -> None:
    """An einsum-like step: each label one size over the parts and the output."""
    for part in parts:
        for ax, lab in enumerate(part[1]):
            sizes.union(("L", k, lab), (part[0], ax))
    for pos, lab in enumerate(out):
        sizes.union(("L", k, lab), (k, pos))


def _einsum_links(sizes: AxisSizes, k: int, step: Einsum) -> None:
    _spec_links(sizes, k, step.operands, step.out)


def _add_links(sizes: AxisSizes, k: int, step: Add) -> None:
    _spec_links(sizes, k, step.terms, step.out)


def _elementwise_links(source: Callable[[Any], int]) -> Callable[[AxisSizes, int, Any], None]:
    """A step whose value has the shape of one of its operands, ``source(step)``."""
    def link(sizes: AxisSizes, k: int, step: Any) -> None:
        src = source(step)
        for ax in range(sizes.rank[k] or 0):
            sizes.union((k, ax), (src, ax))
    return link


def _transpose_links(sizes: AxisSizes, k: int, step: Transpose) -> None:
    for pos, ax in enumerate(step.perm):
        sizes.union((k, pos), (step.arg, ax))


def _logsumexp_links(sizes: AxisSizes, k: int, step: LogSumExp) -> None:
    kept = [ax for ax in range(sizes.rank[step.arg] or 0) if ax not in step.axes]
    for pos, ax in enumerate(kept):
        sizes.union((k, pos), (step.arg, ax))


def _solve_links(sizes: AxisSizes, k: int, step: Solve) -> None:
    m, rhs = step.matrix, step.rhs
    sizes.union((m, 0), (m, 1), (rhs, 0), (k, 0))
    for ax in range(1, sizes.rank[k] or 0):
        sizes.union((k, ax), (rhs, ax))


def _inv_links(sizes: AxisSizes, k: int, step: Inv) -> None:
    sizes.union((step.arg, 0), (step.arg, 1), (k, 0), (k, 1))


def _square_links(sizes: AxisSizes, k: int, step: Det | LogDet) -> None:
    sizes.union((step.arg, 0), (step.arg, 1))


def _constant_links(sizes: AxisSizes, k: int, step: Ones | Eye) -> None:
    sizes.union(sizes.ref_key(step.size), *[(k, ax) for ax in range(sizes.rank[k] or 0)])


def _zeros_links(sizes: AxisSizes, k: int, step: Zeros) -> None:
    for ax, ref in enumerate(step.sizes):
        sizes.union((k, ax), sizes.ref_key(ref))


def _embed_links(sizes: AxisSizes, k: int, step: Embed) -> None:
    _spec_links(sizes, k, [(step.inner, step.rest)], step.out)
    for keep, gone in step.pairs:
        sizes.union(("L", k, keep), ("L", k, gone))


def _broadcast_links(sizes: AxisSizes, k: int, step: Broadcast) -> None:
    _spec_links(sizes, k, [(step.inner, step.rest)], step.out)
    for lab, ref in step.extra:
        sizes.union(("L", k, lab), sizes.ref_key(ref))


#: Each kind's rule joining its axes with those they must equal.
LINKS: dict[type[Step], Callable[[AxisSizes, int, Any], None]] = {
    Input: _no_link,
    Einsum: _einsum_links,
    Func: _elementwise_links(lambda step: step.arg),
    Pow: _elementwise_links(lambda step: step.arg),
    PowSlot: _elementwise_links(lambda step: step.base),
    Transpose: _transpose_links,
    LogSumExp: _logsumexp_links,
    Softmax: _elementwise_links(lambda step: step.arg),
    Scale: _elementwise_links(lambda step: step.arg),
    Solve: _solve_links,
    Inv: _inv_links,
    Det: _square_links,
    LogDet: _square_links,
    Ones: _constant_links,
    Eye: _constant_links,
    Const: _no_link,
    Zeros: _zeros_links,
    Add: _add_links,
    Embed: _embed_links,
    Broadcast: _broadcast_links,
}
