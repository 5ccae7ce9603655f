"""The writer of exported code (:mod:`einderiv.numeric.codegen`): one line (or a few)
per step of the program, each kind written by its method in :data:`WRITERS`; shared
values are local variables, intermediates of natural dialects keep the axis order
their contraction gives them, the function's docstring tells every argument's shape.
"""

from __future__ import annotations

import keyword
import math
from collections.abc import Mapping
from typing import Any

import opt_einsum as oe

from ..core.functions import FUNCTIONS
from ..core.ir import Expr, Index, iter_tensors
from ..errors import EinderivError
from .axis_sizes import AxisSizes, program_ranks
from .code_doc import docstring
from .code_forms import (conversion, diagonal_view, dtype_lines, folded_scalars, multiplied_out,
                         pairwise, reshaped, selected, subscripts)
from .dialects import Dialect
from .inputs import ordered_variables
from .paths import connected_order, path_strategy
from .program import (Add, Broadcast, Const, Det, Einsum, Embed, Eye, Func, Input, Inv, LogDet,
                      LogSumExp, Ones, Pow, PowSlot, Program, Scale, SizeRef, Softmax, Solve, Step,
                      Transpose, UnknownSize, Zeros, unknown_size_message)
from .rewrites import Distribution

__all__ = ["CodeWriter", "WRITERS", "MAX_LETTERS"]

#: numpy.einsum and torch.einsum accept the letters a-z and A-Z only.
MAX_LETTERS = 52


def _num(x: float) -> str:
    if math.isfinite(x):
        return repr(float(x))
    return "float(\"nan\")" if math.isnan(x) else ("-" if x < 0 else "") + "float(\"inf\")"


