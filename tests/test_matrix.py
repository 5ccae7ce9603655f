"""Matrix notation both ways (issue 3): ``Expr.to_matrix`` and ``parse_matrix``.

Every derivative in tests/cases.py must print its textbook matrix form, evaluate to
the same values as the index form, and read back through ``parse_matrix`` to the
same values. Sizes are distinct (4, 3, 5) so a transposition bug cannot hide.

``python tests/test_matrix.py`` prints the length ratios (printed / textbook,
characters without spaces) and their median.
"""

from __future__ import annotations

import re
import statistics
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import einderiv  # noqa: E402
from cases import HESSIANS, IDENTITIES, Case  # noqa: E402
from einderiv import NotMatrixExpressible, ParseError, ShapeError, parse_matrix  # noqa: E402

MAX_RATIO = 1.3


def derivative(case: Case, hessian: bool = False) -> einderiv.Expr:
    d = einderiv.diff(case.expr, case.wrt, case.shapes)
    return einderiv.diff(d, case.wrt, case.shapes) if hessian else d


def matrix_form(case: Case, hessian: bool = False) -> einderiv.MatrixExpr:
    """The derivative in matrix notation; ``wrt_rank`` says how many leading axes are
    the variable's (a derivative by a scalar of a vector is a row, 001_*, A.1)."""
    return derivative(case, hessian).to_matrix(wrt_rank=len(case.shapes[case.wrt]))


ALL = [pytest.param(c, False, id=c.name) for c in IDENTITIES] + \
      [pytest.param(c, True, id=c.name) for c in HESSIANS]
EXPRESSIBLE = [p for p in ALL if p.values[0].name != "X.20 dZ/dW, Z = W^T A"]
TEXTBOOK = [p for p in EXPRESSIBLE if p.values[0].textbook is not None]


def _plain(text: str) -> str:
    return text.replace(" ", "")


def _top_level_terms(text: str) -> list[str]:
    """The signed terms of a sum at parenthesis depth 0 (``a - b`` -> ['+a', '-b'])."""
    terms, depth, current = [], 0, "+"
    for k, ch in enumerate(text):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and ch in "+-" and k > 0 and text[k - 1] == " ":
            terms.append(_plain(current))
            current = ch
        else:
            current += ch
    terms.append(_plain(current))
    return sorted(t.replace("+-", "-") for t in terms)


def ratio(case: Case, hessian: bool) -> float:
    assert case.textbook is not None
    return len(_plain(str(matrix_form(case, hessian)))) / len(_plain(case.textbook))


# ============================================================== index -> matrix


@pytest.mark.parametrize("case, hessian", TEXTBOOK)
def test_prints_the_textbook_form(case: Case, hessian: bool) -> None:
    """Equal to the notes' matrix form up to spacing and the order of the terms."""
    printed = str(matrix_form(case, hessian))
    assert _top_level_terms(printed) == _top_level_terms(case.textbook), printed


@pytest.mark.parametrize("case, hessian", EXPRESSIBLE)
def test_matrix_form_has_the_index_form_values(case: Case, hessian: bool) -> None:
    rng = np.random.default_rng(3)
    values = case.arrays(rng)
    expected = derivative(case, hessian).evaluate(**values)
    got = matrix_form(case, hessian).evaluate(**values)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case, hessian", EXPRESSIBLE)
def test_round_trip_through_parse_matrix(case: Case, hessian: bool) -> None:
    """str(to_matrix()) reads back to the same values, ASCII and Unicode alike."""
    rng = np.random.default_rng(4)
    values = case.arrays(rng)
    m = matrix_form(case, hessian)
    expected = derivative(case, hessian).evaluate(**values)
    shapes = dict(case.shapes)
    if str(m) == "I":  # a lone identity has no size in the text: give it (docs/matrix.md)
        shapes["I"] = case.shapes[case.wrt]
    for text in (str(m), m.to_unicode()):
        back = parse_matrix(text, shapes)
        got = back.evaluate(**values)
        np.testing.assert_allclose(np.broadcast_to(got, expected.shape), expected,
                                   rtol=1e-10, atol=1e-12, err_msg=text)
        if str(m) != "0":  # a printed 0 is a zero of any shape
            assert got.shape == expected.shape


