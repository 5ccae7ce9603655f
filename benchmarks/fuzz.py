#!/usr/bin/env python
"""Fuzz einderiv: only ``EinderivError`` may escape, nothing may hang, and the maths holds.

Usage::

    python benchmarks/fuzz.py --n 20000 --seed 0            # all kinds (5% math): ~1-2 min, 2 cores
    python benchmarks/fuzz.py --mode math --n 2000 --seed 0   # maths only: finite differences etc.
    python benchmarks/fuzz.py --seed 0 --one 1234             # re-run input 1234 alone, verbosely

Inputs (each is a pure function of ``--seed``, ``--mode`` and its number ``k``):

* **soup**: random token sequences -- names, reserved words, brackets, commas,
  operators, ``->``, numbers (tiny, huge, odd spellings), Unicode letters and digits,
  control and invisible characters;
* **mutation**: a valid expression (a seed corpus or a generated one) with tokens
  deleted, swapped, duplicated, replaced or inserted;
* **matrix**: matrix notation for ``parse_matrix`` (token soup with ``'``, ``^T``,
  ``⊙``, ``tr(...)``, ... and mutations of valid matrix expressions);
* **math**: a random well-formed expression (nested products and sums, element-wise
  functions, powers and divisions, ``inv``/``det``/``logdet`` of well-conditioned
  matrices, ``->`` outputs, ``sum[...]`` and ``->`` reductions, deltas, traces,
  diagonals) over indices of distinct sizes.

Targets: ``parse`` (with and without simplification), ``print`` (``str``, LaTeX,
``parse(str(e)) == e``), ``diff``, ``evaluate`` (of the expression and its
derivative; with odd inputs too: ints, bools, complex, NaN, float16/float128,
lists, objects, missing or extra names), ``flatten``, ``check``, ``matrix``
(``parse_matrix``), ``to_matrix`` (its value equals the expression's, and its text
reads back through ``parse_matrix``) and ``cli`` (``einderiv.cli.main`` with random
argv: exit status 0 or 2 only). Math inputs add ``math``: the free indices and the
shape of every result; the derivative against central finite differences (relative
to the derivative's own size); ``jvp`` and ``hvp`` against the Jacobian and Hessian;
second derivatives of scalars symmetric and mixed partials commuting; values kept by
simplification and by printing; ``parse(str(e)) == e`` for the expression and its
derivative.

A failure is any exception other than an ``EinderivError`` (``KeyError``,
``RecursionError``, numpy errors, ...), a wrong answer, or a hang: an input running
longer than ``--timeout`` seconds is interrupted by a timer signal; one stuck in C
code is killed by the parent process (inputs run in worker processes), recorded,
and the worker restarted. The summary lists inputs tried per target and each
distinct failure (by exception type and place) with its shortest input, shrunk
token by token, and a traceback. The exit status is 1 if anything failed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import multiprocessing as mp
import os
import random
import re
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

import einderiv
from einderiv.errors import EinderivError

try:  # internal helper: the rank of each variable, for building arrays
    from einderiv.core.ir import iter_tensors as _iter_tensors
except Exception:  # pragma: no cover
    _iter_tensors = None

# =========================================================================== corpus

FUNCS = ["exp", "log", "sin", "cos", "tan", "tanh", "sigmoid", "softplus", "sqrt",
         "relu", "abs", "step", "sign"]
RESERVED = FUNCS + ["sum", "delta", "inv", "det", "logdet"]

#: Valid expressions the mutator starts from (besides generated ones).
SEEDS = [
    "x[i]*A[i,j]*x[j]",
    "(X[a,b]*theta[b] - Y[a])*(X[a,c]*theta[c] - Y[a])/n",
    "A[i,k]*B[k,j]",
    "X[a,b] theta[b] - Y[a]",
    "tanh(W[i,j]*x[j] + b[i])",
    "sigmoid(w[i]*x[i])",
    "exp(x[i]) / sum[j](exp(x[j]))",
    "log(sum[j](exp(x[j])))",
    "x[i]*w[i] -> [i]",
    "A[i,j] -> [j,i]",
    "sum[i](x[i]**2)",
    "delta[i,j]*x[j] + x[i]",
    "inv(M)[i,j]*b[j]",
    "det(M)",
    "logdet(M)",
    "logdet(A[i,k]*A[j,k] + delta[i,j])",
    "inv(S[a,b] + 1/10*tanh(x[a,b]))[k,l]*y[l]",
    "X[a,a]",
    "inv(M)[d,d]",
    "(a[i,d] + b[i,d] -> [i])",
    "x[i]**(1/2) + c**s",
    "-2.5e-1*x[i] + .5*y[i] - 3/4*z[i]",
    "softplus(x[i]) + relu(y[i]) - abs(z[i])*step(w[i])*sign(v[i])",
    "sqrt(1 + x[i]**2)",
    "sin(x)**2 + cos(x)**2",
    "(x[i] - y[i])**2 -> [i]",
    "A[i,j,k,l]*B[l,k,j,i]",
    "x**-1 + x**-2/3",
    "2 3 x",
    "theta[d]*X[n,d]",
]

#: Math inputs whose derivative has more entries are skipped: a 39M-entry Jacobian
#: (seed 23, input 29734) took longer than the time limit to check, not to compute.
MAX_JACOBIAN = 2_000_000

#: Matrix-notation inputs (``parse_matrix``) and the shapes they are read with.
MATRIX_SHAPES = {"A": (3, 3), "B": (3, 3), "x": (3,), "z": (3,), "s": (), "X": (4, 3),
                 "theta": (3,), "Y": (4,), "n": (), "C": (3, 4)}
MATRIX_SEEDS = [
    "(X*theta - Y)'*(X*theta - Y)/n", "(A + I) x", "diag(1 - tanh(z)^2)",
    "x' A x + tr(A) - logdet(A)", "sigmoid(x' z) * s", "A^-1 x", "A^-T x", "x ⊙ z",
    "x .* z", "Aᵀ x", "A⁻¹ x", "norm2(x)", "sum(x)", "ones' x", "A @ B", "A.^2", "z.^3",
    "exp(A) x", "inv(A + I)", "det(A) s", "x^T x / s", "X theta", "X' X theta", "-x + 2 z",
    "x x'", "C' A C", "tr(A B)", "A^T B^-1 A", "x'(A + A')x/2", "logdet(B B' + I)",
    "s^2 x", "z.^-1", "x²", "x ⊙ (A z)", "X^T (X theta - Y) * 2/n", "ones(x)",
]
_MATRIX_TOKENS = ["'", "^T", "^-1", "^-T", "^", ".*", ".^", "@", "⊙", "⊗", "ᵀ", "⁻¹", "⁻ᵀ",
                  "²", "³", "⁻", "tr(", "diag(", "norm2(", "sum(", "kron(", "I", "ones", "A",
                  "x", "X", "theta", "s", "n", "𝟏", "inv(", "det(", "logdet("]


def matrix_soup(rng: random.Random) -> str:
    pool = _MATRIX_TOKENS * 3 + TOKENS
    n = rng.choice([1, 2, 3, 5, 8, 13])
    return "".join(rng.choice(pool) + (" " if rng.random() < 0.4 else "") for _ in range(n))


#: Strings for ``wrt`` beyond the names found in the text.
ODD_WRT = ["", " ", "x[", "x[]", "x[i,i]", "x[i,]", "x[,]", "exp", "sum", "delta", "x y",
           "x[i][j]", "1x", "θ", "θ[α]", "x[i j]", "x[i]]", "\x00", "x\n", "x[sum]", "_",
           "x" * 300, "x[" + "i" * 300 + "]", "x[a,b,c,d,e,f,g,h,i,j,k]"]

_NAMES = ["x", "y", "A", "B", "M", "X", "Y", "theta", "n", "i", "j", "k", "a", "b", "_",
          "_x", "x1", "x_2", "W1", "xx", "θ", "α", "β", "Σ", "é", "ß", "ℵ", "𝔸", "Ω",
          "ǅ", "x²", "ﬁ", "ⅸ", "x" * 200]
_NUMBERS = ["0", "1", "2", "3", "10", "0.0", "00", "3.5", ".5", "5.", "1e3", "1e-3", "1E+2",
            "2.5e-1", "1e400", "1e-400", "1e5000", "99999999999999999999999", "1_000",
            "1.2.3", "١٢", "٣", "𝟙", "²", "½", "0x10", "1e", "1e+", "4000"]
_OPS = ["+", "-", "*", "/", "**", "->", "(", ")", "[", "]", ",", "(", ")", "[", "]", ",",
        "^", "{", "}", "=", "@", "'", '"', ".", "..", ":", ";", "!", "|", "&", "%", "~",
        "#", "$", "?", "<", ">", "\\", "`", "*-", "--", "-*", "//", "***", "- >", "→", "·",
        "×", "−", "∑", "⊗", "ᵀ", "⁻¹"]
_SPACES = [" ", "  ", "\t", "\n", "\r", "\x00", "\x01", "\x1b", "\x7f", "\u200b", "\ufeff",
           "\u00a0", "\u2028", "\u3000", "\ud800"]


def _token_pool() -> list[str]:
    pool = _NAMES * 3 + RESERVED + _NUMBERS + _OPS * 2 + _SPACES
    pool += ["x[i]", "A[i,j]", "delta[i,j]", "sum[i](", "inv(M)[i,j]", "-> [i]", "-> []",
             "exp(", "log(", ") -> [i,j]", "[i,j]", "[]", "[,]", "[i,i]"]
    return pool


TOKENS = _token_pool()
_LEX = re.compile(r"\s+|->|\*\*|[^\W\d]\w*|\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+|.", re.S)


def lex(text: str) -> list[str]:
    """A crude tokenization for mutation (never fails)."""
    return _LEX.findall(text)


def soup(rng: random.Random) -> str:
    n = rng.choice([1, 2, 3, 5, 8, 13, 21, 34])
    parts = []
    for _ in range(n):
        parts.append(rng.choice(TOKENS))
        if rng.random() < 0.3:
            parts.append(" ")
    return "".join(parts)


def mutate(rng: random.Random, text: str) -> str:
    toks = lex(text)
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        if not toks:
            toks = [rng.choice(TOKENS)]
        k = rng.randrange(len(toks))
        op = rng.choice(["delete", "delete", "swap", "duplicate", "replace", "insert"])
        if op == "delete":
            del toks[k]
        elif op == "swap" and len(toks) > 1:
            j = rng.randrange(len(toks))
            toks[k], toks[j] = toks[j], toks[k]
        elif op == "duplicate":
            toks.insert(k, toks[k])
        elif op == "replace":
            toks[k] = rng.choice(TOKENS)
        else:
            toks.insert(k, rng.choice(TOKENS))
    return "".join(toks)


# =================================================================== math generator


@dataclass
class MathCase:
    """A well-formed expression with everything needed to evaluate it."""

    text: str
    free: tuple[str, ...]                      # the free indices (as a set: order not implied)
    sizes: dict[str, int]                      # every index name -> size
    variables: dict[str, tuple[tuple[int, ...], str]]  # name -> (shape, kind)
    nonsmooth: bool = False                    # uses relu/abs/step/sign

    def arrays(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        out = {}
        for name, (shape, kind) in self.variables.items():
            if kind == "spd":
                a = rng.normal(size=shape)
                out[name] = a @ a.T + shape[0] * np.eye(shape[0])
            elif kind == "pos":
                out[name] = rng.uniform(0.5, 1.5, size=shape)
            else:
                out[name] = rng.uniform(-1.0, 1.0, size=shape)
        return out


class MathGen:
    """Random well-formed index expressions with known free indices and sizes.

    Every summed index gets a name used nowhere else, so the Einstein rule never
    merges indices by accident; a variable's name encodes its shape and kind
    (``x23``: shape (2, 3), values in [-1, 1]; ``p4``: positive; ``S3``: a
    well-conditioned 3 x 3 matrix), so every use of a name has the same shape.
    """

    def __init__(self, rng: random.Random, max_depth: int = 3):
        self.rng = rng
        self.max_depth = max_depth
        self.sizes: dict[str, int] = {}
        self.vars: dict[str, tuple[tuple[int, ...], str]] = {}
        self.n_sq = rng.choice([2, 3, 4])
        self.count = 0
        self.nonsmooth = False

    # ------------------------------------------------------------------ helpers
    def fresh(self, size: int | None = None) -> str:
        self.count += 1
        name = f"d{self.count}"
        self.sizes[name] = size if size is not None else self.rng.choice([2, 3, 4, 5, 6, 7])
        return name

    def var(self, indices: list[str], kind: str) -> str:
        shape = tuple(self.sizes[i] for i in indices)
        prefix = {"pos": self.rng.choice("pq"), "normal": self.rng.choice("xy"), "spd": "S"}[kind]
        name = prefix + "".join(map(str, shape))
        self.vars[name] = (shape, kind)
        return name + (f"[{','.join(indices)}]" if indices else "")

    def case(self) -> MathCase:
        rng = self.rng
        pool = [2, 3, 4, 5, 6, 7]
        rng.shuffle(pool)
        nfree = rng.choice([0, 0, 1, 1, 2, 2, 3])
        free = ["i", "j", "k"][:nfree]
        for name, size in zip(free, pool):
            self.sizes[name] = size if rng.random() > 0.2 else self.n_sq
        text = self.gen(list(free), self.max_depth)
        while not self.vars:  # only numbers: put a variable in
            text = f"{self.leaf([], False)}*{self.paren(text)}"
        if free and rng.random() < 0.3:  # an explicit output order at the root
            order = list(free)
            rng.shuffle(order)
            text = f"{text} -> [{','.join(order)}]"
        return MathCase(text, tuple(free), dict(self.sizes), dict(self.vars), self.nonsmooth)

    # --------------------------------------------------------------- generators
    def gen(self, idx: list[str], depth: int, pos: bool = False) -> str:
        """Text whose free indices are exactly ``idx`` (positive values if ``pos``)."""
        rng = self.rng
        if depth <= 0 or rng.random() < 0.15:
            return self.leaf(idx, pos)
        options = ["product", "product", "sum", "func", "power", "leaf"]
        if idx:
            options += ["hadamard", "delta"]
        options += ["reduce", "diag"]
        if len(idx) <= 2 and all(self.sizes[i] == self.n_sq for i in idx):
            options += ["matrix", "matrix"]
        kind = rng.choice(options)
        return getattr(self, "g_" + kind)(idx, depth - 1, pos)

    def leaf(self, idx: list[str], pos: bool) -> str:
        rng = self.rng
        if not idx and rng.random() < 0.3:
            return rng.choice(["2", "3", "1/2", "0.5", "3/4"]) if pos or rng.random() < 0.5 \
                else rng.choice(["2", "(-3)", "1/3", "0.25"])
        order = list(idx)
        rng.shuffle(order)
        if rng.random() < 0.1:  # a trace: the repeated index reads the diagonal, summed
            d = self.fresh()
            k = rng.randrange(len(order) + 1)
            order[k:k] = [d, d]
        kind = "pos" if pos or rng.random() < 0.3 else "normal"
        return self.var(order, kind)

    def g_leaf(self, idx: list[str], depth: int, pos: bool) -> str:
        return self.leaf(idx, pos)

    def g_product(self, idx: list[str], depth: int, pos: bool) -> str:
        rng = self.rng
        n = rng.choice([2, 2, 3])
        parts: list[list[str]] = [[] for _ in range(n)]
        for i in idx:
            parts[rng.randrange(n)].append(i)
        for _ in range(rng.choice([0, 1, 1, 2])):  # contractions: each in exactly two factors
            d = self.fresh(self.n_sq if rng.random() < 0.4 else None)
            a, b = rng.sample(range(n), 2)
            parts[a].append(d)
            parts[b].append(d)
        texts = []
        for k, p in enumerate(parts):
            divide = k > 0 and rng.random() < 0.2
            t = self.gen(p, depth, pos=pos or divide)
            t = self.paren(t)
            texts.append(("/" if divide else "*", t))
        if rng.random() < 0.2:
            texts.insert(0, ("*", rng.choice(["2", "3", "1/2", "0.5"]) if pos else
                             rng.choice(["2", "(-1)", "1/3", "-0.5"])))
        out = texts[0][1]
        for op, t in texts[1:]:
            if op == "*" and rng.random() < 0.2 and re.match(r"[A-Za-z]", t):
                out += " " + t  # juxtaposition: X[a,b] theta[b] (never 'x 2': refused)
            else:
                out += op + t
        return out

    def paren(self, t: str) -> str:
        """``t`` as a factor: wrapped unless it is an atom (name, call, number)."""
        depth = 0
        for k, ch in enumerate(t):
            if ch in "([":
                depth += 1
            elif ch in ")]":
                depth -= 1
            elif depth == 0 and ch in "+-*/ >" and not (k == 0 and ch == "-"):
                return f"({t})"
        return f"({t})" if t.startswith("-") else t

    def g_sum(self, idx: list[str], depth: int, pos: bool) -> str:
        rng = self.rng
        n = rng.choice([2, 2, 3])
        out = ""
        scalar_at = rng.randrange(1, n) if idx and rng.random() < 0.3 else -1
        for k in range(n):
            sub = [] if k == scalar_at else idx  # an index-free term broadcasts
            t = self.gen(sub, depth, pos)
            sign = "+" if pos or rng.random() < 0.7 else "-"
            if k == 0:
                out = t if sign == "+" else "-" + self.paren(t)
            else:
                out += f" {sign} " + (self.paren(t) if sign == "-" else t)
        return out

    def g_func(self, idx: list[str], depth: int, pos: bool) -> str:
        rng = self.rng
        if pos:
            f = rng.choice(["exp", "sigmoid", "softplus", "sqrt", "posconst"])
        else:
            f = rng.choice(FUNCS + ["exp", "tanh", "sin", "log"])
        if f in ("relu", "abs", "step", "sign"):
            self.nonsmooth = True
        if f == "posconst":
            return f"(2 + tanh({self.gen(idx, depth)}))"
        if f in ("log", "sqrt"):
            return f"{f}({self.gen(idx, depth, pos=True)})"
        if f == "tan":
            return f"tan(tanh({self.gen(idx, depth)}))"
        if f in ("exp", "softplus", "sinh"):
            return f"{f}(tanh({self.gen(idx, depth)}))" if rng.random() < 0.5 else \
                f"{f}({self.gen(idx, depth)})"
        return f"{f}({self.gen(idx, depth)})"

    def g_power(self, idx: list[str], depth: int, pos: bool) -> str:
        rng = self.rng
        base_pos = pos or rng.random() < 0.6
        base = self.paren(self.gen(idx, depth, pos=base_pos))
        if base_pos:
            exponent = rng.choice(["2", "3", "-1", "-2", "(1/2)", "(3/2)", "(-1/2)", "0.5",
                                   "c", "(1/2)", "(SCALAR)"])
        else:
            exponent = rng.choice(["2", "3", "2", "1", "0"])
        if exponent == "c":
            exponent = self.var([], "pos")
        elif exponent == "(SCALAR)":
            exponent = f"({self.gen([], max(depth - 1, 0))})"
        if pos and not base_pos:
            return f"{base}**2"
        return f"{base}**{exponent}"

    def g_hadamard(self, idx: list[str], depth: int, pos: bool) -> str:
        order = list(idx)
        self.rng.shuffle(order)
        a = self.paren(self.gen(idx, depth, pos))
        b = self.paren(self.gen(idx, depth, pos))
        return f"({a}*{b} -> [{','.join(order)}])"

    def g_delta(self, idx: list[str], depth: int, pos: bool) -> str:
        rng = self.rng
        i = rng.choice(idx)
        d = self.fresh(self.sizes[i])
        rest = [d if x == i else x for x in idx]
        delta = f"delta[{i},{d}]" if rng.random() < 0.5 else f"delta[{d},{i}]"
        return f"{delta}*{self.paren(self.gen(rest, depth, pos))}"

    def g_diag(self, idx: list[str], depth: int, pos: bool) -> str:
        """``delta[d,e]*f(...d...e...)``: two summed indices tied by a delta (the
        simplifier contracts it, possibly inside an element-wise scope)."""
        size = self.rng.choice([2, 3, 4])
        d, e = self.fresh(size), self.fresh(size)
        inner = self.gen(idx + [d, e], depth, pos)
        return f"delta[{d},{e}]*{self.paren(inner)}"

    def g_reduce(self, idx: list[str], depth: int, pos: bool) -> str:
        rng = self.rng
        d = self.fresh()
        inner = self.gen(idx + [d], depth, pos)
        if rng.random() < 0.5:
            return f"sum[{d}]({inner})"
        order = list(idx)
        rng.shuffle(order)
        return f"({inner} -> [{','.join(order)}])"

    def matrix_arg(self, depth: int) -> str:
        """A well-conditioned square matrix over two fresh indices (closed scope)."""
        rng = self.rng
        a, b = self.fresh(self.n_sq), self.fresh(self.n_sq)
        spd = self.var([a, b], "spd")
        name = spd.split("[")[0]
        choice = rng.choice(["bare", "indexed", "perturbed", "perturbed", "transposed"])
        if choice == "bare":
            return name
        if choice == "indexed":
            return spd
        # An SPD matrix with diagonal >= n plus entries bounded by 1/10: far from singular.
        pert = f"{name}[{a},{b}] + 1/10*tanh({self.gen([a, b], depth)})"
        if choice == "transposed":
            return f"{pert} -> [{b},{a}]"
        return pert

    def g_matrix(self, idx: list[str], depth: int, pos: bool) -> str:
        rng = self.rng
        m = self.matrix_arg(max(depth - 1, 0))
        if pos or (not idx and rng.random() < 0.5):
            if idx:
                return f"det({m})*{self.paren(self.gen(idx, depth, pos=True))}"
            return f"det({m})" if pos or rng.random() < 0.5 else f"logdet({m})"
        if len(idx) == 2:
            order = list(idx)
            rng.shuffle(order)
            return f"inv({m})[{order[0]},{order[1]}]"
        if len(idx) == 1:
            d = self.fresh(self.n_sq)
            pair = [idx[0], d]
            rng.shuffle(pair)
            return f"inv({m})[{pair[0]},{pair[1]}]*{self.paren(self.gen([d], depth))}"
        d = self.fresh(self.n_sq)
        return f"inv({m})[{d},{d}]"  # the trace of the inverse


def math_case(rng: random.Random, max_depth: int = 3) -> MathCase:
    return MathGen(rng, max_depth).case()


# ========================================================================== inputs


@dataclass
class Input:
    k: int
    kind: str                      # 'soup' | 'mutation' | 'math'
    text: str
    wrt: Any
    shapes: Any = None
    array_seed: int = 0
    cli: list[str] = field(default_factory=list)
    math: MathCase | None = None

    def describe(self) -> str:
        parts = [f"text={self.text!r}", f"wrt={self.wrt!r}"]
        if self.shapes is not None:
            parts.append(f"shapes={self.shapes!r}")
        return ", ".join(parts)


def _names_in(text: str) -> list[str]:
    return [t for t in re.findall(r"[^\W\d]\w*", text) if t not in RESERVED]


def _odd_shapes(rng: random.Random, text: str) -> Any:
    names = _names_in(text) or ["x"]
    choice = rng.random()
    if choice < 0.1:
        return rng.choice([[], "x", 3, None, {"x": None}, {"x": (1.5,)}, {"x": (-1,)},
                           {"x": ("n m",)}, {1: (2,)}, {"x": (True,)}, {"x": "n"},
                           {"x": object()}, {"x": ((2,),)}, {"x": (2 ** 70,)}])
    shapes = {}
    for name in rng.sample(names, min(len(names), rng.choice([1, 2, 3]))):
        rank = rng.choice([0, 1, 1, 2, 2, 3])
        shapes[name] = tuple(rng.choice([0, 1, 2, 3, 4, "n", "d"]) for _ in range(rank))
    return shapes


def _cli_args(rng: random.Random, text: str, wrt: Any) -> list[str]:
    args: list[str] = []
    if rng.random() < 0.5:
        args.append("--debug")
    r = rng.random()
    if r < 0.03:
        return args + rng.choice([[], ["demo"], ["demo", "--order", "2"], ["demo", "--latex"],
                                  ["diff"], ["nonsense"], ["diff", "--order", "9", "x"]])
    if r < 0.08:  # argv soup: options in any order, missing values, odd strings
        pool = ["diff", "demo", "--wrt", "--shape", "--order", "--latex", "--debug", "-h",
                "--help", "2", "0", "x", "x[i]", "X=4,3", "n=", "=", "--", "-", text, str(wrt),
                "\x00", "θ", "--wrt=x", "--shape=x=3", "--order=2", "--bogus"]
        return args + [rng.choice(pool) for _ in range(rng.randrange(1, 7))]
    args += ["diff", text]
    if rng.random() < 0.95:
        args += ["--wrt", wrt if isinstance(wrt, str) else "x"]
    for _ in range(rng.choice([0, 0, 1, 2])):
        name = rng.choice(_names_in(text) or ["x"])
        sizes = ",".join(rng.choice(["2", "3", "0", "n", "d", "-1", "1.5", "", " ", "a b"])
                         for _ in range(rng.choice([0, 1, 2])))
        args += ["--shape", rng.choice([f"{name}={sizes}", f"{name}", f"={sizes}", "=",
                                        f"{name}=={sizes}"])]
    if rng.random() < 0.2:
        args += ["--order", "2"]
    if rng.random() < 0.2:
        args.append("--latex")
    key = f"{text}|{wrt}|{args}".encode("utf-8", "surrogatepass")  # texts with surrogates
    return args + _later_flags(random.Random(key), text)


def _later_flags(rng: random.Random, text: str) -> list[str]:
    """diff's flags added after the generator above was fixed (--emit and what goes
    with it, --layout, --steps, --matrix, --assume), drawn from their own generator so
    that the inputs of a seed stay those the fuzzer has always made."""
    out: list[str] = []
    if rng.random() < 0.15:
        out += ["--emit", rng.choice(["python", "python", "latex", "pdf"])]
    if rng.random() < 0.1:
        out += ["--backend", rng.choice(["numpy", "opt_einsum", "jax", "torch", "tf"])]
    if rng.random() < 0.05:
        out.append("--no-multiply-out")
    if rng.random() < 0.05:
        out += ["--name", rng.choice(["g", "grad_2", "2g", "class", "θ"])]
    if rng.random() < 0.08:
        out += ["--layout", rng.choice(["numerator", "denominator", "mixed"])]
    if rng.random() < 0.05:
        out.append("--steps")
    if rng.random() < 0.04:
        out.append("--matrix")
    if rng.random() < 0.05:
        name = rng.choice(_names_in(text) or ["S"])
        out += ["--assume", f"{name}={rng.choice(['symmetric', 'diagonal', 'spd'])}"]
    return out


def make_input(seed: int, k: int, mode: str = "mixed", math_fraction: float = 0.05) -> Input:
    """Input number ``k`` of the run with ``seed`` (a pure function of both)."""
    rng = random.Random(seed * 1_000_003 + k)
    if mode == "mixed":
        r = rng.random()
        kind = "math" if r < math_fraction else "soup" if r < 0.45 else \
            "matrix" if r < 0.6 else "mutation"
    else:
        kind = mode
    mc = None
    if kind == "soup":
        text = soup(rng)
    elif kind == "matrix":
        text = matrix_soup(rng) if rng.random() < 0.4 else mutate(rng, rng.choice(MATRIX_SEEDS))
        if rng.random() < 0.2:
            text = rng.choice(MATRIX_SEEDS)
    elif kind == "mutation":
        base = rng.choice(SEEDS) if rng.random() < 0.5 else math_case(rng, 2).text
        text = mutate(rng, base)
    else:
        mc = math_case(rng, rng.choice([1, 2, 3, 3]))
        text = mc.text
    names = _names_in(text)
    if mc is not None:
        wrt = rng.choice(sorted(mc.variables))
    elif names and rng.random() < 0.85:
        wrt = rng.choice(names)
        if rng.random() < 0.2:
            wrt += rng.choice(["[q]", "[q,r]", "[]", "[q,q]", "[i]", "[z1,z2,z3]"])
    else:
        wrt = rng.choice(ODD_WRT + [None, 3, b"x", ["x"]])
    if kind == "matrix":
        shapes = dict(MATRIX_SHAPES) if rng.random() < 0.9 else _odd_shapes(rng, text)
    else:
        shapes = _odd_shapes(rng, text) if kind != "math" and rng.random() < 0.15 else None
    cli = _cli_args(rng, text, wrt) if kind != "math" or rng.random() < 0.2 else []
    return Input(k, kind, text, wrt, shapes, rng.randrange(2 ** 31), cli, mc)


# ========================================================================== running


class FuzzTimeout(BaseException):
    """Raised by the timer signal: a BaseException, so no ``except Exception`` eats it."""


class Wrong(AssertionError):
    """A wrong answer (not a crash): a value, shape or round trip that does not match."""


def _on_alarm(signum, frame):
    raise FuzzTimeout("input ran past the time limit")


@contextlib.contextmanager
def time_limit(seconds: float):
    if seconds <= 0 or not hasattr(signal, "setitimer"):
        yield
        return
    old = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@dataclass
class Failure:
    target: str
    signature: str
    summary: str
    trace: str
    inp: Input

    def report(self) -> str:
        extra = ""
        if self.inp.cli and self.target == "cli":
            extra = f"\n    argv = {self.inp.cli!r}"
        return (f"[{self.target}] {self.summary}\n    input #{self.inp.k} ({self.inp.kind}): "
                f"{self.inp.describe()}{extra}\n" + _indent(self.trace.rstrip(), "    | "))


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def _signature(target: str, exc: BaseException) -> str:
    """Exception type plus the innermost einderiv frame (or the last frame)."""
    if isinstance(exc, Wrong):
        return f"{target}: wrong: {str(exc).split(':')[0]}"
    if isinstance(exc, FuzzTimeout):
        return f"{target}: hang"
    tb = traceback.extract_tb(exc.__traceback__)
    place = ""
    for fr in reversed(tb):
        if f"{os.sep}einderiv{os.sep}" in fr.filename:
            place = f"{os.path.basename(fr.filename)}:{fr.name}"
            break
    if not place and tb:
        place = f"{os.path.basename(tb[-1].filename)}:{tb[-1].name}"
    return f"{target}: {type(exc).__name__} at {place}"


class Runner:
    """Runs every target on an input; counts tries; collects failures."""

    def __init__(self, timeout: float = 5.0, targets: set[str] | None = None):
        self.timeout = timeout
        self.targets = targets
        self.tried: dict[str, int] = {}
        self.rejected: dict[str, int] = {}
        self.failures: list[Failure] = []
        self.skipped = 0
        try:
            from einderiv import matrix as _m
            self.matrix = _m
        except Exception:
            self.matrix = None

    # ------------------------------------------------------------------ guards
    def attempt(self, target: str, inp: Input, fn: Callable[[], Any]) -> tuple[bool, Any]:
        """Run ``fn``: (True, value) on success, (False, None) on an EinderivError or a
        failure (recorded)."""
        if self.targets is not None and target not in self.targets:
            return False, None
        self.tried[target] = self.tried.get(target, 0) + 1
        try:
            with time_limit(self.timeout):
                return True, fn()
        except EinderivError:
            self.rejected[target] = self.rejected.get(target, 0) + 1
            return False, None
        except (Exception, FuzzTimeout, RecursionError, MemoryError) as exc:
            summary = f"{type(exc).__name__}: {_first_line(exc)}"
            trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-8:])
            self.failures.append(Failure(target, _signature(target, exc), summary, trace, inp))
            return False, None

    # ------------------------------------------------------------------- input
    def run(self, inp: Input) -> None:
        if inp.kind == "matrix":
            self.run_matrix_text(inp)
            return
        if inp.kind == "math":
            self.run_math(inp)
            if inp.cli:
                self.run_cli(inp)
            return
        text = inp.text
        ok, e = self.attempt("parse", inp, lambda: einderiv.parse(text, inp.shapes))
        ok_raw, raw = self.attempt("parse", inp, lambda: einderiv.parse(text, simplify=False))
        if ok:
            self.attempt("print", inp, lambda: _check_print(e))
        if ok_raw:
            self.attempt("print", inp, lambda: _check_print(raw, equal=False))
        d = None
        if inp.wrt is not None:
            _, d = self.attempt("diff", inp, lambda: _check_diff(
                e if ok and inp.array_seed % 2 else text, inp.wrt, inp.shapes))
        if ok:
            arrays = _arrays_for(e, d, inp)
            ok_v, v = self.attempt("evaluate", inp, lambda: _eval_all(e, raw if ok_raw else None,
                                                                       d, arrays))
            self.attempt("flatten", inp, lambda: _check_flatten(v if ok_v else None, inp))
            if ok_v and isinstance(inp.wrt, str) and inp.array_seed % 8 == 0:
                self.attempt("check", inp, lambda: _check_check(e, inp.wrt, arrays))
        if self.matrix is not None:
            self.run_matrix(inp, e if ok else None)
        if inp.cli:
            self.run_cli(inp)

    def run_cli(self, inp: Input) -> None:
        self.attempt("cli", inp, lambda: _check_cli(inp.cli))

    def run_matrix(self, inp: Input, e: Any) -> None:
        """``to_matrix`` of a parsed index expression (values must agree), and
        ``parse_matrix`` of the same text (only EinderivErrors may escape)."""
        pm = getattr(einderiv, "parse_matrix", None)
        if pm is not None:
            shapes = inp.shapes if isinstance(inp.shapes, dict) else None
            self.attempt("matrix", inp, lambda: pm(inp.text, shapes))
        if e is not None:
            arrays = _arrays_for(e, None, inp, odd=False)
            self.attempt("to_matrix", inp, lambda: _check_to_matrix(e, arrays))

    def run_matrix_text(self, inp: Input) -> None:
        pm = getattr(einderiv, "parse_matrix", None)
        if pm is None:
            return
        ok, me = self.attempt("matrix", inp, lambda: pm(inp.text, inp.shapes))
        if not ok:
            return
        self.attempt("print", inp, lambda: _check_print(me, equal=False))
        arrays = _arrays_for(me, None, inp, odd=False)
        self.attempt("to_matrix", inp, lambda: _check_to_matrix(me, arrays, inp.shapes))
        if isinstance(inp.wrt, str):
            ok_d, d = self.attempt("diff", inp, lambda: _check_diff(me, inp.wrt, inp.shapes))
            if ok_d:
                rank = len(dict(inp.shapes).get(inp.wrt.split("[")[0], ())) \
                    if isinstance(inp.shapes, dict) else None
                self.attempt("to_matrix", inp, lambda: _check_to_matrix(
                    d, _arrays_for(d, None, inp, odd=False), inp.shapes, rank))
        if inp.cli:
            self.run_cli(inp)

    def run_math(self, inp: Input) -> None:
        mc = inp.math
        assert mc is not None
        # check_math turns an EinderivError on its well-formed input into a failure.
        ok, result = self.attempt("math", inp, lambda: check_math(mc, inp.wrt, inp.array_seed))
        if ok and result == "skipped":
            self.skipped += 1


def _first_line(exc: BaseException) -> str:
    s = str(exc).strip()
    return (s.splitlines() or [""])[0][:200]


# ------------------------------------------------------------------- target bodies


def _check_print(e: Any, equal: bool = True) -> None:
    text = str(e)
    e.to_latex()
    repr(e)
    hash(e)
    _ = e.free, e.variables
    try:
        again = einderiv.parse(text)
    except EinderivError as exc:
        raise Wrong(f"printed text is rejected by parse: {text!r}: {_first_line(exc)}") from None
    if equal and again != e:
        raise Wrong(f"parse(str(e)) != e: {text!r} reparses as {str(again)!r}")


def _check_diff(expr: Any, wrt: Any, shapes: Any) -> Any:
    d = einderiv.diff(expr, wrt, shapes)
    if isinstance(wrt, (list, tuple)):  # a tuple of derivatives, one per name, in order
        if not isinstance(d, tuple) or len(d) != len(wrt):
            raise Wrong(f"diff by {wrt!r} gave {type(d).__name__}, not a tuple of {len(wrt)}")
        for one, w in zip(d, wrt):
            _check_print(one)
            if one != einderiv.diff(expr, w, shapes):
                raise Wrong(f"diff by {wrt!r}: the derivative by {w!r} differs from diff by it")
        return None  # the checks below take one derivative
    _check_print(d)
    return d


def _rank_map(e: Any) -> dict[str, tuple[str, ...]]:
    if _iter_tensors is None:  # pragma: no cover
        return {}
    out: dict[str, tuple[str, ...]] = {}
    for t in _iter_tensors(e):
        out.setdefault(t.name, t.indices)
    return out


def _arrays_for(e: Any, d: Any, inp: Input, odd: bool = True) -> dict[str, Any]:
    rng = np.random.default_rng(inp.array_seed)
    uniform = rng.random() < 0.5 or not odd
    if isinstance(inp.shapes, dict) and all(
            isinstance(v, tuple) and all(type(n) is int and 0 <= n <= 8 for n in v)
            for v in inp.shapes.values()):
        given = {k: rng.normal(size=v) for k, v in inp.shapes.items() if k in e.variables}
        if set(given) == set(e.variables):
            return given
    size_of: dict[str, int] = {}
    arrays: dict[str, Any] = {}
    used = dict(_rank_map(e))
    if d is not None:
        for k, v in _rank_map(d).items():
            used.setdefault(k, v)
    for name, indices in used.items():
        shape = []
        for i in indices:
            if uniform or i.startswith("_"):
                size_of.setdefault(i, 3)
            else:
                size_of.setdefault(i, int(rng.integers(0, 4)) if rng.random() < 0.1
                                   else int(rng.integers(1, 5)))
            shape.append(size_of[i])
        arrays[name] = rng.normal(size=shape)
    r = rng.random() if odd else 1.0
    if arrays and r < 0.15:  # odd inputs: must be accepted or rejected with EvaluationError
        name = sorted(arrays)[0]
        a = arrays[name]
        arrays[name] = [
            lambda: a.astype(int), lambda: a.astype(bool), lambda: a + 1j * a,
            lambda: np.full_like(a, np.nan), lambda: np.full_like(a, np.inf),
            lambda: a.astype(np.float32), lambda: a.astype(np.float16), lambda: a.tolist(),
            lambda: a.astype(object), lambda: "abc", lambda: None, lambda: np.zeros((7,) * 3),
            lambda: a.astype(np.longdouble), lambda: np.asarray(a, dtype=np.complex64),
            lambda: a.astype(np.uint8), lambda: np.datetime64("2020"), lambda: {},
            lambda: np.ma.masked_array(a), lambda: a.T, lambda: 1e308 * np.ones_like(a),
        ][int(rng.integers(0, 20))]()
    elif r < 0.2 and arrays:
        arrays.pop(sorted(arrays)[0])
    if odd and rng.random() < 0.1:
        arrays["unused_name"] = np.zeros(2)
    return arrays


def _check_to_matrix(e: Any, arrays: dict[str, Any], shapes: Any = None,
                     wrt_rank: int | None = None) -> None:
    """``e.to_matrix()`` (if it exists) evaluates to ``e``'s values, and its text
    reads back through ``parse_matrix`` to the same values."""
    try:
        m = e.to_matrix(wrt_rank=wrt_rank) if wrt_rank is not None else e.to_matrix()
    except einderiv.NotMatrixExpressible:
        return
    text = str(m)
    m.to_unicode()
    m.to_latex()
    with np.errstate(all="ignore"):
        try:
            v = np.asarray(e.evaluate(**arrays))
        except EinderivError:
            return  # arrays that do not fit: nothing to compare
        mv = np.asarray(m.evaluate(**arrays))
        if mv.shape != v.shape:
            raise Wrong(f"to_matrix value shape {mv.shape} != evaluate shape {v.shape}: "
                        f"{str(e)!r} -> {text!r}")
        _same_values(v, tuple(range(v.ndim)), mv, tuple(range(v.ndim)),
                     "to_matrix changed the value", f"{e} -> {text}", 1e-7)
        if isinstance(shapes, dict) and text != "0":
            try:
                back = einderiv.parse_matrix(text, shapes)
            except EinderivError as exc:
                if "cannot tell the size of" in str(exc):
                    return  # I or ones with no length in the text (docs/matrix.md)
                raise Wrong(f"printed matrix text is rejected by parse_matrix: {text!r}: "
                            f"{_first_line(exc)}") from None
            bv = np.asarray(back.evaluate(**arrays))
            if bv.size == v.size and bv.shape != v.shape:
                bv = bv.reshape(v.shape)
            _same_values(v, tuple(range(v.ndim)), bv, tuple(range(bv.ndim)),
                         "parse_matrix(str(to_matrix)) changed the value", text, 1e-7)


def _input_rtol(arrays: dict[str, Any]) -> float:
    """Tolerance for comparing two evaluation routes: the least precise input decides
    (a float16 input rounds differently per route even when the result is float64)."""
    rtol = 1e-7
    for a in arrays.values():
        dtype = getattr(a, "dtype", None)
        if dtype is not None and dtype.kind in "fc":
            rtol = max(rtol, 1000 * float(np.finfo(dtype).eps))
    return rtol


def _eval_all(e: Any, raw: Any, d: Any, arrays: dict[str, Any]) -> Any:
    with np.errstate(all="ignore"):
        v = np.asarray(e.evaluate(**arrays))
        if v.ndim != len(e.free):
            raise Wrong(f"evaluate gives {v.ndim} axes for free indices {e.free}")
        if raw is not None:
            try:
                w = np.asarray(raw.evaluate(**arrays))
            except EinderivError:
                w = None
            if w is not None:
                _same_values(v, e.free, w, raw.free, "simplification changed the value",
                             f"{raw} -> {e}", rtol=_input_rtol(arrays))
        again = einderiv.parse(str(e))
        _same_values(v, e.free, np.asarray(again.evaluate(**arrays)), again.free,
                     "printing changed the value", str(e), rtol=_input_rtol(arrays))
        if d is not None:
            try:
                dv = np.asarray(d.evaluate(**arrays))
            except EinderivError:
                dv = None
            if dv is not None and dv.ndim != len(d.free):
                raise Wrong(f"derivative evaluates to {dv.ndim} axes for {d.free}")
    return v


def _aligned(value: np.ndarray, have: tuple[str, ...], want: tuple[str, ...]) -> np.ndarray:
    if set(have) != set(want) or len(have) != len(want):
        raise Wrong(f"free indices differ: {have} vs {want}")
    return np.transpose(value, [have.index(i) for i in want])


def _positional(free: tuple[str, ...], m: int) -> tuple[str, ...]:
    """``free`` with its first ``m`` labels (new derivative axes) replaced by positions."""
    return tuple(f"#{k}" for k in range(m)) + tuple(free[m:])


def _same_values(v: np.ndarray, free: tuple, w: np.ndarray, wfree: tuple, what: str,
                 where: str, rtol: float = 1e-7) -> None:
    w = _aligned(np.asarray(w), tuple(wfree), tuple(free))
    if v.shape != w.shape:
        raise Wrong(f"{what}: shape {v.shape} vs {w.shape} ({where})")
    if v.size == 0:
        return
    finite = np.isfinite(v) & np.isfinite(w)
    if not np.all(finite == (np.isfinite(v) | np.isfinite(w))):
        return  # overflow on one route and not the other: not comparable
    # compared in the wider of the two types: a long double past 1e308 is finite
    # there, and inf in float64 (fuzz --seed 61)
    wide = np.result_type(v.dtype, w.dtype, np.float64)
    vv, ww = v[finite].astype(wide), w[finite].astype(wide)
    if vv.size == 0:
        return
    for arr in (v, w):  # low-precision inputs (float16, float32) round differently per route
        if arr.dtype.kind in "fc":
            rtol = max(rtol, 1000 * float(np.finfo(arr.dtype).eps))
    scale = np.maximum(np.max(np.abs(vv)), np.max(np.abs(ww))).real
    scale = np.maximum(scale, np.ones((), scale.dtype))
    if not np.all(np.abs(vv - ww) <= rtol * scale):
        err = np.max(np.abs(vv - ww))
        raise Wrong(f"{what}: max difference {err:.3g} at scale {scale:.3g} ({where})")


def _check_check(e: Any, wrt: str, arrays: dict[str, Any]) -> None:
    """``einderiv.check`` runs (its verdict is not judged here: the values may sit
    on a kink or overflow)."""
    with np.errstate(all="ignore"):
        r = einderiv.check(e, wrt, arrays)
    str(r)
    r.ok()


def _check_flatten(v: Any, inp: Input) -> None:
    rng = random.Random(inp.array_seed + 1)
    arr = v if v is not None else np.zeros(rng.choice([(), (2,), (2, 3), (0, 2)]))
    n = rng.choice([0, 1, 2, -1, 5, True, 1.0, np.int64(1), "1", None])
    order = rng.choice(["F", "C", "A", "f", "", None, 1])
    einderiv.flatten(arr, n, order)


def _check_cli(argv: list[str]) -> int:
    from einderiv.cli import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(list(argv))
        except SystemExit as exc:  # argparse: usage errors (2) and --help (0)
            rc = exc.code if isinstance(exc.code, int) else 2
    if rc not in (0, 2):
        raise Wrong(f"exit status {rc}: {err.getvalue().strip()[:300]}")
    if rc == 2 and "Traceback" not in err.getvalue() and len(err.getvalue().strip().splitlines()) > 4:
        raise Wrong(f"error message is more than a short message: {err.getvalue()[:300]!r}")
    return rc


# ============================================================================ maths


class Skip(Exception):
    """A math case whose values overflowed: not a failure, not informative."""


def _finite_and_moderate(*arrays: np.ndarray) -> bool:
    return all(np.all(np.isfinite(a)) and (a.size == 0 or np.max(np.abs(a)) < 1e6)
               for a in arrays)


def check_math(mc: MathCase, wrt: str, array_seed: int) -> str:
    """Every mathematical check on one generated case; raises ``Wrong`` on a mismatch.
    An EinderivError on a well-formed input is a failure too (reported with the stage)."""
    stage = ["start"]
    try:
        return _check_math(mc, wrt, array_seed, stage)
    except EinderivError as exc:
        if stage[0] == "parse" and "'->' sums over" in str(exc):
            # the generator wrote '->' over a sum whose terms do not all carry an index
            # it drops: two readings, refused by design (issue 21 C); not informative
            return "skipped"
        raise Wrong(f"well-formed input rejected: {type(exc).__name__} in stage "
                    f"'{stage[0]}': {_first_line(exc)} (text {mc.text!r}, wrt {wrt!r})") from exc


def _shape(mc: MathCase, free: tuple[str, ...]) -> tuple[int, ...]:
    return tuple(mc.sizes[i] for i in free)


def _evaluate_printed(e: Any, arrays: dict[str, np.ndarray]) -> np.ndarray | None:
    """Evaluate a re-parsed printed expression; None when the text alone cannot tell
    an index size (``delta[a,i]`` with no tensor carrying ``a`` or ``i``): printed
    text has no shapes, so that is not a bug."""
    try:
        return np.asarray(e.evaluate(**arrays))
    except EinderivError as exc:
        if "cannot tell the size" in str(exc):
            return None
        raise


def _check_math(mc: MathCase, wrt: str, array_seed: int, stage: list[str]) -> str:
    rng = np.random.default_rng(array_seed)
    arrays = mc.arrays(rng)
    with np.errstate(all="ignore"):
        stage[0] = "parse"
        e = einderiv.parse(mc.text)
        if set(e.free) != set(mc.free):
            raise Wrong(f"free indices: got {e.free}, expected {sorted(mc.free)} ({mc.text})")
        stage[0] = "evaluate"
        v = np.asarray(e.evaluate(**arrays))
        if v.shape != _shape(mc, e.free):
            raise Wrong(f"value shape: {v.shape} for free {e.free}, expected "
                        f"{_shape(mc, e.free)} ({mc.text})")
        if not _finite_and_moderate(v):
            return "skipped"
        stage[0] = "parse unsimplified"
        raw = einderiv.parse(mc.text, simplify=False)
        stage[0] = "evaluate unsimplified"
        _same_values(v, e.free, raw.evaluate(**arrays), raw.free,
                     "simplification changed the value", mc.text, 1e-9)
        stage[0] = "reparse str(e)"
        printed = str(e)
        again = einderiv.parse(printed)
        if again.free != e.free:
            raise Wrong(f"printing changed the axis order: {e.free} -> {again.free} ({printed})")
        if again != e:
            raise Wrong(f"parse(str(e)) != e: {printed!r} reparses as {str(again)!r}")
        stage[0] = "evaluate parse(str(e))"
        w = _evaluate_printed(again, arrays)
        if w is not None:
            _same_values(v, e.free, w, again.free, "printing changed the value", printed, 1e-9)
        stage[0] = "reparse str(unsimplified)"
        raw_printed = str(raw)
        raw_again = einderiv.parse(raw_printed, simplify=False)
        stage[0] = "evaluate parse(str(unsimplified))"
        w = _evaluate_printed(raw_again, arrays)
        if w is not None:
            _same_values(v, e.free, w, raw_again.free,
                         "printing the unsimplified expression changed the value",
                         raw_printed, 1e-9)

        # First derivative: shape, layout, finite differences, unsimplified route.
        wshape = mc.variables[wrt][0]
        by = wrt if wrt in e.variables else _wrt_spec(wrt, len(wshape), "w")
        stage[0] = "diff"
        d = einderiv.diff(e, by)
        if len(d.free) != len(wshape) + len(e.free) or d.free[len(wshape):] != e.free:
            raise Wrong(f"derivative free indices {d.free}: expected {len(wshape)} new "
                        f"then {e.free} ({mc.text} by {wrt})")
        if math.prod(wshape) * v.size > MAX_JACOBIAN:
            return "skipped"  # checking it (finite differences, four routes) takes minutes
        stage[0] = "evaluate diff"
        dv = np.asarray(d.evaluate(**arrays))
        if dv.shape != wshape + v.shape:
            raise Wrong(f"derivative shape {dv.shape}, expected {wshape + v.shape} "
                        f"({mc.text} by {wrt})")
        if not _finite_and_moderate(dv):
            return "skipped"
        stage[0] = "finite differences"
        _fd_check(e, wrt, arrays, dv, v, mc, rng)
        if hasattr(einderiv, "jvp"):
            stage[0] = "jvp"
            vdir = rng.uniform(-1, 1, size=wshape)
            j = einderiv.jvp(e, by, "vdir")
            if set(j.free) != set(e.free):
                raise Wrong(f"jvp free indices {j.free}, expected {e.free} ({mc.text} by {wrt})")
            jv = np.asarray(j.evaluate(vdir=vdir, **arrays))
            expected = np.tensordot(vdir, dv, axes=(list(range(len(wshape))),) * 2)
            _same_values(expected, e.free, jv, j.free, "jvp differs from the Jacobian times v",
                         f"{mc.text} by {wrt}", 1e-7)
        stage[0] = "diff unsimplified"
        d_raw = einderiv.diff(raw, by)
        m = len(wshape)  # the new axes compare by position, the others by name
        stage[0] = "evaluate diff unsimplified"
        _same_values(dv, _positional(d.free, m), d_raw.evaluate(**arrays),
                     _positional(d_raw.free, m), "diff of the unsimplified expression differs",
                     f"{mc.text} by {wrt}", 1e-7)
        stage[0] = "reparse str(diff)"
        d_printed = str(d)
        d_again = einderiv.parse(d_printed)
        if d_again.free != d.free:
            raise Wrong(f"printing the derivative changed the axis order: {d.free} -> "
                        f"{d_again.free} ({d_printed})")
        if d_again != d:
            raise Wrong(f"parse(str(d)) != d: {d_printed!r} reparses as {str(d_again)!r}")
        stage[0] = "evaluate parse(str(diff))"
        w = _evaluate_printed(d_again, arrays)
        if w is not None:
            _same_values(dv, d.free, w, d_again.free,
                         "printing the derivative changed the value", d_printed, 1e-9)

        # Second derivatives of a scalar: symmetric; mixed partials commute.
        if not e.free and len(wshape) <= 2 and rng.random() < 0.5:
            stage[0] = "second derivative"
            h = einderiv.diff(d, _wrt_spec(wrt, len(wshape), "h"))
            hv = np.asarray(h.evaluate(**arrays))
            if hv.shape != wshape + wshape:
                raise Wrong(f"Hessian shape {hv.shape}, expected {wshape + wshape}")
            n = int(np.prod(wshape))
            hm = hv.reshape(n, n)
            if _finite_and_moderate(hm):
                scale = max(1.0, float(np.max(np.abs(hm))))
                if not np.allclose(hm, hm.T, rtol=0, atol=1e-8 * scale):
                    raise Wrong(f"Hessian not symmetric: max asymmetry "
                                f"{float(np.max(np.abs(hm - hm.T))):.3g} ({mc.text} by {wrt})")
                stage[0] = "finite differences of the gradient"
                _fd_check(d, wrt, arrays, hv, dv, mc, rng, what="Hessian")
                if hasattr(einderiv, "hvp"):
                    stage[0] = "hvp"
                    vdir = rng.uniform(-1, 1, size=wshape)
                    hp = einderiv.hvp(e, by, "vdir")
                    hpv = np.asarray(hp.evaluate(vdir=vdir, **arrays))
                    expected = (hm @ vdir.reshape(n)).reshape(wshape)
                    _same_values(expected, tuple(range(len(wshape))), hpv,
                                 tuple(range(len(wshape))), "hvp differs from the Hessian times v",
                                 f"{mc.text} by {wrt}", 1e-7)
            others = [n for n in sorted(mc.variables) if n != wrt and n in e.variables]
            if others:
                stage[0] = "mixed partials"
                u = others[int(rng.integers(0, len(others)))]
                ushape = mc.variables[u][0]
                a = np.asarray(einderiv.diff(einderiv.diff(e, by), _wrt_spec(u, len(ushape), "u"))
                               .evaluate(**arrays))
                b = np.asarray(einderiv.diff(einderiv.diff(e, u), _wrt_spec(wrt, len(wshape), "v"))
                               .evaluate(**arrays))
                nu, nw = int(np.prod(ushape)), int(np.prod(wshape))
                am, bm = a.reshape(nu, nw), b.reshape(nw, nu)
                if _finite_and_moderate(am, bm):
                    scale = max(1.0, float(np.max(np.abs(am))))
                    if not np.allclose(am, bm.T, rtol=0, atol=1e-8 * scale):
                        raise Wrong(f"mixed partials do not commute: d/d{u} d/d{wrt} vs "
                                    f"d/d{wrt} d/d{u} ({mc.text})")
    return "ok"


def _wrt_spec(name: str, rank: int, prefix: str) -> str:
    """``name[h0,h1]``: a derivative by a variable the expression may no longer contain
    (the second derivative of a linear function) needs its rank spelled out."""
    return f"{name}[{','.join(f'{prefix}{k}' for k in range(rank))}]"


def _fd_check(e: Any, wrt: str, arrays: dict[str, np.ndarray], dv: np.ndarray,
              v: np.ndarray, mc: MathCase, rng: np.random.Generator, what: str = "derivative",
              max_entries: int = 6) -> None:
    """Central differences on up to ``max_entries`` entries of ``wrt``; a few step sizes
    are tried before calling a mismatch (kinks of relu/abs/step/sign are excused).

    The error is measured against the derivative's own size (a tiny derivative that is
    wrong is still wrong), with an absolute allowance for the rounding error of the
    differences, which grows with the size of the function's value."""
    x = arrays[wrt]
    entries = list(np.ndindex(*x.shape))
    if len(entries) > max_entries:
        picks = rng.choice(len(entries), size=max_entries, replace=False)
        entries = [entries[int(p)] for p in picks]
    fscale = max(1.0, float(np.max(np.abs(v))) if v.size else 0.0)
    for idx in entries:
        best = math.inf
        for rel in (1e-6, 1e-5, 1e-7, 1e-4):
            h = rel * max(1.0, abs(float(x[idx])))
            plus, minus = dict(arrays), dict(arrays)
            xp, xm = x.copy(), x.copy()
            xp[idx] += h
            xm[idx] -= h
            plus[wrt], minus[wrt] = xp, xm
            num = (np.asarray(e.evaluate(**plus)) - np.asarray(e.evaluate(**minus))) / (2 * h)
            sym = np.asarray(dv[idx])
            if not num.size:
                best = 0.0
                break
            err = float(np.max(np.abs(sym - num)))
            dscale = max(float(np.max(np.abs(num))), float(np.max(np.abs(sym))))
            allowed = 1e-5 * dscale + 1e-8 * fscale
            best = min(best, err / allowed if allowed else math.inf)
            if best <= 1.0:
                break
        if best > 1.0:
            if mc.nonsmooth:
                continue  # a kink between x-h and x+h; not informative
            raise Wrong(f"{what} disagrees with finite differences: error {best:.3g} times "
                        f"the allowance at {wrt}{list(idx)} ({mc.text})")


