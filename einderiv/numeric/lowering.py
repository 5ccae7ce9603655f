"""Lowering: a simplified expression -> a straight-line program of steps.

Each step (:mod:`einderiv.numeric.program`) computes one value from earlier ones: an
einsum, an element-wise function, a sum of terms, a solve, a diagonal embedding... Nodes
equal up
to the names of their summed indices and the order of their free axes share one
slot (common subexpressions: the residual ``X theta - Y`` of both terms of a least-squares
gradient is computed once). Numerically delicate patterns are lowered to stable forms
here: ``log(sum exp)`` max-shifted, softmax factors as ``exp(u - lse)``, ``inv(M) g``
as a solve (issue 6). Planning for shapes is in :mod:`einderiv.numeric.planning`.

Each kind of IR node is lowered by its own method, looked up in :data:`LOWER_NODE` (by
the node's type), as the factors of a product are by :data:`LOWER_FACTOR`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from ..core.canonical import canonical_key, sort_key
from ..core.definitions import inline
from ..core.named import body_of, definitions_in, names_table, opaque
from ..core.ir import (Delta, Det, Expr, Func, Index, Inv, LogDet, Pow, Product, Sum, Tensor,
                       cached, children, const_value, factor_indices, remember, rename)
from ..core.printing import to_text
from ..core.scopes import outer_origins
from ..errors import EinderivError
from . import program as op
from .program import FixedSize, InputAxis, Operand, Program, SizeRef, SlotAxis, Step, Term, UnknownSize

__all__ = ["Lowering", "lower", "lower_many", "to_float"]


def lower(e: Expr) -> Program:
    """The program computing ``e``, its result's axes in the order of ``e.free``."""
    lowering = Lowering()
    slot, labels = lowering.value(lowering.named(e))
    lowering.program.output = lowering.align(slot, labels, e.free)
    lowering.program.output_labels = e.free
    return lowering.program


def lower_many(exprs: Sequence[Expr]) -> Program:
    """One program computing all of ``exprs`` (``program.outputs``, in order), their
    common subexpressions computed once: the gradients of one loss by two variables
    share the forward pass."""
    lowering = Lowering()
    outputs = []
    for e in exprs:
        slot, labels = lowering.value(lowering.named(e))
        outputs.append(lowering.align(slot, labels, e.free))
    lowering.program.outputs = tuple(outputs)
    lowering.program.outputs_labels = tuple(e.free for e in exprs)
    lowering.program.output = outputs[-1]
    lowering.program.output_labels = exprs[-1].free
    return lowering.program


