"""Compiled evaluation: plan once, evaluate many times.

:func:`compile_expr` lowers a simplified expression into a straight-line program:

* **Common subexpressions** are computed once: two nodes that are equal up to the
  names of their summed indices (the residual ``X theta - Y`` in both terms, the
  same ``exp(...)`` in a numerator and a denominator) share one slot. Keys come from
  :func:`einderiv.simplify.canonical_key` with free axes named by position.
* **Each product** is one ``opt_einsum.contract_expression``, planned once per input
  shape signature (exhaustive search for small terms, dynamic programming for long
  chains such as ``x^T A1 ... A16 x``, greedy beyond 40 factors); a product of two
  vectors/matrices is one direct BLAS call.
* **Kronecker deltas** never become dense identities on numpy: a delta with both
  indices free is applied by computing the term once with the two indices merged,
  then writing it into a strided diagonal view of a zero array; a ones-marker
  becomes a broadcast.
* **Memory**: before running, shapes are propagated through the program and the
  result and every intermediate are checked against ``memory_limit`` (default: half
  the machine's RAM), so a 8 TB Hessian raises :class:`~einderiv.errors.LimitError`
  instead of swapping.

Inputs: every variable of the expression must be given; names it does not use are
ignored (except that one may give the size of an axis). Integer and boolean arrays
are promoted to float64; complex arrays are supported (functions marked real-only in
:mod:`einderiv.functions` refuse them); NaN and inf pass through as in numpy; inputs
are never modified and the result never aliases an input.

Backends: ``"numpy"`` (default) and ``"dask"`` (dask arrays in, a lazy dask array out;
``.compute()`` equals numpy). Element-wise functions go through numpy ufuncs, which
dask arrays implement; nothing calls ``np.asarray`` on a dask input.
"""

from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Callable, Mapping

import numpy as np
import opt_einsum as oe

from .errors import EinderivError, EvaluationError, LimitError
from .functions import FUNCTIONS
from .ir import (Delta, Det, Expr, Func, Index, Inv, LogDet, Pow, Product, Sum, Tensor,
                 const_value, factor_indices, iter_tensors, outer_origins, rename)
from .simplify import _sort_key, canonical_key

__all__ = ["compile_expr", "CompiledExpr", "PlanInfo", "BACKENDS"]

#: numpy's limit on the number of axes of an array.
MAX_RANK = 64

#: Supported backends and what they need.
BACKENDS: dict[str, str] = {
    "numpy": "numpy arrays in and out (default)",
    "dask": "dask arrays in, a lazy dask array out (requires dask)",
}


def _default_memory_limit() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 * 2**30


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"  # pragma: no cover


# ============================================================================ program

# A size reference: where a label's size comes from at run time.
#   ("input", name, axis) | ("slot", slot, axis) | ("int", n)
SizeRef = tuple


@dataclass
class _Step:
    kind: str
    args: tuple
    # filled by shape inference
    shape: tuple[int, ...] = ()


@dataclass
class _Program:
    steps: list[_Step] = field(default_factory=list)
    inputs: dict[str, int] = field(default_factory=dict)  # name -> slot
    output: int = -1
    output_labels: tuple[Index, ...] = ()