# ========================================================================= driving


def run_range(seed: int, ks: range | list[int], mode: str, math_fraction: float,
              timeout: float, runner: Runner | None = None) -> Runner:
    """In-process: run inputs ``ks`` (used by the test suite and the workers)."""
    runner = runner or Runner(timeout)
    for k in ks:
        runner.run(make_input(seed, k, mode, math_fraction))
    return runner


def _worker(conn, seed: int, ks: list[int], mode: str, math_fraction: float,
            timeout: float, mem_gb: float) -> None:
    try:
        import resource
        limit = int(mem_gb * 2 ** 30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except Exception:  # pragma: no cover
        pass
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 1000))
    runner = Runner(timeout)
    sent = 0
    for k in ks:
        conn.send(("at", k))
        runner.run(make_input(seed, k, mode, math_fraction))
        new = runner.failures[sent:]
        sent = len(runner.failures)
        conn.send(("done", k, dict(runner.tried), dict(runner.rejected), runner.skipped,
                   [(f.target, f.signature, f.summary, f.trace) for f in new]))
        runner.tried.clear()
        runner.rejected.clear()
        runner.skipped = 0
    conn.send(("end",))


@dataclass
class Totals:
    tried: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    inputs: int = 0
    skipped: int = 0
    kinds: dict[str, int] = field(default_factory=dict)


