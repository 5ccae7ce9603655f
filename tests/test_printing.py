"""Printing (issue 14, item 4): LaTeX that means the expression under the usual
Einstein reading, ``size(x, k)`` for a size the text could not say before, fresh
index names that are never a variable's name, and readable text under the new rules
(a sum broadcasts its terms by name; a ``sum[a]`` binds ``a`` throughout its body).

The LaTeX is checked two ways: against expected strings for a table of cases, and by
:func:`read_latex`, a small reader written here independently of einderiv, that
evaluates the printed LaTeX with numpy by the reading docs/language.md states:

* in a product (juxtaposed factors, numerator and denominator of a ``\\frac``
  together) an index that occurs twice or more is summed, once is free;
* ``\\sum_{a}`` sums ``a`` over the rest of its product, and ``a`` is free
  throughout that body; ``\\left[ ... \\right]_{ij}`` is the tensor with free indices
  ``i, j``, which are free throughout its inside (nothing is summed over them there);
* a sum broadcasts its terms by name; ``\\mathbf{1}_{i}`` is a ones vector,
  ``\\delta_{ij}`` the identity, ``\\operatorname{size}(x, k)`` the length of axis k of x.
"""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

import einderiv
from einderiv import EinderivError
from fd import assert_close_to_fd, central_diff

# ============================================================ an independent reader

_TOKEN = re.compile(r"\\left[(\[|]|\\right[)\]|]|\\[A-Za-z]+|\\_|[A-Za-z]|\d+|[{}_^+\-,()]|\s+")


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        assert m, f"checker cannot read {text[pos:pos + 20]!r} in {text!r}"
        if not m.group(0).isspace():
            out.append(m.group(0))
        pos = m.end()
    return out


_FUNCS = {r"\exp": np.exp, r"\log": np.log, r"\sin": np.sin, r"\cos": np.cos,
          r"\tan": np.tan, r"\tanh": np.tanh, r"\sigma": lambda x: 1 / (1 + np.exp(-x))}
_OPERATOR_FUNCS = {"softplus": lambda x: np.logaddexp(0, x), "relu": lambda x: np.maximum(x, 0),
                   "step": lambda x: np.heaviside(x, 0.0), "sign": np.sign}
_GREEK_NAMES = {"alpha", "beta", "gamma", "theta", "lambda", "mu"}


def _lse_along(x: np.ndarray, labs: list, axis: str) -> tuple[np.ndarray, list]:
    n = labs.index(axis)
    m = np.max(x, axis=n, keepdims=True)
    out = np.squeeze(m, n) + np.log(np.sum(np.exp(x - m), axis=n))
    return out, [i for i in labs if i != axis]


def _log_softmax_along(x: np.ndarray, labs: list, axis: str) -> tuple[np.ndarray, list]:
    lse, _ = _lse_along(x, labs, axis)
    return x - np.expand_dims(lse, labs.index(axis)), labs


#: \operatorname{word}_{k}(u): issue 15's words over the axis k of u.
_AXIS_WORDS = {
    "logsumexp": _lse_along,
    "log\\_softmax": _log_softmax_along,
    "softmax": lambda x, labs, k: (np.exp(_log_softmax_along(x, labs, k)[0]), labs),
}


