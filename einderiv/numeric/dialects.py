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
    promote: tuple[str, ...]    # body of the input conversion helper
    lse: str = ""               # a library log-sum-exp over {axes}, or "" (by hand)
    softmax: str = ""           # a library softmax over {axes}, or "" (by hand)
    place: str = ""             # a value moved to the inputs' device before a broadcast
    # intermediates in the axis order their contraction gives them (no transposes to
    # the plan's canonical order, which costs a copy where views are not free), and
    # products pairwise, element-wise pairs as ``*``, when the path is known
    natural: bool = False
    # two-operand matrix products as ``a @ b`` on transposed views (torch: BLAS takes the
    # transpose as a flag, where torch.einsum permutes and copies; not on JAX, where
    # jnp.einsum is one dot_general and XLA on CPU copied ``X.T`` of ``X.T @ v``)
    matmul: bool = False


_NUMPY_PROMOTE = ("a = {xp}.asarray(a)",
                  'return a.astype({xp}.float64) if a.dtype.kind in "biu" else a')

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
        ("a = {xp}.asarray(a)",
         "return a if {xp}.issubdtype(a.dtype, {xp}.inexact) else a.astype({xp}.result_type(float))"),
        natural=True),
    "torch": Dialect(
        "import torch as {xp}", "torch", "{xp}.einsum", "pairwise", "",
        "dtype={dtype}, device={device}", "{xp}.tensor({c}, dtype={dtype}, device={device})",
        "{x}.permute({perm})", "setitem", "{x}.clone()",
        ("if isinstance(a, (bool, int, float)):",
         "    return {xp}.tensor(float(a), dtype={xp}.float64)",
         "a = {xp}.as_tensor(a)",
         "return a if a.is_floating_point() or a.is_complex() else a.to({xp}.float64)"),
        lse="{xp}.logsumexp({u}, dim={axes})",
        softmax="{xp}.exp({u} - {xp}.logsumexp({u}, dim={axes}, keepdim=True))",
        place="{x}.to({device})", natural=True, matmul=True),  # numbers: CPU tensors
}