class Lowering:
    """IR -> program. Each method returns ``(slot, labels)``: the slot holding the
    value and the labels of its axes."""

    def __init__(self) -> None:
        self.program = Program()
        # key -> (slot, the slot's axes as positions in the key's canonical axis order)
        self.memo: dict[tuple, tuple[int, tuple[int, ...]]] = {}
        self.context: list[dict] = []  # size hints of enclosing sums, innermost last
        self.names: dict[str, int] = {}  # definition -> its slot, axes in its own order
        self.bodies: dict[str, Expr] = {}  # definition -> its body

    def emit(self, step: Step) -> int:
        self.program.steps.append(step)
        return len(self.program.steps) - 1

    def input(self, name: str) -> int:
        if name in self.names:  # a definition, computed already
            return self.names[name]
        if name not in self.program.inputs:
            self.program.inputs[name] = self.emit(op.Input(name))
        return self.program.inputs[name]

    def named(self, e: Expr) -> Expr:
        """``e`` with each use of a definition read as a tensor of its name (an input
        to the rest), each definition computed first, once, its axes in its own order,
        its slot named after it (exported code: ``Z = ...``). Where a name would be read
        two ways (another body of that name already here), ``e`` written out."""
        table = names_table(e)
        uses = definitions_in(e) if table is not None else []
        if table is None or any(n.name in self.bodies and self.bodies[n.name] is not
                                body_of(n) and self.bodies[n.name] != body_of(n) for n in uses):
            return inline(e)
        for n in uses:
            if n.name in self.names:
                continue
            body = opaque(body_of(n))
            slot, labels = self.value(body)
            slot = self.align(slot, labels, body.free)
            self.names[n.name], self.bodies[n.name] = slot, body_of(n)
            self.program.named.setdefault(slot, n.name)
        return opaque(e)

    # ------------------------------------------------------------------ dispatch
    def value(self, e: Expr) -> tuple[int, tuple[Index, ...]]:
        """Lower ``e`` with common-subexpression sharing; axes follow ``e.free``."""
        if isinstance(e, Tensor):
            slot = self.input(e.name)
            if len(set(e.indices)) == len(e.indices):
                return slot, e.indices
        if not _context_free(e):  # its sizes may come from around it: never shared
            return self.lower(e), e.free
        key, canonical = _axis_blind_key(e)
        if key not in self.memo:
            # the slot's axes (e.free), as positions in the canonical axis order
            self.memo[key] = (self.lower(e), tuple(canonical.index(i) for i in e.free))
        slot, positions = self.memo[key]
        return slot, tuple(canonical[c] for c in positions)

    def lower(self, e: Expr) -> int:
        """A new slot computing ``e`` (no sharing), axes in ``e.free`` order."""
        return _lowering_rule(LOWER_NODE, e)(self, e)

    def diagonal(self, e: Tensor) -> int:
        """A tensor with repeated indices: a diagonal."""
        return self.einsum(Fraction(1), [(self.input(e.name), e.indices)], e.free)

    def delta(self, e: Delta) -> int:
        return self.product(Product(Fraction(1), (e,), e.free))

    def func(self, e: Func) -> int:
        if e.name == "log" and _sum_of_exp(e.arg) is not None:
            return self.logsumexp(e.arg)  # max-shifted: no overflow
        slot, labels = self.value(e.arg)
        slot = self.align(slot, labels, e.arg.free)
        return self.emit(op.Func(e.name, slot))

    def inv(self, e: Inv) -> int:
        out = self.emit(op.Inv(self.closed_scope(e.arg)))
        if e.indices[0] == e.indices[1]:
            return self.einsum(Fraction(1), [(out, e.indices)], e.free)
        return out

    def det(self, e: Det) -> int:
        return self.emit(op.Det(self.closed_scope(e.arg)))

    def logdet(self, e: LogDet) -> int:
        return self.emit(op.LogDet(self.closed_scope(e.arg)))

    def closed_scope(self, arg: Expr) -> int:
        """The slot of an inv/det/logdet argument, axes in ``arg.free`` order. The
        argument is a closed scope: none of its sizes comes from around it (its ``a``
        is another index than an ``a`` outside)."""
        outer, self.context = self.context, []
        try:
            slot, labels = self.value(arg)
        finally:
            self.context = outer
        return self.align(slot, labels, arg.free)

    def logsumexp(self, s: Expr) -> int:
        """``log(c * sum_j exp(u))`` as ``log c + m + log(sum_j exp(u - m))``, m the max
        over the summed axes (issue 6: no overflow for large u). Axes: ``s.out``."""
        u = _sum_of_exp(s)
        assert u is not None and isinstance(s, Product)
        slot, labels = self.value(u)
        keep = tuple(i for i in labels if i in set(s.out))
        reduced = tuple(k for k, i in enumerate(labels) if i not in set(s.out))
        out = self.emit(op.LogSumExp(slot, reduced, to_float(s.coeff)))
        return self.align(out, keep, s.out)

    def stable_exponentials(self, factors: list[Factor]) -> list[Factor]:
        """``exp(u) * ... / (sum exp(w))**k`` evaluated as one ``exp(u + ... - k lse(w))``:
        a softmax and its derivatives never form exp of a large number."""
        exps = [f for f in factors if isinstance(f, Func) and f.name == "exp"]
        sums = [f for f in factors if isinstance(f, Pow) and _sum_of_exp(f.base) is not None
                and (const_value(f.exponent) or 0) < 0]
        if not exps or not sums:
            return factors
        parts: list[tuple[int, tuple[Index, ...]]] = []
        for f in exps:
            parts.append(self.value(f.arg))
        shared = self.softmaxes(exps, sums, parts) or self.softmax_shares(exps, sums, parts)
        if shared is not None:
            rest = [f for f in factors if not any(f is g for g in exps + sums)]
            return rest + shared
        for power in sums:
            k = to_float(const_value(power.exponent))  # type: ignore[arg-type]
            lse_slot = self.lower(Func("log", power.base)) if _context_free(power.base) else \
                self.logsumexp(power.base)
            scaled = self.emit(op.Scale(lse_slot, k))
            parts.append((scaled, tuple(power.base.free)))
        labels = tuple(dict.fromkeys(i for _, lab in parts for i in lab))
        total = self.emit(op.Add(tuple(Term(slot, lab, 1.0) for slot, lab in parts), labels))
        combined = self.emit(op.Func("exp", total))
        rest = [f for f in factors if not any(f is g for g in exps + sums)]
        return rest + [_Slot(combined, labels)]

    def softmaxes(self, exps: list[Func], sums: list[Pow],
                  parts: list[tuple[int, tuple[Index, ...]]]) -> list[Factor] | None:
        """``exp(u_c) / sum_j exp(u_j)``, the exps' arguments the very array the sum
        runs over (one shared slot; the kept axes in the same places), as one softmax
        step: one exp pass and one division, where ``exp(u - lse)`` takes two exp
        passes and a log. With k exps over ``(sum exp)**k``, the same softmax k times
        (``p_c p_d`` in the softmax Hessian). None where this does not apply."""
        if len(sums) != 1:
            return None
        (f,) = sums
        base = f.base
        assert isinstance(base, Product)  # a sum of exps (see stable_exponentials)
        if const_value(f.exponent) != -len(exps) or base.coeff != 1 or not _context_free(base):
            return None
        w = _sum_of_exp(base)
        assert w is not None
        slot, w_labels = self.value(w)
        kept = set(base.free)
        reduced = tuple(k for k, i in enumerate(w_labels) if i not in kept)
        for (part_slot, labels), e in zip(parts, exps):
            if part_slot != slot or not _context_free(e) or any(
                    labels[k] != i for k, i in enumerate(w_labels) if i in kept):
                return None
        key = ("softmax", slot, reduced)
        if key not in self.memo:
            self.memo[key] = (self.emit(op.Softmax(slot, reduced)), ())
        p = self.memo[key][0]
        return [_Slot(p, labels) for _, labels in parts]

    def softmax_shares(self, exps: list[Func], sums: list[Pow],
                       parts: list[tuple[int, tuple[Index, ...]]]) -> list[Factor] | None:
        """``exp(u_c) exp(u_d) / (sum exp(w))**2`` as ``exp(u_c - lse) * exp(u_d - lse)``
        (the softmax outer product p p^T): where the exps have different axes, one
        combined exp would be taken over every pair of entries. Applies when one sum
        is raised to minus the number of exps and its axes are in every exp's."""
        if len(sums) != 1 or len({lab for _, lab in parts}) < 2:
            return None
        (f,) = sums
        lse_labels = tuple(f.base.free)
        if const_value(f.exponent) != -len(exps) or \
                not all(set(lse_labels) <= set(lab) for _, lab in parts):
            return None
        lse = self.lower(Func("log", f.base)) if _context_free(f.base) else \
            self.logsumexp(f.base)
        shares: list[Factor] = []
        for slot, labels in parts:
            shifted = self.emit(op.Add((Term(slot, labels, 1.0), Term(lse, lse_labels, -1.0)),
                                       labels))
            shares.append(_Slot(self.emit(op.Func("exp", shifted)), labels))
        return shares

    def align(self, slot: int, have: tuple[Index, ...], want: tuple[Index, ...]) -> int:
        if have == want:
            return slot
        return self.emit(op.Transpose(slot, tuple(have.index(i) for i in want)))

    def power(self, e: Pow) -> int:
        slot, labels = self.value(e.base)
        slot = self.align(slot, labels, e.base.free)
        k = const_value(e.exponent)
        if k is not None:
            return self.emit(op.Pow(slot, to_float(k)))
        exp_slot, _ = self.value(e.exponent)
        return self.emit(op.PowSlot(slot, exp_slot))

    # ------------------------------------------------------------------ products
    def einsum(self, coeff: Fraction, operands: list[tuple[int, tuple[Index, ...]]],
               out: tuple[Index, ...], names: tuple[str, ...] = ()) -> int:
        if len(operands) == 1 and len(operands[0][1]) == len(out) == len(set(out)) and \
                set(operands[0][1]) == set(out):
            # one array, its axes permuted (A[c,d] -> [d,c]): a transposed view
            slot = self.align(*operands[0], out)
            return slot if coeff == 1 else self.emit(op.Scale(slot, to_float(coeff)))
        return self.emit(op.Einsum(to_float(coeff), tuple(Operand(*o) for o in operands), out,
                                   names))

    def product(self, p: Product) -> int:
        self.context.append(outer_origins(p))  # sizes the factors may need
        try:
            return self._product(p)
        finally:
            self.context.pop()

    def _product(self, p: Product) -> int:
        factors = list(p.factors)
        out = p.out
        # 1. A delta with both indices free: compute the term with them merged, embed.
        for k, f in enumerate(factors):
            if isinstance(f, Delta) and f.i != f.j and f.i in out and f.j in out:
                others = factors[:k] + factors[k + 1:]
                used = {i for g in others for i in factor_indices(g)}
                keep, gone = (f.j, f.i) if f.i not in used else (f.i, f.j)
                rest = Product(p.coeff, tuple(rename(g, {gone: keep}) for g in others),
                               tuple(i for i in out if i != gone))
                inner = self.product_with_hint(rest, keep, f)
                return self.emit(op.Embed(inner, rest.out, out, ((keep, gone),)))
        # 2. A ones-marker along a free index no other factor carries: broadcast.
        for k, f in enumerate(factors):
            if isinstance(f, Delta) and f.i == f.j and f.i in out:
                others = factors[:k] + factors[k + 1:]
                if not any(f.i in factor_indices(g) for g in others):
                    rest = Product(p.coeff, tuple(others), tuple(i for i in out if i != f.i))
                    inner = self.product(rest)
                    size = self.size_ref(f.i, others, f)
                    return self.emit(op.Broadcast(inner, rest.out, out, ((f.i, size),)))
        # 3. Everything else is one einsum; summed markers and deltas become vectors.
        operands: list[tuple[int, tuple[Index, ...]]] = []
        present = {i for f in factors for i in factor_indices(f)}
        lowered = self.solves(self.stable_exponentials(list(factors)), set(out))
        for g in lowered:
            operands.append(_lowering_rule(LOWER_FACTOR, g)(self, g, lowered))
        for i in out:
            if i not in present:  # pragma: no cover - simplified input never has this
                raise EinderivError(f"index {i!r} of the output occurs in no factor")
        if not operands:
            return self.emit(op.Const(to_float(p.coeff)))
        names = tuple(to_text(g) if isinstance(g, Expr) else "an intermediate" for g in lowered)
        return self.einsum(p.coeff, operands, out, names)

    def solves(self, factors: list[Factor], out: set[Index]) -> list[Factor]:
        """``inv(M)[k,l] * g[l,...]`` with ``l`` summed and in no other factor is
        ``solve(M, g)``: no explicit inverse (issue 6). Likewise ``g[k,...] * inv(M)[k,l]``
        is ``solve(M^T, g)``."""
        result = list(factors)
        for f in factors:
            if not isinstance(f, Inv) or f.indices[0] == f.indices[1] or not _context_free(f):
                continue
            if not any(f is h for h in result):
                continue  # already consumed by an earlier solve
            for axis, shared in enumerate(f.indices):
                partners = [g for g in result if g is not f and shared in _labels(g)]
                if shared in out or len(partners) != 1 or \
                        isinstance(partners[0], (Delta, _Slot)):
                    continue
                g = partners[0]
                g_labels = factor_indices(g)
                if g_labels.count(shared) != 1 or f.indices[1 - axis] in g_labels:
                    continue
                m_slot = self.closed_scope(f.arg)
                g_slot, g_free = (self.input(g.name), g.indices) if isinstance(g, Tensor) \
                    else self.value(g)
                if len(set(g_free)) != len(g_free):
                    continue
                rhs = self.align(g_slot, g_free, (shared,) + tuple(i for i in g_free
                                                                    if i != shared))
                solved = self.emit(op.Solve(m_slot, rhs, axis == 0))
                labels = (f.indices[1 - axis],) + tuple(i for i in g_free if i != shared)
                result = [h for h in result if h is not f and h is not g] + \
                    [_Slot(solved, labels)]
                break
            else:
                continue
        return result

    def product_with_hint(self, rest: Product, label: Index, delta: Delta) -> int:
        present = {i for f in rest.factors for i in factor_indices(f)}
        if label in present:
            return self.product(rest)
        # The merged label lives on no factor (a bare identity): add a ones-marker.
        marker = Delta(label, label, delta.size)
        return self.product(Product(rest.coeff, (*rest.factors, marker), rest.out))

    def size_ref(self, label: Index, siblings: list, delta: Delta | None) -> SizeRef:
        labels = [label] if delta is None or delta.i == delta.j else [delta.i, delta.j]
        for g in siblings:
            axis_of = AXIS_OF.get(type(g))
            if axis_of is None:
                continue
            for lab in labels:  # a delta is square: either index gives the size
                ref = axis_of(g, lab)
                if isinstance(ref, InputAxis) and ref.name in self.names:
                    return SlotAxis(self.names[ref.name], ref.axis)
                if ref is not None:
                    return ref
        if delta is not None:
            ref = self.hint_ref(delta.size)
            if ref is not None:
                return ref
        for g in siblings:
            for lab in labels:
                if isinstance(g, Expr) and lab in g.free and not isinstance(g, Delta):
                    slot, free = self.value(g)
                    return SlotAxis(slot, free.index(lab))
        for origins in reversed(self.context):  # a sibling term of an enclosing sum
            for lab in labels:
                ref = self.hint_ref(origins.get(lab))
                if ref is not None:
                    return ref
        return UnknownSize(label)

    def hint_ref(self, hint: Any) -> SizeRef | None:
        """The size a size hint gives: an axis of a variable, a number, or None."""
        if isinstance(hint, tuple) and hint[0] in self.names:  # an axis of a definition
            return SlotAxis(self.names[hint[0]], hint[1])
        if isinstance(hint, tuple):
            self.input_hint(hint[0])
            return InputAxis(hint[0], hint[1])
        if isinstance(hint, int):
            return FixedSize(hint)
        return None

    def input_hint(self, name: str) -> None:
        """A size may come from a variable the expression no longer uses."""
        self.program.inputs.setdefault(name, self.emit(op.Input(name)))

    # ---------------------------------------------------------------------- sums
    def sum(self, s: Sum) -> int:
        origins = outer_origins(s)
        origins.update({i: h for i, h in s.hints if h is not None})
        self.context.append(origins)
        try:
            return self._sum(s)
        finally:
            self.context.pop()

    def _sum(self, s: Sum) -> int:
        parts: list[Term] = []
        for t in s.terms:
            if isinstance(t, Product):
                want = tuple(i for i in s.out if i in set(t.out))
                if len(t.factors) == 1 and isinstance(t.factors[0], Tensor) and \
                        t.factors[0].indices == want and t.coeff in (1, -1):
                    # +-x[i]: the sign is applied in the addition, no extra pass
                    parts.append(Term(self.input(t.factors[0].name), want, float(t.coeff)))
                    continue
                parts.append(Term(*self.value(Product(t.coeff, t.factors, want)), 1.0))
            else:
                parts.append(Term(*self.value(t), 1.0))
        if not parts:
            hints = dict(s.hints)
            sizes: list[SizeRef] = []
            for i in s.out:
                ref = self.hint_ref(hints.get(i))
                sizes.append(UnknownSize(i) if ref is None else ref)
            return self.emit(op.Zeros(tuple(sizes)))
        if len(parts) == 1 and parts[0].labels == s.out and parts[0].sign == 1.0:
            return parts[0].slot
        return self.emit(op.Add(tuple(parts), s.out))


