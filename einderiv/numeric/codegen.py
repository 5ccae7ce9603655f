"""Code export: the source of a standalone Python function computing an expression.

:func:`to_python` (``Expr.to_python``) writes out the plan of
:func:`einderiv.numeric.compiled.compile_expr` step by step, so the exported function does
what ``compile`` does:

* each step becomes one line (or a few), and each shared subexpression one local
  variable: input names for inputs, ``t1, t2, ...`` for intermediates;
* the stable forms are kept (max-shifted log-sum-exp, ``logaddexp`` for softplus and
  sigmoid, ``solve`` instead of an inverse times a vector, ``slogdet``);
* each product is one contraction (``np.einsum``, ``opt_einsum.contract``,
  ``jnp.einsum`` or ``torch.einsum``), scalars multiplied apart as compile does; with
  integer ``shapes`` the contraction path compile would take (opt_einsum's, for those
  shapes) is written into the call, so the order is the same;
* a delta with both indices free is never a dense identity: the term is written into
  a diagonal of zeros (an einsum view on numpy, ``.at[...].set`` on jax, an indexed
  assignment on torch);
* more than 52 index letters in one contraction (numpy's and torch's limit): that
  line calls ``opt_einsum.contract``, which maps the labels for the backend.

The function takes the expression's variables in sorted order, converts integer and
boolean arrays to floats (as compile does), never modifies its inputs, and imports
only its array library (and opt_einsum where needed), never einderiv.
"""

from __future__ import annotations

import importlib.util
import keyword
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import opt_einsum as oe

from ..core.functions import FUNCTIONS
from ..core.ir import Expr, Index
from ..core.shapes import normalize_shapes
from ..errors import EinderivError, EvaluationError, ShapeError
from .compiled import CompiledExpr, compile_expr
from .contraction import connected_order, path_strategy

__all__ = ["BACKENDS", "to_python", "ExportedExpr"]

#: Backends of :func:`to_python` and what the generated code uses.
BACKENDS: dict[str, str] = {
    "numpy": "numpy only: np.einsum, with the contraction path written out when shapes are given",
    "opt_einsum": "numpy arrays, products by opt_einsum.contract",
    "jax": "jax.numpy (jnp.einsum; diagonals written with .at[...].set)",
    "torch": "torch tensors (torch.einsum, torch.linalg)",
}

#: numpy.einsum and torch.einsum accept the letters a-z and A-Z only.
MAX_LETTERS = 52


@dataclass(frozen=True)
class _Dialect:
    """How one backend spells what the steps need ({xp}: the array module alias)."""

    module: str                 # import of the array module
    alias: str                  # its preferred alias
    einsum: str                 # the contraction call
    path: str                   # an explicit path: "einsum_path", "list" or "pairwise"
    searched: str               # optimize= without shapes: "strategy", "True" or ""
    new: str                    # keyword arguments of a new array
    scalar: str                 # a 0-d array of the value {c}
    transpose: str              # axes permuted by {perm}
    embed: str                  # "view", "at" or "setitem"
    copy: str                   # an array that owns its memory ("" for immutable arrays)
    promote: tuple[str, ...]    # body of the input conversion helper
    lse: str = ""               # a library log-sum-exp over {axes}, or "" (by hand)
    softmax: str = ""           # a library softmax over {axes}, or "" (by hand)
    place: str = ""             # a value moved to the inputs' device before a broadcast
    # intermediates in the axis order their contraction gives them (no transposes to
    # the plan's canonical order, which costs a copy where views are not free), and
    # products pairwise, element-wise pairs as ``*``, when the path is known
    natural: bool = False


_NUMPY_PROMOTE = ("a = {xp}.asarray(a)",
                  'return a.astype({xp}.float64) if a.dtype.kind in "biu" else a')

_DIALECTS: dict[str, _Dialect] = {
    "numpy": _Dialect(
        "import numpy as {xp}", "np", "{xp}.einsum", "einsum_path", "True", "dtype={dtype}",
        "{xp}.asarray({c}, dtype={dtype})", "{x}.transpose({perm})", "view", "{x}.copy()",
        _NUMPY_PROMOTE),
    "opt_einsum": _Dialect(
        "import numpy as {xp}", "np", "{oe}.contract", "list", "strategy", "dtype={dtype}",
        "{xp}.asarray({c}, dtype={dtype})", "{x}.transpose({perm})", "view", "{x}.copy()",
        _NUMPY_PROMOTE),
    "jax": _Dialect(
        "import jax.numpy as {xp}", "jnp", "{xp}.einsum", "list", "strategy", "dtype={dtype}",
        "{xp}.asarray({c}, dtype={dtype})", "{x}.transpose({perm})", "at", "",
        ("a = {xp}.asarray(a)",
         "return a if {xp}.issubdtype(a.dtype, {xp}.inexact) else a.astype({xp}.result_type(float))"),
        natural=True),
    "torch": _Dialect(
        "import torch as {xp}", "torch", "{xp}.einsum", "pairwise", "",
        "dtype={dtype}, device={device}", "{xp}.tensor({c}, dtype={dtype}, device={device})",
        "{x}.permute({perm})", "setitem", "{x}.clone()",
        ("if isinstance(a, (bool, int, float)):",
         "    return {xp}.tensor(float(a), dtype={xp}.float64)",
         "a = {xp}.as_tensor(a)",
         "return a if a.is_floating_point() or a.is_complex() else a.to({xp}.float64)"),
        lse="{xp}.logsumexp({u}, dim={axes})",
        softmax="{xp}.exp({u} - {xp}.logsumexp({u}, dim={axes}, keepdim=True))",
        place="{x}.to({device})", natural=True),  # a number argument is a CPU tensor
}