@pytest.mark.parametrize("case, hessian", TEXTBOOK)
def test_length_within_bound_of_textbook(case: Case, hessian: bool) -> None:
    assert ratio(case, hessian) <= MAX_RATIO, str(matrix_form(case, hessian))


def test_median_length_ratio(capsys: pytest.CaptureFixture) -> None:
    ratios = [ratio(p.values[0], p.values[1]) for p in TEXTBOOK]
    median = statistics.median(ratios)
    with capsys.disabled():
        print(f"\nmatrix form / textbook length over {len(ratios)} identities: "
              f"median {median:.3f}, max {max(ratios):.3f}")
    assert median <= MAX_RATIO


def test_linear_regression_gradient_and_hessian() -> None:
    g = einderiv.diff("(X[a,b]*theta[b] - Y[a])*(X[a,c]*theta[c] - Y[a])/n", "theta")
    m = g.to_matrix()
    assert str(m) == "2/n X^T (X theta - Y)"
    assert m.to_unicode() == "2/n Xᵀ (X θ - Y)"
    assert m.to_latex() == r"\frac{2}{n} X^{\top} \left(X \theta - Y\right)"
    assert str(einderiv.diff(g, "theta").to_matrix()) == "2/n X^T X"


def test_3_tensor_is_not_matrix_expressible() -> None:
    """dZ/dW for Z = W^T A is a 3-tensor (003_* X.20): no matrix form, a clear error."""
    d = einderiv.diff("W[j,i]*A[j]", "W")
    with pytest.raises(NotMatrixExpressible, match="3 free axes") as info:
        d.to_matrix()
    assert isinstance(info.value, einderiv.EinderivError)
    assert isinstance(info.value, ValueError)
    assert "index form" in str(info.value) and "flatten" in str(info.value)


def test_summed_index_on_three_matrices_is_not_matrix_expressible() -> None:
    """Six matrices on the edges of a complete graph of four summed indices: no
    chain of products and element-wise products reaches it (not series-parallel)."""
    e = einderiv.parse("A[a,b]*B[a,c]*C[a,d]*D[b,c]*F[c,d]*G[b,d]")
    with pytest.raises(NotMatrixExpressible, match="shared by 3 factors"):
        e.to_matrix()


def test_summed_index_on_three_chains_is_a_hadamard_product() -> None:
    e = einderiv.parse("A[a,b]*B[a,c]*C[a,d]*x[b]*y[c]*z[d]")
    m = e.to_matrix()
    assert str(m) == "((B y) .* (C z))^T A x"
    rng = np.random.default_rng(11)
    values = {"A": rng.normal(size=(4, 3)), "B": rng.normal(size=(4, 5)),
              "C": rng.normal(size=(4, 2)), "x": rng.normal(size=3),
              "y": rng.normal(size=5), "z": rng.normal(size=2)}
    np.testing.assert_allclose(m.evaluate(**values), e.evaluate(**values))


def test_elementwise_function_of_a_3_tensor_is_not_matrix_expressible() -> None:
    e = einderiv.parse("sum[a,b](sqrt(1 + (x[a]*x[b]*y[p])**2))")
    with pytest.raises(NotMatrixExpressible, match="3 free axes"):
        e.to_matrix()


# ------------------------------------------------------------------- Kronecker


def _axb_values() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    return {"A": rng.normal(size=(5, 4)), "X": rng.normal(size=(4, 3)),
            "B": rng.normal(size=(3, 2))}


def test_kronecker_form_of_d_AXB_dX_column_major() -> None:
    d = einderiv.diff("A[i,k]*X[k,l]*B[l,j]", "X")
    with pytest.raises(NotMatrixExpressible, match="4 free axes"):
        d.to_matrix()
    k = d.to_matrix(wrt_rank=2, flatten="F")
    assert str(k) == "kron(B, A^T)"
    assert k.to_unicode() == "B ⊗ Aᵀ"
    v = _axb_values()
    expected = np.kron(v["B"], v["A"].T)
    np.testing.assert_allclose(k.evaluate(**v), expected)
    np.testing.assert_allclose(einderiv.flatten(d.evaluate(**v), 2, "F"), expected)