def run_parallel(seed: int, n: int, mode: str, math_fraction: float, timeout: float,
                 jobs: int, mem_gb: float, start: int = 0, progress: bool = True) -> Totals:
    totals = Totals()
    hard = timeout * 2 + 10  # a worker silent this long is stuck in C code: kill it
    ctx = mp.get_context("fork" if sys.platform != "win32" else "spawn")
    pending = [list(range(start + w, start + n, jobs)) for w in range(jobs)]
    workers: dict[int, tuple[Any, Any, list[int], float, int | None]] = {}

    def launch(w: int) -> None:
        ks = pending[w]
        if not ks:
            return
        parent, child = ctx.Pipe(duplex=False)
        p = ctx.Process(target=_worker, args=(child, seed, ks, mode, math_fraction, timeout,
                                               mem_gb), daemon=True)
        p.start()
        child.close()
        workers[w] = (p, parent, ks, time.monotonic(), None)

    for w in range(jobs):
        launch(w)
    t0, last = time.monotonic(), 0.0
    from multiprocessing.connection import wait
    while workers:
        conns = {workers[w][1]: w for w in workers}
        ready = wait(list(conns), timeout=1.0)
        now = time.monotonic()
        for c in ready:
            w = conns[c]
            p, parent, ks, since, current = workers[w]
            try:
                msg = parent.recv()
            except (EOFError, OSError):
                msg = ("died",)
            if msg[0] == "at":
                workers[w] = (p, parent, ks, now, msg[1])
            elif msg[0] == "done":
                _, k, tried, rejected, skipped, fails = msg
                totals.inputs += 1
                totals.skipped += skipped
                inp = make_input(seed, k, mode, math_fraction)
                totals.kinds[inp.kind] = totals.kinds.get(inp.kind, 0) + 1
                for t, c_ in tried.items():
                    totals.tried[t] = totals.tried.get(t, 0) + c_
                for t, c_ in rejected.items():
                    totals.rejected[t] = totals.rejected.get(t, 0) + c_
                for target, sig, summary, trace in fails:
                    totals.failures.append(Failure(target, sig, summary, trace, inp))
                pending[w] = pending[w][pending[w].index(k) + 1:]
                workers[w] = (p, parent, ks, now, None)
            elif msg[0] in ("end", "died"):
                p.join(timeout=5)
                del workers[w]
                if msg[0] == "died" and current is not None:
                    _record_dead(totals, seed, current, mode, math_fraction,
                                 f"worker died (exit code {p.exitcode})")
                    pending[w] = pending[w][pending[w].index(current) + 1:]
                    launch(w)
        for w in list(workers):
            p, parent, ks, since, current = workers[w]
            if current is not None and now - since > hard:
                p.kill()
                p.join()
                del workers[w]
                _record_dead(totals, seed, current, mode, math_fraction,
                             f"hang: no answer after {hard:.0f} s (stuck outside Python code)")
                pending[w] = pending[w][pending[w].index(current) + 1:]
                launch(w)
            elif current is None and not p.is_alive() and not parent.poll():
                del workers[w]
                if pending[w]:
                    launch(w)
        if progress and now - last > 10:
            last = now
            print(f"  ... {totals.inputs}/{n} inputs, {len(totals.failures)} failures, "
                  f"{now - t0:.0f} s", file=sys.stderr, flush=True)
    return totals


