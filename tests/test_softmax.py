"""softmax[k](EXPR), log_softmax[k](EXPR) and logsumexp[k](EXPR) as words of the
language (issue 15): values against max-shifted numpy references (large inputs
included), derivatives against finite differences (tests/fd.py), printed forms in
index, LaTeX and matrix notation, parse_matrix, code export, and errors with carets.

Axis sizes are distinct (a: 4, b: 3, k: 5), so a mix-up of axes shows as a shape error.
"""

from __future__ import annotations

import numpy as np
import pytest

import einderiv
from einderiv import IndexMismatchError, ParseError, ShapeError
from fd import assert_close_to_fd, central_diff, central_hessian

# ------------------------------------------------------------- numpy references


def _lse(x: np.ndarray, axis: int) -> np.ndarray:
    m = np.max(x, axis=axis, keepdims=True)
    return np.squeeze(m, axis) + np.log(np.sum(np.exp(x - m), axis=axis))


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    return np.exp(x - np.expand_dims(_lse(x, axis), axis))


def _log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    return x - np.expand_dims(_lse(x, axis), axis)


def _arrays(seed: int = 0, scale: float = 1.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"z": scale * rng.normal(size=5), "Z": scale * rng.normal(size=(4, 5)),
            "A": rng.normal(size=(5, 3)), "x": scale * rng.normal(size=3),
            "X": rng.normal(size=(4, 3)), "W": scale * rng.normal(size=(3, 5)),
            "Y": np.eye(5)[rng.integers(0, 5, size=4)], "y": rng.random(5),
            "w": rng.normal(size=5)}


#: (text, reference value as a function of the arrays); free indices in text order.
VALUES = [
    ("softmax[k](z[k])", lambda a: _softmax(a["z"], 0)),
    ("log_softmax[k](z[k])", lambda a: _log_softmax(a["z"], 0)),
    ("logsumexp[k](z[k])", lambda a: _lse(a["z"], 0)),
    ("softmax[k](Z[a,k])", lambda a: _softmax(a["Z"], 1)),
    ("softmax[a](Z[a,k])", lambda a: _softmax(a["Z"], 0)),
    ("log_softmax[k](Z[a,k])", lambda a: _log_softmax(a["Z"], 1)),
    ("logsumexp[k](Z[a,k])", lambda a: _lse(a["Z"], 1)),
    ("logsumexp[a](Z[a,k])", lambda a: _lse(a["Z"], 0)),
    ("logsumexp[j](A[j,i]*x[i])", lambda a: _lse(a["A"] @ a["x"], 0)),
    ("softmax[k](X[a,b]*W[b,k])", lambda a: _softmax(a["X"] @ a["W"], 1)),
    ("logsumexp[k](z[k]*w[k])", lambda a: _lse(a["z"] * a["w"], 0)),  # k bound inside
    ("-sum[a,k](Y[a,k]*log_softmax[k](X[a,b]*W[b,k]))",
     lambda a: -np.sum(a["Y"] * _log_softmax(a["X"] @ a["W"], 1))),
    ("sum[a](Y[a,k]*softmax[k](Z[a,k]))", lambda a: np.sum(a["Y"] * _softmax(a["Z"], 1))),
]


@pytest.mark.parametrize("scale", [1.0, 1000.0])
@pytest.mark.parametrize("text, ref", VALUES, ids=[t for t, _ in VALUES])
def test_values_match_max_shifted_numpy(text, ref, scale):
    a = _arrays(1, scale)
    got = einderiv.parse(text).evaluate(**a)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, ref(a), rtol=1e-10, atol=1e-10 * scale)