def test_kronecker_form_row_major() -> None:
    d = einderiv.diff("A[i,k]*X[k,l]*B[l,j]", "X")
    k = d.to_matrix(wrt_rank=2, flatten="C")
    assert str(k) == "kron(A^T, B)"
    v = _axb_values()
    np.testing.assert_allclose(k.evaluate(**v), einderiv.flatten(d.evaluate(**v), 2, "C"))


@pytest.mark.parametrize("expr, wrt, text", [
    ("A[i,k]*X[k,j]", "X", "kron(I, A^T)"),
    ("X[i,k]*B[k,j]", "X", "kron(B, I)"),
    ("inv(X)[i,j]", "X", "-kron(X^-1, X^-T)"),
    ("W[j,i]*a[j]", "W", "kron(I, a)"),                  # the 3-tensor of X.20, flattened
    ("s*X[i,j]*X[j,k]", "X", "s kron(X, I) + s kron(I, X^T)"),
])
def test_kronecker_forms_match_flatten(expr: str, wrt: str, text: str) -> None:
    rng = np.random.default_rng(6)
    values = {"A": rng.normal(size=(5, 4)), "B": rng.normal(size=(3, 2)),
              "X": rng.normal(size=(4, 3)), "W": rng.normal(size=(4, 3)),
              "a": rng.normal(size=4), "s": 1.5}
    if expr.startswith("inv") or expr.startswith("s*"):
        values["X"] = rng.normal(size=(3, 3)) + 3 * np.eye(3)
    d = einderiv.diff(expr, wrt)
    k = d.to_matrix(wrt_rank=2, flatten="F")
    assert str(k) == text
    np.testing.assert_allclose(k.evaluate(**values),
                               einderiv.flatten(d.evaluate(**values), 2, "F"), atol=1e-12)


def test_no_kronecker_form_for_the_commutation_matrix() -> None:
    d = einderiv.diff("X[j,i]", "X")
    with pytest.raises(NotMatrixExpressible, match="not a Kronecker product"):
        d.to_matrix(wrt_rank=2, flatten="F")


@pytest.mark.parametrize("options, message", [
    ({"flatten": "F"}, "needs wrt_rank"),
    ({"wrt_rank": 2, "flatten": "A"}, "flatten must be"),
    ({"wrt_rank": 5}, "wrt_rank must be"),
    ({"wrt_rank": -1}, "wrt_rank must be"),
])
def test_bad_options(options: dict, message: str) -> None:
    d = einderiv.diff("A[i,k]*X[k,l]*B[l,j]", "X")
    with pytest.raises(einderiv.EinderivError, match=message):
        d.to_matrix(**options)


# ------------------------------------------------------------------ patterns


