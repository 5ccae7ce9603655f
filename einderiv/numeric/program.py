"""The numeric program: a straight-line list of steps, and the one table of step kinds.

:mod:`einderiv.numeric.lowering` turns an expression into a :class:`Program`: each
step computes one value (a *slot*, its position in the list) from earlier ones. Each
kind of step is one frozen dataclass below, a subclass of :class:`Step`, with typed
arguments (``Einsum(coeff, operands, out, names)``, ``Solve(matrix, rhs, transposed)``)
and, as methods, what is true of the kind wherever it runs:

* :meth:`Step.reads`: the slots it reads (sizes included);
* :meth:`Step.rank`: the number of axes of its value, from the ranks of the slots;
* :meth:`Step.shape`: its shape for given input shapes, checking what must agree
  (square matrices, one size per index of a sum);
* :meth:`Step.flops`: its FLOP estimate where it is not a contraction (contractions are
  costed by :mod:`einderiv.numeric.contraction`).

:data:`KINDS` lists them by name (``Step.kind``). Modules that do something per kind
look it up in a dict keyed by the kind's class: planning (``planning.PLANNERS``),
running (``execution.BINDERS``, ``execution.RUNNERS``), code export
(``code_writer.WRITERS``, ``axis_sizes.LINKS``); tests/test_program_kinds.py checks that
every table covers every kind. Sizes from elsewhere (of a delta's axis, of zeros) are
:data:`SizeRef` values: an axis of an input or of a slot, a number, or unknown.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

from ..core.ir import Index
from ..errors import EvaluationError

__all__ = ["Program", "Step", "KINDS", "SizeRef", "InputAxis", "SlotAxis", "FixedSize",
           "UnknownSize", "ShapeContext", "Operand", "Term", "check_square",
           "unknown_size_message", "Input", "Einsum", "Func", "Pow", "PowSlot", "Transpose",
           "LogSumExp", "Softmax", "Scale", "Solve", "Inv", "Det", "LogDet", "Ones", "Eye",
           "Const", "Zeros", "Add", "Embed", "Broadcast"]

Shape = tuple[int, ...]


# ------------------------------------------------------------------ size references


def unknown_size_message(label: Index) -> str:
    return (f"cannot tell the size of index {label!r}: it occurs on no tensor given "
            "(the tensor that carried it cancelled or was differentiated away)")


class _Size:
    """Where a size comes from; ``size(input_axis, slot_axis)`` resolves it with the
    caller's way of reading an axis of an input or of a slot."""

    def size(self, input_axis: Callable[[str, int], Any], slot_axis: Callable[[int, int], Any]
             ) -> Any:
        raise NotImplementedError  # pragma: no cover

    def slots(self) -> tuple[int, ...]:
        """The slots read for the size."""
        return ()


@dataclass(frozen=True)
class InputAxis(_Size):
    """The size of axis ``axis`` of the input ``name``."""
    name: str
    axis: int

    def size(self, input_axis: Callable[[str, int], Any], slot_axis: Callable[[int, int], Any]
             ) -> Any:
        return input_axis(self.name, self.axis)


@dataclass(frozen=True)
class SlotAxis(_Size):
    """The size of axis ``axis`` of the value of step ``slot``."""
    slot: int
    axis: int

    def size(self, input_axis: Callable[[str, int], Any], slot_axis: Callable[[int, int], Any]
             ) -> Any:
        return slot_axis(self.slot, self.axis)

    def slots(self) -> tuple[int, ...]:
        return (self.slot,)


@dataclass(frozen=True)
class FixedSize(_Size):
    """A size given as a number (a size hint of a delta or an empty sum)."""
    n: int

    def size(self, input_axis: Callable[[str, int], Any], slot_axis: Callable[[int, int], Any]
             ) -> Any:
        return int(self.n)


@dataclass(frozen=True)
class UnknownSize(_Size):
    """No tensor carries the index ``label``: planning refuses it."""
    label: Index

    def size(self, input_axis: Callable[[str, int], Any], slot_axis: Callable[[int, int], Any]
             ) -> Any:
        raise EvaluationError(unknown_size_message(self.label))