@pytest.mark.parametrize("text, ref", VALUES, ids=[t for t, _ in VALUES])
def test_exported_code_equals_evaluate(text, ref):
    e = einderiv.parse(text)
    a = _arrays(2, 1000.0)
    namespace: dict = {}
    exec(e.to_python("f"), namespace)
    got = namespace["f"](**{n: a[n] for n in sorted(e.variables)})
    np.testing.assert_allclose(got, e.evaluate(**a), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(got, ref(a), rtol=1e-10, atol=1e-7)


def test_words_are_their_expansions():
    pairs = [("softmax[k](z[k])", "exp(z[k])/sum[j](exp(z[j]))"),
             ("logsumexp[k](z[k])", "log(sum[j](exp(z[j])))"),
             ("log_softmax[k](z[k])", "z[k] - log(sum[j](exp(z[j])))"),
             ("softmax[k](Z[a,k])", "exp(Z[a,k])/sum[j](exp(Z[a,j])) -> [a,k]"),
             ("logsumexp[k](W[b,k]*X[a,b])", "log(sum[k](exp(X[a,b]*W[b,k])))")]
    for word, by_hand in pairs:
        assert einderiv.parse(word) == einderiv.parse(by_hand), word


# ------------------------------------------------------------------ derivatives

GRADS = [
    ("softmax[k](z[k])", "z"),
    ("log_softmax[k](z[k])", "z"),
    ("logsumexp[k](z[k])", "z"),
    ("softmax[k](Z[a,k])", "Z"),
    ("logsumexp[a](Z[a,k])", "Z"),
    ("logsumexp[j](A[j,i]*x[i])", "x"),
    ("-sum[a,k](Y[a,k]*log_softmax[k](X[a,b]*W[b,k]))", "W"),
    ("-sum[a,k](Y[a,k]*log_softmax[k](X[a,b]*W[b,k]))", "X"),
    ("sum[k](y[k]*softmax[k](W[b,k]*x[b]))", "W"),
]


@pytest.mark.parametrize("text, wrt", GRADS, ids=[f"{t} d{w}" for t, w in GRADS])
def test_gradients_match_finite_differences(text, wrt):
    e = einderiv.parse(text)
    a = _arrays(3)
    d = einderiv.diff(e, wrt)
    numeric = central_diff(lambda v: e.evaluate(**v), a, wrt)
    assert_close_to_fd(d.evaluate(**a), numeric)


@pytest.mark.parametrize("text, wrt", [("logsumexp[k](z[k])", "z"),
                                       ("logsumexp[j](A[j,i]*x[i])", "x"),
                                       ("-sum[k](y[k]*log_softmax[k](z[k]))", "z"),
                                       ("sum[a](logsumexp[k](Z[a,k]))", "Z")])
def test_hessians_match_finite_differences(text, wrt):
    e = einderiv.parse(text)
    a = _arrays(4)
    h = einderiv.diff(einderiv.diff(e, wrt), wrt)
    numeric = central_hessian(lambda v: e.evaluate(**v), a, wrt)
    assert_close_to_fd(h.evaluate(**a), numeric, rtol=1e-4)


def test_derivatives_stay_finite_for_large_inputs():
    a = _arrays(5, 1000.0)
    for text, wrt in GRADS:
        d = einderiv.diff(text, wrt)
        assert np.all(np.isfinite(d.evaluate(**a))), text
    h = einderiv.diff(einderiv.diff("logsumexp[k](z[k])", "z"), "z")
    p = _softmax(a["z"], 0)
    np.testing.assert_allclose(h.evaluate(**a), np.diag(p) - np.outer(p, p), atol=1e-12)


# --------------------------------------------------------------------- printing

TEXT = [
    ("exp(z[k])/sum[j](exp(z[j]))", "softmax[k](z[k])"),
    ("log(sum[j](exp(z[j])))", "logsumexp[a](z[a])"),
    ("z[k] - log(sum[j](exp(z[j])))", "log_softmax[k](z[k])"),
    ("softmax[k](Z[a,k])", "softmax[k](Z[a,k])"),
    ("log_softmax[k](X[a,b]*W[b,k] + c[k])", "log_softmax[k](W[d,k]*X[a,d] + c[k])"),
    ("softmax[k](A[k,i]*x[i])*y[k]", "y[a]*softmax[a](A[a,b]*x[b])"),
]


@pytest.mark.parametrize("text, printed", TEXT)
def test_text_prints_the_words_and_reads_back(text, printed):
    e = einderiv.parse(text)
    assert str(e) == printed
    assert einderiv.parse(str(e)) == e


DERIVATIVES_TEXT = [
    ("logsumexp[k](z[k])", "z", "softmax[b](z[b])"),
    ("log_softmax[k](z[k])", "z", "delta[b,k] - softmax[b](z[b])"),
    ("softmax[k](z[k])", "z",
     "(delta[b,k]*softmax[k](z[k]) -> [b,k]) - softmax[b](z[b])*softmax[k](z[k])"),
]


@pytest.mark.parametrize("text, wrt, printed", DERIVATIVES_TEXT)
def test_derivatives_print_with_the_words(text, wrt, printed):
    d = einderiv.diff(text, wrt)
    assert str(d) == printed
    assert einderiv.parse(str(d)) == d


@pytest.mark.parametrize("text, wrt", GRADS + [(t, None) for t, _ in VALUES])
def test_printed_text_reads_back_equal(text, wrt):
    e = einderiv.parse(text)
    if wrt:
        e = einderiv.diff(e, wrt)
    assert einderiv.parse(str(e)) == e


def test_latex():
    assert einderiv.parse("softmax[k](Z[a,k])").to_latex() == \
        r"\operatorname{softmax}_{k}\left(Z_{ak}\right)"
    assert einderiv.parse("log_softmax[k](z[k])").to_latex() == \
        r"\operatorname{log\_softmax}_{k}\left(z_{k}\right)"
    assert einderiv.parse("log(sum[j](exp(A[j,i]*x[i])))").to_latex() == \
        r"\operatorname{logsumexp}_{a}\left(A_{ab} x_{b}\right)"


MATRIX = [
    ("softmax[k](z[k])", None, "softmax(z)"),
    ("exp(z[k])/sum[j](exp(z[j]))", None, "softmax(z)"),
    ("log(sum[j](exp(z[j])))", None, "logsumexp(z)"),
    ("log_softmax[k](z[k])", None, "log_softmax(z)"),
    ("log(sum[j](exp(A[j,i]*x[i])))", None, "logsumexp(A x)"),
    ("softmax[k](Z[a,k])", None, "softmax_rows(Z)"),
    ("softmax[a](Z[a,k])", None, "softmax_cols(Z)"),
    ("log_softmax[k](Z[a,k])", None, "log_softmax_rows(Z)"),
    ("logsumexp[k](Z[a,k])", None, "logsumexp_rows(Z)"),
    ("log(sum[j](exp(A[j,i]*x[i])))", "x", "A^T softmax(A x)"),
    ("logsumexp[k](z[k])", "z", "softmax(z)"),
    ("softmax[k](z[k])", "z", "diag(softmax(z)) - softmax(z) softmax(z)^T"),
    ("-sum[a,k](Y[a,k]*log_softmax[k](X[a,b]*W[b,k]))", "W",
     "X^T (diag(Y ones) softmax_rows(X W) - Y)"),
    ("-sum[a,k](Y[a,k]*(Z[a,k] - log(sum[j](exp(Z[a,j])))))", "Z",
     "diag(Y ones) softmax_rows(Z) - Y"),
    ("-sum[k](y[k]*log_softmax[k](W[k,i]*x[i]))", "x", "W^T (sum(y) softmax(W x) - y)"),
]

SHAPES = {"z": (5,), "Z": (4, 5), "A": (5, 3), "x": (3,), "X": (4, 3), "W": (3, 5),
          "Y": (4, 5), "y": (5,), "w": (5,)}


@pytest.mark.parametrize("text, wrt, printed", MATRIX, ids=[f"{t} d{w}" for t, w, _ in MATRIX])
def test_matrix_form_and_round_trip(text, wrt, printed):
    e = einderiv.parse(text)
    if wrt:
        e = einderiv.diff(e, wrt)
    m = e.to_matrix()
    assert str(m) == printed
    shapes = dict(SHAPES)
    if "W x" in printed:
        shapes["W"] = (5, 3)
    a = _arrays(6, 30.0)
    if "W x" in printed:
        a["W"] = np.random.default_rng(0).normal(size=(5, 3))
    want = e.evaluate(**a)
    np.testing.assert_allclose(m.evaluate(**a), want, rtol=1e-9, atol=1e-9)
    back = einderiv.parse_matrix(printed, shapes)
    np.testing.assert_allclose(back.evaluate(**a), want, rtol=1e-9, atol=1e-9)


def test_matrix_latex():
    m = einderiv.diff("log(sum[j](exp(A[j,i]*x[i])))", "x").to_matrix()
    assert m.to_latex() == r"A^{\top} \operatorname{softmax}\left(A x\right)"
    assert einderiv.parse("softmax[k](Z[a,k])").to_matrix().to_latex() == \
        r"\operatorname{softmax\_rows}\left(Z\right)"


# ------------------------------------------------------------------ parse_matrix

PARSE_MATRIX = [
    ("softmax(z)", "softmax[i](z[i])", lambda a: _softmax(a["z"], 0)),
    ("log_softmax(z)", "log_softmax[i](z[i])", lambda a: _log_softmax(a["z"], 0)),
    ("logsumexp(z)", "logsumexp[k](z[k])", lambda a: _lse(a["z"], 0)),
    ("logsumexp(A x)", "logsumexp[k](A[k,i]*x[i])", lambda a: _lse(a["A"] @ a["x"], 0)),
    ("softmax_rows(Z)", "softmax[j](Z[i,j])", lambda a: _softmax(a["Z"], 1)),
    ("softmax_cols(Z)", "softmax[i](Z[i,j])", lambda a: _softmax(a["Z"], 0)),
    ("log_softmax_rows(Z)", "log_softmax[j](Z[i,j])", lambda a: _log_softmax(a["Z"], 1)),
    ("logsumexp_rows(Z)", "logsumexp[k](Z[i,k])", lambda a: _lse(a["Z"], 1)),
    ("logsumexp_cols(Z)", "logsumexp[k](Z[k,i])", lambda a: _lse(a["Z"], 0)),
]


@pytest.mark.parametrize("text, index_form, ref", PARSE_MATRIX)
def test_parse_matrix_reads_the_words(text, index_form, ref):
    e = einderiv.parse_matrix(text, SHAPES)
    assert e == einderiv.parse(index_form)
    a = _arrays(7, 1000.0)
    np.testing.assert_allclose(e.evaluate(**a), ref(a), rtol=1e-10, atol=1e-7)


@pytest.mark.parametrize("text, message", [
    ("softmax(Z)", r"softmax\(\.\.\.\) of a matrix needs the axis: softmax_rows\(\.\.\.\)"),
    ("softmax_rows(z)", r"needs a matrix; for a vector write softmax\(\.\.\.\)"),
    ("logsumexp(2)", r"needs a vector or matrix"),
])
def test_parse_matrix_errors(text, message):
    with pytest.raises(ShapeError, match=message) as info:
        einderiv.parse_matrix(text, SHAPES)
    assert str(info.value).splitlines()[-1].strip() == "^"
    assert str(info.value).splitlines()[-1].index("^") == \
        str(info.value).splitlines()[-2].index(text[0])  # under the function's name


# ------------------------------------------------------------------------ errors

ERRORS = [
    ("softmax[j](z[k])", IndexMismatchError,
     r"softmax\[j\] runs over 'j', but it does not occur in the argument \(free: \(k\)\); "
     r"write the axis to run over, one of \(k\), as in softmax\[k\]\(\.\.\.\)", 8),
    ("softmax(z[k])", ParseError, r"softmax needs the axis it runs over: write "
     r"softmax\[k\]\(EXPR\)", 7),
    ("logsumexp[k,j](Z[k,j])", ParseError, r"takes exactly one index, got 2", 0),
    ("log_softmax[k](x)", IndexMismatchError, r"the argument has no free index", 12),
    ("logsumexp[k](z[k] -> [])", IndexMismatchError, r"a '->' inside the argument sums it", 10),
    ("sum[k](logsumexp[k](z[k]))", IndexMismatchError,
     r"logsumexp\[k\] inside sum\[k\] .*rename one of them", 17),
    ("logsumexp[k](sum[k](z[k]))", IndexMismatchError,
     r"sum\[k\] inside logsumexp\[k\] .*rename one of them", 17),
    ("softmax[k](z[k])[k]", ParseError, r"cannot be indexed", 16),
    ("softmax[k] + 1", ParseError, r"expected '\(' after softmax\[\.\.\.\]", 11),
    ("softmax[k](z[k])*softmax[k]", ParseError, r"expected '\('", 27),
    ("softmax[i]*x[i]", ParseError, r"expected '\('", 10),
    ("x[softmax]", ParseError, r"'softmax' is reserved", 2),
    ("lse[k](z[k])", ParseError, r"lse\[k\] followed by '\(' is not a function of the language"
     r".*logsumexp\[k\]\(\.\.\.\)", 6),
]


@pytest.mark.parametrize("text, cls, message, caret", ERRORS, ids=[t for t, *_ in ERRORS])
def test_errors_say_what_to_write(text, cls, message, caret):
    with pytest.raises(cls, match=message) as info:
        einderiv.parse(text)
    lines = str(info.value).splitlines()
    assert lines[-2].strip() == text
    assert lines[-1].index("^") - lines[-2].index(text[0]) == caret


def test_softmax_may_sit_inside_a_sum_over_its_own_axis():
    # softmax keeps k free, so an outer sum[k] sums it (unlike logsumexp[k])
    a = _arrays(8)
    e = einderiv.parse("sum[k](y[k]*softmax[k](z[k]))")
    np.testing.assert_allclose(e.evaluate(**a), a["y"] @ _softmax(a["z"], 0))


def test_the_words_are_reserved_everywhere():
    with pytest.raises(EinderivError := einderiv.EinderivError):
        einderiv.parse("softmax + 1")
    with pytest.raises(einderiv.EinderivError):
        einderiv.parse_matrix("softmax_rows + 1", {"softmax_rows": ()})
    with pytest.raises(einderiv.NotMatrixExpressible, match="reserved word"):
        einderiv.parse("softmax_rows[i]*x[i]").to_matrix()
    assert EinderivError is einderiv.EinderivError


@pytest.mark.parametrize("text, wrt", GRADS + [(t, None) for t, _ in VALUES] +
                         [(t, None) for t, _ in TEXT])
def test_latex_reads_back_to_the_value(text, wrt):
    from test_printing import read_latex
    e = einderiv.parse(text)
    if wrt:
        e = einderiv.diff(e, wrt)
    a = _arrays(9)
    a["c"] = np.arange(5.0)
    want = e.evaluate(**a)
    sizes = {i: 5 for i in "abcdefghijk"}  # read for ones and deltas only: on free axes
    sizes.update(zip(e.free, np.shape(want)))
    got, labs = read_latex(e.to_latex(), a, sizes)
    assert sorted(labs) == sorted(e.free), (e.to_latex(), labs, e.free)
    got = np.transpose(got, [labs.index(i) for i in e.free]) if labs else got
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