class _Lowering:
    """IR -> program. Each method returns ``(slot, labels)``: the slot holding the
    value and the labels of its axes."""

    def __init__(self) -> None:
        self.program = _Program()
        self.memo: dict[tuple, int] = {}
        self.context: list[dict] = []  # size hints of enclosing sums, innermost last

    def emit(self, kind: str, *args: Any) -> int:
        self.program.steps.append(_Step(kind, args))
        return len(self.program.steps) - 1

    def input(self, name: str) -> int:
        if name not in self.program.inputs:
            self.program.inputs[name] = self.emit("input", name)
        return self.program.inputs[name]

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
        if isinstance(e, Tensor):  # repeated indices: a diagonal
            return self.einsum(Fraction(1), [(self.input(e.name), e.indices)], e.free)
        if isinstance(e, Delta):
            return self.product(Product(Fraction(1), (e,), e.free))
        if isinstance(e, Func):
            if e.name == "log" and _sum_of_exp(e.arg) is not None:
                return self.logsumexp(e.arg)  # max-shifted: no overflow
            slot, labels = self.value(e.arg)
            slot = self.align(slot, labels, e.arg.free)
            return self.emit("func", e.name, slot)
        if isinstance(e, Pow):
            return self.power(e)
        if isinstance(e, (Inv, Det, LogDet)):
            slot, labels = self.value(e.arg)
            slot = self.align(slot, labels, e.arg.free)
            if isinstance(e, Inv):
                out = self.emit("inv", slot)
                if e.indices[0] == e.indices[1]:
                    return self.einsum(Fraction(1), [(out, e.indices)], e.free)
                return out
            return self.emit("det" if isinstance(e, Det) else "logdet", slot)
        if isinstance(e, Product):
            return self.product(e)
        if isinstance(e, Sum):
            return self.sum(e)
        raise TypeError(e)  # pragma: no cover

    def logsumexp(self, s: Product) -> int:
        """``log(c * sum_j exp(u))`` as ``log c + m + log(sum_j exp(u - m))``, m the max
        over the summed axes (issue 6: no overflow for large u). Axes: ``s.out``."""
        u = _sum_of_exp(s)
        assert u is not None
        slot, labels = self.value(u)
        keep = tuple(i for i in labels if i in set(s.out))
        reduced = tuple(k for k, i in enumerate(labels) if i not in set(s.out))
        out = self.emit("logsumexp", slot, reduced, _float(s.coeff))
        return self.align(out, keep, s.out)

    def stable_exponentials(self, factors: list[Expr]) -> list[Expr]:
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
        shared = self.softmax_shares(exps, sums, parts)
        if shared is not None:
            rest = [f for f in factors if not any(f is g for g in exps + sums)]
            return rest + shared
        for f in sums:
            k = _float(const_value(f.exponent))  # type: ignore[arg-type]
            lse_slot = self.lower(Func("log", f.base)) if _context_free(f.base) else \
                self.logsumexp(f.base)  # type: ignore[arg-type]
            scaled = self.emit("scale", lse_slot, k)
            parts.append((scaled, tuple(f.base.free)))
        labels = tuple(dict.fromkeys(i for _, lab in parts for i in lab))
        total = self.emit("add", tuple((slot, lab, 1.0) for slot, lab in parts), labels)
        combined = self.emit("func", "exp", total)
        rest = [f for f in factors if not any(f is g for g in exps + sums)]
        return rest + [_Slot(combined, labels)]

    def softmax_shares(self, exps: list[Func], sums: list[Pow],
                       parts: list[tuple[int, tuple[Index, ...]]]) -> list[Expr] | None:
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
            self.logsumexp(f.base)  # type: ignore[arg-type]
        shares: list[Expr] = []
        for slot, labels in parts:
            shifted = self.emit("add", ((slot, labels, 1.0), (lse, lse_labels, -1.0)), labels)
            shares.append(_Slot(self.emit("func", "exp", shifted), labels))
        return shares

    def align(self, slot: int, have: tuple[Index, ...], want: tuple[Index, ...]) -> int:
        if have == want:
            return slot
        return self.emit("transpose", slot, tuple(have.index(i) for i in want))

    def power(self, e: Pow) -> int:
        slot, labels = self.value(e.base)
        slot = self.align(slot, labels, e.base.free)
        k = const_value(e.exponent)
        if k is not None:
            return self.emit("pow", slot, _float(k))
        exp_slot, _ = self.value(e.exponent)
        return self.emit("powslot", slot, exp_slot)

    # ------------------------------------------------------------------ products
    def einsum(self, coeff: Fraction, operands: list[tuple[int, tuple[Index, ...]]],
               out: tuple[Index, ...], names: tuple[str, ...] = ()) -> int:
        if len(operands) == 1 and operands[0][1] == out:
            slot = operands[0][0]
            return slot if coeff == 1 else self.emit("scale", slot, _float(coeff))
        return self.emit("einsum", _float(coeff), tuple(operands), out, names)

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
                return self.emit("embed", inner, rest.out, out, ((keep, gone),))
        # 2. A ones-marker along a free index no other factor carries: broadcast.
        for k, f in enumerate(factors):
            if isinstance(f, Delta) and f.i == f.j and f.i in out:
                others = factors[:k] + factors[k + 1:]
                if not any(f.i in factor_indices(g) for g in others):
                    rest = Product(p.coeff, tuple(others), tuple(i for i in out if i != f.i))
                    inner = self.product(rest)
                    size = self.size_ref(f.i, others, f)
                    return self.emit("broadcast", inner, rest.out, out, ((f.i, size),))
        # 3. Everything else is one einsum; summed markers and deltas become vectors.
        operands: list[tuple[int, tuple[Index, ...]]] = []
        present = {i for f in factors for i in factor_indices(f)}
        factors = self.stable_exponentials(factors)
        factors = self.solves(factors, set(out))
        for f in factors:
            if isinstance(f, _Slot):
                operands.append((f.slot, f.labels))
            elif isinstance(f, Delta):
                size = self.size_ref(f.i, [g for g in factors if g is not f], f)
                slot = self.emit("ones" if f.i == f.j else "eye", size)
                operands.append((slot, (f.i,) if f.i == f.j else (f.i, f.j)))
            elif isinstance(f, Tensor):
                operands.append((self.input(f.name), f.indices))
            else:
                operands.append(self.value(f))
        for i in out:
            if i not in present:  # pragma: no cover - simplified input never has this
                raise EinderivError(f"index {i!r} of the output occurs in no factor")
        if not operands:
            return self.emit("const", _float(p.coeff))
        from .printing import to_text
        names = tuple(to_text(f) if isinstance(f, Expr) else "an intermediate" for f in factors)
        return self.einsum(p.coeff, operands, out, names)

    def solves(self, factors: list, out: set[Index]) -> list:
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
                m_slot, m_labels = self.value(f.arg)
                m_slot = self.align(m_slot, m_labels, f.arg.free)
                g_slot, g_free = (self.input(g.name), g.indices) if isinstance(g, Tensor) \
                    else self.value(g)
                if len(set(g_free)) != len(g_free):
                    continue
                rhs = self.align(g_slot, g_free, (shared,) + tuple(i for i in g_free
                                                                    if i != shared))
                solved = self.emit("solve", m_slot, rhs, axis == 0)
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
            for lab in labels:  # a delta is square: either index gives the size
                if isinstance(g, Tensor) and lab in g.indices:
                    return ("input", g.name, g.indices.index(lab))
                if isinstance(g, _Slot) and lab in g.labels:
                    return ("slot", g.slot, g.labels.index(lab))
        if delta is not None and isinstance(delta.size, tuple):
            self.input_hint(delta.size[0])
            return ("input", delta.size[0], delta.size[1])
        if delta is not None and isinstance(delta.size, int):
            return ("int", delta.size)
        for g in siblings:
            for lab in labels:
                if isinstance(g, Expr) and lab in g.free and not isinstance(g, Delta):
                    slot, free = self.value(g)
                    return ("slot", slot, free.index(lab))
        for origins in reversed(self.context):  # a sibling term of an enclosing sum
            for lab in labels:
                hint = origins.get(lab)
                if isinstance(hint, tuple):
                    self.input_hint(hint[0])
                    return ("input", hint[0], hint[1])
                if isinstance(hint, int):
                    return ("int", hint)
        return ("unknown", label)

    def input_hint(self, name: str) -> None:
        """A size may come from a variable the expression no longer uses."""
        self.program.inputs.setdefault(name, self.emit("input", name))

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
        parts = []
        for t in s.terms:
            if isinstance(t, Product):
                want = tuple(i for i in s.out if i in set(t.out))
                if len(t.factors) == 1 and isinstance(t.factors[0], Tensor) and \
                        t.factors[0].indices == want and t.coeff in (1, -1):
                    # +-x[i]: the sign is applied in the addition, no extra pass
                    parts.append((self.input(t.factors[0].name), want, float(t.coeff)))
                    continue
                parts.append((*self.value(Product(t.coeff, t.factors, want)), 1.0))
            else:
                parts.append((*self.value(t), 1.0))
        if not parts:
            hints = dict(s.hints)
            sizes = []
            for i in s.out:
                hint = hints.get(i)
                if isinstance(hint, tuple):
                    self.input_hint(hint[0])
                    sizes.append(("input", hint[0], hint[1]))
                elif isinstance(hint, int):
                    sizes.append(("int", hint))
                else:
                    sizes.append(("unknown", i))
            return self.emit("zeros", tuple(sizes))
        if len(parts) == 1 and parts[0][1] == s.out and parts[0][2] == 1.0:
            return parts[0][0]
        return self.emit("add", tuple(parts), s.out)