class _Reader:
    """Reads the LaTeX subset einderiv prints into ``(array, labels)`` values."""

    def __init__(self, text: str, arrays: dict, sizes: dict):
        self.toks = _tokens(text)
        self.k = 0
        self.arrays = arrays
        self.sizes = sizes

    @property
    def tok(self) -> str | None:
        return self.toks[self.k] if self.k < len(self.toks) else None

    def take(self, want: str | None = None) -> str:
        tok = self.tok
        assert tok is not None and (want is None or tok == want), (want, tok, self.toks[self.k:])
        self.k += 1
        return tok

    def braced_text(self) -> str:
        self.take("{")
        depth, parts = 1, []
        while True:
            tok = self.take()
            depth += tok == "{"
            depth -= tok == "}"
            if depth == 0:
                return "".join(parts)
            parts.append(tok)

    def bracket_labels(self) -> list[str]:
        """The labels after the ``\\right]`` that closes the bracket just opened."""
        depth, k = 1, self.k
        while depth:
            depth += (self.toks[k] == r"\left[") - (self.toks[k] == r"\right]")
            k += 1
        here, self.k = self.k, k
        try:
            return self.labels()
        finally:
            self.k = here

    def name(self) -> str:
        tok = self.take()
        if tok == r"\mathit":
            return self.braced_text().replace("\\_", "_")
        if tok.startswith("\\"):
            assert tok[1:] in _GREEK_NAMES, tok
            return tok[1:]
        return tok

    def labels(self) -> list[str]:
        self.take("_")
        text = self.braced_text()
        if "," in text:
            return [s.replace(r"\mathit{", "").replace("}", "") for s in text.split(",")]
        return list(text)

    # expr := ['-'] product (('+' | '-') product)*
    def expr(self, fixed: frozenset) -> tuple[np.ndarray, list[str]]:
        terms = []
        sign = 1.0
        if self.tok == "-":
            self.take()
            sign = -1.0
        while True:
            arr, labs = self.product(fixed)
            terms.append((sign * arr, labs))
            if self.tok in ("+", "-"):
                sign = 1.0 if self.take() == "+" else -1.0
                continue
            break
        union: list[str] = []
        for _, labs in terms:
            union += [i for i in labs if i not in union]
        size = {i: np.shape(arr)[labs.index(i)] for arr, labs in terms for i in labs}
        total = 0.0
        for arr, labs in terms:  # broadcasting by name
            arr = np.transpose(arr, [labs.index(i) for i in union if i in labs]) if labs else arr
            shape = [size[i] if i in labs else 1 for i in union]
            total = total + np.reshape(arr, shape)
        return np.broadcast_to(total, [size[i] for i in union]) * 1.0, union

    def product(self, fixed: frozenset) -> tuple[np.ndarray, list[str]]:
        factors: list[tuple[np.ndarray, list[str]]] = []
        while self.tok is not None and self.tok not in ("+", "-", "}", r"\right)", r"\right]",
                                                        r"\right|"):
            if self.tok == r"\sum":
                self.take()
                over = self.labels()
                body, labs = self.product(fixed | frozenset(over))
                keep = [i for i in labs if i not in over]
                factors.append((np.einsum(body, list(range(len(labs))),
                                          [labs.index(i) for i in keep]), keep))
                break
            if self.tok == r"\frac":
                self.take()
                self.take("{")
                factors += self.factors_until("}", fixed)
                self.take("}")
                self.take("{")
                factors += [(1.0 / a, labs) for a, labs in self.factors_until("}", fixed)]
                self.take("}")
                continue
            factors.append(self.power(fixed))
        return self.contract(factors, fixed)

    def factors_until(self, end: str, fixed: frozenset) -> list:
        out = []
        while self.tok != end:
            out.append(self.power(fixed))
        return out

    def contract(self, factors: list, fixed: frozenset) -> tuple[np.ndarray, list[str]]:
        counts: dict[str, int] = {}
        for _, labs in factors:
            for i in labs:
                counts[i] = counts.get(i, 0) + 1
        free = [i for i in counts if counts[i] == 1 or i in fixed]
        letters = {i: n for n, i in enumerate(counts)}
        operands = []
        for arr, labs in factors:
            operands += [np.asarray(arr, dtype=float), [letters[i] for i in labs]]
        if not factors:
            return np.array(1.0), []
        return np.einsum(*operands, [letters[i] for i in free]), free

    def power(self, fixed: frozenset) -> tuple[np.ndarray, list[str]]:
        arr, labs = self.atom(fixed)
        if self.tok == "^":
            self.take()
            self.take("{")
            exponent, elabs = self.expr(fixed)
            self.take("}")
            assert not elabs
            arr = np.asarray(arr, dtype=float) ** float(exponent)
            labs = list(dict.fromkeys(labs))  # a power of a diagonal: its entries
        return arr, labs

    def grouped(self, fixed: frozenset, close: str) -> tuple[np.ndarray, list[str]]:
        value = self.expr(fixed)
        self.take(close)
        return value

    def atom(self, fixed: frozenset) -> tuple[np.ndarray, list[str]]:
        tok = self.tok
        if tok.isdigit():
            self.take()
            return np.array(float(tok)), []
        if tok == r"\left(":
            self.take()
            return self.grouped(fixed, r"\right)")
        if tok == r"\left|":
            self.take()
            arr, labs = self.grouped(fixed, r"\right|")
            return np.abs(arr), labs
        if tok == r"\left[":
            self.take()
            out = self.bracket_labels()  # free, so not summed, throughout the inside
            arr, labs = self.expr(fixed | frozenset(out))
            self.take(r"\right]")
            assert self.labels() == out
            assert set(labs) == set(out), (labs, out)
            return np.transpose(arr, [labs.index(i) for i in out]), out
        if tok == r"\frac":
            arr, labs = self.product(fixed)
            return arr, labs
        if tok in _FUNCS and self.toks[self.k + 1] == r"\left(":
            self.take()
            self.take(r"\left(")
            arr, labs = self.grouped(fixed, r"\right)")
            return _FUNCS[tok](arr), labs
        if tok == r"\operatorname":
            self.take()
            op = self.braced_text()
            if op == "size":
                self.take("(")
                name = self.name()
                self.take(",")
                axis = int(self.take())
                self.take(")")
                return np.array(float(np.shape(self.arrays[name])[axis])), []
            if op in _AXIS_WORDS:  # \operatorname{softmax}_{k}(u): over k, free inside
                (axis,) = self.labels()
                self.take(r"\left(")
                arr, labs = self.grouped(fixed | {axis}, r"\right)")
                return _AXIS_WORDS[op](np.asarray(arr, dtype=float), labs, axis)
            self.take(r"\left(")
            arr, labs = self.grouped(fixed, r"\right)")
            return _OPERATOR_FUNCS[op](arr), labs
        if tok == r"\det":  # a closed scope: nothing bound around reaches in
            self.take()
            self.take(r"\left(")
            arr, labs = self.grouped(frozenset(), r"\right)")
            return np.array(np.linalg.det(arr)), []
        if tok == r"\sqrt":
            self.take()
            self.take("{")
            arr, labs = self.expr(fixed)
            self.take("}")
            return np.sqrt(arr), labs
        if tok == r"\mathbf":
            self.take()
            assert self.braced_text() == "1"
            (i,) = self.labels()
            return np.ones(self.sizes[i]), [i]
        if tok == r"\delta":
            self.take()
            i, j = self.labels()
            return np.eye(self.sizes[i]), [i, j]
        name = self.name()
        labs = self.labels() if self.tok == "_" else []
        return np.asarray(self.arrays[name], dtype=float), labs