#: Where a size comes from at run time.
SizeRef = InputAxis | SlotAxis | FixedSize | UnknownSize


@dataclass
class ShapeContext:
    """What shape rules read: the shapes of the slots planned so far and the inputs
    (anything with a ``.shape``)."""
    shapes: list[Shape]
    inputs: Mapping[str, Any]

    def size(self, ref: SizeRef) -> int:
        return int(ref.size(lambda name, axis: int(self.inputs[name].shape[axis]),
                            lambda slot, axis: self.shapes[slot][axis]))


def check_square(shape: Shape, what: str) -> None:
    if len(shape) != 2 or shape[0] != shape[1]:
        raise EvaluationError(f"{what}(...) needs a square matrix, got shape {shape}")


class Operand(NamedTuple):
    """One factor of a contraction: a slot and the labels of its axes."""
    slot: int
    labels: tuple[Index, ...]


class Term(NamedTuple):
    """One term of a sum: a slot, the labels of its axes and its sign (+1.0 or -1.0)."""
    slot: int
    labels: tuple[Index, ...]
    sign: float


# ------------------------------------------------------------------------ steps


@dataclass(frozen=True)
class Step:
    """One step of a program. Subclasses are the kinds (:data:`KINDS`); ``kind`` is the
    kind's name."""

    kind: ClassVar[str] = ""
    #: The step creates an array of its own in the inputs' common dtype.
    makes_constants: ClassVar[bool] = False

    def reads(self) -> tuple[int, ...]:
        """The slots this step reads (sizes included), in a fixed order."""
        return ()

    def rank(self, ranks: Sequence[int | None]) -> int | None:
        """The number of axes of the value, given the ranks of earlier slots (None:
        not known from the program, an input used only for its shape)."""
        raise NotImplementedError(type(self).__name__)

    def shape(self, ctx: ShapeContext) -> Shape:
        """The shape of the value; :class:`~einderiv.errors.EvaluationError` where the
        shapes of the slots do not fit the step."""
        raise NotImplementedError(type(self).__name__)

    def flops(self, shapes: Sequence[Shape], shape: Shape) -> int:
        """The FLOP estimate of the step with value shape ``shape`` (0: free)."""
        return 0


class _SameShape:
    """A step whose value has the shape of its one argument slot ``arg``."""

    arg: int

    def reads(self) -> tuple[int, ...]:
        return (self.arg,)

    def rank(self, ranks: Sequence[int | None]) -> int | None:
        return ranks[self.arg]

    def shape(self, ctx: ShapeContext) -> Shape:
        return ctx.shapes[self.arg]


class _Elementwise(_SameShape):
    """An element-wise step: one operation per entry."""

    def flops(self, shapes: Sequence[Shape], shape: Shape) -> int:
        return math.prod(shape)


@dataclass(frozen=True)
class Input(Step):
    """The array given for ``name``."""
    kind: ClassVar[str] = "input"
    name: str

    def rank(self, ranks: Sequence[int | None]) -> int | None:
        return None  # the caller's: the expression's ranks or the given shapes

    def shape(self, ctx: ShapeContext) -> Shape:
        return tuple(int(d) for d in ctx.inputs[self.name].shape)


@dataclass(frozen=True)
class Einsum(Step):
    """``coeff`` times the product of ``operands`` summed to the axes ``out``;
    ``names``: the factors as text, for messages."""
    kind: ClassVar[str] = "einsum"
    coeff: float
    operands: tuple[Operand, ...]
    out: tuple[Index, ...]
    names: tuple[str, ...] = ()

    def reads(self) -> tuple[int, ...]:
        return tuple(slot for slot, _ in self.operands)

    def rank(self, ranks: Sequence[int | None]) -> int | None:
        return len(self.out)

    def label_sizes(self, shapes: Sequence[Shape]) -> dict[Index, int]:
        """The size of each label, checked to be one size wherever it occurs."""
        sizes: dict[Index, int] = {}
        where: dict[Index, str] = {}
        for k, (slot, labels) in enumerate(self.operands):
            if len(labels) != len(shapes[slot]):  # pragma: no cover - lowering bug guard
                raise EvaluationError(
                    f"rank mismatch in a contraction: {labels} vs {shapes[slot]}")
            name = self.names[k] if k < len(self.names) else "a factor"
            for lab, n in zip(labels, shapes[slot]):
                if sizes.setdefault(lab, n) != n:
                    raise EvaluationError(
                        f"index {lab!r} has size {sizes[lab]} in {where[lab]} but size {n} "
                        f"in {name}; check the shapes of the arrays")
                where.setdefault(lab, name)
        return sizes

    def shape(self, ctx: ShapeContext) -> Shape:
        sizes = self.label_sizes(ctx.shapes)
        return tuple(sizes[i] for i in self.out)