def to_python(expr: Expr, name: str = "grad", backend: str = "numpy",
              shapes: Mapping[str, Any] | None = None) -> str:
    """The source of a function ``name(<variables, sorted>)`` computing ``expr``.

    ``backend`` is a key of :data:`BACKENDS`. ``shapes`` (name -> tuple of sizes, as
    compile takes) is optional: sizes show in the docstring, and where every input has
    integer sizes, each contraction gets the path compile would use for them."""
    return _writer(expr, name, backend, shapes).source()


def _writer(expr: Expr, name: str, backend: str, shapes: Mapping[str, Any] | None
            ) -> _Writer:
    dialect = _DIALECTS.get(backend)
    if dialect is None:
        valid = ", ".join(f"{k!r} ({v})" for k, v in BACKENDS.items())
        raise EinderivError(f"unknown backend {backend!r}; valid backends: {valid}")
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise EinderivError(f"the function name must be a Python identifier, got {name!r}")
    shapes = normalize_shapes(shapes)
    # The memory limit is the running machine's business, not the exporter's.
    compiled = compile_expr(expr, shapes=shapes, memory_limit=2**62)
    return _Writer(compiled, backend, dialect, shapes, name)


class ExportedExpr:
    """``expr`` exported as code of another array library (:func:`to_python`) and
    loaded, called like a :class:`~einderiv.numeric.compiled.CompiledExpr`: ``f(**arrays)``,
    arrays of that library in and out. The code is written once per input shape, with
    that shape's contraction paths (products pairwise, intermediates in the axis order
    their contraction gives); ``Expr.compile(backend="jax")`` runs it under
    ``jax.jit`` (XLA compiles it once per shape), ``backend="torch"`` eagerly. The
    library must be installed. ``source``: the code for any shape. No memory check is
    made: the library reports an allocation that fails."""

    def __init__(self, expr: Expr, backend: str, shapes: Mapping[str, Any] | None = None):
        if importlib.util.find_spec(backend) is None:
            raise EinderivError(f"backend {backend!r} needs {backend} installed "
                                f"(pip install {backend})")
        writer = _writer(expr, "f", backend, shapes)
        self.expr, self.backend, self.source = expr, backend, writer.source()
        self._params = [(p, writer.py[p]) for p in writer.params]
        self._fns: dict[tuple, Any] = {}  # per input shapes: the loaded function

    def __repr__(self) -> str:
        return f"ExportedExpr({str(self.expr)!r}, backend={self.backend!r})"

    def __call__(self, **arrays: Any) -> Any:
        missing = [p for p, _ in self._params if p not in arrays]
        if missing:
            raise EvaluationError(f"missing value for {', '.join(map(repr, missing))}; the "
                                  f"expression uses {', '.join(p for p, _ in self._params)}")
        shapes = tuple(tuple(np.shape(arrays[p])) for p, _ in self._params)
        fn = self._fns.get(shapes)
        if fn is None:
            fn = self._fns[shapes] = self._load(dict(zip((p for p, _ in self._params), shapes)))
        return fn(**{py: arrays[p] for p, py in self._params})

    def _load(self, shapes: Mapping[str, tuple]) -> Any:
        """The function written for these input shapes (ShapeError where they do not fit)."""
        source = _writer(self.expr, "f", self.backend, shapes).source()
        namespace: dict[str, Any] = {}
        exec(compile(source, "<einderiv export>", "exec"), namespace)  # noqa: S102
        fn = namespace["f"]
        if self.backend == "jax":
            import jax
            fn = jax.jit(fn)
        return fn


def _num(x: float) -> str:
    if math.isfinite(x):
        return repr(float(x))
    return "float(\"nan\")" if math.isnan(x) else ("-" if x < 0 else "") + "float(\"inf\")"


def _spec(operands: list, out: tuple[Index, ...]) -> tuple[str, int]:
    """The einsum subscripts of ``(anything, labels)`` operands, letters by first use
    (as compile assigns them), and the number of distinct letters."""
    letters: dict[Index, str] = {}
    for labels in [lab for _, lab in operands] + [out]:
        for i in labels:
            letters.setdefault(i, oe.get_symbol(len(letters)))
    words = ["".join(letters[i] for i in labels) for labels in [lab for _, lab in operands]]
    return ",".join(words) + "->" + "".join(letters[i] for i in out), len(letters)