@pytest.mark.parametrize("index, matrix", [
    ("A[i,k]*B[k,j]", "A B"),
    ("A[k,i]*B[k,j]", "A^T B"),
    ("A[i,k]*B[j,k]", "A B^T"),
    ("x[i]*y[i]", "x^T y"),
    ("x[i]*y[j]", "x y^T"),
    ("A[i,j]*B[j,i]", "tr(A B)"),
    ("M[a,a]", "tr(M)"),
    ("M[a,a] -> [a]", "diag(M)"),
    ("A[i,j]*B[i,j] -> [i,j]", "A .* B"),
    ("A[i,j]*B[j,i] -> [i,j]", "A .* B^T"),
    ("x[i]*y[i] -> [i]", "x .* y"),
    ("x[a]*A[a,i]*y[a]", "A^T (x .* y)"),
    ("A[a,i]*v[a]*B[a,j]", "A^T diag(v) B"),
    ("v[i]*A[i,j] -> [i,j]", "diag(v) A"),
    ("A[i,j]*w[j] -> [i,j]", "A diag(w)"),
    ("delta[i,j]", "I"),
    ("inv(M)[i,j]", "M^-1"),
    ("inv(M)[j,i]", "M^-T"),
    ("det(M)*logdet(M)", "det(M) logdet(M)"),
    ("tanh(A[i,j]*x[j])", "tanh(A x)"),
    ("sum[a](A[a,i])", "A^T ones"),
    ("sum[a,b](A[a,b])", "sum(A)"),
    ("sum[a](x[a])", "sum(x)"),
    ("2*s*X[i,j]/n", "2 s/n X"),
    ("x[i]/n", "x/n"),
    ("A[i,k]*B[k,j] + C[j,i]", "A B + C^T"),
    ("A[i,k]*x[k] + x[i]", "(A + I) x"),
    ("x[j]*A[j,i] + x[j]*B[j,i]", "(A^T + B^T) x"),
    ("(X[a,b]*theta[b] - Y[a])*(X[a,c]*theta[c] - Y[a])", "(X theta - Y)^T (X theta - Y)"),
    ("exp(x[i]*y[i]) + M[a,a]", "exp(x^T y) + tr(M)"),
    ("x[i]*x[i]*x[j]", "(x^T x) x"),
    ("x[a]*x[a] + x[i]", "x^T x + x"),     # a scalar term is not a chain ending in x
])
def test_patterns(index: str, matrix: str) -> None:
    e = einderiv.parse(index)
    m = e.to_matrix()
    assert str(m) == matrix
    if matrix == "I":
        return  # no tensor gives the size
    shapes = {"A": (4, 4), "B": (4, 4), "C": (4, 4), "M": (4, 4), "X": (5, 4), "x": (4,),
              "y": (4,), "v": (4,), "w": (4,), "theta": (4,), "Y": (5,), "s": (), "n": ()}
    rng = np.random.default_rng(7)
    values = {k: rng.normal(size=s) + (4 * np.eye(4) if k == "M" else 0)
              for k, s in shapes.items()}
    expected = e.evaluate(**values)
    np.testing.assert_allclose(m.evaluate(**values), expected, rtol=1e-10)
    np.testing.assert_allclose(parse_matrix(matrix, shapes).evaluate(**values), expected,
                               rtol=1e-10)


def test_layer_gradient_with_a_batch_is_backpropagation() -> None:
    loss = ("(W2[o,h]*tanh(W1[h,i]*X[i,b]) - T[o,b])*"
            "(W2[o,g]*tanh(W1[g,j]*X[j,b]) - T[o,b])")
    d = einderiv.diff(loss, "W1")
    m = d.to_matrix()
    assert str(m) == "2 ((W2^T (W2 tanh(W1 X) - T)) .* (1 - tanh(W1 X).^2)) X^T"
    rng = np.random.default_rng(12)
    shapes = {"W1": (5, 3), "W2": (2, 5), "X": (3, 4), "T": (2, 4)}
    values = {k: rng.normal(size=s) for k, s in shapes.items()}
    W1, W2, X, T = values["W1"], values["W2"], values["X"], values["T"]
    H = np.tanh(W1 @ X)
    expected = 2 * ((W2.T @ (W2 @ H - T)) * (1 - H ** 2)) @ X.T
    np.testing.assert_allclose(d.evaluate(**values), expected)
    np.testing.assert_allclose(m.evaluate(**values), expected)
    np.testing.assert_allclose(parse_matrix(str(m), shapes).evaluate(**values), expected)


def test_backpropagation_reads_as_a_chain() -> None:
    g = einderiv.diff("sum[i]((W3[i,j]*tanh(W2[j,k]*tanh(W1[k,l]*x[l])) - y[i])**2)", "x")
    assert str(g.to_matrix()) == ("2 W1^T diag(1 - tanh(W1 x)^2) W2^T "
                                  "diag(1 - tanh(W2 tanh(W1 x))^2) W3^T "
                                  "(W3 tanh(W2 tanh(W1 x)) - y)")


def test_transposed_vector_chain_is_wrapped() -> None:
    """A column chain needed as a row prints (C x)^T, as in the notes (001_*, A.10)."""
    assert str(einderiv.parse("b[i]*C[j,a]*x[a]").to_matrix()) == "b (C x)^T"


