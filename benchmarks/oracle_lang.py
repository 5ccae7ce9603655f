"""An independent interpreter of einderiv's index language (docs/language.md).

It shares no code with einderiv: its own tokenizer, recursive-descent parser and
evaluator, straight to arrays labelled by index names.  A value is ``V(arr, labels)``:
``arr`` a numpy or jax.numpy array, ``labels`` the free index names, one per axis,
in axis order.  The evaluator is generic over the array module (``xp``), so
``jax.jacfwd`` differentiates it when given ``jax.numpy``.

ALL semantic rules live in the class ``Rules`` below (one commented place); the
evaluator (``Interp``) implements them, issue 14 included (sum[a] binds its index
through its body; sums broadcast by name; '->' per term; f(EXPR) keeps EXPR's order).

Raises ``OracleInvalid`` for a text the language rejects (syntax, index rules),
``OracleAmbiguous`` for the '->'-on-a-sum case the rules call ambiguous (an error
in einderiv too), ``OracleUnknownSize`` when a delta's size cannot be told here
(the oracle then makes no claim).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

ELEMENTWISE = ("exp", "log", "sin", "cos", "tan", "tanh", "sigmoid", "softplus", "sqrt",
               "relu", "abs", "step", "sign")
MATRIX_FUNCS = ("inv", "det", "logdet")
WORDS = ("softmax", "log_softmax", "logsumexp")     # issue 15 (in progress): WORD[k](EXPR)
RESERVED = set(ELEMENTWISE) | set(MATRIX_FUNCS) | set(WORDS) | {"sum", "delta", "size"}


class OracleInvalid(Exception):
    """The text is not a valid expression of the language."""


class OracleAmbiguous(OracleInvalid):
    """'->' on a sum where a dropped index is not carried once by every term (R7)."""


class OracleUnknownSize(Exception):
    """The oracle cannot tell a delta's size (no claim about the expression)."""


# ============================================================================ tokens
_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[^\W\d]\w*)
  | (?P<op>\*\*|->|[-+*/()\[\],])