def read_latex(text: str, arrays: dict, sizes: dict) -> tuple[np.ndarray, list[str]]:
    """The value of the LaTeX ``text`` and its free indices (see the module docstring)."""
    reader = _Reader(text, arrays, sizes)
    arr, labs = reader.expr(frozenset())
    assert reader.tok is None, reader.toks[reader.k:]
    return arr, labs


def _check_latex(e: einderiv.Expr, arrays: dict, sizes: dict) -> str:
    tex = e.to_latex()
    got, labs = read_latex(tex, arrays, sizes)
    assert sorted(labs) == sorted(e.free), (tex, labs, e.free)
    got = np.transpose(got, [labs.index(i) for i in e.free]) if labs else got
    np.testing.assert_allclose(got, e.evaluate(**arrays), rtol=1e-10, atol=1e-12,
                               err_msg=f"LaTeX {tex!r} of {e}")
    return tex


# ================================================================= data, cases

SIZES = {"a": 4, "b": 3, "c": 5, "d": 3, "e": 5, "f": 4, "h": 3, "i": 4, "j": 3, "k": 5,
         "n": 5, "p": 4, "q": 3, "g": 3}


def _arrays(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "x": rng.normal(size=4), "w": rng.normal(size=4), "y": rng.normal(size=4),
        "u": rng.normal(size=3), "v": rng.uniform(0.5, 1.5, size=3), "s": 0.7, "n": 2.5,
        "A": rng.normal(size=(4, 3)), "M": rng.normal(size=(4, 4)), "X": rng.normal(size=(4, 3)),
        "B": rng.normal(size=(3, 5)), "W1": rng.normal(size=(3, 4)),
        "X1": rng.normal(size=(4, 5)), "b1": rng.normal(size=3), "z": rng.normal(size=5),
    }