def _record_dead(totals: Totals, seed: int, k: int, mode: str, math_fraction: float,
                 why: str) -> None:
    try:
        inp = make_input(seed, k, mode, math_fraction)
    except Exception:  # the generator itself failed (a fuzzer bug): still report it
        inp = Input(k, "unknown", "", None)
    totals.inputs += 1
    totals.kinds[inp.kind] = totals.kinds.get(inp.kind, 0) + 1
    totals.failures.append(Failure("any", f"any: {why.split(':')[0]}", why, "", inp))


# ========================================================================= shrinking


def reproduces(inp: Input, target: str, signature: str, timeout: float) -> bool:
    runner = Runner(timeout, targets={target} if target != "any" else None)
    runner.run(inp)
    return any(f.signature == signature for f in runner.failures)


def shrink(f: Failure, timeout: float, budget_s: float = 20.0) -> Input:
    """Delete tokens (and simplify wrt/shapes/argv) while the same failure reproduces."""
    inp = f.inp
    if inp.kind == "math" or f.target in ("any",) or "hang" in f.signature:
        return inp
    t_end = time.monotonic() + budget_s
    best = inp

    def variant(text: str) -> Input:
        cli = list(best.cli)
        if cli and best.text in cli:
            cli[cli.index(best.text)] = text
        return Input(best.k, best.kind, text, best.wrt, best.shapes, best.array_seed, cli, None)

    toks = lex(best.text)
    changed = True
    while changed and time.monotonic() < t_end:
        changed = False
        for size in (8, 4, 2, 1):
            k = 0
            while k < len(toks) and time.monotonic() < t_end:
                cand = toks[:k] + toks[k + size:]
                cinp = variant("".join(cand))
                if cand and reproduces(cinp, f.target, f.signature, timeout):
                    toks, best, changed = cand, cinp, True
                else:
                    k += 1
    for simpler in ([], None):
        if best.shapes is not None and time.monotonic() < t_end:
            cinp = Input(best.k, best.kind, best.text, best.wrt, simpler, best.array_seed,
                         best.cli, None)
            if reproduces(cinp, f.target, f.signature, timeout):
                best = cinp
                break
    return best