@dataclass(frozen=True)
class Func(_Elementwise, Step):
    """The element-wise function ``name`` (:data:`einderiv.core.functions.FUNCTIONS`)."""
    kind: ClassVar[str] = "func"
    name: str
    arg: int


@dataclass(frozen=True)
class Pow(_Elementwise, Step):
    """``arg ** exponent``, a number."""
    kind: ClassVar[str] = "pow"
    arg: int
    exponent: float


@dataclass(frozen=True)
class PowSlot(Step):
    """``base ** exponent``, the exponent a value (a scalar, or one of base's shape)."""
    kind: ClassVar[str] = "powslot"
    base: int
    exponent: int

    def reads(self) -> tuple[int, ...]:
        return (self.base, self.exponent)

    def rank(self, ranks: Sequence[int | None]) -> int | None:
        return ranks[self.base]

    def shape(self, ctx: ShapeContext) -> Shape:
        return ctx.shapes[self.base]

    def flops(self, shapes: Sequence[Shape], shape: Shape) -> int:
        return math.prod(shape)


@dataclass(frozen=True)
class Transpose(Step):
    """``arg`` with its axes permuted: axis ``k`` of the value is ``perm[k]`` of arg."""
    kind: ClassVar[str] = "transpose"
    arg: int
    perm: tuple[int, ...]

    def reads(self) -> tuple[int, ...]:
        return (self.arg,)

    def rank(self, ranks: Sequence[int | None]) -> int | None:
        return len(self.perm)

    def shape(self, ctx: ShapeContext) -> Shape:
        return tuple(ctx.shapes[self.arg][k] for k in self.perm)


@dataclass(frozen=True)
class LogSumExp(Step):
    """``log(coeff * sum exp(arg))`` over the axes ``axes``, max-shifted (issue 6)."""
    kind: ClassVar[str] = "logsumexp"
    arg: int
    axes: tuple[int, ...]
    coeff: float

    def reads(self) -> tuple[int, ...]:
        return (self.arg,)

    def rank(self, ranks: Sequence[int | None]) -> int | None:
        r = ranks[self.arg]
        return None if r is None else r - len(self.axes)

    def shape(self, ctx: ShapeContext) -> Shape:
        return tuple(n for k, n in enumerate(ctx.shapes[self.arg]) if k not in self.axes)

    def flops(self, shapes: Sequence[Shape], shape: Shape) -> int:
        return 3 * math.prod(shapes[self.arg])


@dataclass(frozen=True)
class Softmax(_SameShape, Step):
    """``exp(arg) / sum exp(arg)`` over the axes ``axes``, max-shifted."""
    kind: ClassVar[str] = "softmax"
    arg: int
    axes: tuple[int, ...]

    def flops(self, shapes: Sequence[Shape], shape: Shape) -> int:
        return 4 * math.prod(shape)


@dataclass(frozen=True)
class Scale(_SameShape, Step):
    """``arg * coeff``."""
    kind: ClassVar[str] = "scale"
    arg: int
    coeff: float