def test_vector_by_scalar_is_a_row() -> None:
    d = einderiv.diff("s*a[i] + s**2*b[i]", "s")
    assert str(d.to_matrix()) == "a + 2 s b"
    row = d.to_matrix(wrt_rank=0)
    assert str(row) == "a^T + 2 s b^T"
    assert row.kind == "row"
    assert row.evaluate(s=2.0, a=np.ones(3), b=np.ones(3)).shape == (3,)


def test_matrix_by_scalar_keeps_the_matrix_shape() -> None:
    """einderiv gives dM/ds M's shape; the notes' X.14 form is its transpose."""
    d = einderiv.diff("s*B[i,j]", "s")
    m = d.to_matrix(wrt_rank=0)
    assert str(m) == "B"
    B = np.arange(12.0).reshape(4, 3)
    assert m.evaluate(s=1.0, B=B).shape == (4, 3)


def test_kinds_and_evaluation_shapes() -> None:
    values = {"x": np.ones(3), "A": np.ones((4, 3))}
    cases = [("x[i]*x[i]", "scalar", ()), ("A[i,j]*x[j]", "column", (4,)),
             ("A[i,j]", "matrix", (4, 3))]
    for text, kind, shape in cases:
        m = einderiv.parse(text).to_matrix()
        assert m.kind == kind
        assert m.evaluate(**values).shape == shape


def test_zero_inside_an_expression_keeps_its_shape() -> None:
    """A zero vector inside a product prints with its shape, never as a scalar 0."""
    e = einderiv.parse("y[p]/(s + (x[p] - x[p])**2)")
    m = e.to_matrix()
    values = {"y": np.arange(1.0, 5.0), "x": np.ones(4), "s": 2.0}
    np.testing.assert_allclose(m.evaluate(**values), e.evaluate(**values))


def test_common_factor_needs_equal_sizes() -> None:
    """``ones`` of different sizes are not a common factor: M 1 + A^T 1 stays apart."""
    e = einderiv.parse("sum[a](M[i,a]) + sum[b](A[b,i])")
    m = e.to_matrix()
    values = {"M": np.ones((3, 3)), "A": np.arange(12.0).reshape(4, 3)}
    np.testing.assert_allclose(m.evaluate(**values), e.evaluate(**values))
    assert str(m) == "M ones + A^T ones"


def test_evaluate_reports_missing_and_misshaped_arrays() -> None:
    m = einderiv.parse("A[i,j]*x[j]").to_matrix()
    with pytest.raises(einderiv.EvaluationError, match="missing value for 'x'"):
        m.evaluate(A=np.ones((2, 2)))
    with pytest.raises(einderiv.EvaluationError, match="shape"):
        m.evaluate(A=np.ones((2, 2)), x=np.ones((2, 2)))


# ============================================================== matrix -> index


REGRESSION_SHAPES = {"X": (4, 3), "theta": (3,), "Y": (4,), "n": ()}


def test_parse_matrix_linear_regression_loss_differentiates_like_the_index_form() -> None:
    loss = parse_matrix("(X*theta - Y)'*(X*theta - Y)/n", REGRESSION_SHAPES)
    index_loss = "(X[a,b]*theta[b] - Y[a])*(X[a,c]*theta[c] - Y[a])/n"
    rng = np.random.default_rng(8)
    values = {"X": rng.normal(size=(4, 3)), "theta": rng.normal(size=3),
              "Y": rng.normal(size=4), "n": 4.0}
    np.testing.assert_allclose(loss.evaluate(**values),
                               einderiv.parse(index_loss).evaluate(**values))
    g = einderiv.diff(loss, "theta")
    np.testing.assert_allclose(g.evaluate(**values),
                               einderiv.diff(index_loss, "theta").evaluate(**values))
    assert str(g.to_matrix()) == "2/n X^T (X theta - Y)"
    h = einderiv.diff(g, "theta")
    np.testing.assert_allclose(h.evaluate(**values), 2 / 4 * values["X"].T @ values["X"])


