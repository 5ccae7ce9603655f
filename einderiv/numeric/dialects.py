"""How each array library spells what exported code needs (:mod:`einderiv.numeric.codegen`):
its einsum, new arrays, transposes, diagonals, input conversion, and whether its
intermediates may keep the axis order their contraction gives them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Dialect", "DIALECTS"]


@dataclass(frozen=True)
class Dialect:
    """How one backend spells what the steps need ({xp}: the array module alias)."""

    module: str                 # import of the array module
    alias: str                  # its preferred alias
    einsum: str                 # the contraction call
    path: str                   # an explicit path: "einsum_path", "list" or "pairwise"
    searched: str               # optimize= without shapes: "strategy", "True" or ""
    new: str                    # keyword arguments of a new array
    scalar: str                 # a 0-d array of the value {c}
    transpose: str              # axes permuted by {perm}
    embed: str                  # "view", "at", "setitem" or "where" (a select, no scatter)
    copy: str                   # an array that owns its memory ("" for immutable arrays)
    promote: tuple[str, ...]    # body of the input conversion helper ``(*arrays)``: numpy's
                                # promotion of them all, Python numbers weak (NEP 50)
    lse: str = ""               # a library log-sum-exp over {axes}, or "" (by hand)
    softmax: str = ""           # a library softmax over {axes}, or "" (by hand)
    softmax_axis: str = ""      # ... over one axis {axis}, where the library has its own
    # the inputs need no conversion: a test of the first input {a}, and of each other {a}
    # against the first {first} (the conversion helper would return them as they are)
    ready: tuple[str, ...] = ()
    # the sum over axes {dims} of {x}, taken out of a product's operand before the product
    # (an axis only it has, which nothing keeps), or "": torch.einsum costs ~9 us a call
    presum: str = ""
    place: str = ""             # a value moved to the inputs' device before a broadcast
    # intermediates in the axis order their contraction gives them (no transposes to
    # the plan's canonical order, which costs a copy where views are not free), and
    # products pairwise, element-wise pairs as ``*``, when the path is known
    natural: bool = False
    # two-operand matrix products as ``a @ b`` on transposed views (torch: BLAS takes the
    # transpose as a flag, where torch.einsum permutes and copies; not on JAX, where
    # jnp.einsum is one dot_general and XLA on CPU copied ``X.T`` of ``X.T @ v``)
    matmul: bool = False
    # the body of a helper ``(a, b, s, w=None)`` for a product summed over the ``s``
    # leading axes of both operands, the rows of ``a`` scaled by ``w`` (over those axes:
    # ``X^T W X``; code_forms.leading), its result a's other axes then b's, and the
    # import it needs ({lax}); empty: the dialect's einsum
    leading: tuple[str, ...] = ()
    leading_import: str = ""
    # the scalar factors and sign of a product on an operand that an element-wise step
    # makes (XLA fuses them into its loop), not on the product (a pass of its own)
    fold: bool = False


#: Python numbers, weak in the promotion (NEP 50): they take the arrays' dtype.
_NUMBERS = "numbers = (bool, int, float, complex)"

_NUMPY_PROMOTE = (
    _NUMBERS,
    "arrays = [a if type(a) in numbers else {xp}.asarray(a) for a in arrays]",
    "dtype = {xp}.result_type(*arrays)",
    'dtype = {xp}.dtype({xp}.float64) if dtype.kind in "biuO" else dtype',
    "return [{xp}.asarray(a, dtype) if type(a) in numbers or a.dtype.kind in \"biu\" else a",
    "        for a in arrays]")

#: XLA's fast product on CPU (YNNPACK; xla/backends/cpu/ynn_support.cc) takes only a
#: first operand whose summed axis is its last: ``X^T Z`` over the rows of both ran at
#: half its speed (benchmarks/backends.py). There ``a`` is transposed first, behind a
#: barrier (XLA folds a bare transpose back into the product), in blocks of rows that
#: stay in cache (one loop: a transpose of all of a large ``a`` cost as much as it
#: saved; blocks of 400-500 rows measured best at 2000-10000 rows of 500-2000 columns,
#: 666-1000 rows 15-30% slower; narrow ones too: at 1000 x 100 one transposed block of
#: 800 KB took ~100 page faults a call in some states of the allocator, 0.53 against
#: 0.83 ms, two blocks none, and 10000 x 100 ran 10% faster in blocks of 500 rows than
#: of 2500); ``a^T a`` (a symmetric result) of >= 64 columns
#: computes 3 of its 4 blocks (15-19% less time at 2000 x 1000 and 10000 x 500; on a
#: Zen 4 core 10-15% at 1000 x 64, 100 and 200, where on an earlier EPYC 100 columns
#: gained nothing; 4 x 4 blocks gained another 0-10%, not taken); small products (where the
#: copy costs more) and other platforms (a transposed operand is a flag to cuBLAS) keep
#: the plain product.
_JAX_LEADING = (
    "fa, fb = a.shape[s:], b.shape[s:]",
    "n = m = p = 1",
    "for d in a.shape[:s]:",
    "    n *= d",
    "for d in fa:",
    "    m *= d",
    "for d in fb:",
    "    p *= d",
    "sym, h = a is b and m >= 64, m // 2  # a^T diag(w) a: symmetric",
    "if m < 16 or p < 16 or n * m * p < 65536:",
    "    a = a if w is None else a * w.reshape(w.shape + (1,) * (a.ndim - s))",
    "    return {xp}.tensordot(a, b, (tuple(range(s)), tuple(range(s))))",
    "a, b = a.reshape(n, m), b.reshape(n, p)",
    "w = None if w is None else w.reshape(n, 1)",
    "",
    "def rows(a, b, w):  # a^T b, a^T written out; symmetric: 3 of its 4 blocks",
    "    t = {lax}.optimization_barrier((a if w is None else a * w).T)",
    "    if not sym:",
    "        return t @ b",
    "    u, v = t[:h] @ b[:, :h], t[:h] @ b[:, h:]",
    "    return {xp}.block([[u, v], [v.T, t[h:] @ b[:, h:]]])",
    "",
    "def block(x, i, c):",
    "    return None if x is None else {lax}.dynamic_slice_in_dim(x, i * c, c)",
    "",
    "def cpu(a, b):  # k blocks of up to 512 rows",
    "    k = -(-n // 512)",
    "    c = n // k",
    "    if k == 1:",
    "        return rows(a, b, w)",
    "    h = {lax}.fori_loop(0, k, lambda i, h: h + rows(block(a, i, c), block(b, i, c),",
    "                                                   block(w, i, c)),",
    "                        {xp}.zeros((m, p), {xp}.result_type(a, b, *([] if w is None else [w]))))",
    "    r = a[k * c:] if w is None else a[k * c:] * w[k * c:]",
    "    return h + r.T @ b[k * c:] if k * c < n else h",
    "",
    "def other(a, b):",
    "    return (a if w is None else a * w).T @ b",
    "",
    "return {lax}.platform_dependent(a, b, cpu=cpu, default=other).reshape(fa + fb)")

DIALECTS: dict[str, Dialect] = {
    "numpy": Dialect(
        "import numpy as {xp}", "np", "{xp}.einsum", "einsum_path", "True", "dtype={dtype}",
        "{xp}.asarray({c}, dtype={dtype})", "{x}.transpose({perm})", "view", "{x}.copy()",
        _NUMPY_PROMOTE),
    "opt_einsum": Dialect(
        "import numpy as {xp}", "np", "{oe}.contract", "list", "strategy", "dtype={dtype}",
        "{xp}.asarray({c}, dtype={dtype})", "{x}.transpose({perm})", "view", "{x}.copy()",
        _NUMPY_PROMOTE),
    "jax": Dialect(
        "import jax.numpy as {xp}", "jnp", "{xp}.einsum", "list", "strategy", "dtype={dtype}",
        "{xp}.asarray({c}, dtype={dtype})", "{x}.transpose({perm})", "where", "",
        (_NUMBERS,
         "arrays = [a if type(a) in numbers else {xp}.asarray(a) for a in arrays]",
         "dtype = {xp}.result_type(*arrays)",
         "if not {xp}.issubdtype(dtype, {xp}.inexact):",
         "    dtype = {xp}.result_type(float)",
         "return [a if type(a) not in numbers and a.dtype == dtype else {xp}.asarray(a, dtype)",
         "        for a in arrays]"),
        natural=True, leading=_JAX_LEADING, leading_import="import jax.lax as {lax}",
        fold=True),
    "torch": Dialect(
        "import torch as {xp}", "torch", "{xp}.einsum", "pairwise", "",
        "dtype={dtype}, device={device}", "{xp}.tensor({c}, dtype={dtype}, device={device})",
        "{x}.permute({perm})", "setitem", "{x}.clone()",
        (_NUMBERS,
         "arrays = [a if type(a) in numbers else {xp}.as_tensor(a) for a in arrays]",
         "dtype = None",
         "for a in arrays:",
         "    if type(a) not in numbers:",
         "        dtype = a.dtype if dtype is None else {xp}.promote_types(dtype, a.dtype)",
         "if dtype is None or not (dtype.is_floating_point or dtype.is_complex):",
         "    dtype = {xp}.float64",
         "if not dtype.is_complex and any(type(a) is complex for a in arrays):",
         "    dtype = {xp}.promote_types(dtype, {xp}.complex64)",
         "return [{xp}.tensor(a, dtype=dtype) if type(a) in numbers else a.to(dtype)",
         "        for a in arrays]"),
        lse="{xp}.logsumexp({u}, dim={axes})",
        softmax="{xp}.exp({u} - {xp}.logsumexp({u}, dim={axes}, keepdim=True))",
        softmax_axis="({xp}.softmax({u}, dim={axis}) if not {u}.is_complex() else "  # no complex
                     "{xp}.exp({u} - {xp}.logsumexp({u}, dim={axes}, keepdim=True)))",   # kernel
        ready=("type({a}) is {xp}.Tensor and ({a}.is_floating_point() or {a}.is_complex())",
               "type({a}) is {xp}.Tensor and {a}.dtype == {first}.dtype"),
        presum="{x}.sum(dim={dims})",
        place="{x}.to({device})", natural=True, matmul=True),  # numbers: CPU tensors
}
