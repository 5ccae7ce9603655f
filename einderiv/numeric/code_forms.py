"""Text of the array expressions that the code writer (:mod:`einderiv.numeric.code_writer`)
writes in more than one place or for one library: products one pair at a time, a matrix
product on transposed views, a product summed over the leading axes of both operands,
a diagonal selected by compared index ranges, the reshape of an index range, the
conversion of the inputs, the dtype (and device) of new constants.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import opt_einsum as oe

from ..core.ir import Index
from .program import Add, Einsum, Func, Operand, Pow, Scale

if TYPE_CHECKING:  # pragma: no cover
    from .code_writer import CodeWriter
    from .dialects import Dialect

__all__ = ["subscripts", "pairwise", "presummed", "matmul", "leading", "weighted", "leading_call",
           "diagonal_view", "selected", "reshaped", "dtype_lines", "conversion", "folded_scalars",
           "multiplied_out"]


def subscripts(operands: list, out: tuple[Index, ...]) -> tuple[str, int]:
    """The einsum subscripts of ``(anything, labels)`` operands, letters by first use
    (as compile assigns them), and the number of distinct letters."""
    letters: dict[Index, str] = {}
    for labels in [lab for _, lab in operands] + [out]:
        for i in labels:
            letters.setdefault(i, oe.get_symbol(len(letters)))
    words = ["".join(letters[i] for i in labels) for labels in [lab for _, lab in operands]]
    return ",".join(words) + "->" + "".join(letters[i] for i in out), len(letters)


def pairwise(w: CodeWriter, rest: list, out: tuple[Index, ...], path: list,
             free: bool = False) -> tuple[str, tuple[Index, ...]]:
    """The product of ``rest`` one pair at a time along ``path``; on a natural dialect
    each pair's axes in the order a matrix product gives them (shared kept axes, then
    the first's, then the second's) and element-wise pairs as ``*``; where the dialect
    sums first (torch), an axis that only one operand of a pair has and nothing keeps
    is summed out of it before the pair meets (``y[a] t[b] -> [b]``: ``y.sum() * t``)."""
    ops = [(w.var[s], labels) for s, labels in rest]
    scaled = None
    for n, pair in enumerate(path):
        picked = [ops[j] for j in sorted(pair)]  # in the order of the product
        for j in sorted(pair, reverse=True):
            ops.pop(j)
        last = n == len(path) - 1
        keep = set(out) | (set() if last else {i for _, labels in ops for i in labels})
        if w.d.presum:
            picked = [presummed(w.d.presum, x, lx, {i for _, other in picked[:k] + picked[k + 1:]
                                                    for i in other} | keep)
                      for k, (x, lx) in enumerate(picked)]
        lx, ly = picked[0][1], picked[-1][1] if len(picked) == 2 else ()
        new = tuple(i for i in dict.fromkeys(lx) if i in ly and i in keep) + \
            tuple(i for i in dict.fromkeys(lx + ly) if i in keep and not (i in lx and i in ly))
        if not w.d.natural:
            new = tuple(dict.fromkeys(i for i in lx + ly if i in keep))
        if last and not free:
            new = out
        if w.d.presum and len(picked) == 1 and sorted(lx) == sorted(new) and \
                len(set(lx)) == len(lx):  # summed out above: at most a transpose left
            call = w.aligned(picked[0][0], lx, new)
        elif w.d.natural and len(picked) == 2 and set(new) == set(lx) | set(ly) and \
                len(set(lx)) == len(lx) and len(set(ly)) == len(ly):
            (x, _), (y, _) = picked
            call = f"{w.aligned(x, lx, new)} * {w.aligned(y, ly, new)}"
            scaled = weighted(picked, new) if w.d.leading and not last else None
        elif w.d.matmul and len(picked) == 2 and matmul(picked, new):
            call = matmul(picked, new) or ""
        elif w.d.leading and len(picked) == 2 and leading(picked, new):
            call = leading_call(w, leading(picked, new) or ("", "", 0), ops)
        else:  # a contraction of two, or a sum over axes of one
            text, _ = subscripts(picked, new)
            call = w.d.einsum.format(xp=w.xp) + f'("{text}", {", ".join(v for v, _ in picked)})'
        if last:
            return call, new
        if scaled and call not in w.written:  # its rows scaled: for leading_call
            w.rows[w.bind(call)] = (*scaled, call)
        ops.append((w.bind(call), new))
        scaled = None
    raise AssertionError("an empty path")  # pragma: no cover


def presummed(form: str, x: str, labels: tuple[Index, ...], needed: set[Index]
              ) -> tuple[str, tuple[Index, ...]]:
    """``x`` (axes ``labels``) summed over the axes that ``needed`` lacks (no other operand
    of its product has them, the result does not keep them), written with ``form`` (the
    dialect's sum over ``{dims}`` of ``{x}``), and the axes left; ``x`` itself where
    there are none or an index repeats (a diagonal).

    >>> presummed("{x}.sum(dim={dims})", "y", ("a", "b"), {"b"})
    ('y.sum(dim=(0,))', ('b',))
    """
    gone = tuple(j for j, i in enumerate(labels) if i not in needed)
    if not gone or len(set(labels)) != len(labels):
        return x, labels
    return form.format(x=x, dims=gone), tuple(i for i in labels if i in needed)


def reshaped(ax: int, rank: int) -> str:
    """The reshape that puts a range along axis ``ax`` of ``rank`` axes ("" for one)."""
    if rank <= 1:
        return ""
    return ".reshape(" + ", ".join("-1" if j == ax else "1" for j in range(rank)) + ")"


def diagonal_view(x: str, axes: list[int]) -> str:
    """A torch view of ``x`` on its diagonal: dimension ``d`` of ``x`` runs along axis
    ``axes[d]`` of the view (dimensions with the same axis are one, each axis at least
    one dimension), made with ``.diagonal`` (each call merges two dimensions into a last
    one) and a ``.permute`` to the view's axis order.

    >>> diagonal_view("t", [2, 1, 2, 0])   # t[c, b, c, a] as v[a, b, c]
    't.diagonal(0, 0, 2).permute((1, 0, 2))'
    >>> diagonal_view("t", [0, 0, 0])      # t[a, a, a] as v[a]
    't.diagonal(0, 0, 1).diagonal(0, 0, 1)'
    """
    text, now = x, list(axes)
    for ax in dict.fromkeys(axes):
        while now.count(ax) > 1:
            first = now.index(ax)
            second = now.index(ax, first + 1)
            text += f".diagonal(0, {first}, {second})"
            now = [a for j, a in enumerate(now) if j not in (first, second)] + [ax]
    perm = tuple(now.index(ax) for ax in range(len(now)))
    return text + (f".permute({perm})" if perm != tuple(range(len(now))) else "")


def matmul(picked: list, new: tuple[Index, ...]) -> str | None:
    """``a @ b`` for two operands ``(variable, labels)`` of at most two axes each with one
    index summed between them and none kept by both, the result's axes ``new`` (BLAS takes
    a transposed view as a flag, where torch.einsum permutes and copies); None otherwise.

    A matrix and a vector go as ``v @ M`` or ``M @ v``, never with ``M.T``: the same BLAS
    call eagerly, but torch.compile's inductor writes ``M.T @ v`` as a loop of its own,
    2x slower at 1000 x 1000 than the product it keeps for ``v @ M``.

    >>> matmul([("X", ("a", "b")), ("r", ("a",))], ("b",))
    '(r @ X)'
    >>> matmul([("r", ("a",)), ("X", ("b", "a"))], ("b",))
    '(X @ r)'
    >>> matmul([("X", ("a", "b")), ("V", ("c", "b"))], ("c", "a"))
    '(V @ X.T)'
    """
    (x, lx), (y, ly) = picked
    summed = [i for i in lx if i in ly]
    if len(summed) != 1 or len(lx) > 2 or len(ly) > 2 or len(set(lx)) != len(lx) or \
            len(set(ly)) != len(ly) or summed[0] in new:
        return None
    c = summed[0]
    if sorted((len(lx), len(ly))) == [1, 2]:  # a matrix and a vector: no transposed view
        (m, lm), (v, _) = picked if len(lx) == 2 else picked[::-1]
        if tuple(i for i in lm if i != c) != new:
            return None
        return f"({v} @ {m})" if lm[0] == c else f"({m} @ {v})"
    fx, fy = [i for i in lx if i != c], [i for i in ly if i != c]
    if tuple(fy + fx) == new and new != tuple(fx + fy):  # (x y)^T = y^T x^T
        (x, lx, fx), (y, ly, fy) = (y, ly, fy), (x, lx, fx)
    if tuple(fx + fy) != new:
        return None
    a = x if lx[-1] == c else f"{x}.T"  # summed axis last
    b = y if ly[0] == c else f"{y}.T"   # summed axis first
    return f"({a} @ {b})"  # a coefficient multiplies the product, not a factor


def leading(picked: list, new: tuple[Index, ...]) -> tuple[str, str, int] | None:
    """``(a, b, s)`` where two operands ``(variable, labels)`` are summed over ``s`` axes
    that lead both, in the same order, each keeping axes of its own and none shared, the
    result's axes ``new`` those of ``a`` then those of ``b`` (operands swapped where
    that gives ``new``): ``X^T W X`` as ``X[a,b] Z[a,c] -> [b,c]``, a product that XLA on
    CPU runs at half speed (its fast GEMM wants the first operand's summed axes last);
    None otherwise.

    >>> leading([("X", ("a", "b")), ("Z", ("a", "c"))], ("c", "b"))
    ('Z', 'X', 1)
    >>> leading([("X", ("a", "b")), ("r", ("a",))], ("b",)) is None  # a matrix-vector product
    True
    """
    (x, lx), (y, ly) = picked
    s = 0
    while s < min(len(lx), len(ly)) and lx[s] == ly[s] and lx[s] not in new:
        s += 1
    fx, fy = lx[s:], ly[s:]
    if not s or not fx or not fy or len(set(lx)) != len(lx) or len(set(ly)) != len(ly) or \
            set(fx) & set(fy):
        return None
    if fx + fy == new:
        return x, y, s
    return (y, x, s) if fy + fx == new else None


def weighted(picked: list, new: tuple[Index, ...]) -> tuple[str, str, int] | None:
    """``(x, v, s)`` where the element-wise product of two operands ``(variable, labels)``
    is ``x`` (axes ``new``) with its rows scaled by ``v``, whose ``s`` axes lead ``x``'s
    (``X * w[:, None]``); None otherwise.

    >>> weighted([("X", ("a", "b")), ("w", ("a",))], ("a", "b"))
    ('X', 'w', 1)
    """
    for (x, lx), (v, lv) in (picked, picked[::-1]):
        if lv and len(lv) < len(lx) and lx == new and lx[:len(lv)] == lv:
            return x, v, len(lv)
    return None


def leading_call(writer: CodeWriter, lead: tuple[str, str, int], ops: list) -> str:
    """The helper's call for a product over the leading axes of both operands; an
    operand written just before as rows scaled by a vector over those axes
    (``X * w[:, None]``), read nowhere else, goes in unscaled with the vector beside:
    the helper scales each block of rows, no n x d array (and ``X^T W X`` is seen
    symmetric)."""
    writer.needs_leading = True
    a, b, s = lead
    for name in (a, b) if a != b and all(v not in (a, b) for v, _ in ops) else ():
        x, v, r, value = writer.rows.get(name, (None, None, 0, None))
        if x is not None and r == s and writer.lines[-1] == f"{name} = {value}":
            writer.lines.pop()
            del writer.written[value]
            return f"{writer.leading}({x if name == a else a}, {x if name == b else b}, {s}, {v})"
    return f"{writer.leading}({a}, {b}, {s})"


def selected(xp: str, x: str, rest: tuple[Index, ...], out: tuple[Index, ...], pairs: Any,
             root: Any) -> tuple[str, str]:
    """``x`` (axes ``rest``) on the diagonals ``keep == gone`` of an array with axes
    ``out``: the mask (index ranges compared) and ``where({mask}, {x}, 0.0)``, with
    ``{x}`` for ``x`` aligned to ``out`` (XLA fuses a select with what reads it).

    >>> selected("jnp", "v", ("c",), ("d", "c"), (("c", "d"),), lambda i: "c")[0]
    '(jnp.arange(v.shape[0]).reshape(1, -1) == jnp.arange(v.shape[0]).reshape(-1, 1))'
    """
    tests = []
    for keep, gone in pairs:
        ranges = [f"{xp}.arange({x}.shape[{rest.index(root(label))}])"
                  f"{reshaped(out.index(label), len(out))}" for label in (keep, gone)]
        tests.append(f"({ranges[0]} == {ranges[1]})")
    return " & ".join(tests), xp + ".where({mask}, {x}, 0.0)"


def dtype_lines(backend: str, xp: str, names: dict[str, str], inputs: list[str],
                ranks: list[int]) -> list[str]:
    """The lines setting ``names["dtype"]`` (and on torch ``names["device"]``) for the
    constants of an exported function: the inputs' common dtype (and device: that of
    the first input of the highest rank, ``ranks`` theirs; a 0-d tensor may be on the
    CPU beside tensors on a GPU, as torch allows)."""
    dtype, device = names["dtype"], names["device"]
    if backend == "torch":
        if not inputs:
            return [f"{dtype}, {device} = {xp}.float64, {xp}.device(\"cpu\")"]
        common = f"{inputs[0]}.dtype"
        for n in inputs[1:]:
            common = f"{xp}.promote_types({common}, {n}.dtype)"
        widest = inputs[ranks.index(max(ranks))]
        return [f"{dtype} = {common}",  # constants: the inputs' dtype and device
                f"{device} = {widest}.device"]
    if not inputs:
        return [f"{dtype} = {xp}.result_type(float)"]
    return [f"{dtype} = {xp}.result_type({', '.join(inputs)})  # constants: the inputs' dtype"]


def conversion(d: Dialect, xp: str, helper: str, inputs: list[str], test: bool = True
               ) -> list[str]:
    """The lines converting the inputs of an exported function: a helper ``(*arrays)``
    giving them numpy's promotion (Python numbers weak), called unless every input is
    already what it would return (with ``test``, the dialect's ``ready`` test: on torch,
    where the helper's calls cost 6-7 us of a 10 us gradient; not where an input is a
    scalar, most often a Python number the helper converts anyway)."""
    if not inputs:
        return []
    lines = [f"def {helper}(*arrays):  # numpy's promotion, Python numbers weak"]
    lines += ["    " + s.format(xp=xp) for s in d.promote] + [""]
    targets = ", ".join(inputs) + ("," if len(inputs) == 1 else "")
    call = f"{targets} = {helper}({', '.join(inputs)})"
    if not d.ready or not test:
        return lines + [call]
    first, other = d.ready  # the first input's test, each other's
    tests = [first.format(xp=xp, a=inputs[0])] + [other.format(xp=xp, a=a, first=inputs[0])
                                                  for a in inputs[1:]]
    joined = "\n            and ".join(tests)  # one test a line, under the first
    return lines + [f"if not ({joined}):", "    " + call]


def multiplied_out(w: CodeWriter, step: Einsum, terms: list[tuple[float, tuple[Operand, ...]]],
                   free: bool) -> tuple[str, tuple[Index, ...], bool, bool]:
    """Product ``step`` with its sum factor multiplied out (the terms of
    :func:`einderiv.numeric.rewrites.distributions`: ``M V - U (V^T V)``, never the
    residual ``M - U V^T``): the sum of the terms' products, each in the axis order of
    the first (``free``: as its contraction gives them); as ``CodeWriter.product``."""
    parts: list[str] = []
    actual = step.out
    for j, (coeff, operands) in enumerate(terms):
        value, got, alias, view = w.product(Einsum(coeff, operands, actual), free and j == 0)
        actual = got
        parts.append(value if j == 0 else
                     f" - {value[1:]}" if value.startswith("-") else f" + {value}")
    if len(parts) > 1:
        alias = view = False
    return "".join(parts), actual, alias, view


def folded_scalars(w: CodeWriter, rest: list, sign: str, factors: list[str]
                   ) -> tuple[int, str] | None:
    """The scalar factors (and sign) of a product moved onto its smallest operand that
    an element-wise step makes, where XLA fuses them into the loop that makes it (on
    the product they are a pass of their own: C1's gradient 23 -> 21 us): that
    operand's slot and variable, which stands for the scaled one until put back."""
    slots = [s for s, _ in rest]  # one that is a factor once (t * t: not twice)
    sizes = [(math.prod(sh) if (sh := w.int_shape(s)) else math.inf, w.rank[s] or 0, s)
             for s in slots if isinstance(w.steps[s], (Add, Func, Pow, Scale))
             and slots.count(s) == 1]
    if not (sign or factors) or not sizes:
        return None
    slot = min(sizes)[2]  # the fewest elements (the fewest axes: sizes unknown)
    original, w.var[slot] = w.var[slot], w.bind(sign + " * ".join(factors + [w.var[slot]]))
    return slot, original