# ============================================================================ running


@dataclass(frozen=True)
class PlanInfo:
    """What a plan for one set of input shapes costs.

    ``flops`` is opt_einsum's estimate summed over the contractions plus one
    operation per element for element-wise steps; ``largest_bytes`` is the largest
    array the plan creates, ``result_bytes`` the result's size."""

    flops: int
    largest_bytes: int
    result_bytes: int
    result_shape: tuple[int, ...]
    contractions: int


class CompiledExpr:
    """A planned expression; call it with the arrays as keyword arguments.

    Plans (contraction orders, shapes, memory checks) are cached per input shape
    signature, so repeated calls with same-shaped arrays only run the arithmetic.
    """

    def __init__(self, expr: Expr, backend: str, memory_limit: int | None,
                 optimize: str = "auto"):
        if backend not in BACKENDS:
            valid = ", ".join(f"{k!r} ({v})" for k, v in BACKENDS.items())
            raise EinderivError(f"unknown backend {backend!r}; valid backends: {valid}")
        self.expr = expr
        self.backend = backend
        self.memory_limit = _default_memory_limit() if memory_limit is None else memory_limit
        self.optimize = optimize
        lowering = _Lowering()
        slot, labels = lowering.value(expr)
        lowering.program.output = lowering.align(slot, labels, expr.free)
        lowering.program.output_labels = expr.free
        self.program = lowering.program
        self.variables = sorted({t.name for t in iter_tensors(expr)})
        self._ranks = {t.name: len(t.indices) for t in iter_tensors(expr)}
        self._plans: dict[tuple, tuple[list, PlanInfo]] = {}
        self._bound: dict[tuple, list[Callable[..., Any]]] = {}  # per plan: one closure a step
        self._needs_dtype = any(s.kind in _MAKES_CONSTANTS for s in self.program.steps)

    def __repr__(self) -> str:
        return f"CompiledExpr({str(self.expr)!r}, backend={self.backend!r})"

    # -------------------------------------------------------------------- inputs
    def _inputs(self, arrays: Mapping[str, Any]) -> dict[str, Any]:
        missing = [n for n in self.variables if n not in arrays]
        if missing:
            raise EvaluationError(f"missing value for {', '.join(map(repr, missing))}; "
                                  f"the expression uses {', '.join(self.variables)}")
        out: dict[str, Any] = {}
        for name in self.program.inputs:
            if name not in arrays:
                raise EvaluationError(
                    f"missing value for {name!r}: the result has an axis of its size")
            value = arrays[name]
            if self.backend == "numpy":
                try:
                    value = np.asarray(value)
                except (ValueError, TypeError) as exc:
                    raise EvaluationError(f"{name!r} is not a valid array: {exc}") from None
                if value.dtype.kind in "biu":
                    value = value.astype(np.float64)
                elif value.dtype.kind not in "fc":
                    raise EvaluationError(f"{name!r} must be numeric, got dtype {value.dtype}")
            elif not hasattr(value, "shape"):
                value = np.asarray(value, dtype=float)
            rank = self._ranks.get(name)
            if rank is not None and len(value.shape) != rank:
                raise EvaluationError(
                    f"{name!r} is used with {rank} indices but was given shape {tuple(value.shape)}")
            out[name] = value
        return out

    # ---------------------------------------------------------------- planning
    def plan_info(self, **arrays: Any) -> PlanInfo:
        """Cost of the plan for these arrays (or anything with a ``.shape``)."""
        return self._plan(self._inputs(arrays))[1]

    def _key(self, inputs: Mapping[str, Any]) -> tuple:
        return tuple((n, tuple(inputs[n].shape)) for n in self.program.inputs)

    def _plan(self, inputs: Mapping[str, Any]) -> tuple[list, PlanInfo]:
        key = self._key(inputs)
        cached = self._plans.get(key)
        if cached is not None:
            return cached
        shapes: list[tuple[int, ...]] = []
        exprs: list[Any] = []
        flops = 0
        largest = 0
        itemsize = 16 if any(np.dtype(getattr(v, "dtype", float)).kind == "c"
                             for v in inputs.values()) else 8

        def size(ref: SizeRef) -> int:
            if ref[0] == "input":
                return int(inputs[ref[1]].shape[ref[2]])
            if ref[0] == "slot":
                return shapes[ref[1]][ref[2]]
            if ref[0] == "unknown":
                raise EvaluationError(
                    f"cannot tell the size of index {ref[1]!r}: it occurs on no tensor given "
                    "(the tensor that carried it cancelled or was differentiated away)")
            return int(ref[1])

        costs: list[int] = []  # FLOPs per step, for choosing between plans
        for step in self.program.steps:
            kind, a = step.kind, step.args
            planned = None
            before = flops
            if kind == "input":
                shape = tuple(int(d) for d in inputs[a[0]].shape)
            elif kind == "einsum":
                shape, planned, cost, widest = self._plan_einsum(a, shapes)
                flops += cost
                largest = max(largest, widest * itemsize)
            elif kind in ("func", "pow", "powslot"):
                shape = shapes[a[1] if kind == "func" else a[0]]
                flops += math.prod(shape)
            elif kind == "transpose":
                shape = tuple(shapes[a[0]][k] for k in a[1])
            elif kind == "logsumexp":
                shape = tuple(n for k, n in enumerate(shapes[a[0]]) if k not in a[1])
                flops += 3 * math.prod(shapes[a[0]])
            elif kind == "scale":
                shape = shapes[a[0]]
            elif kind == "solve":
                _square(shapes[a[0]], "inv")
                shape = shapes[a[1]]
                if shape[0] != shapes[a[0]][0]:
                    raise EvaluationError(
                        f"inv(...) is {shapes[a[0]][0]} x {shapes[a[0]][0]} but the factor it "
                        f"multiplies has size {shape[0]} along the shared index; check the "
                        "shapes of the arrays")
                flops += 2 * shapes[a[0]][0] ** 3 // 3 + 2 * shapes[a[0]][0] * math.prod(shape)
            elif kind == "inv":
                shape = shapes[a[0]]
                _square(shape, "inv")
                flops += 2 * shape[0] ** 3
            elif kind in ("det", "logdet"):
                _square(shapes[a[0]], kind)
                shape = ()
                flops += shapes[a[0]][0] ** 3
            elif kind in ("ones", "eye"):
                n = size(a[0])
                shape = (n,) if kind == "ones" else (n, n)
            elif kind == "const":
                shape = ()
            elif kind == "zeros":
                shape = tuple(size(r) for r in a[0])
            elif kind == "add":
                sizes: dict[Index, int] = {}
                for slot, labels, _ in a[0]:
                    for lab, n in zip(labels, shapes[slot]):
                        if sizes.setdefault(lab, n) != n:
                            raise EvaluationError(
                                f"index {lab!r} has size {sizes[lab]} in one term of a sum "
                                f"but size {n} in another; check the shapes of the arrays")
                shape = tuple(sizes[i] for i in a[1])
                flops += math.prod(shape) * len(a[0])
            elif kind == "embed":
                inner, rest_labels, out, pairs = a
                sizes = dict(zip(rest_labels, shapes[inner]))
                for keep, gone in pairs:
                    sizes[gone] = sizes[keep]
                shape = tuple(sizes[i] for i in out)
            elif kind == "broadcast":
                inner, rest_labels, out, extra = a
                sizes = dict(zip(rest_labels, shapes[inner]))
                for lab, ref in extra:
                    sizes[lab] = size(ref)
                shape = tuple(sizes[i] for i in out)
            else:  # pragma: no cover
                raise AssertionError(kind)
            shapes.append(shape)
            exprs.append(planned)
            costs.append(int(flops - before))
            largest = max(largest, math.prod(shape) * itemsize)
        result_shape = shapes[self.program.output]
        result_bytes = math.prod(result_shape) * itemsize
        deepest = max((len(sh) for sh in shapes), default=0)
        if deepest > MAX_RANK:
            raise LimitError(f"evaluating needs an array with {deepest} axes; numpy supports "
                             f"at most {MAX_RANK}")
        if largest > self.memory_limit:
            what = "the result" if largest == result_bytes else "an intermediate"
            raise LimitError(
                f"evaluating would need {format_bytes(largest)} for {what} (result shape "
                f"{result_shape}, {format_bytes(result_bytes)}), over the memory limit of "
                f"{format_bytes(self.memory_limit)}; use einderiv.hvp/jvp to apply the "
                "derivative without forming it, or raise memory_limit")
        info = PlanInfo(int(flops), int(largest), int(result_bytes), result_shape,
                        sum(1 for s in self.program.steps if s.kind == "einsum"))
        self._plans[key] = (exprs, info)
        steps = self.program.steps
        absorbed = _absorbed_diagonals(self.program) if self.backend == "numpy" else {}
        bound = [_bind(step, plan, shapes, k, self.backend)
                 for k, (step, plan) in enumerate(zip(steps, exprs))]
        for add_at, (embed_at, owned) in absorbed.items():
            bound[embed_at] = _skipped
            bound[add_at] = _bind_add(steps[add_at].args, shapes, add_at,
                                      diagonal=(embed_at, steps[embed_at].args, owned))
        if self.backend == "numpy":
            for at, (run, dead) in self._distributions(shapes, costs, set(absorbed)).items():
                bound[at] = run
                for slot in dead:
                    bound[slot] = _skipped
        self._bound[key] = bound
        return exprs, info

    def _distributions(self, shapes: list, costs: list[int], absorbed: set[int]
                       ) -> dict[int, tuple[Callable[..., Any], list[int]]]:
        """Products with a sum factor that are cheaper multiplied out, for these shapes:
        ``V[a,f] (M[e,a] - U[e,b] V[a,b])`` never forms the m x n residual when
        ``M V - U (V^T V)`` costs less (the low-rank fit; 001_*-style algebra, chosen
        by opt_einsum's FLOP counts). Maps the product's slot to its new closure and
        the steps it makes unnecessary (the sum and the terms' own products)."""
        steps = self.program.steps
        readers = [0] * len(steps)
        for step in steps:
            for slot in _reads(step):
                readers[slot] += 1
        readers[self.program.output] += 1
        chosen: dict[int, tuple[Callable[..., Any], list[int]]] = {}
        taken: set[int] = set()
        for k, step in enumerate(steps):
            if step.kind != "einsum":
                continue
            coeff, operands, out, _ = step.args
            for j, (slot, labels) in enumerate(operands):
                add = steps[slot]
                if add.kind != "add" or readers[slot] != 1 or slot in absorbed or slot in taken:
                    continue
                plan = self._distributed(k, j, shapes, readers)
                if plan is None:
                    continue
                terms, dead = plan
                if any(d in taken for d in dead):
                    continue
                planned = [self._plan_einsum((1.0, ops, out, ()), shapes) for _, ops in terms]
                new_cost = sum(p[2] for p in planned) + math.prod(shapes[k]) * (len(terms) - 1)
                old_cost = costs[k] + sum(costs[d] for d in dead)
                if new_cost < 0.7 * old_cost:
                    chosen[k] = (_sum_of_products([(c, [s for s, _ in ops], p[1])
                                                   for (c, ops), p in zip(terms, planned)]), dead)
                    taken.update(dead)
                    taken.add(k)
                break
        return chosen

    def _distributed(self, k: int, j: int, shapes: list, readers: list[int]
                     ) -> tuple[list[tuple[float, tuple]], list[int]] | None:
        """The terms of einsum step ``k`` with its ``j``-th operand (a sum) multiplied
        out: ``(coefficient, operands)`` each, and the steps no longer needed."""
        steps = self.program.steps
        coeff, operands, out, _ = steps[k].args
        sum_slot, sum_labels = operands[j]
        parts, sum_out = steps[sum_slot].args
        others = operands[:j] + operands[j + 1:]
        to_outer = dict(zip(sum_out, sum_labels))  # the sum's labels -> this product's
        terms: list[tuple[float, tuple]] = []
        dead = [sum_slot]
        for t, (slot, labels, sign) in enumerate(parts):
            producer = steps[slot]
            if producer.kind == "embed" or set(labels) != set(sum_out):
                return None  # a diagonal term, or one broadcast along an axis of the sum
            if producer.kind == "einsum" and readers[slot] == 1:
                t_coeff, t_ops, t_out, _ = producer.args
                mapping = {lab: to_outer[part_lab] for lab, part_lab in zip(t_out, labels)}
                own = [(s, tuple(mapping.setdefault(i, f"_d{k}_{t}_{i}") for i in labs))
                       for s, labs in t_ops]
                dead.append(slot)
                term_coeff = coeff * sign * t_coeff
            else:
                own = [(slot, tuple(to_outer[i] for i in labels))]
                term_coeff = coeff * sign
            terms.append((term_coeff, tuple(others) + tuple(own)))
        return terms, dead

    def _plan_einsum(self, args: tuple, shapes: list) -> tuple[tuple[int, ...], Any, int, int]:
        """Shape, callable, FLOP estimate and largest intermediate (elements) of one product."""
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
        shape, planned, cost, widest = self._plan_product(operands, local, out, sizes)
        if lonely:
            planned = _pre_summed(planned, lonely)
            cost += sum(math.prod(shapes[args[1][k][0]]) for k in lonely)
        return shape, planned, cost, widest

    def _plan_product(self, operands: tuple, local: list, out: tuple[Index, ...],
                      sizes: Mapping[Index, int]) -> tuple[tuple[int, ...], Any, int, int]:
        gram = _gram_plan(operands, out) if self.backend == "numpy" else None
        if gram is not None:
            rows, cols = (sizes[i] for i in gram.axes)
            return (tuple(sizes[i] for i in out), gram, rows * cols * (cols + 1),
                    max(rows * cols, cols * cols))
        optimize = _path_strategy(self.optimize, len(operands))
        if optimize is None or any(0 in sh for sh in local):
            # Many factors (path search would dominate) or an empty axis (every path
            # costs nothing and opt_einsum's dynamic programming finds none): contract
            # one connected factor after another into a running result.
            order = _connected_order(operands)
            operands = tuple(operands[k] for k in order)
            planned, cost, widest = _sequential(operands, [local[k] for k in order], out, sizes)
            if order != sorted(order):
                planned = _permuted(planned, order)
            return tuple(sizes[i] for i in out), planned, cost, widest
        symbols: dict[Index, str] = {}
        for _, labels in operands:
            for i in labels:
                symbols.setdefault(i, oe.get_symbol(len(symbols)))
        spec = ",".join("".join(symbols[i] for i in labels) for _, labels in operands)
        spec += "->" + "".join(symbols[i] for i in out)
        op_shapes = local
        _, info = oe.contract_path(spec, *op_shapes, shapes=True, optimize=optimize)
        planned = _scalars_apart(operands, out, op_shapes, optimize, self.backend)
        if planned is None:
            planned = oe.contract_expression(spec, *op_shapes, optimize=optimize)
        return (tuple(sizes[i] for i in out), planned, int(info.opt_cost),
                int(info.largest_intermediate))

    # ------------------------------------------------------------------- running
    def __call__(self, **arrays: Any) -> Any:
        inputs = self._inputs(arrays)
        runners = self._bound.get(self._key(inputs))
        if runners is None:
            self._plan(inputs)
            runners = self._bound[self._key(inputs)]
        # Constants (deltas, ones, zeros) take the inputs' common dtype, as numpy would.
        dtype = np.result_type(*(getattr(v, "dtype", np.float64) for v in inputs.values())) \
            if inputs and self._needs_dtype else np.dtype(np.float64)
        values: list[Any] = []
        for run in runners:
            values.append(run(values, inputs, dtype))
        result = values[self.program.output]
        if self.backend == "numpy":
            result = np.asarray(result)
            if any(np.may_share_memory(result, v) for v in inputs.values()
                   if isinstance(v, np.ndarray)):
                result = result.copy()  # never hand back (a view of) an input
        return result

    def flops(self, **arrays: Any) -> int:
        """opt_einsum's FLOP estimate for evaluating with arrays of these shapes."""
        return self.plan_info(**arrays).flops