@dataclass(frozen=True)
class _Slot:
    """An already computed value standing in for factors of a product."""
    slot: int
    labels: tuple[Index, ...]


#: A factor of a product being lowered: an expression, or factors already computed.
Factor = Expr | _Slot


def _labels(g: Any) -> tuple[Index, ...]:
    return g.labels if isinstance(g, _Slot) else factor_indices(g)


def _lowering_rule(table: dict[type, Callable[..., Any]], x: Any) -> Callable[..., Any]:
    """The rule of ``table`` for ``x``'s type or its nearest base class."""
    for cls in type(x).__mro__:
        rule = table.get(cls)
        if rule is not None:
            return rule
    raise TypeError(x)  # pragma: no cover


#: How each kind of IR node is lowered to a new slot (:meth:`Lowering.lower`).
LOWER_NODE: dict[type, Callable[[Lowering, Any], int]] = {
    Tensor: Lowering.diagonal,   # a tensor with distinct indices is an input: see value()
    Delta: Lowering.delta,
    Func: Lowering.func,
    Pow: Lowering.power,
    Inv: Lowering.inv,
    Det: Lowering.det,
    LogDet: Lowering.logdet,
    Product: Lowering.product,
    Sum: Lowering.sum,
}


def _computed(lowering: Lowering, f: _Slot, factors: list) -> tuple[int, tuple[Index, ...]]:
    return f.slot, f.labels