@pytest.mark.parametrize("text", [
    "(X*theta - Y)'*(X*theta - Y)/n",
    "(X theta - Y)^T (X theta - Y) / n",
    "(X @ theta - Y)ᵀ (X @ theta - Y)/n",
    "(X θ - Y)' (X θ - Y)/n",
    "sum((X theta - Y) .* (X theta - Y))/n",
    "sum((X theta - Y) ⊙ (X theta - Y))/n",
    "norm2(X theta - Y)^2/n",
    "tr((X theta - Y) (X theta - Y)^T)/n",
])
def test_spellings_of_the_same_loss(text: str) -> None:
    rng = np.random.default_rng(9)
    values = {"X": rng.normal(size=(4, 3)), "theta": rng.normal(size=3),
              "Y": rng.normal(size=4), "n": 4.0}
    r = values["X"] @ values["theta"] - values["Y"]
    e = parse_matrix(text, REGRESSION_SHAPES)
    assert e.free == ()
    np.testing.assert_allclose(e.evaluate(**values), r @ r / 4)


MATRIX_SHAPES = {"A": (3, 3), "B": (3, 4), "C": (4, 3), "x": (3,), "y": (4,), "s": ()}


@pytest.mark.parametrize("text, expected", [
    ("A^-1", lambda v: np.linalg.inv(v["A"])),
    ("inv(A)", lambda v: np.linalg.inv(v["A"])),
    ("A^-T", lambda v: np.linalg.inv(v["A"]).T),
    ("A⁻ᵀ", lambda v: np.linalg.inv(v["A"]).T),
    ("inv(A)'", lambda v: np.linalg.inv(v["A"]).T),
    ("det(A) + logdet(A)", lambda v: np.linalg.det(v["A"]) + np.log(abs(np.linalg.det(v["A"])))),
    ("tr(B C)", lambda v: np.trace(v["B"] @ v["C"])),
    ("diag(x)", lambda v: np.diag(v["x"])),
    ("diag(A)", lambda v: np.diag(v["A"])),
    ("diag(x) A", lambda v: np.diag(v["x"]) @ v["A"]),
    ("B' x", lambda v: v["B"].T @ v["x"]),
    ("x' A x", lambda v: v["x"] @ v["A"] @ v["x"]),
    ("x x^T", lambda v: np.outer(v["x"], v["x"])),
    ("x^T B y", lambda v: v["x"] @ v["B"] @ v["y"]),
    ("tanh(B y)^2", lambda v: np.tanh(v["B"] @ v["y"]) ** 2),
    ("tanh(B y)²", lambda v: np.tanh(v["B"] @ v["y"]) ** 2),
    ("1 - tanh(A).^2", lambda v: 1 - np.tanh(v["A"]) ** 2),
    ("A .* A'", lambda v: v["A"] * v["A"].T),
    ("2/s A x", lambda v: 2 / v["s"] * v["A"] @ v["x"]),
    ("-x/2", lambda v: -v["x"] / 2),
    ("exp(x)^s", lambda v: np.exp(v["x"]) ** v["s"]),
    ("x.^-1", lambda v: 1 / v["x"]),
    ("s^-1", lambda v: 1 / v["s"]),
    ("0.5e1 x", lambda v: 5 * v["x"]),
    ("(A + I) x", lambda v: (v["A"] + np.eye(3)) @ v["x"]),
    ("I + A", lambda v: np.eye(3) + v["A"]),
    ("B^T ones", lambda v: v["B"].T @ np.ones(3)),
    ("x ones^T B", lambda v: np.outer(v["x"], np.ones(3)) @ v["B"]),
    ("sum(B)", lambda v: v["B"].sum()),
    ("norm2(B)", lambda v: np.linalg.norm(v["B"])),
    ("exp(x^T x) x", lambda v: np.exp(v["x"] @ v["x"]) * v["x"]),
    ("x^T x C^T", lambda v: (v["x"] @ v["x"]) * v["C"].T),
    ("s", lambda v: v["s"]),
    ("3", lambda v: 3.0),
])
def test_parse_matrix_operations(text: str, expected) -> None:
    rng = np.random.default_rng(10)
    values = {k: rng.normal(size=s) for k, s in MATRIX_SHAPES.items()}
    values["A"] = values["A"] + 3 * np.eye(3)
    values["s"] = np.array(1.7)
    got = parse_matrix(text, MATRIX_SHAPES).evaluate(**values)
    np.testing.assert_allclose(got, expected(values), rtol=1e-10)