#: Above this many factors in one product, "auto" skips opt_einsum's path search.
MANY_FACTORS = 40


def _path_strategy(requested: str, n_operands: int) -> Any:
    """opt_einsum's strategy for one product, or None for :func:`_connected_order`.
    ``"auto"``: exhaustive search for a few operands, dynamic programming (optimal,
    and fast for chains such as x^T A1 ... A16 x, which it runs as matrix-vector
    products) up to MANY_FACTORS; beyond, path search itself would dominate (greedy
    is quadratic). Any other value is passed to opt_einsum as it is."""
    if requested != "auto":
        return requested
    if n_operands <= 4:
        return "optimal"
    return "dp" if n_operands <= MANY_FACTORS else None


def _connected_order(operands: tuple) -> list[int]:
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
        word = lambda labs: "".join(letters[i] for i in labs)  # noqa: E731
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
            new_ops[k] = (slot, tuple(lab for a, lab in enumerate(labels) if a not in axes))
            new_shapes[k] = tuple(n for a, n in enumerate(shapes[k]) if a not in axes)
    return tuple(new_ops), new_shapes, lonely


def _pre_summed(planned: Callable[..., Any], lonely: Mapping[int, tuple[int, ...]]
                ) -> Callable[..., Any]:
    def run(*ops: Any, backend: str = "numpy") -> Any:
        ops_list = list(ops)
        for k, axes in lonely.items():
            ops_list[k] = ops_list[k].sum(axis=axes)
        return planned(*ops_list, backend=backend)
    return run