def _identity_factor(lowering: Lowering, f: Delta, factors: list
                     ) -> tuple[int, tuple[Index, ...]]:
    """A delta left in a product with an index summed: a ones-vector (both indices one)
    or an identity matrix, sized by a sibling factor or a hint."""
    size = lowering.size_ref(f.i, [g for g in factors if g is not f], f)
    slot = lowering.emit(op.Ones(size) if f.i == f.j else op.Eye(size))
    return slot, (f.i,) if f.i == f.j else (f.i, f.j)


def _input_factor(lowering: Lowering, f: Tensor, factors: list) -> tuple[int, tuple[Index, ...]]:
    return lowering.input(f.name), f.indices


def _value_factor(lowering: Lowering, f: Expr, factors: list) -> tuple[int, tuple[Index, ...]]:
    return lowering.value(f)


#: How each kind of factor of a product becomes an einsum operand ``(slot, labels)``.
LOWER_FACTOR: dict[type, Callable[[Lowering, Any, list], tuple[int, tuple[Index, ...]]]] = {
    _Slot: _computed,
    Delta: _identity_factor,
    Tensor: _input_factor,
    Expr: _value_factor,
}

#: Where a sibling factor gives the size of a label: an axis of an input or of a slot.
AXIS_OF: dict[type, Callable[[Any, Index], SizeRef | None]] = {
    Tensor: lambda g, lab: InputAxis(g.name, g.indices.index(lab)) if lab in g.indices
    else None,
    _Slot: lambda g, lab: SlotAxis(g.slot, g.labels.index(lab)) if lab in g.labels else None,
}