def test_parse_matrix_free_indices_and_text() -> None:
    assert parse_matrix("A B", MATRIX_SHAPES).free == ("i", "j")
    assert parse_matrix("B y", MATRIX_SHAPES).free == ("i",)
    assert parse_matrix("y' C", MATRIX_SHAPES).free == ("i",)
    assert str(parse_matrix("A' x", MATRIX_SHAPES)) == "A[a,i]*x[a]"
    raw = parse_matrix("x + x", MATRIX_SHAPES, simplify=False)
    assert str(raw) != str(parse_matrix("x + x", MATRIX_SHAPES))


def test_lone_identity_takes_its_size_from_shapes() -> None:
    with pytest.raises(ShapeError, match="cannot tell the size of I"):
        parse_matrix("I", {})
    e = parse_matrix("2 I", {"I": 3})
    np.testing.assert_allclose(e.evaluate(), 2 * np.eye(3))


@pytest.mark.parametrize("text, where, message", [
    ("A x +", 5, "unexpected end of input"),
    ("A (x", 2, "'(' is never closed"),
    ("A x)", 3, "unmatched ')'"),
    ("tanh x", 0, "'tanh' is a function"),
    ("A[i,j]", 1, "index notation goes through einderiv.parse"),
    ("x ^ ", 4, "expected an exponent"),
    ("A $ x", 2, "unexpected character '$'"),
    ("A ⊗ B", 2, "Kronecker"),
    ("kron(A, B)", 0, "kron"),
    ("()", 1, "empty parentheses"),
    ("", 0, "empty expression"),
])
def test_parse_errors_show_a_caret(text: str, where: int, message: str) -> None:
    with pytest.raises(ParseError, match=re.escape(message)) as info:
        parse_matrix(text, MATRIX_SHAPES)
    assert info.value.position == where
    if text:
        assert str(info.value).splitlines()[-1].index("^") - 2 == where


@pytest.mark.parametrize("text, message", [
    ("A B x", "cannot multiply A B (3x4) by x (3x1): 4 columns against 3 rows"),
    ("B x", "cannot multiply B (3x4) by x (3x1): 4 columns against 3 rows"),
    ("x + y", "cannot add x (3x1) and y (4x1): the shapes differ"),
    ("x .* y", "cannot multiply element-wise x (3x1) and y (4x1)"),
    ("x y", "cannot multiply x (3x1) by y (4x1)"),
    ("inv(B)", "needs a square matrix, got B (3x4)"),
    ("det(x)", "needs a square matrix, got x (3x1)"),
    ("A^2", "ambiguous"),
    ("x / A", "cannot divide by A (3x3)"),
    ("x^y", "must be a scalar"),
    ("z", "unknown name 'z'"),
])
def test_shape_errors_name_both_shapes(text: str, message: str) -> None:
    with pytest.raises(ShapeError) as info:
        parse_matrix(text, MATRIX_SHAPES)
    assert message in str(info.value)
    assert "^" in str(info.value).splitlines()[-1]


def test_parse_matrix_rejects_bad_inputs() -> None:
    with pytest.raises(ParseError):
        parse_matrix(3)  # type: ignore[arg-type]
    with pytest.raises(ShapeError, match="3 axes"):
        parse_matrix("T", {"T": (2, 2, 2)})
    with pytest.raises(ParseError, match="reserved|function"):
        parse_matrix("sum + 1", {"sum": ()})


def test_symbolic_sizes_are_checked() -> None:
    shapes = {"X": ("n", "d"), "theta": ("d",), "Y": ("n",)}
    assert parse_matrix("X theta - Y", shapes).free == ("i",)
    with pytest.raises(ShapeError, match="n columns against d rows|d columns against n rows"):
        parse_matrix("X^T theta", shapes)