def _permuted(planned: Callable[..., Any], order: list[int]) -> Callable[..., Any]:
    def run(*ops: Any, backend: str = "numpy") -> Any:
        return planned(*(ops[k] for k in order), backend=backend)
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
        symbols: dict[Index, str] = {}
        for _, labels in rest:
            for i in labels:
                symbols.setdefault(i, oe.get_symbol(len(symbols)))
        spec = ",".join("".join(symbols[i] for i in lab) for _, lab in rest)
        spec += "->" + "".join(symbols[i] for i in out)
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
    return run


class _Gram:
    """``X[a,c] * X[a,d] * w[a] -> [c,d]`` (the Hessian of every generalised linear
    model: X^T diag(w) X) as one symmetric product. Where ``w >= 0`` (checked at run
    time, O(n)), ``Z = sqrt(w) X`` and ``Z^T Z``, which numpy runs as BLAS syrk at
    half the cost of a general product; otherwise ``(w X)^T X``. Numbers multiply
    the result. ``axes``: the summed label and the other one, for the FLOP count."""

    scale_after = True  # a coefficient multiplies the result, never w (keeps w >= 0)

    def __init__(self, pair: tuple[int, int], summed_axis: int, vectors: list[int],
                 scalars: list[int], axes: tuple[Index, Index]):
        self.pair, self.summed_axis, self.vectors, self.scalars = pair, summed_axis, vectors, scalars
        self.axes = axes

    def __call__(self, *ops: Any, backend: str = "numpy") -> Any:
        x = ops[self.pair[0]]
        if self.summed_axis == 1:
            x = x.T  # X[c,a] X[d,a]: the same with rows and columns exchanged
        w = None
        for k in self.vectors:
            w = ops[k] if w is None else w * ops[k]
        if w is None:
            result = x.T @ x
        elif np.isrealobj(w) and np.isrealobj(x) and w.min() >= 0:
            z = x * np.sqrt(w)[:, None]
            result = z.T @ z
        else:
            result = (x * w[:, None]).T @ x
        for k in self.scalars:
            result = result * ops[k]
        return result