def _axis_blind_key(e: Expr) -> tuple[tuple, tuple[Index, ...]]:
    """A key equal for expressions equal up to names and the order of their free
    axes (``W1[f,c] X[c,b] -> [b,f]`` and ``-> [f,b]`` share one slot), and ``e``'s
    free labels in the canonical axis order that key stands for: the order whose
    positional naming gives the smallest key (all orders tried up to 4 axes)."""
    found = cached(e, "axis_blind_key")
    if found is not None:
        return found
    free = e.free
    orders = itertools.permutations(free) if len(free) <= 4 else [free]
    best: tuple | None = None
    for order in orders:
        key = canonical_key(e, {f: f"@{k}" for k, f in enumerate(order)})
        if best is None or sort_key(key) < sort_key(best[0]):
            best = (key, order)
    assert best is not None
    remember(e, "axis_blind_key", best)
    return best


def _sum_of_exp(e: Expr) -> Expr | None:
    """``u`` if ``e`` is ``c * sum_j exp(u)`` (c > 0, some axes of u summed), else None."""
    if isinstance(e, Product) and len(e.factors) == 1 and e.coeff > 0:
        f = e.factors[0]
        if isinstance(f, Func) and f.name == "exp" and set(e.out) < set(f.free) and \
                len(set(factor_indices(f))) == len(factor_indices(f)):
            return f.arg
    return None