@dataclass(frozen=True)
class Solve(Step):
    """``inv(M) rhs`` (``inv(M)^T rhs`` where ``transposed``) along the first axis of
    ``rhs``, without an explicit inverse (issue 6)."""
    kind: ClassVar[str] = "solve"
    matrix: int
    rhs: int
    transposed: bool

    def reads(self) -> tuple[int, ...]:
        return (self.matrix, self.rhs)

    def rank(self, ranks: Sequence[int | None]) -> int | None:
        return ranks[self.rhs]

    def shape(self, ctx: ShapeContext) -> Shape:
        m = ctx.shapes[self.matrix]
        check_square(m, "inv")
        shape = ctx.shapes[self.rhs]
        if shape[0] != m[0]:
            raise EvaluationError(
                f"inv(...) is {m[0]} x {m[0]} but the factor it multiplies has size "
                f"{shape[0]} along the shared index; check the shapes of the arrays")
        return shape

    def flops(self, shapes: Sequence[Shape], shape: Shape) -> int:
        n = shapes[self.matrix][0]
        return 2 * n ** 3 // 3 + 2 * n * math.prod(shape)


@dataclass(frozen=True)
class Inv(Step):
    """The inverse of the square matrix ``arg``."""
    kind: ClassVar[str] = "inv"
    arg: int

    def reads(self) -> tuple[int, ...]:
        return (self.arg,)

    def rank(self, ranks: Sequence[int | None]) -> int | None:
        return 2

    def shape(self, ctx: ShapeContext) -> Shape:
        shape = ctx.shapes[self.arg]
        check_square(shape, "inv")
        return shape

    def flops(self, shapes: Sequence[Shape], shape: Shape) -> int:
        return 2 * shape[0] ** 3


@dataclass(frozen=True)
class _OfSquareMatrix(Step):
    """A number computed from the square matrix ``arg``."""
    arg: int

    def reads(self) -> tuple[int, ...]:
        return (self.arg,)

    def rank(self, ranks: Sequence[int | None]) -> int | None:
        return 0

    def shape(self, ctx: ShapeContext) -> Shape:
        check_square(ctx.shapes[self.arg], self.kind)
        return ()

    def flops(self, shapes: Sequence[Shape], shape: Shape) -> int:
        return shapes[self.arg][0] ** 3


@dataclass(frozen=True)
class Det(_OfSquareMatrix):
    """The determinant of the square matrix ``arg``."""
    kind: ClassVar[str] = "det"


@dataclass(frozen=True)
class LogDet(_OfSquareMatrix):
    """``log |det|`` of the square matrix ``arg`` (slogdet: no overflow)."""
    kind: ClassVar[str] = "logdet"


@dataclass(frozen=True)
class Ones(Step):
    """A vector of ones (a delta with both indices equal) of the size ``size``."""
    kind: ClassVar[str] = "ones"
    makes_constants: ClassVar[bool] = True
    size: SizeRef

    def reads(self) -> tuple[int, ...]:
        return self.size.slots()

    def rank(self, ranks: Sequence[int | None]) -> int | None:
        return 1

    def shape(self, ctx: ShapeContext) -> Shape:
        return (ctx.size(self.size),)


@dataclass(frozen=True)
class Eye(Step):
    """An identity matrix (a delta summed with a factor) of the size ``size``."""
    kind: ClassVar[str] = "eye"
    makes_constants: ClassVar[bool] = True
    size: SizeRef

    def reads(self) -> tuple[int, ...]:
        return self.size.slots()

    def rank(self, ranks: Sequence[int | None]) -> int | None:
        return 2

    def shape(self, ctx: ShapeContext) -> Shape:
        n = ctx.size(self.size)
        return (n, n)


@dataclass(frozen=True)
class Const(Step):
    """The number ``value`` as a 0-d array."""
    kind: ClassVar[str] = "const"
    makes_constants: ClassVar[bool] = True
    value: float

    def rank(self, ranks: Sequence[int | None]) -> int | None:
        return 0

    def shape(self, ctx: ShapeContext) -> Shape:
        return ()


@dataclass(frozen=True)
class Zeros(Step):
    """An array of zeros (an empty sum) with axes of the sizes ``sizes``."""
    kind: ClassVar[str] = "zeros"
    makes_constants: ClassVar[bool] = True
    sizes: tuple[SizeRef, ...]

    def reads(self) -> tuple[int, ...]:
        return tuple(slot for ref in self.sizes for slot in ref.slots())

    def rank(self, ranks: Sequence[int | None]) -> int | None:
        return len(self.sizes)

    def shape(self, ctx: ShapeContext) -> Shape:
        return tuple(ctx.size(r) for r in self.sizes)