class _Writer:
    def __init__(self, compiled: CompiledExpr, backend: str, dialect: _Dialect,
                 shapes: Mapping[str, tuple], name: str):
        program = compiled.program
        self.compiled, self.backend, self.d, self.shapes, self.name = \
            compiled, backend, dialect, shapes, name
        self.steps = program.steps
        self.params = sorted(set(compiled.variables) | set(program.inputs))
        self.used: set[str] = set(self.params) | {name}
        self.py: dict[str, str] = {}
        for p in self.params:  # a keyword (lambda, None) cannot be a parameter
            py = p
            while keyword.iskeyword(py) or (py != p and py in self.used):
                py += "_"
            self.py[p] = py
            self.used.add(py)
        self.xp = self.fresh(dialect.alias)
        self.oe = self.fresh("oe")
        self.math = self.fresh("math")
        self.helper = self.fresh("_array")
        self.names = {"dtype": self.fresh("dtype"), "device": self.fresh("device")}
        self.counts: dict[str, int] = {}
        self.var: dict[int, str] = {}
        self.alias: dict[int, bool] = {}   # may share memory with an input
        self.view: dict[int, bool] = {}    # a read-only broadcast view
        self.lines: list[str] = []
        # natural dialects: slot -> the plan's axis at each axis of its variable
        self.perm: dict[int, tuple[int, ...]] = {}
        self.canon: dict[int, str] = {}    # slot -> its variable in the plan's order
        self.needs_oe = backend == "opt_einsum"
        self.needs_math = False
        self.needs_dtype = False
        self.rank = self._ranks()
        self._size_classes()

    # ------------------------------------------------------------------ names
    def fresh(self, base: str) -> str:
        name = base
        while name in self.used or keyword.iskeyword(name):
            name += "_"
        self.used.add(name)
        return name

    def temp(self, prefix: str = "t") -> str:
        while True:
            self.counts[prefix] = self.counts.get(prefix, 0) + 1
            name = f"{prefix}{self.counts[prefix]}"
            if name not in self.used:
                self.used.add(name)
                return name

    # ------------------------------------------------------------------ sizes
    def _ranks(self) -> dict[int, int | None]:
        ranks: dict[int, int | None] = {}
        given = self.compiled._ranks
        for k, step in enumerate(self.steps):
            kind, a = step.kind, step.args
            if kind == "input":
                r = given.get(a[0], len(self.shapes[a[0]]) if a[0] in self.shapes else None)
            elif kind in ("einsum", "add", "embed", "broadcast"):
                r = len(a[2] if kind == "einsum" else a[1] if kind == "add" else a[2])
            elif kind == "func":
                r = ranks[a[1]]
            elif kind in ("pow", "powslot", "scale", "softmax"):
                r = ranks[a[0]]
            elif kind == "transpose":
                r = len(a[1])
            elif kind == "logsumexp":
                r = ranks[a[0]] - len(a[1])  # type: ignore[operator]
            elif kind == "solve":
                r = ranks[a[1]]
            elif kind in ("inv", "eye"):
                r = 2
            elif kind == "ones":
                r = 1
            elif kind == "zeros":
                r = len(a[0])
            else:  # det, logdet, const
                r = 0
            ranks[k] = r
        for name, slot in self.compiled.program.inputs.items():
            if name in self.shapes and ranks[slot] is not None and \
                    len(self.shapes[name]) != ranks[slot]:
                raise ShapeError(f"{name!r} has shape {self.shapes[name]} "
                                 f"({len(self.shapes[name])} axes) but is used with {ranks[slot]}")
        return ranks

    def _find(self, x: tuple) -> tuple:
        parent = self.parent
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def _union(self, *keys: tuple) -> None:
        for key in keys[1:]:
            self.parent[self._find(key)] = self._find(keys[0])

    def _ref_key(self, ref: tuple) -> tuple:
        if ref[0] == "input":
            return (self.compiled.program.inputs[ref[1]], ref[2])
        if ref[0] == "slot":
            return (ref[1], ref[2])
        return (ref[0], ref[1])  # ("int", n) or ("unknown", label)

    def _size_classes(self) -> None:
        """Axes that must have one size, from the plan: (slot, axis) keys joined through
        each step's labels. Each class gets a value (given shapes, constants) and a
        name for the docstring (the result's free labels, then the plan's labels)."""
        self.parent: dict[tuple, tuple] = {}
        u = self._union
        for k, step in enumerate(self.steps):
            kind, a = step.kind, step.args
            for ax in range(self.rank[k] or 0):
                self._find((k, ax))
            if kind in ("einsum", "add"):
                for part in a[0] if kind == "add" else a[1]:
                    for ax, lab in enumerate(part[1]):
                        u(("L", k, lab), (part[0], ax))
                for pos, lab in enumerate(a[1] if kind == "add" else a[2]):
                    u(("L", k, lab), (k, pos))
            elif kind in ("func", "pow", "powslot", "scale", "softmax"):
                src = a[1] if kind == "func" else a[0]
                for ax in range(self.rank[k] or 0):
                    u((k, ax), (src, ax))
            elif kind == "transpose":
                for pos, ax in enumerate(a[1]):
                    u((k, pos), (a[0], ax))
            elif kind == "logsumexp":
                kept = [ax for ax in range(self.rank[a[0]] or 0) if ax not in a[1]]
                for pos, ax in enumerate(kept):
                    u((k, pos), (a[0], ax))
            elif kind == "solve":
                u((a[0], 0), (a[0], 1), (a[1], 0), (k, 0))
                for ax in range(1, self.rank[k] or 0):
                    u((k, ax), (a[1], ax))
            elif kind in ("inv", "det", "logdet"):
                u((a[0], 0), (a[0], 1), *([(k, 0), (k, 1)] if kind == "inv" else []))
            elif kind in ("ones", "eye"):
                u(self._ref_key(a[0]), *[(k, ax) for ax in range(self.rank[k] or 0)])
            elif kind == "zeros":
                for ax, ref in enumerate(a[0]):
                    u((k, ax), self._ref_key(ref))
            elif kind in ("embed", "broadcast"):
                inner, rest, out, extra = a
                for ax, lab in enumerate(rest):
                    u(("L", k, lab), (inner, ax))
                for pos, lab in enumerate(out):
                    u(("L", k, lab), (k, pos))
                for lab, other in extra:
                    u(("L", k, lab), ("L", k, other) if kind == "embed" else self._ref_key(other))
        self.value: dict[tuple, int | str] = {}
        for name, slot in self.compiled.program.inputs.items():
            for ax, d in enumerate(self.shapes.get(name, ())):
                self.value.setdefault(self._find((slot, ax)), d)
        for key in list(self.parent):
            if key[0] == "int":
                self.value.setdefault(self._find(key), key[1])
        self.label: dict[tuple, str] = {}
        taken = {d for d in self.value.values() if isinstance(d, str)}
        out = self.compiled.program.output
        named = [((out, pos), lab) for pos, lab in enumerate(self.compiled.program.output_labels)]
        named += [(key, key[2]) for key in self.parent if key[0] == "L"]
        for key, lab in named:
            root = self._find(key)
            if root not in self.value and root not in self.label and lab not in taken \
                    and not lab.startswith("_"):
                self.label[root] = lab
                taken.add(lab)

    def int_shape(self, slot: int) -> tuple[int, ...] | None:
        """The shape of ``slot``'s variable where the given shapes fix it (else None)."""
        if self.rank[slot] is None:
            return None
        dims = [self.value.get(self._find((slot, ax))) for ax in range(self.rank[slot] or 0)]
        dims = [dims[p] for p in self.perm.get(slot, range(len(dims)))]
        return tuple(dims) if all(isinstance(d, int) for d in dims) else None  # type: ignore

    def dim_text(self, key: tuple) -> str:
        root = self._find(key)
        return str(self.value.get(root, self.label.get(root, "?")))

    def shape_text(self, slot: int) -> str:
        dims = [self.dim_text((slot, ax)) for ax in range(self.rank[slot] or 0)]
        return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"

    # ------------------------------------------------------------------ code
    def line(self, text: str) -> None:
        self.lines.append(text)

    def assign(self, k: int, value: str, alias: bool = False, view: bool = False) -> None:
        name = self.temp()
        self.var[k], self.alias[k], self.view[k] = name, alias, view
        self.line(f"{name} = {value}")

    def size(self, ref: tuple) -> str:
        if ref[0] == "input":
            return f"{self.py[ref[1]]}.shape[{ref[2]}]"
        if ref[0] == "slot":
            perm = self.perm.get(ref[1])
            return f"{self.var[ref[1]]}.shape[{ref[2] if perm is None else perm.index(ref[2])}]"
        if ref[0] == "int":
            return str(int(ref[1]))
        raise EinderivError(
            f"cannot tell the size of index {ref[1]!r}: it occurs on no tensor given "
            "(the tensor that carried it cancelled or was differentiated away)")

    def new(self) -> str:
        self.needs_dtype = True
        return self.d.new.format(**self.names)

    def transposed(self, x: str, perm: tuple[int, ...]) -> str:
        if perm == tuple(range(len(perm))):
            return x
        if perm == (1, 0):
            return f"{x}.T"
        return self.d.transpose.format(x=x, perm=perm)

    def aligned(self, x: str, have: tuple[Index, ...], want: tuple[Index, ...]) -> str:
        """``x`` (axes ``have``) transposed to the order of ``want``, with new axes
        (None) for the labels it lacks."""
        if have == want or not have:
            return x
        present = [i for i in want if i in have]
        x = self.transposed(x, tuple(have.index(i) for i in present))
        if len(present) < len(want):
            x += "[" + ", ".join(":" if i in have else "None" for i in want) + "]"
        return x

    # ------------------------------------------------------------ axis orders
    def labels(self, slot: int, labels: tuple[Index, ...]) -> tuple[Index, ...]:
        """The labels of the axes of ``slot``'s variable, given ``labels`` naming them
        in the plan's order (which a natural dialect may have permuted)."""
        perm = self.perm.get(slot)
        return labels if perm is None else tuple(labels[p] for p in perm)

    def canonical(self, slot: int) -> str:
        """``slot``'s variable with its axes in the plan's order, for the steps that
        read axes by position (and the result): one transpose, written once."""
        perm = self.perm.get(slot)
        if perm is None:
            return self.var[slot]
        if slot not in self.canon:
            name = self.temp()
            back = tuple(perm.index(ax) for ax in range(len(perm)))
            self.line(f"{name} = {self.transposed(self.var[slot], back)}")
            self.canon[slot] = name
        return self.canon[slot]

    def inherit(self, k: int, arg: int) -> None:
        """An element-wise step: ``k``'s axes are in the order of ``arg``'s."""
        if arg in self.perm:
            self.perm[k] = self.perm[arg]

    def settle(self, k: int, out: tuple[Index, ...], actual: tuple[Index, ...]) -> None:
        """Step ``k`` (axes ``out`` in the plan) was written with the axes ``actual``."""
        if actual != out:
            self.perm[k] = tuple(out.index(i) for i in actual)

    def free_order(self, k: int) -> bool:
        """May step ``k`` leave its axes in the order its computation gives them?"""
        return self.d.natural and k != self.compiled.program.output

    # ------------------------------------------------------------------ steps
    def step_input(self, k: int, name: str) -> None:
        self.var[k], self.alias[k], self.view[k] = self.py[name], True, False

    def step_einsum(self, k: int, coeff: float, operands: tuple, out: tuple, _names) -> None:
        scalars = [self.var[s] for s, labels in operands if not labels]
        rest = [(s, self.labels(s, labels)) for s, labels in operands if labels]
        factors = ([_num(coeff)] if coeff not in (1.0, -1.0) else []) + scalars
        sign = "-" if coeff == -1.0 else ""
        alias = view = False
        free, actual = self.free_order(k), out
        if not rest:
            value = " * ".join(factors or ["1.0"])
        elif len(rest) == 1 and (rest[0][1] == out or free and len(rest[0][1]) == len(out)
                                 and set(rest[0][1]) == set(out)):
            value, actual = " * ".join(factors + [self.var[rest[0][0]]]), rest[0][1]
            alias = view = not factors and not sign  # the variable itself
        else:
            strategy = path_strategy("auto", [labels for _, labels in operands])
            value, actual = self.contraction(rest, out, strategy, free)
            alias = not factors and not sign and len(rest) == 1
            if factors:  # (a single-operand einsum may be a view of its operand)
                value = " * ".join(factors) + " * " + value
        if alias:
            view = view and self.view[rest[0][0]]
            alias = self.alias[rest[0][0]]
        self.assign(k, sign + value, alias=alias, view=view)
        self.settle(k, out, actual)

    def contraction(self, rest: list, out: tuple[Index, ...], strategy: Any,
                    free: bool = False) -> tuple[str, tuple[Index, ...]]:
        """The product of ``rest`` (``(slot, labels)`` each) and the axes of its value:
        ``out``, or with ``free`` the order the contraction gives."""
        if free:  # one call: the result's axes in the order the operands bring them
            out = tuple(dict.fromkeys(i for _, labels in rest for i in labels if i in out))
        shapes = [self.int_shape(s) for s, _ in rest]
        known = all(sh is not None for sh in shapes)
        path = None
        if len(rest) > 1 and (strategy is None or (known and any(0 in sh for sh in shapes))):
            # compile's order for many factors (or an empty axis): one connected
            # factor after another into a running result
            order = connected_order(tuple(rest))
            rest, shapes = [rest[j] for j in order], [shapes[j] for j in order]
            path = [(0, 1)] + [(0, len(rest) - 1 - j) for j in range(1, len(rest) - 1)]
        spec, letters = _spec(rest, out)
        if path is None and known and len(rest) > 1:
            path = [tuple(c) for c in
                    oe.contract_path(spec, *shapes, shapes=True, optimize=strategy)[0]]
        args = ", ".join(self.var[s] for s, _ in rest)
        searched = f', optimize="{strategy}"' if len(rest) > 1 else ""
        given = f", optimize={path!r}" if path else searched
        if letters > MAX_LETTERS and self.backend != "opt_einsum":
            self.needs_oe = True  # opt_einsum maps the labels to letters the backend takes
            where = "" if self.backend == "numpy" else f', backend="{self.backend}"'
            return f'{self.oe}.contract("{spec}", {args}{given}{where})', out
        call = self.d.einsum.format(xp=self.xp, oe=self.oe) + f'("{spec}", {args}'
        if len(rest) == 1:
            return call + ")", out
        if path and (self.d.natural or self.d.path == "pairwise" and len(rest) > 2):
            return self.pairwise(rest, out, path, free)
        if self.d.path == "einsum_path":
            steps = ", ".join(map(repr, path or ()))
            return call + (f', optimize=["einsum_path", {steps}])' if path else
                           ", optimize=True)"), out
        if self.d.path == "pairwise":  # torch.einsum takes no path: one call per pair
            return call + ")", out
        return call + (given if path or self.d.searched == "strategy" else "") + ")", out

    def pairwise(self, rest: list, out: tuple[Index, ...], path: list,
                 free: bool = False) -> tuple[str, tuple[Index, ...]]:
        """The product of ``rest`` one pair at a time along ``path``; on a natural
        dialect each pair's axes in the order a matrix product gives them (shared kept
        axes, then the first's, then the second's) and element-wise pairs as ``*``."""
        ops = [(self.var[s], labels) for s, labels in rest]
        for n, pair in enumerate(path):
            picked = [ops[j] for j in sorted(pair)]  # in the order of the product
            for j in sorted(pair, reverse=True):
                ops.pop(j)
            last = n == len(path) - 1
            keep = set(out) | (set() if last else {i for _, labels in ops for i in labels})
            lx, ly = picked[0][1], picked[-1][1] if len(picked) == 2 else ()
            new = tuple(i for i in dict.fromkeys(lx) if i in ly and i in keep) + \
                tuple(i for i in dict.fromkeys(lx + ly) if i in keep and not (i in lx and i in ly))
            if not self.d.natural:
                new = tuple(dict.fromkeys(i for i in lx + ly if i in keep))
            if last and not free:
                new = out
            if self.d.natural and len(picked) == 2 and set(new) == set(lx) | set(ly) and \
                    len(set(lx)) == len(lx) and len(set(ly)) == len(ly):
                (x, _), (y, _) = picked
                call = f"{self.aligned(x, lx, new)} * {self.aligned(y, ly, new)}"
            else:  # a contraction of two, or a sum over axes of one
                spec, _ = _spec(picked, new)
                call = self.d.einsum.format(xp=self.xp) + \
                    f'("{spec}", {", ".join(v for v, _ in picked)})'
            if last:
                return call, new
            name = self.temp()
            self.line(f"{name} = {call}")
            ops.append((name, new))
        raise AssertionError("an empty path")  # pragma: no cover

    def step_func(self, k: int, name: str, arg: int) -> None:
        self.assign(k, FUNCTIONS[name].source(self.backend, self.xp, self.var[arg]))
        self.inherit(k, arg)

    def step_pow(self, k: int, base: int, p: float) -> None:
        b = self.var[base]
        if p == 2.0:
            value = f"{b} * {b}"
        elif p == -1.0:
            value = f"1.0 / {b}"
        elif p == 0.5:
            value = f"{self.xp}.sqrt({b})"
        elif p < 0 and float(p).is_integer():
            value = f"1.0 / {b} ** {_num(-p)}"
        else:
            value = f"{b} ** {_num(p)}" if p >= 0 else f"{b} ** ({_num(p)})"
        self.assign(k, value)
        self.inherit(k, base)

    def step_powslot(self, k: int, base: int, exponent: int) -> None:
        if self.rank[exponent] == 0:
            self.assign(k, f"{self.var[base]} ** {self.var[exponent]}")
            self.inherit(k, base)
        else:
            self.assign(k, f"{self.canonical(base)} ** {self.canonical(exponent)}")

    def step_transpose(self, k: int, arg: int, perm: tuple[int, ...]) -> None:
        have = self.perm.get(arg, tuple(range(len(perm))))  # one transpose, not two
        self.assign(k, self.transposed(self.var[arg], tuple(have.index(p) for p in perm)),
                    alias=self.alias[arg], view=self.view[arg])

    def step_scale(self, k: int, arg: int, c: float) -> None:
        self.assign(k, f"-{self.var[arg]}" if c == -1.0 else f"{_num(c)} * {self.var[arg]}")
        self.inherit(k, arg)

    def step_logsumexp(self, k: int, arg: int, axes: tuple[int, ...], c: float) -> None:
        u, xp = self.canonical(arg), self.xp
        shift = f" + {_num(math.log(c))}  # log({_num(c)})" if c != 1.0 else ""
        if not axes:
            self.assign(k, f"{xp}.log({_num(c)} * {xp}.exp({u}))")
        elif self.d.lse:
            self.assign(k, self.d.lse.format(xp=xp, u=u, axes=axes) + shift)
        else:  # shifted by the max over the summed axes: no overflow (issue 6)
            m = self.temp("m")
            self.line(f"{m} = {xp}.max({u}, axis={axes}, keepdims=True, initial=-{xp}.inf)")
            self.line(f"{m} = {xp}.where({xp}.isfinite({m}), {m}, 0.0)")
            self.assign(k, f"{xp}.log({xp}.sum({xp}.exp({u} - {m}), axis={axes})) + "
                           f"{xp}.squeeze({m}, axis={axes})" + shift)

    def step_softmax(self, k: int, arg: int, axes: tuple[int, ...]) -> None:
        u, xp = self.canonical(arg), self.xp
        if self.d.softmax:
            self.assign(k, self.d.softmax.format(xp=xp, u=u, axes=axes))
            return
        m, e = self.temp("m"), self.temp("e")  # shifted by the max: no overflow (issue 6)
        self.line(f"{m} = {xp}.max({u}, axis={axes}, keepdims=True, initial=-{xp}.inf)")
        self.line(f"{m} = {xp}.where({xp}.isfinite({m}), {m}, 0.0)")
        self.line(f"{e} = {xp}.exp({u} - {m})")
        self.assign(k, f"{e} / {xp}.sum({e}, axis={axes}, keepdims=True)  # softmax")

    def step_solve(self, k: int, m: int, rhs: int, transposed: bool) -> None:
        a = self.canonical(m) + (".T" if transposed else "")
        b = self.canonical(rhs)
        if (self.rank[rhs] or 0) <= 2:
            self.assign(k, f"{self.xp}.linalg.solve({a}, {b})")
        else:  # the trailing axes as columns (their product: -1 cannot stand for 0)
            self.needs_math = True
            columns = f"{self.math}.prod({b}.shape[1:])"
            self.assign(k, f"{self.xp}.linalg.solve({a}, {b}.reshape({b}.shape[0], {columns}))"
                           f".reshape({b}.shape)")

    def step_inv(self, k: int, arg: int) -> None:
        self.assign(k, f"{self.xp}.linalg.inv({self.canonical(arg)})")

    def step_det(self, k: int, arg: int) -> None:
        self.assign(k, f"{self.xp}.linalg.det({self.canonical(arg)})")

    def step_logdet(self, k: int, arg: int) -> None:
        self.assign(k, f"{self.xp}.linalg.slogdet({self.canonical(arg)})[1]  # log |det|")

    def step_ones(self, k: int, ref: tuple) -> None:
        self.assign(k, f"{self.xp}.ones({self.size(ref)}, {self.new()})")

    def step_eye(self, k: int, ref: tuple) -> None:
        self.assign(k, f"{self.xp}.eye({self.size(ref)}, {self.new()})")

    def step_const(self, k: int, c: float) -> None:
        self.new()
        self.assign(k, self.d.scalar.format(xp=self.xp, c=_num(c), **self.names))

    def step_zeros(self, k: int, refs: tuple) -> None:
        dims = ", ".join(self.size(r) for r in refs) + ("," if len(refs) == 1 else "")
        self.assign(k, f"{self.xp}.zeros(({dims}), {self.new()})")

    def step_add(self, k: int, parts: tuple, out: tuple[Index, ...]) -> None:
        parts = tuple((slot, self.labels(slot, labels), sign) for slot, labels, sign in parts)
        actual = out
        if self.free_order(k):  # the order of a term with every axis
            actual = next((labels for _, labels, _ in parts if len(labels) == len(out)
                           and set(labels) == set(out)), out)
        value = ""
        for slot, labels, sign in parts:
            term = self.aligned(self.var[slot], labels, actual)
            if not value:
                value = term if sign == 1.0 else f"-{term}"
            else:
                value += f" + {term}" if sign == 1.0 else f" - {term}"
        self.assign(k, value)
        self.settle(k, out, actual)

    def step_broadcast(self, k: int, inner: int, rest: tuple, out: tuple, extra: tuple) -> None:
        x, rest = self.var[inner], self.labels(inner, rest)
        sizes = {lab: f"{x}.shape[{ax}]" for ax, lab in enumerate(rest)}
        sizes.update({lab: self.size(ref) for lab, ref in extra})
        dims = ", ".join(sizes[i] for i in out) + ("," if len(out) == 1 else "")
        value = self.aligned(x, rest, out)
        if self.d.place:
            self.new()
            value = self.d.place.format(x=value, **self.names)
        self.assign(k, f"{self.xp}.broadcast_to({value}, ({dims}))", view=True)

    def step_embed(self, k: int, inner: int, rest: tuple, out: tuple, pairs: tuple) -> None:
        """``inner`` (axes ``rest``) on the diagonal ``keep == gone`` of zeros with axes
        ``out``: no dense identity."""
        x, rest = self.var[inner], self.labels(inner, rest)
        same = {gone: keep for keep, gone in pairs}

        def root(i: Index) -> Index:
            return root(same[i]) if i in same else i
        dims = ", ".join(f"{x}.shape[{rest.index(root(i))}]" for i in out)
        dims += "," if len(out) == 1 else ""
        xp, name = self.xp, self.temp()
        self.var[k], self.alias[k], self.view[k] = name, False, False
        if self.d.embed == "view":
            spec, _ = _spec([(None, tuple(root(i) for i in out))], rest)
            self.line(f"{name} = {xp}.zeros(({dims}), dtype={x}.dtype)")
            self.line(f'{xp}.einsum("{spec}", {name})[...] = {x}  # a writeable diagonal view')
            return
        index = []
        for ax in range(len(rest)):
            i = self.temp("i")
            shape = ", ".join("-1" if j == ax else "1" for j in range(len(rest)))
            where = f", device={x}.device" if self.backend == "torch" else ""
            reshape = f".reshape({shape})" if len(rest) > 1 else ""
            self.line(f"{i} = {xp}.arange({x}.shape[{ax}]{where}){reshape}")
            index.append(i)
        at = ", ".join(index[rest.index(root(i))] for i in out)
        if self.d.embed == "at":
            self.line(f"{name} = {xp}.zeros(({dims}), dtype={x}.dtype).at[{at}].set({x})")
        else:
            self.line(f"{name} = {xp}.zeros(({dims}), dtype={x}.dtype, device={x}.device)")
            self.line(f"{name}[{at}] = {x}")

    # ------------------------------------------------------------------ assembly
    def source(self) -> str:
        for k, step in enumerate(self.steps):
            getattr(self, "step_" + step.kind)(k, *step.args)
        out = self.compiled.program.output
        result = self.canonical(out)
        if self.d.copy and (self.alias[out] or self.view[out]):
            result = self.d.copy.format(x=result)  # never hand back an input or a view
        if self.backend in ("numpy", "opt_einsum") and not self.rank[out]:
            result = f"{self.xp}.asarray({result})"  # a 0-d array, as compile returns
        xp = self.xp
        inputs = [self.py[n] for n in self.compiled.program.inputs]
        head = [f"def {self.name}({', '.join(self.py[p] for p in self.params)}):"]
        body = self.docstring()
        if inputs:
            body.append(f"def {self.helper}(a):  # integers and booleans become floats, "
                        "as in einderiv's compile")
            body += ["    " + s.format(xp=xp) for s in self.d.promote]
            body.append("")
            targets = ", ".join(inputs)
            body.append(f"{targets} = {', '.join(f'{self.helper}({n})' for n in inputs)}")
        if self.needs_dtype:
            body += self.dtype_lines(inputs)
        body += self.lines
        body.append(f"return {result}")
        module = self.d.module.format(xp=xp)
        imports = [module.removesuffix(" as " + xp) if module.endswith(f"{xp} as {xp}")
                   else module]
        if self.needs_math:
            imports.insert(0, "import math" if self.math == "math" else
                           f"import math as {self.math}")
        if self.needs_oe:
            imports.append(f"import opt_einsum as {self.oe}")
        return "\n".join(imports + ["", ""] + head + ["    " + s if s else "" for s in body]) \
            + "\n"

    def dtype_lines(self, inputs: list[str]) -> list[str]:
        xp, dtype, device = self.xp, self.names["dtype"], self.names["device"]
        if self.backend == "torch":
            if not inputs:
                return [f"{dtype}, {device} = {xp}.float64, {xp}.device(\"cpu\")"]
            common = f"{inputs[0]}.dtype"
            for n in inputs[1:]:
                common = f"{xp}.promote_types({common}, {n}.dtype)"
            arrays = ", ".join(inputs) + ("," if len(inputs) == 1 else "")
            return [f"{dtype} = {common}",  # constants: the inputs' dtype and device
                    f"{device} = max(({arrays}), key=lambda a: a.ndim).device"]
        if not inputs:
            return [f"{dtype} = {xp}.result_type(float)"]
        return [f"{dtype} = {xp}.result_type({', '.join(inputs)})  # constants: the inputs' dtype"]

    def docstring(self) -> list[str]:
        variables = self.compiled.variables
        lines = ['"""Computes, in index notation,', "",
                 f"    {self.compiled.expr}", "",
                 f"Generated by einderiv (backend {self.backend!r}) from the plan of Expr.compile().",
                 "",
                 "Arguments (none is modified; integer and boolean arrays become floats):"]
        inputs = self.compiled.program.inputs
        for p in self.params:
            slot = inputs.get(p)
            if slot is None:
                shape = "unused"
            elif self.rank[slot] is None:
                axes = sorted(key[1] for key in self.parent if key[0] == slot and len(key) == 2)
                shape = "an array; only its shape is used: " + ", ".join(
                    f"{self.py[p]}.shape[{ax}] = {self.dim_text((slot, ax))}" for ax in axes)
            else:
                shape = "shape " + self.shape_text(slot) + (" (a scalar)" if not self.rank[slot]
                                                            else "")
                if p not in variables:
                    shape += "; only its shape is used"
            renamed = "" if self.py[p] == p else f" (the variable {p})"
            lines.append(f"    {self.py[p]}{renamed}: {shape}")
        out = self.compiled.program.output
        free = self.compiled.program.output_labels
        lines.append("")
        if free:
            lines.append(f"Returns an array of shape {self.shape_text(out)}, axes in the order "
                         f"of the free indices ({', '.join(free)}).")
        else:
            lines.append("Returns a 0-d array (a scalar).")
        lines += ["Layout: denominator layout -- a derivative d f / d x has the axes of x",
                  "first, then those of f.", '"""']
        return lines