def _shrink_worker(conn, failures: list[Failure], timeout: float) -> None:
    for f in failures:
        try:
            conn.send(shrink(f, timeout))
        except BaseException:
            conn.send(f.inp)


def shrink_all(failures: list[Failure], timeout: float, limit_s: float = 90.0) -> list[Input]:
    """Shrink in a child process (a candidate may hang in C code)."""
    ctx = mp.get_context("fork" if sys.platform != "win32" else "spawn")
    parent, child = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_shrink_worker, args=(child, failures, timeout), daemon=True)
    p.start()
    child.close()
    out: list[Input] = []
    t_end = time.monotonic() + limit_s
    while len(out) < len(failures) and parent.poll(max(0.0, t_end - time.monotonic())):
        try:
            out.append(parent.recv())
        except EOFError:
            break
    p.kill()
    p.join()
    return out + [f.inp for f in failures[len(out):]]


# ============================================================================ report


def summarize(totals: Totals, seconds: float, show: int, shrunk: dict[str, Input]) -> str:
    lines = [f"einderiv fuzz: {totals.inputs} inputs in {seconds:.1f} s "
             f"({', '.join(f'{k} {v}' for k, v in sorted(totals.kinds.items()))})"]
    lines.append(f"{'target':<10} {'tried':>8} {'rejected':>9} {'failures':>9}")
    fails_by_target: dict[str, int] = {}
    for f in totals.failures:
        fails_by_target[f.target] = fails_by_target.get(f.target, 0) + 1
    for t in sorted(set(totals.tried) | set(fails_by_target)):
        lines.append(f"{t:<10} {totals.tried.get(t, 0):>8} {totals.rejected.get(t, 0):>9} "
                     f"{fails_by_target.get(t, 0):>9}")
    if totals.skipped:
        lines.append(f"(math cases skipped for overflowing values, a derivative of over "
                     f"{MAX_JACOBIAN:,} entries or an ambiguous '->' over a sum: "
                     f"{totals.skipped})")
    groups: dict[str, list[Failure]] = {}
    for f in totals.failures:
        groups.setdefault(f.signature, []).append(f)
    lines.append(f"failures = {len(totals.failures)} ({len(groups)} distinct)")
    for sig, fs in list(groups.items())[:show]:
        fs.sort(key=lambda f: (len(f.inp.text), f.inp.k))
        first = fs[0]
        lines.append("")
        lines.append(f"--- {sig}  (x{len(fs)})")
        lines.append(first.report())
        small = shrunk.get(sig)
        if small is not None and small.text != first.inp.text:
            lines.append(f"    shrunk: {small.describe()}"
                         + (f"\n    argv = {small.cli!r}" if first.target == "cli" else ""))
    if len(groups) > show:
        lines.append(f"... and {len(groups) - show} more distinct failures")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("``", "'"),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000, help="number of inputs (default 20000)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ap.add_argument("--start", type=int, default=0, help="first input number (to resume)")
    ap.add_argument("--mode", choices=["mixed", "soup", "mutation", "matrix", "math"],
                    default="mixed", help="input kind (default: mixed, all kinds)")
    ap.add_argument("--math-fraction", type=float, default=0.05,
                    help="share of math inputs in mixed mode (default 0.05)")
    ap.add_argument("--timeout", type=float, default=5.0, help="seconds per input (default 5)")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                    help="worker processes (default: 2 or the number of CPUs)")
    ap.add_argument("--mem-gb", type=float, default=4.0, help="memory limit per worker")
    ap.add_argument("--show", type=int, default=8, help="distinct failures to print")
    ap.add_argument("--no-shrink", action="store_true", help="do not minimize failing inputs")
    ap.add_argument("--one", type=int, metavar="K", help="run input K in-process, verbosely")
    args = ap.parse_args(argv)

    if args.one is not None:
        inp = make_input(args.seed, args.one, args.mode, args.math_fraction)
        print(f"input #{inp.k} ({inp.kind}): {inp.describe()}\n  argv={inp.cli!r}")
        r = Runner(args.timeout)
        r.run(inp)
        for f in r.failures:
            print(f.report())
        return 1 if r.failures else 0

    t0 = time.monotonic()
    totals = run_parallel(args.seed, args.n, args.mode, args.math_fraction, args.timeout,
                          max(1, args.jobs), args.mem_gb, args.start)
    elapsed = time.monotonic() - t0
    shrunk: dict[str, Input] = {}
    if totals.failures and not args.no_shrink:
        groups: dict[str, Failure] = {}
        for f in sorted(totals.failures, key=lambda f: (len(f.inp.text), f.inp.k)):
            groups.setdefault(f.signature, f)
        firsts = list(groups.values())[: args.show]
        for f, small in zip(firsts, shrink_all(firsts, args.timeout)):
            shrunk[f.signature] = small
    print(summarize(totals, elapsed, args.show, shrunk))
    print(f"\ncommand: python benchmarks/fuzz.py --n {args.n} --seed {args.seed}"
          + (f" --mode {args.mode}" if args.mode != "mixed" else ""))
    return 1 if totals.failures else 0


if __name__ == "__main__":
    sys.exit(main())