@pytest.mark.parametrize("text, broadcast", [
    ("(X*theta - Y)'*X*theta - Y/n", "Y"),   # benchmarks/fuzz.py --seed 7 found it
    ("(X*theta - Y)'*X*theta - Z/n", "Z"),   # ones as long as Z: 5, apart from 4 and 3
])
def test_outer_product_with_ones_sized_only_by_shapes(text: str, broadcast: str) -> None:
    """A scalar minus a vector, differentiated: the Jacobian is g ones^T, with ones as
    long as the broadcast vector. It prints (and evaluates) as such; like a lone I or
    ones, the text has no length for ones, so parse_matrix reads it back once shapes
    give one (docs/matrix.md, Round trip) and says so otherwise."""
    shapes = {"X": (4, 3), "theta": (3,), "Y": (4,), "Z": (5,), "n": ()}
    rng = np.random.default_rng(11)
    v = {k: rng.normal(size=s) for k, s in shapes.items()}
    v["n"] = np.array(2.5)
    d = einderiv.diff(parse_matrix(text, shapes), "theta", shapes)
    X, theta, Y = v["X"], v["theta"], v["Y"]
    grad = X.T @ (X @ theta - Y) + X.T @ (X @ theta)   # of (X theta - Y)^T X theta
    expected = np.outer(grad, np.ones(len(v[broadcast])))
    m = d.to_matrix()
    assert str(m) == "X^T (2 X theta - Y) ones^T"  # X theta + X theta collected (issue 15)
    np.testing.assert_allclose(d.evaluate(**v), expected, rtol=1e-10)
    np.testing.assert_allclose(m.evaluate(**v), expected, rtol=1e-10)
    with pytest.raises(ShapeError, match="cannot tell the size of ones"):
        parse_matrix(str(m), shapes)
    back = parse_matrix(str(m), {**shapes, "ones": len(v[broadcast])})
    np.testing.assert_allclose(back.evaluate(**v), expected, rtol=1e-10)


# ===================================================== property: round trips


@pytest.mark.slow
def test_random_expressions_round_trip() -> None:
    """For random index expressions (and their derivatives) with at most two free
    axes: to_matrix either raises NotMatrixExpressible or prints a form that
    evaluates, and reads back, to the index form's values."""
    import hypothesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from strategies import SHAPES, expressions, make_values

    @settings(max_examples=150, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(expressions(), st.integers(0, 2**16), st.sampled_from([None, "x", "A", "M", "s"]))
    def check(g, seed, wrt) -> None:
        if len(g.free) > 2:
            return
        try:
            e = einderiv.parse(g.text)
            if wrt is not None:
                e = einderiv.diff(e, wrt, SHAPES)
            values = make_values(seed)
            expected = e.evaluate(**values)
        except einderiv.EinderivError:
            return  # not this test's business
        if len(e.free) > 2:
            return
        try:
            m = e.to_matrix(wrt_rank=None if wrt is None else len(SHAPES[wrt]))
        except NotMatrixExpressible:
            return
        with np.errstate(all="ignore"):
            got = m.evaluate(**values)
            np.testing.assert_allclose(np.broadcast_to(got, expected.shape), expected,
                                       rtol=1e-8, atol=1e-10, err_msg=str(m))
            try:
                back = parse_matrix(str(m), SHAPES)
            except ShapeError as exc:  # I or ones alone: the text has no size
                assert "cannot tell the size" in str(exc)
                return
            np.testing.assert_allclose(np.broadcast_to(back.evaluate(**values), expected.shape),
                                       expected, rtol=1e-8, atol=1e-10, err_msg=str(m))

    assert hypothesis is not None
    check()


if __name__ == "__main__":
    rows = [(p.values[0].name, p.values[0].textbook,
             str(matrix_form(p.values[0], p.values[1])), ratio(p.values[0], p.values[1]))
            for p in TEXTBOOK]
    for name, textbook, printed, r in rows:
        print(f"{name:32} {textbook:28} {printed:28} {r:.3f}")
    values = [r for *_, r in rows]
    print(f"\n{len(values)} identities: median ratio {statistics.median(values):.3f}, "
          f"max {max(values):.3f} (bound {MAX_RATIO})")