class CodeWriter:
    """Writes the function ``name`` computing ``expr`` from ``program`` (its lowering)
    in the dialect of ``backend``: each step by its kind's writer in :data:`WRITERS`."""

    def __init__(self, expr: Expr | tuple[Expr, ...], program: Program, backend: str,
                 dialect: Dialect, shapes: Mapping[str, tuple], name: str,
                 multiplied: Mapping[int, Distribution] | None = None):
        self.expr, self.program, self.backend, self.d, self.shapes, self.name = \
            expr, program, backend, dialect, shapes, name
        # products whose sum factor is multiplied out, and the steps that makes unneeded
        self.multiplied = dict(multiplied or {})
        self.unneeded = {d for found in self.multiplied.values() for d in found.dead}
        self.steps = program.steps
        # keyword-only parameters: the variables in the order the expression shows
        # them, then the arrays only a size is read from
        self.exprs = expr if isinstance(expr, tuple) else (expr,)
        self.variables = ordered_variables(self.exprs)
        self.params = self.variables + [n for n in program.inputs if n not in self.variables]
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
        self.helper = self.fresh("_arrays")
        self.lax, self.leading = self.fresh("lax"), self.fresh("_leading")
        self.needs_leading = False
        self.rows: dict[str, tuple] = {}  # a variable x * v (rows scaled): (x, v, axes, text)
        self.names = {"dtype": self.fresh("dtype"), "device": self.fresh("device")}
        self.counts: dict[str, int] = {}
        self.var: dict[int, str] = {}
        self.alias: dict[int, bool] = {}   # may share memory with an input
        self.view: dict[int, bool] = {}    # a read-only broadcast view
        self.lines: list[str] = []
        self.written: dict[str, tuple[str, bool, bool]] = {}  # value -> (variable, alias, view)
        self.readers: dict[int, list[int]] = {}  # slot -> the steps that read it
        for j, st in enumerate(program.steps):
            for s in st.reads():
                self.readers.setdefault(s, []).append(j)
        self.deferred: dict[int, tuple] = {}  # embeds added in place by their sum (torch)
        # natural dialects: slot -> the plan's axis at each axis of its variable
        self.perm: dict[int, tuple[int, ...]] = {}
        self.canon: dict[int, str] = {}    # slot -> its variable in the plan's order
        self.needs_oe = backend == "opt_einsum"
        self.needs_math = False
        self.needs_dtype = False
        self.rank = program_ranks(program, {t.name: len(t.indices) for e in self.exprs
                                            for t in iter_tensors(e)},
                                  shapes)
        self.sizes = AxisSizes(program, self.rank, shapes)

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
    def int_shape(self, slot: int) -> tuple[int, ...] | None:
        """The shape of ``slot``'s variable where the given shapes fix it (else None)."""
        if self.rank[slot] is None:
            return None
        dims = [self.sizes.size_of(slot, ax) for ax in range(self.rank[slot] or 0)]
        dims = [dims[p] for p in self.perm.get(slot, range(len(dims)))]
        return tuple(dims) if all(isinstance(d, int) for d in dims) else None  # type: ignore

    # ------------------------------------------------------------------ code
    def line(self, text: str) -> None:
        self.lines.append(text)

    def assign(self, k: int, value: str, alias: bool = False, view: bool = False) -> None:
        """Step ``k`` is ``value``; a value written before (the same text of the same
        variables, which are never reassigned) is not computed again: the program keeps
        ``-(y X theta)`` and ``y X theta`` apart, the code computes ``X theta`` once."""
        known = self.written.get(value)
        if known is not None:
            self.var[k], self.alias[k], self.view[k] = known
            return
        named = self.program.named.get(k)  # a definition's value takes its name
        name = self.fresh(named) if named and named.isidentifier() else self.temp()
        self.var[k], self.alias[k], self.view[k] = name, alias, view
        self.written[value] = (name, alias, view)
        self.line(f"{name} = {value}")

    def bind(self, value: str) -> str:
        """A variable holding ``value`` (an intermediate of a product): one written
        before, or a new one."""
        if value in self.written:
            return self.written[value][0]
        name = self.temp()
        self.written[value] = (name, False, False)
        self.line(f"{name} = {value}")
        return name

    def size(self, ref: SizeRef) -> str:
        if isinstance(ref, UnknownSize):
            raise EinderivError(unknown_size_message(ref.label))
        return str(ref.size(lambda name, axis: f"{self.py[name]}.shape[{axis}]",
                            self.slot_axis))

    def slot_axis(self, slot: int, axis: int) -> str:
        perm = self.perm.get(slot)
        return f"{self.var[slot]}.shape[{axis if perm is None else perm.index(axis)}]"

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
        return self.d.natural and k not in self.program.results

    # ------------------------------------------------------------------ steps
    def step_input(self, k: int, step: Input) -> None:
        name = step.name
        self.var[k], self.alias[k], self.view[k] = self.py[name], True, False

    def step_einsum(self, k: int, step: Einsum) -> None:
        if k in self.multiplied:  # its sum factor multiplied out (rewrites.distributions)
            value, actual, alias, view = multiplied_out(self, step, self.multiplied[k].terms,
                                                        self.free_order(k))
        else:
            value, actual, alias, view = self.product(step, self.free_order(k))
        self.assign(k, value, alias=alias, view=view)
        self.settle(k, step.out, actual)

    def product(self, step: Einsum, free: bool) -> tuple[str, tuple[Index, ...], bool, bool]:
        """The value of a product, the order of its axes (``free``: as the contraction
        gives them), and whether it is an input's variable (alias) or a view of one."""
        coeff, operands, out = step.coeff, step.operands, step.out
        scalars = [self.var[s] for s, labels in operands if not labels]
        rest = [(s, self.labels(s, labels)) for s, labels in operands if labels]
        factors = ([_num(coeff)] if coeff not in (1.0, -1.0) else []) + scalars
        sign = "-" if coeff == -1.0 else ""
        alias = view = False
        actual = out
        if not rest:
            value = " * ".join(factors or ["1.0"])
        elif len(rest) == 1 and (rest[0][1] == out or free and len(rest[0][1]) == len(out)
                                 and set(rest[0][1]) == set(out)):
            value, actual = " * ".join(factors + [self.var[rest[0][0]]]), rest[0][1]
            alias = view = not factors and not sign  # the variable itself
        else:
            strategy = path_strategy("auto", [labels for _, labels in operands])
            folded = (folded_scalars(self, rest, sign, factors)
                      if self.d.fold and len(rest) > 1 else None)
            value, actual = self.contraction(rest, out, strategy, free)
            if folded:  # the scalars went into an operand
                self.var[folded[0]], sign, factors = folded[1], "", []
            alias = not factors and not sign and len(rest) == 1
            if factors:  # (a single-operand einsum may be a view of its operand)
                value = " * ".join(factors) + " * " + value
        if alias:
            view = view and self.view[rest[0][0]]
            alias = self.alias[rest[0][0]]
        return sign + value, actual, alias, view

    def contraction(self, rest: list, out: tuple[Index, ...], strategy: Any,
                    free: bool = False) -> tuple[str, tuple[Index, ...]]:
        """The product of ``rest`` (``(slot, labels)`` each) and the axes of its value:
        ``out``, or with ``free`` the order the contraction gives."""
        if free:  # one call: the result's axes in the order the operands bring them
            out = tuple(dict.fromkeys(i for _, labels in rest for i in labels if i in out))
        shapes = [self.int_shape(s) for s, _ in rest]
        known = all(sh is not None for sh in shapes)
        path = None
        if len(rest) > 1 and (strategy is None or (known and any(0 in sh for sh in shapes
                                                                 if sh is not None))):
            # compile's order for many factors (or an empty axis): one connected
            # factor after another into a running result
            order = connected_order(tuple(rest))
            rest, shapes = [rest[j] for j in order], [shapes[j] for j in order]
            path = [(0, 1)] + [(0, len(rest) - 1 - j) for j in range(1, len(rest) - 1)]
        spec, letters = subscripts(rest, out)
        if path is None and known and len(rest) > 1:
            path = [tuple(c) for c in
                    oe.contract_path(spec, *shapes, shapes=True, optimize=strategy)[0]]
        elif path is None and len(rest) == 2 and (self.d.leading or self.d.presum):
            path = [(0, 1)]  # the one path of two
        args = ", ".join(self.var[s] for s, _ in rest)
        searched = f', optimize="{strategy}"' if len(rest) > 1 else ""
        given = f", optimize={path!r}" if path else searched
        if letters > MAX_LETTERS and self.backend != "opt_einsum":
            self.needs_oe = True  # opt_einsum maps the labels to letters the backend takes
            where = "" if self.backend == "numpy" else f', backend="{self.backend}"'
            return f'{self.oe}.contract("{spec}", {args}{given}{where})', out
        call = self.d.einsum.format(xp=self.xp, oe=self.oe) + f'("{spec}", {args}'
        if len(rest) == 1 and self.d.presum:  # a sum over axes of one: its own call
            return pairwise(self, rest, out, [(0,)], free)
        if len(rest) == 1:
            return call + ")", out
        if path and (self.d.natural or self.d.path == "pairwise" and len(rest) > 2):
            return pairwise(self, rest, out, path, free)
        if self.d.path == "einsum_path":
            steps = ", ".join(map(repr, path or ()))
            return call + (f', optimize=["einsum_path", {steps}])' if path else
                           ", optimize=True)"), out
        if self.d.path == "pairwise":  # torch.einsum takes no path: one call per pair
            return call + ")", out
        return call + (given if path or self.d.searched == "strategy" else "") + ")", out

    def step_func(self, k: int, step: Func) -> None:
        name, arg = step.name, step.arg
        self.assign(k, FUNCTIONS[name].source(self.backend, self.xp, self.var[arg]))
        self.inherit(k, arg)

    def step_pow(self, k: int, step: Pow) -> None:
        base, p = step.arg, step.exponent
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

    def step_powslot(self, k: int, step: PowSlot) -> None:
        base, exponent = step.base, step.exponent
        if self.rank[exponent] == 0:
            self.assign(k, f"{self.var[base]} ** {self.var[exponent]}")
            self.inherit(k, base)
        else:
            self.assign(k, f"{self.canonical(base)} ** {self.canonical(exponent)}")

    def step_transpose(self, k: int, step: Transpose) -> None:
        arg, perm = step.arg, step.perm
        have = self.perm.get(arg, tuple(range(len(perm))))  # one transpose, not two
        self.assign(k, self.transposed(self.var[arg], tuple(have.index(p) for p in perm)),
                    alias=self.alias[arg], view=self.view[arg])

    def step_scale(self, k: int, step: Scale) -> None:
        arg, c = step.arg, step.coeff
        self.assign(k, f"-{self.var[arg]}" if c == -1.0 else f"{_num(c)} * {self.var[arg]}")
        self.inherit(k, arg)

    def step_logsumexp(self, k: int, step: LogSumExp) -> None:
        arg, axes, c = step.arg, step.axes, step.coeff
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

    def step_softmax(self, k: int, step: Softmax) -> None:
        arg, axes = step.arg, step.axes
        u, xp = self.canonical(arg), self.xp
        if self.d.softmax:  # the library's; over one axis its own call (torch: 2.5 us, not 13)
            form = self.d.softmax_axis if self.d.softmax_axis and len(axes) == 1 else self.d.softmax
            self.assign(k, form.format(xp=xp, u=u, axes=axes, axis=axes[0] if axes else None))
            return
        m, e = self.temp("m"), self.temp("e")  # shifted by the max: no overflow (issue 6)
        self.line(f"{m} = {xp}.max({u}, axis={axes}, keepdims=True, initial=-{xp}.inf)")
        self.line(f"{m} = {xp}.where({xp}.isfinite({m}), {m}, 0.0)")
        self.line(f"{e} = {xp}.exp({u} - {m})")
        self.assign(k, f"{e} / {xp}.sum({e}, axis={axes}, keepdims=True)  # softmax")

    def step_solve(self, k: int, step: Solve) -> None:
        m, rhs, transposed = step.matrix, step.rhs, step.transposed
        a = self.canonical(m) + (".T" if transposed else "")
        b = self.canonical(rhs)
        if (self.rank[rhs] or 0) <= 2:
            self.assign(k, f"{self.xp}.linalg.solve({a}, {b})")
        else:  # the trailing axes as columns (their product: -1 cannot stand for 0)
            self.needs_math = True
            columns = f"{self.math}.prod({b}.shape[1:])"
            self.assign(k, f"{self.xp}.linalg.solve({a}, {b}.reshape({b}.shape[0], {columns}))"
                           f".reshape({b}.shape)")

    def step_inv(self, k: int, step: Inv) -> None:
        self.assign(k, f"{self.xp}.linalg.inv({self.canonical(step.arg)})")

    def step_det(self, k: int, step: Det) -> None:
        self.assign(k, f"{self.xp}.linalg.det({self.canonical(step.arg)})")

    def step_logdet(self, k: int, step: LogDet) -> None:
        self.assign(k, f"{self.xp}.linalg.slogdet({self.canonical(step.arg)})[1]  # log |det|")

    def step_ones(self, k: int, step: Ones) -> None:
        self.assign(k, f"{self.xp}.ones({self.size(step.size)}, {self.new()})")

    def step_eye(self, k: int, step: Eye) -> None:
        self.assign(k, f"{self.xp}.eye({self.size(step.size)}, {self.new()})")

    def step_const(self, k: int, step: Const) -> None:
        c = step.value
        self.new()
        self.assign(k, self.d.scalar.format(xp=self.xp, c=_num(c), **self.names))

    def step_zeros(self, k: int, step: Zeros) -> None:
        refs = step.sizes
        dims = ", ".join(self.size(r) for r in refs) + ("," if len(refs) == 1 else "")
        self.assign(k, f"{self.xp}.zeros(({dims}), {self.new()})")

    def step_add(self, k: int, step: Add) -> None:
        out = step.out
        parts = tuple((slot, self.labels(slot, labels), sign)
                      for slot, labels, sign in step.terms)
        late = [p for p in parts if p[0] in self.deferred]
        parts = tuple(p for p in parts if p[0] not in self.deferred)
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
        if late:
            single = len(parts) == 1 and parts[0][2] == 1.0
            self.add_diagonals(k, value, single and not self.private(parts[0][0], k), late,
                               actual)
        else:
            self.assign(k, value)
        self.settle(k, out, actual)

    def ranges(self, x: str, rank: int) -> list[str]:
        """Variables holding ``arange`` over each axis of ``x``, shaped to broadcast."""
        names, where = [self.temp("i") for _ in range(rank)], \
            f", device={x}.device" if self.backend == "torch" else ""
        for ax, i in enumerate(names):
            self.line(f"{i} = {self.xp}.arange({x}.shape[{ax}]{where}){reshaped(ax, rank)}")
        return names

    def deferrable(self, k: int) -> bool:
        """May embed ``k`` be added in place onto its sum (torch)? Its one reader is a sum
        with a term of every axis that is not an embed, and ``k`` has every axis too."""
        readers = self.readers.get(k, [])
        add = self.steps[readers[0]] if len(readers) == 1 else None
        if not isinstance(add, Add) or k == self.program.output:
            return False
        full = [s for s, labels, _ in add.terms if sorted(labels) == sorted(add.out)]
        return full.count(k) == 1 == [s for s, _, _ in add.terms].count(k) and \
            any(not isinstance(self.steps[s], Embed) for s in full)

    def private(self, slot: int, k: int) -> bool:
        """Is ``slot``'s variable a new array that only step ``k`` reads (so ``k`` may
        write into it)? Not an input, a view, the result, or a value shared with a slot
        read elsewhere."""
        name = self.var[slot]
        if self.alias[slot] or self.view[slot]:
            return False
        same = [s for s, v in self.var.items() if v == name]
        if any(s == self.program.output or set(self.readers.get(s, [])) - {k} for s in same):
            return False
        for text in [t for t, (v, _, _) in self.written.items() if v == name]:
            del self.written[text]  # written into: no later step may reuse it
        return True

    def add_diagonals(self, k: int, value: str, single: bool, late: list,
                      actual: tuple[Index, ...]) -> None:
        """Sum ``k``: ``value`` (the dense terms; ``single``: one term to copy), then each
        deferred embed added onto its diagonal in place: no zeros, no second pass."""
        name = value if value.isidentifier() and not single else self.temp()
        self.var[k], self.alias[k], self.view[k] = name, False, False
        if name != value:  # a new array
            self.line(f"{name} = {self.d.copy.format(x=value) if single else value}")
        for slot, labels, sign in late:
            x, rest, out, root = self.deferred[slot]
            self.line(f"{name} = {name}.to({self.xp}.promote_types({name}.dtype, {x}.dtype))")
            # the diagonal as a view of the sum (no index arrays, no gather and scatter:
            # C9's Hessian 181 -> 144 us a call against advanced indexing), made with
            # .diagonal, which torch.compile traces (as_strided and .stride() it does not)
            view = diagonal_view(name, [rest.index(root(out[labels.index(lab)]))
                                        for lab in actual])
            self.line(f"{view}.{'add_' if sign == 1.0 else 'sub_'}({x})  # the diagonal term")

    def step_broadcast(self, k: int, step: Broadcast) -> None:
        inner, out, extra = step.inner, step.out, step.extra
        x, rest = self.var[inner], self.labels(inner, step.rest)
        sizes = {lab: f"{x}.shape[{ax}]" for ax, lab in enumerate(rest)}
        sizes.update({lab: self.size(ref) for lab, ref in extra})
        dims = ", ".join(sizes[i] for i in out) + ("," if len(out) == 1 else "")
        value = self.aligned(x, rest, out)
        if self.d.place:
            self.new()
            value = self.d.place.format(x=value, **self.names)
        self.assign(k, f"{self.xp}.broadcast_to({value}, ({dims}))", view=True)

    def step_embed(self, k: int, step: Embed) -> None:
        """``inner`` (axes ``rest``) on the diagonal ``keep == gone`` of zeros with axes
        ``out``: no dense identity."""
        inner, out = step.inner, step.out
        x, rest = self.var[inner], self.labels(inner, step.rest)
        same = {gone: keep for keep, gone in step.pairs}

        def root(i: Index) -> Index:
            return root(same[i]) if i in same else i
        dims = ", ".join(f"{x}.shape[{rest.index(root(i))}]" for i in out)
        dims += "," if len(out) == 1 else ""
        if self.d.embed == "where":  # XLA fuses a select with what reads it; a scatter not
            mask, value = selected(self.xp, x, rest, out, step.pairs, root)
            self.assign(k, value.format(mask=self.bind(mask), x=self.aligned(x, rest, out)))
            return
        if self.d.embed == "setitem" and self.deferrable(k):  # added in place by its sum
            self.deferred[k] = (x, rest, out, root)
            self.var[k], self.alias[k], self.view[k] = "", False, False
            return
        xp, name = self.xp, self.temp()
        self.var[k], self.alias[k], self.view[k] = name, False, False
        if self.d.embed == "view":
            spec, _ = subscripts([(None, tuple(root(i) for i in out))], rest)
            self.line(f"{name} = {xp}.zeros(({dims}), dtype={x}.dtype)")
            self.line(f'{xp}.einsum("{spec}", {name})[...] = {x}  # a writeable diagonal view')
            return
        index = self.ranges(x, len(rest))
        at = ", ".join(index[rest.index(root(i))] for i in out)
        if self.d.embed == "at":
            self.line(f"{name} = {xp}.zeros(({dims}), dtype={x}.dtype).at[{at}].set({x})")
        else:
            self.line(f"{name} = {xp}.zeros(({dims}), dtype={x}.dtype, device={x}.device)")
            self.line(f"{name}[{at}] = {x}")

    # ------------------------------------------------------------------ assembly
    def source(self) -> str:
        for k, step in enumerate(self.steps):
            if k not in self.unneeded:
                WRITERS[type(step)](self, k, step)
        results = []
        for j, out in enumerate(self.program.results):
            result = self.canonical(out)
            if self.d.copy and (self.alias[out] or self.view[out] or
                                out in self.program.results[:j]):
                result = self.d.copy.format(x=result)  # never hand back an input or a view
            if self.backend in ("numpy", "opt_einsum") and not self.rank[out]:
                result = f"{self.xp}.asarray({result})"  # a 0-d array, as compile returns
            results.append(result)
        result = results[0] if not self.program.outputs else f"({', '.join(results)},)"
        xp = self.xp
        inputs = [self.py[n] for n in self.program.inputs]
        params = ", ".join(self.py[p] for p in self.params)
        head = [f"def {self.name}({'*, ' + params if params else ''}):"]
        body = docstring(self)
        scalars = any(isinstance(st, Input) and not self.rank[k]  # numbers, most likely:
                      for k, st in enumerate(self.steps))  # the helper's to convert
        body += conversion(self.d, xp, self.helper, inputs, not scalars)
        if self.needs_dtype:
            ranks = {st.name: self.rank[k] or 0 for k, st in enumerate(self.steps)
                     if isinstance(st, Input)}
            body += dtype_lines(self.backend, xp, self.names, inputs,
                                [ranks.get(n, 0) for n in self.program.inputs])
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
        helpers = []  # module level: no argument of the function shadows what they use
        if self.needs_leading:
            imports.append(self.d.leading_import.format(lax=self.lax))
            helpers = [f"def {self.leading}(a, b, s, w=None):  # over the s leading axes of both"]
            helpers += ["    " + s.format(xp=xp, lax=self.lax) if s else "" for s in self.d.leading]
            helpers += ["", ""]
        return "\n".join(imports + ["", ""] + helpers + head +
                         ["    " + s if s else "" for s in body]) + "\n"

#: Each kind's writer: ``writer(code_writer, k, step)`` writes step ``k``.
WRITERS: dict[type[Step], Any] = {
    Input: CodeWriter.step_input,
    Einsum: CodeWriter.step_einsum,
    Func: CodeWriter.step_func,
    Pow: CodeWriter.step_pow,
    PowSlot: CodeWriter.step_powslot,
    Transpose: CodeWriter.step_transpose,
    LogSumExp: CodeWriter.step_logsumexp,
    Softmax: CodeWriter.step_softmax,
    Scale: CodeWriter.step_scale,
    Solve: CodeWriter.step_solve,
    Inv: CodeWriter.step_inv,
    Det: CodeWriter.step_det,
    LogDet: CodeWriter.step_logdet,
    Ones: CodeWriter.step_ones,
    Eye: CodeWriter.step_eye,
    Const: CodeWriter.step_const,
    Zeros: CodeWriter.step_zeros,
    Add: CodeWriter.step_add,
    Embed: CodeWriter.step_embed,
    Broadcast: CodeWriter.step_broadcast,
}