def _gram_plan(operands: tuple, out: tuple[Index, ...]) -> _Gram | None:
    """A :class:`_Gram` for a product of one matrix twice, sharing one summed index,
    times vectors along that index and numbers; None for any other product."""
    mats = [k for k, (_, labels) in enumerate(operands) if len(labels) == 2]
    if len(mats) != 2 or len(out) != 2:
        return None
    (s1, l1), (s2, l2) = operands[mats[0]], operands[mats[1]]
    if s1 != s2 or len(set(l1)) != 2 or len(set(l2)) != 2:
        return None
    shared = set(l1) & set(l2)
    if len(shared) != 1:
        return None
    (a,) = shared
    axis = l1.index(a)
    if l2.index(a) != axis or a in out:
        return None
    c, d = l1[1 - axis], l2[1 - axis]
    if c == d or set(out) != {c, d}:
        return None
    vectors, scalars = [], []
    for k, (_, labels) in enumerate(operands):
        if k in mats:
            continue
        if labels == (a,):
            vectors.append(k)
        elif labels == ():
            scalars.append(k)
        else:
            return None
    # Z^T Z is symmetric, so out = (c, d) and (d, c) are the same array.
    return _Gram((mats[0], mats[1]), axis, vectors, scalars, (a, c))


def _identity(op: Any, backend: str = "numpy") -> Any:
    return op


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
    identity = tuple(range(len(out)))

    def run(a: Any, b: Any, backend: str = "numpy") -> Any:
        r = a.transpose(perm_a) @ b.transpose(perm_b)
        return r if perm_out == identity else r.transpose(perm_out)
    return run


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
            result = np.multiply.outer(result, ops[k])
        return result
    return run