# (text, simplify): each printed to LaTeX and read back by the reader above.
LATEX_CASES = [
    ("x[i]*delta[a,i] -> [a,i]", False),
    ("x[i]*delta[a,i] -> [a,i]", True),
    ("x[i]*w[i] -> [i]", False),
    ("x[i]*w[i] -> [i]", True),
    ("x[i]*w[i]", True),
    ("x[i]*w[i]*u[j] -> [i,j]", True),
    ("M[i,i] -> [i]", True),
    ("M[i,i]", True),
    ("M[i,i]*x[i] -> [i]", True),
    ("x[i]*u[j] -> [i,j]", True),
    ("A[i,j] -> [j,i]", True),
    ("W1[h,i]*X1[i,n] + b1[h]", True),
    ("x[i] - u[j]", True),
    ("sum[i](x[i])*u[j] + u[j]", False),
    ("sum[i](x[i])*u[j] + u[j]", True),
    ("exp(x[i]*w[i] -> [i])*y[i]", True),
    ("(x[i]*w[i] -> [i])**2", True),
    ("x[i]/w[i]", True),
    ("x[i]/w[i] -> [i]", True),
    ("2*x[i]/n", True),
    ("sum[a](tanh(A[a,b]*u[b]) - y[a]*A[a,c]*u[c])", True),
    ("sum[a](x[a]*w[a]*exp(y[a]))", True),
    ("sum[i](x[i] + s)/size(x, 0)", True),
    ("size(x, 0) + size(B, 1)", True),
    ("x[i]*sum[i](y[i])", False),
    ("det(A[i,k]*B[k,l]*B[m,l]*A[j,m] -> [i,j])", True),
]

# (expression, variable): derivatives printed to LaTeX and read back.
LATEX_DERIVATIVES = [
    ("tanh(z[k])", "z"),
    ("x[i]*M[i,j]*x[j]", "x"),
    ("sum[a](softplus(X[a,b]*u[b]) - y[a]*X[a,c]*u[c])", "u"),
    ("sum[i](x[i] + s)", "s"),
    ("sum[i](x[i] + s) + sum[k](z[k] + s)", "s"),
    ("W1[h,i]*X1[i,n] + b1[h]", "b1"),
    ("sum[a,j](log(v[j])/2 + (X[a,j] - A[a,j])**2)", "v"),
]


@pytest.mark.parametrize("text, simplify", LATEX_CASES)
def test_latex_reads_back_to_the_value(text: str, simplify: bool) -> None:
    e = einderiv.parse(text, simplify=simplify)
    _check_latex(e, _arrays(1), SIZES)


@pytest.mark.parametrize("text, wrt", LATEX_DERIVATIVES)
def test_latex_of_derivatives_reads_back_to_the_value(text: str, wrt: str) -> None:
    d = einderiv.diff(text, wrt)
    arrays = _arrays(2)
    sizes = dict(SIZES)
    for i, (name, axis) in zip(d.free, [(wrt, k) for k in range(len(d.free))]):
        sizes[i] = np.shape(arrays[name])[axis] if np.ndim(arrays[name]) > axis else sizes.get(i)
    tex = _check_latex(d, arrays, sizes)
    # and the value read from the LaTeX is the derivative: finite differences
    f = einderiv.parse(text)
    value, labs = read_latex(tex, arrays, sizes)
    value = np.transpose(value, [labs.index(i) for i in d.free]) if labs else value
    assert_close_to_fd(value, central_diff(lambda a: f.evaluate(**a), arrays, wrt))


def test_reader_is_not_fooled_by_the_old_printing() -> None:
    """The reader sums what the Einstein reading sums: the LaTeX printed before issue
    14 for a Hadamard product (``x_{i} w_{i}``) reads as the dot product, not the value."""
    a = _arrays(3)
    value, labs = read_latex(r"x_{i} w_{i}", a, SIZES)
    assert labs == [] and np.isclose(value, a["x"] @ a["w"])
    value, labs = read_latex(r"\left[x_{i} w_{i}\right]_{i}", a, SIZES)
    np.testing.assert_allclose(value, a["x"] * a["w"])
    value, labs = read_latex(r"\sum_{a} x_{a} y_{b}", {"x": a["x"], "y": a["u"]}, SIZES)
    np.testing.assert_allclose(value, a["x"].sum() * a["u"])