""", re.VERBOSE | re.UNICODE)


def tokenize(text):
    pos, out = 0, []
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise OracleInvalid(f"bad character {text[pos]!r} at {pos}")
        pos = m.end()
        if m.lastgroup == "num":
            # issue 14: a number running into another ('1..2', '.5.5') or an exponent
            # without digits ('1e', '2ex', '2e+') is an error, not a product
            nxt = text[pos:pos + 1]
            if nxt == "." or nxt.isdigit():
                raise OracleInvalid(f"malformed number at {m.start()}")
            if nxt in ("e", "E") and not re.search(r"[eE]", m.group()):
                raise OracleInvalid(f"exponent without digits at {m.start()}")
        if m.lastgroup != "ws":
            out.append((m.lastgroup, m.group()))
    out.append(("end", ""))
    return out


# =============================================================================== AST
@dataclass(frozen=True)
class Num:
    value: Fraction


@dataclass(frozen=True)
class Ref:               # a scalar variable (indices None) or a tensor entry X[a,b]
    name: str
    indices: tuple | None


@dataclass(frozen=True)
class Delta:
    i: str
    j: str


@dataclass(frozen=True)
class Call:              # element-wise function
    func: str
    arg: object


@dataclass(frozen=True)
class MatFn:             # inv(M)[i,j] / det(M) / logdet(M); arg is a closed scope
    func: str
    arg: object
    indices: tuple | None


@dataclass(frozen=True)
class SumOver:
    names: tuple
    arg: object


@dataclass(frozen=True)
class Word:              # softmax[k](E) / log_softmax[k](E) / logsumexp[k](E)
    func: str
    name: str
    arg: object


@dataclass(frozen=True)
class Neg:
    arg: object


@dataclass(frozen=True)
class Mul:               # items: ((op, node), ...), op '*' or '/'; first op '*'
    items: tuple


@dataclass(frozen=True)
class Add:               # items: ((sign, node), ...), sign '+' or '-'
    items: tuple


@dataclass(frozen=True)
class Pow:
    base: object
    exponent: object


@dataclass(frozen=True)
class Arrow:
    arg: object
    names: tuple


# ============================================================================ parser
class Parser:
    """expr := sum ('->' '[' [names] ']')?; sum := product (('+'|'-') product)*;
    product := unary (('*'|'/'|juxtaposition) unary)*; unary := ('-'|'+')* power;
    power := primary ('**' unary)?; primary := NUMBER | NAME | NAME[names] | (expr)
    | FUNC(expr) | sum[names](expr) | delta[i,j] | inv(expr)[i,j] | det(expr) | logdet(expr)."""

    def __init__(self, text):
        self.toks = tokenize(text)
        self.k = 0

    def peek(self):
        return self.toks[self.k]

    def take(self, value=None):
        kind, v = self.toks[self.k]
        if value is not None and v != value:
            raise OracleInvalid(f"expected {value!r}, got {v!r}")
        self.k += 1
        return kind, v

    def parse(self):
        e = self.expr()
        if self.peek()[0] != "end":
            raise OracleInvalid(f"trailing {self.peek()[1]!r}")
        return e

    def names(self, allow_empty=False):
        self.take("[")
        out = []
        if self.peek()[1] == "]":
            if not allow_empty:
                raise OracleInvalid("empty index list")
        else:
            while True:
                kind, v = self.take()
                if kind != "name" or v in RESERVED:
                    raise OracleInvalid(f"bad index name {v!r}")
                out.append(v)
                if self.peek()[1] == ",":
                    self.take()
                    continue
                break
        self.take("]")
        return tuple(out)

    def expr(self):
        e = self.sum()
        if self.peek()[1] == "->":
            self.take()
            e = Arrow(e, self.names(allow_empty=True))
            if self.peek()[1] == "->":
                raise OracleInvalid("second '->' needs parentheses")
        return e

    def sum(self):
        items = [("+", self.product())]
        while self.peek()[1] in ("+", "-"):
            _, op = self.take()
            items.append((op, self.product()))
        return items[0][1] if len(items) == 1 else Add(tuple(items))

    def product(self):
        items = [("*", self.unary())]
        while True:
            kind, v = self.peek()
            if v in ("*", "/"):
                self.take()
                items.append((v, self.unary()))
            elif kind == "name" or v == "(":            # juxtaposition (issue 14: never a number,
                prev = self.toks[self.k - 1]            # never '(' after a name or X[...])
                if v == "(" and (prev[0] == "name" or prev[1] == "]"):
                    raise OracleInvalid("a name or indexed name followed by '('")
                items.append(("*", self.unary()))
            elif kind == "num" and self.toks[self.k - 1][1] not in ("*", "/"):
                raise OracleInvalid("a number juxtaposed after a factor")
            else:
                break
        return items[0][1] if len(items) == 1 else Mul(tuple(items))

    def unary(self):
        v = self.peek()[1]
        if v == "-":
            self.take()
            return Neg(self.unary())
        if v == "+":
            self.take()
            return self.unary()
        return self.power()

    def power(self):
        base = self.primary()
        if self.peek()[1] == "**":
            self.take()
            return Pow(base, self.unary())
        return base

    def paren(self):
        self.take("(")
        e = self.expr()
        self.take(")")
        return e

    def primary(self):
        kind, v = self.take()
        if kind == "num":
            return Num(Fraction(v))
        if v == "(":
            e = self.expr()
            self.take(")")
            return e
        if kind != "name":
            raise OracleInvalid(f"unexpected {v!r}")
        if v == "sum":
            names = self.names()
            return SumOver(names, self.paren())
        if v == "delta":
            names = self.names()
            if len(names) != 2:
                raise OracleInvalid("delta takes two indices")
            return Delta(*names)
        if v in ELEMENTWISE:
            return Call(v, self.paren())
        if v in WORDS:
            names = self.names()
            if len(names) != 1:
                raise OracleInvalid(f"{v}[...] takes one index")
            return Word(v, names[0], self.paren())
        if v in MATRIX_FUNCS:
            arg = self.paren()
            idx = None
            if v == "inv":
                idx = self.names()
                if len(idx) != 2:
                    raise OracleInvalid("inv(M)[i,j] takes two indices")
            return MatFn(v, arg, idx)
        if v in RESERVED:
            raise OracleInvalid(f"reserved {v!r}")
        if self.peek()[1] == "(":
            raise OracleInvalid(f"unknown function {v!r}")
        if self.peek()[1] == "[":
            return Ref(v, self.names())
        return Ref(v, None)


def parse(text):
    return Parser(text).parse()


# ========================================================================== printer
def to_text(n) -> str:
    """Text for an AST (used by the minimizer); parenthesizes generously."""
    def atomic(m):
        return isinstance(m, (Num, Ref, Delta, Call, MatFn, SumOver, Word))

    def par(m):
        t = to_text(m)
        return t if atomic(m) and not (isinstance(m, Num) and m.value < 0) else f"({t})"

    if isinstance(n, Num):
        return str(n.value)
    if isinstance(n, Ref):
        return n.name if n.indices is None else f"{n.name}[{','.join(n.indices)}]"
    if isinstance(n, Delta):
        return f"delta[{n.i},{n.j}]"
    if isinstance(n, Call):
        return f"{n.func}({to_text(n.arg)})"
    if isinstance(n, MatFn):
        s = f"{n.func}({to_text(n.arg)})"
        return s + (f"[{','.join(n.indices)}]" if n.indices else "")
    if isinstance(n, SumOver):
        return f"sum[{','.join(n.names)}]({to_text(n.arg)})"
    if isinstance(n, Word):
        return f"{n.func}[{n.name}]({to_text(n.arg)})"
    if isinstance(n, Neg):
        return "-" + par(n.arg)
    if isinstance(n, Mul):
        out = ""
        for k, (op, m) in enumerate(n.items):
            out += ("" if k == 0 else op) + par(m)
        return out
    if isinstance(n, Add):
        out = ""
        for k, (op, m) in enumerate(n.items):
            t = to_text(m) if not isinstance(m, (Add, Arrow)) else f"({to_text(m)})"
            if k == 0:
                out = t if op == "+" else "-" + par(m)
            else:
                out += f" {op} " + (t if op == "+" else par(m) if isinstance(m, Add) else t)
        return out
    if isinstance(n, Pow):
        return f"{par(n.base)}**{par(n.exponent)}"
    if isinstance(n, Arrow):
        return f"{to_text(n.arg)} -> [{','.join(n.names)}]"
    raise TypeError(n)


# =========================================================================== values
@dataclass
class V:
    arr: object
    labels: tuple


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


class Ops:
    """The array module: numpy for values, jax.numpy for derivatives."""

    def __init__(self, xp):
        self.xp = xp
        self.is_jax = xp is not np

    def f(self, name, x):
        xp = self.xp
        if name == "exp":
            return xp.exp(x)
        if name == "log":
            return xp.log(x)
        if name in ("sin", "cos", "tan", "tanh", "sqrt"):
            return getattr(xp, name)(x)
        if name == "sigmoid":
            return 1.0 / (1.0 + xp.exp(-x))
        if name == "softplus":
            return xp.logaddexp(0.0, x)
        # the jumps: derivative 0 at 0, as einderiv (and docs/language.md) define it
        if name == "step":
            return xp.where(x > 0, 1.0, 0.0) * xp.ones_like(x)
        if name == "sign":
            return xp.sign(x)
        if name == "relu":
            return xp.where(x > 0, x, 0.0 * x)
        if name == "abs":
            return xp.where(x > 0, x, -x)
        raise OracleInvalid(f"unknown function {name}")

    def einsum(self, operands, label_lists, out):
        names = {}
        for ls in list(label_lists) + [out]:
            for lab in ls:
                if lab not in names:
                    names[lab] = _LETTERS[len(names)]
        spec = ",".join("".join(names[l] for l in ls) for ls in label_lists)
        spec += "->" + "".join(names[l] for l in out)
        if not self.is_jax and len(operands) > 2:     # naive loops over 10+ labels hang
            return np.einsum(spec, *operands, optimize="greedy")
        return self.xp.einsum(spec, *operands)


# ============================================================================ rules
class Rules:
    """THE SEMANTIC RULES OF THE LANGUAGE (docs/language.md, after issue 14), in one place.

    R0  Tokens: a number never runs into another ('1..2', '.5.5') nor ends in an
        exponent without digits ('1e', '2e+'); a number is never juxtaposed after a
        factor ('2 3', 'x 2'); a name or X[...] directly followed by '(' is an error
        ('n (x)', 'x[i] (y)'); '(..)(..)', '2x', '2(x)', 'x y' are products.
    R1  Product (factors joined by *, / or juxtaposition; signs and numbers fold into a
        coefficient; a parenthesized product, also under signs/numbers, is part of the
        enclosing product -- this is how einderiv reads `x[i]*(y[i]*z[i])`):
        each factor exposes labels -- a tensor X[a,b] or inv(M)[a,b] or delta[a,b] its
        raw labels (repeats counted: X[a,a] counts a twice), any other factor its free
        labels.  A label counted >= 2 times is summed, exactly once is free -- EXCEPT a
        label bound by an enclosing sum[...] (R5), which is always free; free labels
        are sorted by code point.  A lone tensor is a one-factor product (X[a,a] is
        the trace, or the diagonal where a is bound; A[p,i] has free order (i,p)).
        A product's summed labels are its own scope: their sizes never meet a free
        label of the same name outside (x[i]*sum[i](y[i]) with |x| != |y| is fine).
    R2  u / v is u * v**-1 (v a separate factor, its free labels exposed); / NUMBER
        folds into the coefficient.
    R3  Element-wise functions and powers: the value keeps the free labels of the
        argument / base IN THEIR ORDER (f(EXPR) is not re-sorted); an exponent must
        have no free labels.
    R4  inv/det/logdet: the argument is a CLOSED scope (evaluated on its own, no
        sum[...] binding reaches in); a bare name is a matrix; otherwise it needs
        exactly two free labels, rows = first.  inv(M)[i,j] exposes raw labels (i, j).
    R5  sum[L](E): L has no repeats and no name already bound by an enclosing sum
        (sum[a] inside sum[a] is an error).  The names of L are BOUND throughout E at
        any depth (products, function arguments, powers, '->' operands) except inside
        inv/det/logdet arguments: free in every product there however often they
        occur.  Every name of L must be free in E's value (so a '->' in E that sums
        it away, or a name absent from E, is an error); they are summed once, the
        other free labels keep E's order.
    R6  Sum of terms (named broadcasting): the free labels are the UNION of the terms'
        free labels; a term is constant along the labels it lacks; a label has one
        size across the terms that carry it.  Order (docs/language.md, "Sums and
        broadcasting by name"): the order of the first term with free labels if it
        has all of the union, otherwise the union in code-point order.
    R7  EXPR -> [L]: L has no repeats.  On a product: each label of L must occur in
        it; listed labels are free (kept even when repeated: Hadamard), in L's order,
        all others summed.  On a SUM -- also seen through unary minus, parentheses and
        pure (signed) number factors (-2*(...)/3) -- '->' applies to every term
        (recursively into nested sums): a term gets the labels of L it carries (raw
        count >= 1, Hadamard per term), its other labels are summed; the result has
        the labels of L some term carries, in L's order (R6 broadcasting); a label of
        L that no term carries is an error.
        AMBIGUOUS: a term's "singles" are the labels counted exactly once in its
        top-level product; D = (union of all terms' singles) - L; if some term's
        singles lack a label of D, the text is an error.
    R8  delta[i,j]: identity; i and j have one size, taken from the other factors of
        its product (the oracle's limit: elsewhere it makes no claim).
    """
    SUM_ORDER = "first-has-union"  # R6 (the documented rule since finding F3)
    ARROW_PUSH_THROUGH_WRAPPERS = True   # R7 through -(...), 2*(...), (...)/2


class Interp:
    def __init__(self, arrays, xp=np):
        self.arrays = arrays
        self.ops = Ops(xp)
        self.xp = xp
        self.bound = frozenset()            # R5: names bound by enclosing sum[...]s

    # ---------------------------------------------------------------- entry points
    def eval(self, node) -> V:
        if isinstance(node, Num):
            return V(self.xp.asarray(float(node.value)), ())
        if isinstance(node, (Ref, Delta, MatFn, Neg, Mul)):
            if isinstance(node, MatFn) and node.func != "inv":
                return self.matfn(node)
            return self.product(node, None)
        if isinstance(node, Call):
            a = self.eval(node.arg)
            return V(self.ops.f(node.func, a.arr), a.labels)
        if isinstance(node, Pow):
            return self.power(node)
        if isinstance(node, SumOver):
            return self.sumover(node)
        if isinstance(node, Word):
            return self.word(node)
        if isinstance(node, Add):
            return self.add(node)
        if isinstance(node, Arrow):
            return self.arrow(node)
        raise TypeError(node)

    # ------------------------------------------------------------------ R3, R4, R5
    def power(self, node):
        b = self.eval(node.base)
        k, c = self.strip(node.exponent)
        if isinstance(k, Num):                     # a constant exponent: exact powers
            p = c * k.value
            p = int(p) if p.denominator == 1 else float(p)
            return V(b.arr ** p, b.labels)
        e = self.eval(node.exponent)
        if e.labels:
            raise OracleInvalid("exponent has free indices")
        return V(self.xp.power(b.arr, e.arr), b.labels)

    def matrix_of(self, arg):
        if isinstance(arg, Ref) and arg.indices is None:
            return self.var(arg.name, 2)
        outer, self.bound = self.bound, frozenset()   # R4: a closed scope
        try:
            v = self.eval(arg)
        finally:
            self.bound = outer
        if len(v.labels) != 2:
            raise OracleInvalid("matrix function needs two free indices")
        return v.arr                               # rows = v.labels[0]

    def matfn(self, node):
        m = self.matrix_of(node.arg)
        if m.shape[0] != m.shape[1]:
            raise OracleInvalid("not square")
        xp = self.xp
        if node.func == "det":
            return V(xp.linalg.det(m), ())
        if node.func == "logdet":
            return V(xp.linalg.slogdet(m)[1], ())
        return V(xp.linalg.inv(m), tuple(node.indices))   # raw labels (R4)

    def sumover(self, node):
        if len(set(node.names)) != len(node.names):
            raise OracleInvalid("index listed twice in sum[...]")
        for n in node.names:
            if n in self.bound:
                raise OracleInvalid(f"sum[{n}] inside another sum[{n}]")
        outer, self.bound = self.bound, self.bound | set(node.names)
        try:
            a = self.eval(node.arg)
        finally:
            self.bound = outer
        for n in node.names:
            if n not in a.labels:
                raise OracleInvalid(f"sum over {n}: not free in its argument")
        out = tuple(l for l in a.labels if l not in node.names)
        return V(self.ops.einsum([a.arr], [a.labels], out), out)

    def word(self, node):
        """R9 (issue 15, in progress): WORD[k](E) binds k in E like sum[k] (but may sit
        inside a sum[k]); k must be free in E; logsumexp removes k, softmax and
        log_softmax keep E's labels and order."""
        k = node.name
        outer, self.bound = self.bound, self.bound | {k}
        try:
            a = self.eval(node.arg)
        finally:
            self.bound = outer
        if k not in a.labels:
            raise OracleInvalid(f"{node.func}[{k}]: {k} not free in its argument")
        xp, ax = self.xp, a.labels.index(k)
        m = xp.max(a.arr, axis=ax, keepdims=True)
        if self.ops.is_jax:
            import jax
            m = jax.lax.stop_gradient(m)
        lse = m + xp.log(xp.sum(xp.exp(a.arr - m), axis=ax, keepdims=True))
        if node.func == "logsumexp":
            return V(xp.squeeze(lse, axis=ax), tuple(l for l in a.labels if l != k))
        if node.func == "log_softmax":
            return V(a.arr - lse, a.labels)
        return V(xp.exp(a.arr - lse), a.labels)

    def var(self, name, rank):
        if name not in self.arrays:
            raise OracleInvalid(f"no array for {name}")
        a = self.arrays[name]
        if not hasattr(a, "ndim"):
            a = self.xp.asarray(float(a))
        if a.ndim != rank:
            raise OracleInvalid(f"{name} has rank {a.ndim}, used with {rank}")
        return a

    # ----------------------------------------------------------------------- R1, R2
    def collect(self, node, coeff, factors):
        """Flatten a product chain: returns the coefficient; appends
        ('raw', arr, labels) / ('delta', i, j) / ('val', V) to factors."""
        if isinstance(node, Neg):
            return self.collect(node.arg, -coeff, factors)
        if isinstance(node, Num):
            return coeff * node.value
        if isinstance(node, Mul):
            for op, item in node.items:
                if op == "*":
                    coeff = self.collect(item, coeff, factors)
                elif isinstance(item, Num):
                    if item.value == 0:
                        raise OracleInvalid("division by zero")
                    coeff = coeff / item.value
                else:
                    v = self.eval(item)
                    factors.append(("val", V(self.xp.power(v.arr, -1.0), v.labels)))
            return coeff
        if isinstance(node, Ref):
            rank = 0 if node.indices is None else len(node.indices)
            factors.append(("raw", self.var(node.name, rank), tuple(node.indices or ())))
            return coeff
        if isinstance(node, Delta):
            factors.append(("delta", node.i, node.j))
            return coeff
        if isinstance(node, MatFn) and node.func == "inv":
            v = self.matfn(node)
            factors.append(("raw", v.arr, v.labels))
            return coeff
        factors.append(("val", self.eval(node)))
        return coeff

    def parts(self, node):
        """(coeff, arrays, label lists, deltas, counts) of a product."""
        factors = []
        coeff = self.collect(node, Fraction(1), factors)
        arrs, lists, deltas = [], [], []
        for f in factors:
            if f[0] == "raw":
                arrs.append(f[1]); lists.append(f[2])
            elif f[0] == "val":
                arrs.append(f[1].arr); lists.append(f[1].labels)
            else:
                deltas.append((f[1], f[2]))
        counts = {}
        for ls in lists + deltas:
            for l in ls:
                counts[l] = counts.get(l, 0) + 1
        return coeff, arrs, lists, deltas, counts

    def product(self, node, out, in_sum=False, parts=None):
        coeff, arrs, lists, deltas, counts = parts or self.parts(node)
        arrs, lists = list(arrs), list(lists)
        if out is None:                         # R1 (+ R5: bound labels stay free)
            free = tuple(sorted(l for l, c in counts.items() if c == 1 or l in self.bound))
        elif in_sum:                            # R7: the listed labels this term carries
            free = tuple(l for l in out if l in counts)
        else:
            for l in out:
                if l not in counts:
                    raise OracleInvalid(f"output index {l} does not occur")
            free = tuple(out)
        # R8: deltas take sizes from the other factors of the product
        sizes = {}
        for a, ls in zip(arrs, lists):
            for l, d in zip(ls, a.shape):
                if sizes.setdefault(l, d) != d:
                    raise OracleInvalid(f"index {l} has two sizes")
        changed = True
        while changed:
            changed = False
            for i, j in deltas:
                si, sj = sizes.get(i), sizes.get(j)
                if si is not None and sj is not None and si != sj:
                    raise OracleInvalid("delta not square")
                if (si is None) != (sj is None):
                    sizes[i] = sizes[j] = si or sj
                    changed = True
        for i, j in deltas:
            if i not in sizes:
                raise OracleUnknownSize(f"delta[{i},{j}]")
            arrs.append(self.xp.eye(sizes[i]))
            lists.append((i, j))
        c = float(coeff)
        if not arrs:
            return V(self.xp.asarray(c), ())
        r = self.ops.einsum(arrs, lists, free)
        return V(r * c if c != 1 else r, free)

    # --------------------------------------------------------------------------- R6
    def combine(self, terms, order=None):
        """terms: list of V (signs applied).  R6 (or R7 with the order given)."""
        sizes = {}
        for t in terms:
            for l, d in zip(t.labels, t.arr.shape):
                if sizes.setdefault(l, d) != d:
                    raise OracleInvalid(f"index {l} has two sizes across terms")
        carriers = [t.labels for t in terms if t.labels]
        if order is not None:
            ref = tuple(l for l in order if l in sizes)
        elif not carriers:
            ref = ()
        elif Rules.SUM_ORDER == "docs":
            same = all(set(c) == set(carriers[0]) for c in carriers)
            ref = carriers[0] if same else tuple(sorted(sizes))
        else:
            ref = carriers[0] if len(carriers[0]) == len(sizes) else tuple(sorted(sizes))
        shape = tuple(sizes[l] for l in ref)
        total = None
        for t in terms:
            a = t.arr
            if t.labels:
                a = self.xp.transpose(a, [t.labels.index(l) for l in ref if l in t.labels])
                a = a[tuple(slice(None) if l in t.labels else None for l in ref)]
            total = a if total is None else total + a
        return V(self.xp.broadcast_to(total, shape) if shape else total, ref)

    def add(self, node):
        terms = []
        for sign, item in node.items:
            v = self.eval(item)
            terms.append(V(-v.arr, v.labels) if sign == "-" else v)
        return self.combine(terms)

    # --------------------------------------------------------------------------- R7
    @staticmethod
    def signed_number(node):
        sign = 1
        while isinstance(node, Neg):
            node, sign = node.arg, -sign
        return sign * node.value if isinstance(node, Num) else None

    @classmethod
    def strip(cls, node, coeff=Fraction(1)):
        """(inner, coeff): through unary minus and pure (signed) numeric factors."""
        while True:
            if isinstance(node, Neg):
                node, coeff = node.arg, -coeff
                continue
            if isinstance(node, Mul):
                nums = [(op, cls.signed_number(m)) for op, m in node.items]
                rest = [(op, m) for (op, m), (_, k) in zip(node.items, nums) if k is None]
                if len(rest) == 1 and rest[0][0] == "*":
                    for op, k in nums:
                        if k is None:
                            continue
                        if op == "/":
                            if k == 0:
                                raise OracleInvalid("division by zero")
                            coeff /= k
                        else:
                            coeff *= k
                    node = rest[0][1]
                    continue
            return node, coeff

    def leaves(self, node, coeff):
        """The terms '->' applies to (R7): [(node, coeff)]."""
        inner, c = self.strip(node, coeff) if Rules.ARROW_PUSH_THROUGH_WRAPPERS else (node, coeff)
        if isinstance(inner, Add):
            res = []
            for sign, item in inner.items:
                res += self.leaves(item, -c if sign == "-" else c)
            return res
        return [(node, coeff)]

    def arrow(self, node):
        L = node.names
        if len(set(L)) != len(L):
            raise OracleInvalid("output index listed twice")
        inner, _ = self.strip(node.arg) if Rules.ARROW_PUSH_THROUGH_WRAPPERS else (node.arg, 1)
        if not isinstance(inner, Add):
            return self.product(node.arg, L)
        leaves = [(n, c, self.parts(n)) for n, c in self.leaves(node.arg, Fraction(1))]
        singles = [{l for l, k in p[4].items() if k == 1} for _, _, p in leaves]
        dropped = set().union(*singles) - set(L)
        for s in singles:
            if dropped - s:
                raise OracleAmbiguous(f"'->' drops {sorted(dropped - s)}, not carried once by a term")
        carried = set().union(*(set(p[4]) for _, _, p in leaves))
        for l in L:
            if l not in carried:
                raise OracleInvalid(f"output index {l} occurs in no term")
        terms = []
        for n, c, p in leaves:
            v = self.product(n, L, in_sum=True, parts=p)
            terms.append(V(v.arr * float(c), v.labels))
        return self.combine(terms, order=L)


def evaluate(text_or_ast, arrays, xp=np) -> V:
    ast = parse(text_or_ast) if isinstance(text_or_ast, str) else text_or_ast
    return Interp(arrays, xp).eval(ast)