def _context_free(e: Expr) -> bool:
    """Whether the value of ``e`` is fixed by its inputs alone. Deltas and zeros take
    their sizes from around them, so equal nodes may differ in size -- unless each of
    their labels is a free index of ``e`` that a tensor inside ``e`` also carries
    (the ones-marker of a broadcast bias, ``W1[h,i]*X[i,b] + b1[h]``: ``b`` is ``X``'s
    axis), which fixes it wherever ``e`` occurs."""
    return _intrinsic(e, _fixed(e))


def _fixed(e: Expr) -> set[Index]:
    """The free indices of ``e`` whose size a tensor inside ``e`` carries (through
    nodes where the index stays free; inv/det/logdet arguments are closed)."""
    if isinstance(e, Tensor):
        return set(e.indices)
    if isinstance(e, (Inv, Det, LogDet)):
        return set()
    found: set[Index] = set()
    for c in children(e):
        found |= _fixed(c)
    return found & set(e.free)


def _intrinsic(n: Expr, fixed: set[Index]) -> bool:
    """Whether every delta and zero in ``n`` has only labels of ``fixed`` (indices free
    all the way from the node ``fixed`` was found for)."""
    if isinstance(n, Delta):
        return {n.i, n.j} <= fixed
    if isinstance(n, Sum) and not n.terms:
        return set(n.out) <= fixed
    inner = set() if isinstance(n, (Inv, Det, LogDet)) else fixed & set(n.free)
    return all(_intrinsic(c, inner) for c in children(n))


def to_float(c: Fraction) -> float:
    """``float(c)``, or +-inf beyond float64's range (as numpy overflows)."""
    try:
        return float(c)
    except OverflowError:
        return math.inf if c > 0 else -math.inf
