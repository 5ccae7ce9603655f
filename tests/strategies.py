"""Hypothesis strategies: random well-formed index expressions over a fixed set of
tensors with distinct axis sizes, and the numeric values to evaluate them at.

The generator is goal-directed: ``_Gen.gen(F)`` writes the text of an expression whose
free indices are exactly the set ``F``, tracking the Einstein rule itself (how often
each index is exposed to the enclosing product), so sums always get terms with
matching free indices and contractions always pair axes of equal size. Every index
name has one size everywhere (``SIZE``), but names are freely reused in separate
scopes (function arguments, ``sum[..](..)``, powers, inv/det arguments), so
shadowing (``x[j]*exp(A[p,j]*x[j])``) is exercised. It writes products (with
contractions, juxtaposition, signed and fractional coefficients), sums (with
index-free broadcasting terms), element-wise functions, integer / fractional /
negative / symbolic powers, divisions, ``sum[..](..)``, ``->`` (reordering, Hadamard
products, single-occurrence sums), traces ``2*M[k,k]``, Kronecker deltas contracted
with another factor, and ``inv``/``det``/``logdet`` of well-conditioned matrices.

Numerical tameness: inputs are O(1); logs, square roots, negative and fractional
powers only see positive arguments (``1 + g**2``, ``exp(g)``, ``sigmoid(g)``, ``s``);
``tan`` only sees ``sin(g)``; inv/det/logdet only see ``M = 3 I + small``
perturbed by bounded or positive semi-definite terms.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

__all__ = ["SHAPES", "SIZE", "Generated", "expressions", "make_values"]

#: The tensors every expression is built from (distinct axis sizes).
SHAPES: dict[str, tuple[int, ...]] = {
    "x": (3,), "y": (4,), "z": (5,), "A": (4, 3), "B": (3, 5), "M": (3, 3), "s": (),
}
#: Every index name has one size, everywhere.
SIZE: dict[str, int] = {"i": 3, "j": 3, "k": 3, "l": 3, "p": 4, "q": 4, "w": 4,
                        "r": 5, "u": 5, "v": 5}
_BY_SIZE = {n: [i for i, m in SIZE.items() if m == n] for n in (3, 4, 5)}

#: Free index sets used for whole expressions.
TOP_FREE: list[tuple[str, ...]] = [(), ("i",), ("p",), ("r",), ("i", "p"), ("i", "j"),
                                   ("i", "r"), ("p", "q"), ("i", "p", "r")]

SMOOTH_FUNCS = ["tanh", "sin", "cos", "sigmoid", "softplus", "exp", "log", "sqrt", "tan"]
KINKED_FUNCS = ["abs", "relu", "step", "sign"]


def make_values(seed: int) -> dict[str, np.ndarray]:
    """O(1) inputs; ``M`` is 3 I plus a small perturbation (well conditioned, not
    symmetric); ``s`` is positive."""
    rng = np.random.default_rng(seed)
    vals = {name: rng.uniform(-1.0, 1.0, size=shape) for name, shape in SHAPES.items()}
    vals["M"] = 3.0 * np.eye(3) + 0.3 * rng.uniform(-1.0, 1.0, size=(3, 3))
    vals["s"] = np.array(rng.uniform(0.5, 1.5))
    return vals


# ----------------------------------------------------------------------------- nodes


@dataclass(frozen=True)
class Node:
    """Generated text with its free index set. ``kind``: 'atom' (a single primary:
    name, call, parenthesised group), 'prod' (a bare product chain: when used as a
    factor its indices join the enclosing product's Einstein rule), 'sum'."""

    text: str
    free: frozenset
    kind: str
    counts: Counter  # how often each index is exposed to an enclosing product

    def factor(self) -> tuple[str, Counter]:
        if self.kind == "prod":
            return self.text, self.counts
        if self.kind == "sum":
            return f"({self.text})", Counter(self.free)
        return self.text, Counter(self.free)

    def operand(self) -> str:
        """As the base of ``**`` or a divisor: a closed scope (a power is
        parenthesised too: ``**`` is right-associative)."""
        return self.text if self.kind == "atom" and "**" not in self.text else f"({self.text})"

    def term(self) -> str:
        return f"({self.text})" if self.kind == "sum" else self.text


def _atom(text: str, free) -> Node:
    free = frozenset(free)
    return Node(text, free, "atom", Counter(free))


@dataclass(frozen=True)
class Generated:
    """A generated expression: its text and free index set, and whether it uses
    only smooth functions (safe for finite differences)."""

    text: str
    free: frozenset
    smooth: bool

    def __repr__(self) -> str:  # what hypothesis prints for a falsifying example
        return f"Generated({self.text!r})"


# ------------------------------------------------------------------------- leaves


def _by_size(F) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {3: [], 4: [], 5: []}
    for i in sorted(F):
        out[SIZE[i]].append(i)
    return out


def _leaf_options(F: frozenset) -> list[str]:
    """Single tensors (or numbers) with exactly the free indices ``F``."""
    if not F:
        return ["s", "2", "3"]
    g = _by_size(F)
    if len(F) == 1:
        (i,) = F
        return [{3: "x", 4: "y", 5: "z"}[SIZE[i]] + f"[{i}]"]
    if len(F) == 2:
        if len(g[3]) == 1 and len(g[4]) == 1:
            return [f"A[{g[4][0]},{g[3][0]}]"]
        if len(g[3]) == 1 and len(g[5]) == 1:
            return [f"B[{g[3][0]},{g[5][0]}]"]
        if len(g[3]) == 2:
            a, b = g[3]
            return [f"M[{a},{b}]", f"M[{b},{a}]"]
    return []


def _leaf_product(draw, F: frozenset, traces: bool, avoid: frozenset = frozenset()) -> Node:
    """``F`` covered by tensors without contractions (depth 0). With ``traces``, an
    index-free leaf may be a trace ``2*M[k,k]`` (an index twice on one tensor)."""
    opts = _leaf_options(F)
    ks = [k for k in _BY_SIZE[3] if k not in avoid]
    if not F and traces and ks and draw(st.integers(0, 3)) == 0:
        k = draw(st.sampled_from(ks))
        return Node(f"2*M[{k},{k}]", F, "prod", Counter({k: 2}))
    if opts:
        return _atom(draw(st.sampled_from(opts)), F)
    remaining = list(draw(st.permutations(sorted(F))))
    parts = []
    while remaining:
        a = remaining.pop(0)
        partner = None
        if remaining and draw(st.booleans()):
            for b in remaining:
                if _leaf_options(frozenset((a, b))):
                    partner = b
                    break
        if partner is not None:
            remaining.remove(partner)
            parts.append(draw(st.sampled_from(_leaf_options(frozenset((a, partner))))))
        else:
            parts.append(_leaf_options(frozenset((a,)))[0])
    if len(parts) == 1:
        return _atom(parts[0], F)
    return Node("*".join(parts), frozenset(F), "prod", Counter(F))


# ----------------------------------------------------------------------- generator


class _Gen:
    def __init__(self, draw, smooth: bool, traces: bool, matrices: bool, deltas: bool):
        self.draw = draw
        self.smooth = smooth
        self.traces = traces
        self.matrices = matrices
        self.deltas = deltas

    def d(self, strategy):
        return self.draw(strategy)

    def gen(self, F: frozenset, depth: int, avoid: frozenset = frozenset()) -> Node:
        """An expression with free indices ``F``. A 'prod' result contracts no index
        in ``avoid`` (the free indices of the products it may be flattened into)."""
        if depth <= 0:
            return _leaf_product(self.draw, F, self.traces, avoid)
        kinds = ["leaf", "product", "product", "sum", "func", "pow", "div", "sumover", "arrow"]
        if self.matrices:
            if not F:
                kinds += ["det"]
            if len(F) == 2 and all(SIZE[i] == 3 for i in F):
                kinds += ["inv"]
        kind = self.d(st.sampled_from(kinds))
        return getattr(self, "_" + kind)(F, depth, avoid)

    # ------------------------------------------------------------------ builders
    def _leaf(self, F, depth, avoid):
        return _leaf_product(self.draw, F, self.traces, avoid)

    def _contracted(self, F, avoid, max_size=2) -> list[str]:
        cands = [i for i in SIZE if i not in F and i not in avoid]
        if not cands:
            return []
        return self.d(st.lists(st.sampled_from(cands), unique=True, max_size=max_size))

    def _join(self, texts: list[str]) -> str:
        """Factors joined by '*' or, where unambiguous, by juxtaposition."""
        out = texts[0]
        for t in texts[1:]:
            # not before '(' (``s (..)`` would be a call), a sign (a subtraction) or a
            # number (``2 3``, ``x 2`` are refused: issue 14)
            juxtapose = not t.startswith(("-", "+", "(")) and not t[0].isdigit() and \
                not t.startswith(".") and self.d(st.integers(0, 4)) == 0
            out += (" " if juxtapose else "*") + t
        return out

    def _product(self, F, depth, avoid):
        nf = self.d(st.integers(2, 3))
        C = self._contracted(F, avoid)
        sets: list[set] = [set() for _ in range(nf)]
        for a in sorted(F):
            sets[self.d(st.integers(0, nf - 1))].add(a)
        for c in C:
            for k in self.d(st.lists(st.integers(0, nf - 1), unique=True,
                                     min_size=2, max_size=2)):
                sets[k].add(c)
        coeff = self.d(st.sampled_from(["", "", "2*", "1/2*", "3*", "-", "-2*", "0.5*"]))
        texts, counts = [], Counter()
        delta_used = False  # at most one: its contracted partner must carry a size
        for S in sets:
            S = frozenset(S)
            if self.deltas and not delta_used and len(S) == 2 and S & set(C) and \
                    len({SIZE[i] for i in S}) == 1 and self.d(st.integers(0, 2)) == 0:
                # a Kronecker delta contracted with another factor
                a, b = self.d(st.permutations(sorted(S)))
                t, c = f"delta[{a},{b}]", Counter(S)
                delta_used = True
            else:
                t, c = self.gen(S, depth - 1, avoid | F).factor()
            texts.append(t)
            counts += c
        free = frozenset(i for i, n in counts.items() if n == 1)
        assert free == F, (texts, counts, F)
        return Node(coeff + self._join(texts), free, "prod", counts)

    def _sum(self, F, depth, avoid):
        nt = self.d(st.integers(2, 3))
        pieces = []
        for t in range(nt):
            Ft = F
            if t > 0 and F and self.d(st.integers(0, 3)) == 0:
                Ft = frozenset()  # an index-free term broadcasts
            # the terms avoid F as a summed name: '(...) -> [F]' puts F into each term
            node = self.gen(Ft, depth - 1, avoid | F)
            op = "" if t == 0 else self.d(st.sampled_from([" + ", " - "]))
            pieces.append(op + node.term())
        return Node("".join(pieces), F, "sum", Counter(F))

    def _positive(self, F, depth) -> str:
        """A positive expression with free indices ``F``, as an operand."""
        opts = ["square", "exp", "sigmoid", "s_plus"]
        if not F:
            opts.append("s")
        kind = self.d(st.sampled_from(opts))
        if kind == "s":
            return "s"
        g = self.gen(F, depth - 1)
        if kind == "square":
            return f"(1 + {g.operand()}**2)"
        if kind == "s_plus":
            return f"(s + {g.operand()}**2)"
        return f"{kind}({g.text})"

    def _func(self, F, depth, avoid):
        names = SMOOTH_FUNCS + ([] if self.smooth else KINKED_FUNCS)
        name = self.d(st.sampled_from(names))
        if name in ("log", "sqrt"):
            return _atom(f"{name}({self._positive(F, depth)})", F)
        g = self.gen(F, depth - 1)
        if name == "tan":
            return _atom(f"tan(sin({g.text}))", F)
        return _atom(f"{name}({g.text})", F)

    def _pow(self, F, depth, avoid):
        kind = self.d(st.sampled_from(["int", "int", "neg", "half", "symbolic"]))
        if kind == "int":
            g = self.gen(F, depth - 1)
            k = self.d(st.sampled_from(["2", "3"]))
            return _atom(f"{g.operand()}**{k}", F)
        base = self._positive(F, depth)
        if kind == "neg":
            return _atom(f"{base}**{self.d(st.sampled_from(['(-1)', '(-2)', '(-1/2)']))}", F)
        if kind == "half":
            return _atom(f"{base}**{self.d(st.sampled_from(['(1/2)', '(3/2)']))}", F)
        # An exponent that is itself an (index-free, bounded) expression.
        e = self.gen(frozenset(), depth - 1)
        expo = self.d(st.sampled_from(["s", f"tanh({e.text})", "(s/2)"]))
        return _atom(f"{base}**{expo if expo == 's' else '(' + expo + ')'}", F)

    def _div(self, F, depth, avoid):
        Fd = frozenset(self.d(st.lists(st.sampled_from(sorted(F)), unique=True))) if F else frozenset()
        num = self.gen(F - Fd, depth - 1, avoid | F)
        den = self.d(st.sampled_from(["2", "3"])) if not Fd and self.d(st.booleans()) \
            else self._positive(Fd, depth)
        t, counts = num.factor()
        counts = counts + Counter(Fd)
        free = frozenset(i for i, n in counts.items() if n == 1)
        assert free == F
        return Node(f"{t}/{den}", F, "prod", counts)

    def _sumover(self, F, depth, avoid):
        # not a label of the product around it either: sum[i] where an outer i is
        # visible is refused as a shadowing (issue 14)
        cands = [i for i in SIZE if i not in F and i not in avoid]
        if not cands:
            return self.gen(F, depth - 1, avoid)
        C = self.d(st.lists(st.sampled_from(cands), unique=True, min_size=1, max_size=2))
        inner = self.gen(F | frozenset(C), depth - 1)
        return _atom(f"sum[{','.join(C)}]({inner.text})", F)

    def _arrow(self, F, depth, avoid):
        order = self.d(st.permutations(sorted(F)))
        out = ",".join(order)
        if self.d(st.booleans()):  # just fix the axis order
            inner = self.gen(F, depth - 1)
            return _atom(f"({inner.text} -> [{out}])", F)
        # A product under '->': free indices may repeat (Hadamard), and an index that
        # occurs once but is not listed is summed.
        nf = self.d(st.integers(1, 3))
        sets: list[set] = [set() for _ in range(nf)]
        for a in sorted(F):
            for k in self.d(st.lists(st.integers(0, nf - 1), unique=True, min_size=1,
                                     max_size=min(2, nf))):
                sets[k].add(a)
        contracted = self._contracted(F, avoid, max_size=2)
        for c in contracted:
            for k in self.d(st.lists(st.integers(0, nf - 1), unique=True, min_size=1,
                                     max_size=min(2, nf))):
                sets[k].add(c)
        texts = [self.gen(frozenset(S), depth - 1, F).factor()[0] for S in sets]
        if nf == 1 and contracted and texts[0].startswith("("):
            # a lone sum under '->' is not a product: '->' reaches its terms, and one
            # without the label would be ambiguous (issue 21): sum it explicitly
            return _atom(f"(sum[{','.join(sorted(contracted))}]{texts[0]} -> [{out}])", F)
        return _atom(f"({self._join(texts)} -> [{out}])", F)

    def _matrix(self, depth) -> str:
        """A well-conditioned 3x3 matrix expression (two free size-3 indices)."""
        a, b = self.d(st.permutations(_BY_SIZE[3]))[:2]
        kind = self.d(st.sampled_from(["M", "tanh", "outer", "gram", "scaled", "inv", "arrow"]))
        if kind == "M":
            return "M"
        if kind == "outer":
            return f"M[{a},{b}] + 1/10*x[{a}]*x[{b}]"
        if kind == "gram":
            return f"M[{a},{b}] + 1/10*A[p,{a}]*A[p,{b}]"
        if kind == "scaled":
            return f"s*M[{a},{b}]"
        if kind == "inv":
            return f"M[{a},{b}] + 1/10*inv(M)[{a},{b}]"
        g = self.gen(frozenset((a, b)), depth - 1)
        if kind == "tanh":
            return f"M[{a},{b}] + 1/10*tanh({g.text})"
        return f"(M[{a},{b}] + 1/10*sigmoid({g.text}) -> [{b},{a}])"

    def _det(self, F, depth, avoid):
        name = self.d(st.sampled_from(["det", "logdet", "trace_inv"]))
        m = self._matrix(depth)
        ks = [k for k in _BY_SIZE[3] if k not in avoid]
        if name == "trace_inv":
            if not (self.traces and ks):
                return _atom(f"logdet({m})", F)
            k = self.d(st.sampled_from(ks))  # trace of the inverse
            return Node(f"2*inv({m})[{k},{k}]", F, "prod", Counter({k: 2}))
        return _atom(f"{name}({m})", F)

    def _inv(self, F, depth, avoid):
        a, b = self.d(st.permutations(sorted(F)))
        return _atom(f"inv({self._matrix(depth)})[{a},{b}]", F)


@st.composite
def expressions(draw, free=None, max_depth: int = 3, smooth: bool = True,
                traces: bool = True, matrices: bool = True, deltas: bool = True) -> Generated:
    """Text of a random well-formed expression. ``free``: its free index set (default:
    one of ``TOP_FREE``); ``smooth``: only differentiable functions; ``traces``:
    also repeated indices on one tensor (``2*M[k,k]``); ``deltas``: also Kronecker
    deltas contracted with another factor."""
    F = frozenset(draw(st.sampled_from(TOP_FREE)) if free is None else free)
    depth = draw(st.integers(1, max_depth))
    node = _Gen(draw, smooth, traces, matrices, deltas).gen(F, depth)
    text = node.text
    if draw(st.integers(0, 5)) == 0:  # an unparenthesised '->' at the root
        text = f"{text} -> [{','.join(draw(st.permutations(sorted(F))))}]"
    return Generated(text, node.free, smooth)