EXPECTED_LATEX = [
    ("x[i]*delta[a,i] -> [a,i]", r"\left[x_{i} \delta_{ai}\right]_{ai}"),
    ("x[i]*w[i] -> [i]", r"\left[w_{i} x_{i}\right]_{i}"),
    ("M[i,i] -> [i]", r"\left[M_{ii}\right]_{i}"),
    ("M[i,i]", r"M_{aa}"),
    ("x[i]*w[i]", r"w_{a} x_{a}"),
    ("W1[h,i]*X[i,n] + b1[h]", r"\mathit{W1}_{ha} X_{an} + \mathit{b1}_{h}"),
    ("sum[a](x[a])*y[b]", r"\sum_{a} x_{a} y_{b}"),
    ("(1 - tanh(s)**2)*delta[i,i] -> [i]",
     r"\left(1 - \tanh\left(s\right)^{2}\right) \mathbf{1}_{i}"),
    ("size(x, 0)/n", r"\frac{\operatorname{size}(x, 0)}{n}"),
    # a term without a is summed over a too: the size of a times y[d]
    ("sum[a](X[a,d]*sigmoid(X[a,b]*w[b]) - y[d])",
     r"X_{ad} \sigma\left(X_{ab} w_{b}\right) - y_{d} \operatorname{size}(X, 0)"),
]


@pytest.mark.parametrize("text, tex", EXPECTED_LATEX)
def test_latex_expected_strings(text: str, tex: str) -> None:
    assert einderiv.parse(text).to_latex() == tex


def test_latex_of_old_misreadings_now_says_the_output() -> None:
    """Before issue 14: ``x_{i} \\delta_{ai}`` and ``x_{i} w_{i}`` (summed by a reader)."""
    assert einderiv.parse("x[i]*delta[a,i] -> [a,i]", simplify=False).to_latex() == \
        r"\left[x_{i} \delta_{ai}\right]_{ai}"
    assert einderiv.parse("x[i]*w[i] -> [i]", simplify=False).to_latex() == \
        r"\left[x_{i} w_{i}\right]_{i}"


# ======================================================================= size(x, k)


def test_size_parses_and_evaluates_as_the_axis_length() -> None:
    x, B = np.arange(4.0), np.ones((3, 5))
    e = einderiv.parse("x[i]/size(x, 0)")
    assert str(e) == "x[i]/size(x, 0)"
    np.testing.assert_allclose(e.evaluate(x=x), x / 4)
    e = einderiv.parse("size(B, 1) - size(B, 0)")
    assert float(e.evaluate(B=B)) == 2.0  # the size of another variable: B is needed
    assert sorted(e.compile().program.inputs) == ["B"]
    with pytest.raises(einderiv.EvaluationError, match="missing value for 'B'"):
        e.evaluate(x=x)


def test_sizes_of_different_axes_are_not_collected() -> None:
    """``size(x, 0) + size(z, 0)`` is two different numbers (before: ``2*delta[a,a]``,
    which evaluated to twice the first size)."""
    x, z = np.ones(4), np.ones(5)
    d = einderiv.diff("sum[i](x[i] + s) + sum[k](z[k] + s)", "s")
    assert str(d) == "size(x, 0) + size(z, 0)"
    assert float(d.evaluate(x=x, z=z, s=0.0)) == 9.0
    e = einderiv.parse("size(x, 0) + size(z, 0) - size(x, 0)")
    assert str(e) == "size(z, 0)"
    assert float(e.evaluate(x=x, z=z)) == 5.0