def _float(c: Fraction) -> float:
    """``float(c)``, or +-inf beyond float64's range (as numpy overflows)."""
    try:
        return float(c)
    except OverflowError:
        return math.inf if c > 0 else -math.inf


def _linalg_ready(m: Any) -> Any:
    """numpy.linalg supports float32/64 and complex64/128: promote other floats
    (float16, longdouble) to float64, as numpy does for integers."""
    if isinstance(m, np.ndarray) and m.dtype.kind == "f" and m.dtype.itemsize not in (4, 8):
        return m.astype(np.float64)
    return m


@dataclass(frozen=True)
class _Slot:
    """An already computed value standing in for factors of a product."""
    slot: int
    labels: tuple[Index, ...]


def _labels(g: Any) -> tuple[Index, ...]:
    return g.labels if isinstance(g, _Slot) else factor_indices(g)


def _axis_blind_key(e: Expr) -> tuple[tuple, tuple[Index, ...]]:
    """A key equal for expressions equal up to names and the order of their free
    axes (``W1[f,c] X[c,b] -> [b,f]`` and ``-> [f,b]`` share one slot), and ``e``'s
    free labels in the canonical axis order that key stands for: the order whose
    positional naming gives the smallest key (all orders tried up to 4 axes)."""
    free = e.free
    orders = itertools.permutations(free) if len(free) <= 4 else [free]
    best: tuple | None = None
    for order in orders:
        key = canonical_key(e, {f: f"@{k}" for k, f in enumerate(order)})
        if best is None or _sort_key(key) < _sort_key(best[0]):
            best = (key, order)
    assert best is not None
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
    """Whether the value of ``e`` is fixed by its inputs alone: deltas and zeros take
    their sizes from the surrounding expression, so equal nodes may differ in size."""
    from .ir import walk
    return not any(isinstance(n, Delta) or (isinstance(n, Sum) and not n.terms) for n in walk(e))


def _square(shape: tuple[int, ...], what: str) -> None:
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
_MAKES_CONSTANTS = frozenset({"ones", "eye", "const", "zeros", "embed"})


def _bind(step: _Step, plan: Any, shapes: list, k: int, backend: str) -> Callable[..., Any]:
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
        return _bind_add(a, shapes, k)
    if kind == "scale":
        slot, c = a
        return lambda values, inputs, dtype: values[slot] * c
    return lambda values, inputs, dtype: _run(step, plan, values, inputs, backend, dtype)


def _bind_einsum(a: tuple, plan: Any, shapes: list, k: int) -> Callable[..., Any]:
    coeff, operands, _, _ = a
    slots = tuple(slot for slot, _ in operands)
    scale_at = None
    if coeff != 1.0 and not getattr(plan, "scale_after", False):
        # scale the smallest array involved: the output or one operand
        smallest = min(range(len(slots)), key=lambda j: math.prod(shapes[slots[j]]))
        if math.prod(shapes[slots[smallest]]) < math.prod(shapes[k]):
            scale_at = smallest
    if coeff == 1.0 and len(slots) == 2:
        i, j = slots
        return lambda values, inputs, dtype: plan(values[i], values[j])
    if coeff == 1.0 and len(slots) == 1:
        (i,) = slots
        return lambda values, inputs, dtype: plan(values[i])

    def run(values: list, inputs: Any, dtype: Any) -> Any:
        ops = [values[s] for s in slots]
        if scale_at is not None:
            ops[scale_at] = ops[scale_at] * coeff
            return plan(*ops)
        result = plan(*ops)
        return result if coeff == 1.0 else result * coeff
    return run


def _reads(step: _Step) -> list[int]:
    """The slots a step reads (sizes included)."""
    kind, a = step.kind, step.args
    if kind == "einsum":
        return [slot for slot, _ in a[1]]
    if kind == "add":
        return [slot for slot, _, _ in a[0]]
    if kind == "func":
        return [a[1]]
    if kind in ("pow", "logsumexp", "scale", "transpose", "inv", "det", "logdet", "embed"):
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


#: Step kinds whose value is a new array that no other slot shares (the einsum
#: kind only with two or more operands: one operand may come back as it is).
_FRESH = frozenset({"func", "pow", "scale", "add"})