@dataclass(frozen=True)
class Add(Step):
    """The sum of ``terms`` with the axes ``out`` (a term lacking a label broadcasts
    along it)."""
    kind: ClassVar[str] = "add"
    terms: tuple[Term, ...]
    out: tuple[Index, ...]

    def reads(self) -> tuple[int, ...]:
        return tuple(slot for slot, _, _ in self.terms)

    def rank(self, ranks: Sequence[int | None]) -> int | None:
        return len(self.out)

    def shape(self, ctx: ShapeContext) -> Shape:
        sizes: dict[Index, int] = {}
        for slot, labels, _ in self.terms:
            for lab, n in zip(labels, ctx.shapes[slot]):
                if sizes.setdefault(lab, n) != n:
                    raise EvaluationError(
                        f"index {lab!r} has size {sizes[lab]} in one term of a sum but size "
                        f"{n} in another; check the shapes of the arrays")
        return tuple(sizes[i] for i in self.out)

    def flops(self, shapes: Sequence[Shape], shape: Shape) -> int:
        return math.prod(shape) * (len(self.terms) - 1)


@dataclass(frozen=True)
class Embed(Step):
    """``inner`` (axes ``rest``) on the diagonal ``keep == gone`` of zeros with axes
    ``out``, for each ``(keep, gone)`` of ``pairs``: a delta with both indices free."""
    kind: ClassVar[str] = "embed"
    makes_constants: ClassVar[bool] = True
    inner: int
    rest: tuple[Index, ...]
    out: tuple[Index, ...]
    pairs: tuple[tuple[Index, Index], ...]

    def reads(self) -> tuple[int, ...]:
        return (self.inner,)

    def rank(self, ranks: Sequence[int | None]) -> int | None:
        return len(self.out)

    def shape(self, ctx: ShapeContext) -> Shape:
        sizes = dict(zip(self.rest, ctx.shapes[self.inner]))
        for keep, gone in self.pairs:
            sizes[gone] = sizes[keep]
        return tuple(sizes[i] for i in self.out)


@dataclass(frozen=True)
class Broadcast(Step):
    """``inner`` (axes ``rest``) repeated along the axes of ``extra`` (label and
    size each) to the axes ``out``: a ones-marker."""
    kind: ClassVar[str] = "broadcast"
    inner: int
    rest: tuple[Index, ...]
    out: tuple[Index, ...]
    extra: tuple[tuple[Index, SizeRef], ...]

    def reads(self) -> tuple[int, ...]:
        return tuple(slot for _, ref in self.extra for slot in ref.slots()) + (self.inner,)

    def rank(self, ranks: Sequence[int | None]) -> int | None:
        return len(self.out)

    def shape(self, ctx: ShapeContext) -> Shape:
        sizes = dict(zip(self.rest, ctx.shapes[self.inner]))
        for lab, ref in self.extra:
            sizes[lab] = ctx.size(ref)
        return tuple(sizes[i] for i in self.out)


#: Every kind of step, by name.
KINDS: dict[str, type[Step]] = {cls.kind: cls for cls in (
    Input, Einsum, Func, Pow, PowSlot, Transpose, LogSumExp, Softmax, Scale, Solve, Inv,
    Det, LogDet, Ones, Eye, Const, Zeros, Add, Embed, Broadcast)}


@dataclass
class Program:
    """The steps, the slot of each input (name -> slot), the slot of the result and the
    labels of the result's axes; a program of several results (``lower_many``) also
    has their slots in ``outputs`` (``output`` is then the last of them)."""
    steps: list[Step] = field(default_factory=list)
    inputs: dict[str, int] = field(default_factory=dict)
    output: int = -1
    output_labels: tuple[Index, ...] = ()
    #: slot -> the definition it computes (``Z[i,n] = ...``): exported code names it so
    named: dict[int, str] = field(default_factory=dict)
    outputs: tuple[int, ...] = ()
    outputs_labels: tuple[tuple[Index, ...], ...] = ()

    @property
    def results(self) -> tuple[int, ...]:
        """The slots of the results: ``outputs``, or ``(output,)`` for one."""
        return self.outputs or (self.output,)