@pytest.mark.parametrize("text, wrt, printed", [
    ("sum[a,j](log(v[j])/2 + (Y[a,j] - M[a,j])**2)", "v", "1/2*size(M, 0)/v[e]"),
    ("sum[i](x[i] + s)", "s", "size(x, 0)"),
])
def test_no_summed_delta_in_results(text: str, wrt: str, printed: str) -> None:
    rng = np.random.default_rng(4)
    v = {"v": rng.uniform(0.5, 1.5, 3), "Y": rng.normal(size=(4, 3)),
         "M": rng.normal(size=(4, 3)), "x": rng.normal(size=5), "s": 0.3}
    d = einderiv.diff(text, wrt)
    assert str(d) == printed and "delta" not in str(d)
    back = einderiv.parse(str(d))
    assert back == d
    want = d.evaluate(**v)
    np.testing.assert_allclose(back.evaluate(**v), want)
    if wrt == "v":  # the gradient n / (2 v): against numpy
        np.testing.assert_allclose(want, 4 / (2 * v["v"]))
    else:
        assert float(want) == 5.0


def test_size_in_generated_code() -> None:
    src = einderiv.parse("x[i]/size(x, 0) + size(B, 1)").to_python("f")
    namespace: dict = {}
    exec(src, namespace)
    x, B = np.arange(4.0), np.ones((3, 5))
    np.testing.assert_allclose(namespace["f"](B=B, x=x), x / 4 + 5)


@pytest.mark.parametrize("text, message, caret", [
    ("size(x, 1)*x[i]", "'x' has 1 axis", 8),
    ("x*size(x, 0)", "'x' is a scalar here", 10),
    ("size(x)", "expected ','", 6),
    ("size(x, -1)", "non-negative integer", 8),
    ("size(x, 1.5)", "non-negative integer", 8),
    ("size[i]*x[i]", "'size' is reserved", 0),
    ("size(x, 0)[i]", "cannot be indexed", 10),
    ("x[size]", "reserved", 2),
])
def test_size_errors(text: str, message: str, caret: int) -> None:
    with pytest.raises(EinderivError, match=re.escape(message)) as info:
        einderiv.parse(text)
    lines = str(info.value).splitlines()
    assert lines[-1].index("^") == caret + 2, str(info.value)


def test_size_axis_beyond_a_shape() -> None:
    with pytest.raises(einderiv.ShapeError, match="without an axis 1"):
        einderiv.parse("size(x, 1)", shapes={"x": (3,)})
    e = einderiv.parse("size(x, 1)")
    with pytest.raises(einderiv.EvaluationError, match="without an axis 1"):
        e.evaluate(x=np.ones(3))


# ================================================================== fresh names


@pytest.mark.parametrize("text, wrt", [
    ("a[i]*x[i]", None), ("b[i]*c[i]", None), ("x[i]*a[j]*b[j]", None),
    ("W[j,i]*a[j]", "W"), ("a*x[i]*y[i]", "x"), ("x[i]*x[i]", "x"),
    ("b[i]*c[i,j]*d[j]", "c"), ("e[k]*M[k,l]*e[l]", "e"),
])
def test_fresh_index_names_are_never_variable_names(text: str, wrt: str | None) -> None:
    e = einderiv.parse(text) if wrt is None else einderiv.diff(text, wrt)
    from einderiv.core.ir import all_indices
    names = all_indices(e)
    assert not names & set(e.variables), (str(e), names & set(e.variables))
    assert einderiv.parse(str(e)) == e
    assert all(len(i) <= 2 for i in names)


def test_fresh_names_are_deterministic_and_short() -> None:
    assert str(einderiv.parse("a[i]*x[i]")) == "a[b]*x[b]"
    assert str(einderiv.parse("b[i]*x[i]")) == "b[a]*x[a]"
    assert str(einderiv.diff("W[j,i]*a[j]", "W")) == "a[c]*delta[d,i]"
    rng = np.random.default_rng(5)
    W, a = rng.normal(size=(3, 4)), rng.normal(size=3)
    np.testing.assert_allclose(einderiv.diff("W[j,i]*a[j]", "W").evaluate(a=a, W=W),
                               np.einsum("c,di->cdi", a, np.eye(4)))


# ========================================================== text under the new rules