def _absorbed_diagonals(program: _Program) -> dict[int, tuple[int, int | None]]:
    """Sums with one term on a diagonal (a delta with both indices free, an
    ``embed`` step read by that sum only): the sum adds the term onto the diagonal
    of the rest instead of forming a zero array around it (the softmax Hessian
    ``diag(p) - p p^T``). Maps the sum's slot to the embed's slot and, where the
    rest is a single new array read only by this sum, its slot (updated in place)."""
    readers = [0] * len(program.steps)
    for step in program.steps:
        for slot in _reads(step):
            readers[slot] += 1
    readers[program.output] += 1
    found: dict[int, tuple[int, int | None]] = {}
    for k, step in enumerate(program.steps):
        if step.kind != "add":
            continue
        parts = step.args[0]
        embeds = [slot for slot, _, _ in parts
                  if program.steps[slot].kind == "embed" and readers[slot] == 1]
        if len(embeds) != 1 or len(parts) < 2:
            continue
        rest = [(slot, sign) for slot, _, sign in parts if slot != embeds[0]]
        owned = None
        if len(rest) == 1 and rest[0][1] == 1.0 and readers[rest[0][0]] == 1:
            producer = program.steps[rest[0][0]]
            if producer.kind in _FRESH or (producer.kind == "einsum" and len(producer.args[1]) > 1):
                owned = rest[0][0]
        found[k] = (embeds[0], owned)
    return found


def _sum_of_products(terms: list[tuple[float, list[int], Callable[..., Any]]]
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


def _skipped(values: list, inputs: Any, dtype: Any) -> None:
    return None  # a step whose value another step computes in place


def _bind_add(a: tuple, shapes: list, k: int,
              diagonal: tuple[int, tuple, int | None] | None = None) -> Callable[..., Any]:
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
                         None if target == tuple(shapes[slot][p] for p in perm) else target,
                         sign))
        aligned_shapes.append(target)
    full = tuple(shapes[k])
    needs_broadcast = np.broadcast_shapes(*aligned_shapes) != full if aligned_shapes else True

    def run(values: list, inputs: Any, dtype: Any) -> Any:
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
    return run


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
    strides = dict(zip(out, total.strides))
    sizes = dict(zip(out, total.shape))
    for keep, gone in pairs:
        strides[keep] += strides.pop(gone)
    view = np.lib.stride_tricks.as_strided(
        total, shape=tuple(sizes[i] for i in rest_labels),
        strides=tuple(strides[i] for i in rest_labels), writeable=True)
    if sign == 1.0:
        view += inner
    else:
        view -= inner
    return total


def _run(step: _Step, plan: Any, values: list, inputs: Mapping[str, Any], backend: str,
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
        fn, arg = FUNCTIONS[a[0]], values[a[1]]
        if fn.real_only and np.iscomplexobj(arg):
            raise EvaluationError(f"{fn.name}(...) is defined for real input only, "
                                  "but its argument is complex")
        return fn.numpy(arg)
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
        if isinstance(m, np.ndarray) and np.isfinite(m).all():
            # the common case: each sum of exp(u - m) is >= 1 (a lazy array: below)
            total = np.log(np.exp(u - m).sum(axis=axes, keepdims=True)) + m
        else:  # all -inf (log 0), or inf/nan: shift by 0 there, as numpy would compute
            m = np.where(np.isfinite(m), m, 0.0)
            with np.errstate(divide="ignore"):
                total = np.log(np.sum(np.exp(u - m), axis=axes, keepdims=True)) + m
        total = total.squeeze(axis=axes)
        return total + np.log(c) if c != 1.0 else total
    if kind == "scale":
        return values[a[0]] * a[1]
    if kind == "solve":
        m, rhs, transposed = _linalg_ready(values[a[0]]), values[a[1]], a[2]
        flat = rhs.reshape(rhs.shape[0], -1) if rhs.ndim != 1 else rhs
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
        symbols: dict[Index, str] = {}
        for lab in (*labels, out):
            for i in lab:
                symbols.setdefault(i, oe.get_symbol(len(symbols)))
        spec = ",".join("".join(symbols[i] for i in lab) for lab in labels)
        spec += "->" + "".join(symbols[i] for i in out)
        return oe.contract(spec, *operands, backend=backend)
    result = np.zeros(shape, dtype=np.result_type(inner, dtype))
    strides = dict(zip(out, result.strides))
    for keep, gone in pairs:
        strides[keep] += strides.pop(gone)
    view = np.lib.stride_tricks.as_strided(
        result, shape=tuple(sizes[i] for i in rest_labels),
        strides=tuple(strides[i] for i in rest_labels), writeable=True)
    view[...] = inner
    return result


def compile_expr(expr: Expr, shapes: Mapping[str, Any] | None = None, backend: str = "numpy",
                 *, memory_limit: int | None = None, optimize: str = "auto") -> CompiledExpr:
    """Plan the evaluation of ``expr`` once; return a callable ``f(**arrays)``.

    ``backend`` is a key of :data:`BACKENDS`; ``memory_limit`` (bytes, default half
    the RAM) bounds the result and every intermediate; ``optimize`` is ``"auto"`` or an
    opt_einsum path strategy. ``shapes`` (name -> tuple of ints) plans eagerly, so a too-large
    result is refused at compile time.

    >>> import numpy as np, einderiv
    >>> g = einderiv.diff("(X[a,b]*theta[b] - Y[a])*(X[a,c]*theta[c] - Y[a])/n", "theta")
    >>> f = g.compile()
    >>> X, th, Y = np.ones((4, 3)), np.ones(3), np.zeros(4)
    >>> f(X=X, theta=th, Y=Y, n=4.0)
    array([6., 6., 6.])
    """
    compiled = CompiledExpr(expr, backend, memory_limit, optimize)
    if shapes and all(n in shapes for n in compiled.program.inputs):
        known = {n: _ShapeOnly(tuple(shapes[n])) for n in compiled.program.inputs}
        if all(isinstance(d, int) for s in known.values() for d in s.shape):
            compiled._plan(known)
    return compiled


class _ShapeOnly:
    """Stands in for an array when only its shape is known (eager planning)."""

    def __init__(self, shape: tuple[int, ...]):
        self.shape = shape
        self.dtype = np.dtype(float)
