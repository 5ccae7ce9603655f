"""Numeric evaluation with numpy and opt_einsum.

Each node evaluates to an array whose axes follow the node's ``free`` labels. A
product is one ``opt_einsum.contract`` call over its factors (index labels are mapped
to einsum symbols, so any number of distinct labels works). Sizes are resolved per
scope: a summed label may be reused with another size in a sibling term.

Inputs: every variable of the expression must be given; names the expression does
not use are ignored. Integer and boolean arrays are promoted to float64; complex
arrays are supported; NaN and inf pass through as in numpy. Inputs are never
modified.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Mapping

import numpy as np
import opt_einsum as oe

from .errors import EvaluationError
from .functions import FUNCTIONS
from .ir import (Delta, Det, Expr, Func, Index, Inv, LogDet, Pow, Product, SizeHint, Sum,
                 Tensor, iter_tensors, outer_origins)

__all__ = ["evaluate", "prepare_arrays"]


def prepare_arrays(e: Expr, arrays: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Check and convert the arrays for the variables of ``e``."""
    ranks: dict[str, tuple[int, Tensor]] = {}
    for t in iter_tensors(e):
        ranks.setdefault(t.name, (len(t.indices), t))
    missing = sorted(set(ranks) - set(arrays))
    if missing:
        raise EvaluationError(
            f"missing value{'s' if len(missing) > 1 else ''} for {', '.join(map(repr, missing))}; "
            f"the expression uses {', '.join(sorted(ranks))}")
    prepared: dict[str, np.ndarray] = {}
    for name, (rank, t) in ranks.items():
        value = arrays[name]
        try:
            arr = np.asarray(value)
        except Exception as exc:  # pragma: no cover - exotic inputs
            raise EvaluationError(f"{name!r} could not be converted to an array: {exc}") from None
        if arr.dtype.kind in "biu":
            arr = arr.astype(np.float64)
        elif arr.dtype.kind not in "fc":
            raise EvaluationError(
                f"{name!r} must be numeric, got an array of dtype {arr.dtype}")
        if arr.ndim != rank:
            used = t.name + (f"[{','.join(t.indices)}]" if t.indices else "")
            raise EvaluationError(
                f"{name!r} is used as {used} ({rank} axes) but was given shape {arr.shape}")
        prepared[name] = arr
    return prepared


def evaluate(e: Expr, arrays: Mapping[str, Any]) -> np.ndarray:
    """Evaluate ``e``; see :meth:`einderiv.ir.Expr.evaluate`."""
    prepared = prepare_arrays(e, arrays)
    ev = _Evaluator(prepared, arrays)
    sizes = {i: s for i, h in (e.hints if isinstance(e, Sum) else ())
             if (s := ev.resolve(h)) is not None}
    result = np.asarray(ev.eval(e, sizes))
    if any(np.may_share_memory(result, a) for a in prepared.values()):
        result = result.copy()  # writing into the result must not change an input
    return result