@pytest.mark.parametrize("text, printed", [
    ("W1[h,i]*X[i,n] + b1[h]", "W1[h,a]*X[a,n] + b1[h]"),
    ("x[i] - y[j]", "x[i] - y[j]"),
    ("x[i]*y[j] + z[j] -> [j,i]", "(x[i]*y[j] + z[j]) -> [j,i]"),
    ("sum[a](X[a,d]*sigmoid(X[a,b]*w[b]) - y[d])",
     "X[a,d]*sigmoid(X[a,b]*w[b]) - y[d]*size(X, 0)"),
    # every term carries a: one sum per term (the matrix printer then pulls X^T out)
    ("sum[a](X[a,d]*sigmoid(X[a,b]*w[b]) - X[a,d]*y[a])",
     "X[a,d]*sigmoid(X[a,b]*w[b]) - X[c,d]*y[c]"),
    ("exp(W1[h,i]*X[i,n] + b1[h])*y[n]", "y[a]*exp(W1[h,b]*X[b,a] + b1[h])"),
])
def test_text_is_readable_and_reads_back(text: str, printed: str) -> None:
    e = einderiv.parse(text)
    assert str(e) == printed
    assert einderiv.parse(printed) == e


def test_logistic_gradient_prints_without_arrows() -> None:
    d = einderiv.diff("sum[a](softplus(X[a,b]*w[b]) - y[a]*X[a,c]*w[c])", "w")
    assert str(d) == "X[a,e]*sigmoid(X[a,b]*w[b]) - X[c,e]*y[c]"
    assert str(d.to_matrix()) == "X^T (sigmoid(X w) - y)"
    assert einderiv.parse(str(d)) == d
    rng = np.random.default_rng(6)
    X, w, y = rng.normal(size=(5, 3)), rng.normal(size=3), rng.uniform(size=5)
    np.testing.assert_allclose(d.evaluate(X=X, w=w, y=y),
                               X.T @ (1 / (1 + np.exp(-X @ w)) - y))


def test_bias_add_gradient_values() -> None:
    rng = np.random.default_rng(7)
    W1, X, b1 = rng.normal(size=(3, 4)), rng.normal(size=(4, 5)), rng.normal(size=3)
    e = einderiv.parse("W1[h,i]*X[i,n] + b1[h]")
    back = einderiv.parse(str(e))
    np.testing.assert_allclose(back.evaluate(W1=W1, X=X, b1=b1), W1 @ X + b1[:, None])


# ================================================================== the command line


def _cli(*args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "einderiv", *args], capture_output=True,
                         text=True, check=True)
    return out.stdout


def test_cli_latex_line_pastes_into_a_document() -> None:
    out = _cli("diff", "sum[a](softplus(X[a,b]*w[b]) - y[a]*X[a,c]*w[c])", "--wrt", "w",
               "--latex").splitlines()
    line = next(l for l in out if l.startswith(r"\frac{\partial f}"))
    left, right = line.split(" = ")
    assert left == r"\frac{\partial f}{\partial w_{e}}"
    rng = np.random.default_rng(8)
    arrays = {"X": rng.normal(size=(5, 3)), "w": rng.normal(size=3), "y": rng.uniform(size=5)}
    value, labs = read_latex(right, arrays, {"a": 5, "b": 3, "c": 5, "d": 3, "e": 3})
    X, w, y = arrays["X"], arrays["w"], arrays["y"]
    np.testing.assert_allclose(value, X.T @ (1 / (1 + np.exp(-X @ w)) - y))
    assert all(l.startswith(("f = ", r"\frac", "%")) for l in out), out


@pytest.mark.slow
def test_cli_latex_scalar_and_second_order() -> None:
    out = _cli("diff", "s**3", "--wrt", "s", "--order", "2", "--latex")
    assert r"\frac{\partial^2 f}{\partial s^{2}} = 6 s" in out
    out = _cli("diff", "x[i]*M[i,j]*x[j]", "--wrt", "x", "--order", "2", "--latex")
    assert r"\frac{\partial^2 f}{\partial x_{d} \partial x_{c}} = " in out
    out = _cli("diff", "W[i,j]*x[j]", "--wrt", "x", "--latex")
    assert r"\frac{\partial f_{i}}{\partial x_{b}} = W_{ib}" in out
    out = _cli("diff", "sum[i](x[i] + s)", "--wrt", "s", "--latex")
    assert r"\frac{\partial f}{\partial s} = \operatorname{size}(x, 0)" in out