class _Evaluator:
    def __init__(self, arrays: Mapping[str, np.ndarray], given: Mapping[str, Any]):
        self.arrays = arrays
        self.given = given  # all inputs: size hints may name a variable no longer used

    def resolve(self, hint: SizeHint) -> int | None:
        if isinstance(hint, int):
            return hint
        if isinstance(hint, tuple):
            name, axis = hint
            shape = np.shape(self.arrays[name] if name in self.arrays else self.given.get(name))
            if axis < len(shape):
                return int(shape[axis])
        return None

    def size(self, index: Index, sizes: Mapping[Index, int], hint: SizeHint = None) -> int:
        if index in sizes:
            return sizes[index]
        resolved = self.resolve(hint)
        if resolved is None:
            raise EvaluationError(
                f"cannot tell the size of index {index!r}: it occurs on no tensor given")
        return resolved

    # ----------------------------------------------------------------------- nodes
    def eval(self, e: Expr, sizes: Mapping[Index, int]) -> np.ndarray:
        if isinstance(e, Tensor):
            arr = self.arrays[e.name]
            if len(set(e.indices)) != len(e.indices):
                return _einsum([arr], [e.indices], e.free)
            return arr
        if isinstance(e, Delta):  # square: either index gives the size
            known = sizes.get(e.i, sizes.get(e.j))
            n = known if known is not None else self.size(e.i, sizes, e.size)
            return np.ones(n) if e.i == e.j else np.eye(n)
        if isinstance(e, Func):
            return FUNCTIONS[e.name].numpy(self.eval(e.arg, sizes))
        if isinstance(e, Pow):
            return self._pow(e, sizes)
        if isinstance(e, (Inv, Det, LogDet)):
            return self._matrix(e, sizes)
        if isinstance(e, Product):
            return self._product(e, sizes)
        if isinstance(e, Sum):
            return self._sum(e, sizes)
        raise TypeError(e)  # pragma: no cover

    def _pow(self, e: Pow, sizes: Mapping[Index, int]) -> np.ndarray:
        base = self.eval(e.base, sizes)
        exponent = self.eval(e.exponent, {})
        with np.errstate(divide="ignore", invalid="ignore"):
            if np.ndim(exponent) == 0 and float(exponent).is_integer() and exponent < 0:
                return 1.0 / base ** (-exponent)
            return base ** exponent

    def _matrix(self, e: Expr, sizes: Mapping[Index, int]) -> np.ndarray:
        m = self.eval(e.arg, {})  # type: ignore[attr-defined]
        if m.ndim != 2 or m.shape[0] != m.shape[1]:
            raise EvaluationError(
                f"{type(e).__name__.lower()}(...) needs a square matrix, got shape {m.shape}")
        if isinstance(e, Det):
            return np.asarray(np.linalg.det(m))
        if isinstance(e, LogDet):
            return np.asarray(np.linalg.slogdet(m)[1])
        try:
            inv = np.linalg.inv(m)
        except np.linalg.LinAlgError:
            raise EvaluationError("inv(...) of a singular matrix") from None
        if e.indices[0] == e.indices[1]:  # type: ignore[attr-defined]
            return np.diagonal(inv).copy()
        return inv

    def _product(self, p: Product, sizes: Mapping[Index, int]) -> np.ndarray:
        local: dict[Index, int] = dict(sizes)
        where: dict[Index, str] = {}
        arrays: list[np.ndarray | None] = []
        for f in p.factors:
            if isinstance(f, Delta) or (isinstance(f, Sum) and not f.terms):
                arrays.append(None)  # needs sizes from the other factors
                continue
            if isinstance(f, Tensor):  # raw: a repeated label reads the diagonal
                arr = self.arrays[f.name]
                self._note_sizes(Tensor(f.name, f.indices), arr, local, where, f.indices)
                arrays.append(arr)
                continue
            arr = self.eval(f, local)
            self._note_sizes(f, arr, local, where)
            arrays.append(arr)
        operands, labels = [], []
        for f, arr in zip(p.factors, arrays):
            if arr is None:
                hints = {f.i: f.size, f.j: f.size} if isinstance(f, Delta) \
                    else dict(f.hints)  # type: ignore[union-attr]
                if isinstance(f, Delta) and (f.i in local) != (f.j in local):
                    local.setdefault(f.i, local.get(f.j, 0))
                    local.setdefault(f.j, local[f.i])
                for i in f.free:
                    if i not in local:
                        local[i] = self.size(i, local, hints.get(i))
                arr = self.eval(f, local)
            operands.append(arr)
            labels.append(f.indices if isinstance(f, Tensor) else f.free)
        for i in p.out:
            if i not in local:
                local[i] = self.size(i, sizes)
        present = {i for lab in labels for i in lab}
        for i in p.out:
            if i not in present:  # broadcast along an index no factor carries
                operands.append(np.ones(local[i]))
                labels.append((i,))
        if not operands:
            return np.asarray(_scalar(p.coeff))
        result = _einsum(operands, labels, p.out)
        return result if p.coeff == 1 else result * _scalar(p.coeff)

    def _note_sizes(self, f: Expr, arr: np.ndarray, local: dict[Index, int],
                    where: dict[Index, str], labels: tuple[Index, ...] | None = None) -> None:
        from .printing import to_text
        for i, n in zip(f.free if labels is None else labels, np.shape(arr)):
            if i in local and local[i] != n:
                origin = where.get(i, "the enclosing expression")
                raise EvaluationError(
                    f"index {i!r} has size {local[i]} in {origin} but size {n} in "
                    f"{to_text(f)}; check the shapes of the arrays")
            local[i] = int(n)
            where.setdefault(i, to_text(f))

    def _sum(self, s: Sum, sizes: Mapping[Index, int]) -> np.ndarray:
        local = dict(sizes)
        # A term may take its sizes from a sibling (delta[i,p] + y[i]*y[p]).
        for i, hint in outer_origins(s).items():
            if i in s.out and i not in local and (n := self.resolve(hint)) is not None:
                local[i] = n
        values: list[tuple[Expr, np.ndarray]] = []
        for t in s.terms:
            arr = self.eval(t, local)
            for i, n in zip(t.free, np.shape(arr)):
                if local.setdefault(i, int(n)) != n:
                    raise EvaluationError(
                        f"index {i!r} has size {local[i]} in one term of a sum and {n} in another")
            values.append((t, arr))
        hints = dict(s.hints)
        shape = tuple(self.size(i, local, hints.get(i)) for i in s.out)
        total: Any = None
        for t, arr in values:
            aligned = _align(arr, t.free, s.out)
            total = aligned if total is None else total + aligned
        if total is None:
            return np.zeros(shape)
        return np.broadcast_to(total, shape) if np.shape(total) != shape else total


def _scalar(c: Fraction) -> float:
    return float(c)


def _align(arr: np.ndarray, have: tuple[Index, ...], want: tuple[Index, ...]) -> np.ndarray:
    """``arr`` (axes ``have``) transposed and expanded to broadcast against ``want``."""
    if have == want:
        return arr
    perm = [have.index(i) for i in want if i in have]
    arr = np.transpose(arr, perm) if perm != list(range(len(perm))) else arr
    shape = [np.shape(arr)[[i for i in want if i in have].index(i)] if i in have else 1
             for i in want]
    return np.reshape(arr, shape)


def _einsum(operands: list[np.ndarray], labels: list[tuple[Index, ...]],
            out: tuple[Index, ...]) -> np.ndarray:
    symbols: dict[Index, str] = {}
    for lab in (*labels, out):
        for i in lab:
            if i not in symbols:
                symbols[i] = oe.get_symbol(len(symbols))
    spec = ",".join("".join(symbols[i] for i in lab) for lab in labels)
    spec += "->" + "".join(symbols[i] for i in out)
    try:
        return np.asarray(oe.contract(spec, *operands))
    except ValueError as exc:
        raise EvaluationError(f"the arrays do not fit together: {exc}") from None
