"""The identities of the reference notes (tests/cases.py), value-checked twice: against
an independent numpy closed form and against central finite differences (tests/fd.py).

Plus: the printed index form, Kronecker flattening, einderiv.check, Hessian symmetry,
deltas, collection of like terms and evaluation with many index names.
"""

from __future__ import annotations

import re
import sys
import zlib

import numpy as np
import pytest

import einderiv
from cases import HESSIANS, IDENTITIES, Case, grouped_chain
from fd import assert_close_to_fd, central_diff, central_hessian


def _rng(*key: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32("/".join(key).encode()))


def _f(expr: einderiv.Expr):
    """The expression as a function of a dict of arrays (for finite differences)."""
    return lambda arrays: np.asarray(expr.evaluate(**arrays), dtype=float)


def _top_level_terms(text: str) -> int:
    """How many terms a printed expression has outside parentheses and brackets
    (the printer writes binary + and - with a space on each side)."""
    depth, terms = 0, 1
    for k, ch in enumerate(text):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif depth == 0 and text[k:k + 3] in (" + ", " - "):
            terms += 1
    return terms


ID_PARAMS = [pytest.param(c, id=c.name) for c in IDENTITIES]
HESS_PARAMS = [pytest.param(c, id=c.name) for c in HESSIANS]


# ------------------------------------------------------------------ first derivatives


@pytest.mark.parametrize("case", ID_PARAMS)
def test_identity_matches_closed_form(case: Case) -> None:
    d = einderiv.diff(case.expr, case.wrt, shapes=case.shapes)
    values = case.arrays(_rng("closed", case.name))
    got = np.asarray(d.evaluate(**values))
    expected = case.closed_form(values)
    assert got.shape == expected.shape, f"{d}: shape {got.shape}, notes give {expected.shape}"
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", ID_PARAMS)
def test_identity_matches_finite_differences(case: Case) -> None:
    f = einderiv.parse(case.expr, shapes=case.shapes)
    d = einderiv.diff(f, case.wrt, shapes=case.shapes)
    values = case.arrays(_rng("fd", case.name))
    numeric = central_diff(_f(f), values, case.wrt)
    assert_close_to_fd(d.evaluate(**values), numeric)


@pytest.mark.parametrize("case", [p for p in ID_PARAMS  # the variable's rank must show
                                  if re.search(rf"\b{p.values[0].wrt}\b", p.values[0].expr)])
def test_identity_without_shapes_gives_same_values(case: Case) -> None:
    d = einderiv.diff(case.expr, case.wrt)
    values = case.arrays(_rng("noshapes", case.name))
    expected = case.closed_form(values)
    got = np.asarray(d.evaluate(**values))
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", ID_PARAMS)
def test_gradient_free_indices_come_first(case: Case) -> None:
    """Denominator layout: the new (variable's) indices first, then the function's."""
    f = einderiv.parse(case.expr, shapes=case.shapes)
    rank = len(case.shapes[case.wrt])
    names = ("p", "q")[:rank]
    wrt = f"{case.wrt}[{','.join(names)}]" if rank else case.wrt
    d = einderiv.diff(f, wrt, shapes=case.shapes)
    assert d.free == names + f.free
    values = case.arrays(_rng("named", case.name))
    np.testing.assert_allclose(d.evaluate(**values), case.closed_form(values),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in IDENTITIES
                                  if c.index_text is not None])
def test_printed_index_form_matches_notes(case: Case) -> None:
    d = einderiv.diff(case.expr, case.wrt, shapes=case.shapes)
    assert str(d) == case.index_text


def test_linear_regression_gradient_is_one_term_with_coefficient_two_over_n() -> None:
    """Notes 001_*, A.20: d/dtheta (1/n)(X theta - Y)^T (X theta - Y) = (2/n) X^T (X theta - Y)."""
    expr = "(X[a,b]*theta[b] - Y[a])*(X[a,c]*theta[c] - Y[a])/n"
    d = einderiv.diff(expr, "theta", shapes={"X": (4, 3), "theta": (3,), "Y": (4,), "n": ()})
    text = str(d)
    assert text == "2*X[a,d]*(X[a,b]*theta[b] - Y[a])/n"
    assert _top_level_terms(text) == 1
    rng = _rng("linreg")
    X, theta, Y = rng.normal(size=(4, 3)), rng.normal(size=3), rng.normal(size=4)
    n = 4.0
    expected = 2 / n * X.T @ (X @ theta - Y)
    np.testing.assert_allclose(d.evaluate(X=X, theta=theta, Y=Y, n=n), expected, rtol=1e-12)
    # the printed text is itself a correct expression of the gradient
    back = einderiv.parse(text)
    assert back.free == ("d",)
    np.testing.assert_allclose(back.evaluate(X=X, theta=theta, Y=Y, n=n), expected, rtol=1e-12)


# Derivatives whose printed form has an index that only a Kronecker delta carries and
# that no tensor sizes (the size lives in a hint, not in the text): A.1 (a zero),
# A.2 (delta[a,i]) and X.20 (A[b]*delta[c,i]). Their free indices are still compared.
_UNSIZED_IN_TEXT = {"A.1 constant vector", "A.2 identity", "X.20 dZ/dW, Z = W^T A"}


@pytest.mark.parametrize("case", ID_PARAMS + HESS_PARAMS)
def test_printed_derivative_parses_back_to_the_same_values(case: Case) -> None:
    d = einderiv.diff(case.expr, case.wrt, shapes=case.shapes)
    if case in HESSIANS:
        d = einderiv.diff(d, case.wrt, shapes=case.shapes)
    back = einderiv.parse(str(d))
    assert back.free == d.free, f"{str(d)!r} parses back with free {back.free}, not {d.free}"
    if case.name in _UNSIZED_IN_TEXT:
        return
    values = case.arrays(_rng("roundtrip", case.name))
    np.testing.assert_allclose(back.evaluate(**values), case.closed_form(values),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", ID_PARAMS + HESS_PARAMS)
def test_printed_derivative_parses_back_equal(case: Case) -> None:
    """The documented contract of str(): parse reads it back to an equal Expr."""
    d = einderiv.diff(case.expr, case.wrt, shapes=case.shapes)
    if case in HESSIANS:
        d = einderiv.diff(d, case.wrt, shapes=case.shapes)
    assert einderiv.parse(str(d)) == d, str(d)


@pytest.mark.parametrize("case", ID_PARAMS)
def test_latex_of_derivative_is_nonempty_text(case: Case) -> None:
    d = einderiv.diff(case.expr, case.wrt, shapes=case.shapes)
    latex = d.to_latex()
    assert isinstance(latex, str) and latex.strip()
    # indices are subscripts in LaTeX, not brackets (\left[...\right]_{ai} marks an
    # explicit output, docs/language.md "LaTeX")
    assert "[" not in latex.replace(r"\left[", "")
    values = case.arrays(_rng("latex", case.name))  # and the Expr still evaluates right
    np.testing.assert_allclose(d.evaluate(**values), case.closed_form(values),
                               rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------- Hessians


@pytest.mark.parametrize("case", HESS_PARAMS)
def test_hessian_matches_closed_form(case: Case) -> None:
    g = einderiv.diff(case.expr, case.wrt, shapes=case.shapes)
    h = einderiv.diff(g, case.wrt, shapes=case.shapes)
    values = case.arrays(_rng("hess", case.name))
    got = np.asarray(h.evaluate(**values))
    expected = case.closed_form(values)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", HESS_PARAMS)
def test_hessian_matches_finite_differences(case: Case) -> None:
    f = einderiv.parse(case.expr, shapes=case.shapes)
    h = einderiv.diff(einderiv.diff(f, case.wrt, shapes=case.shapes), case.wrt,
                      shapes=case.shapes)
    values = case.arrays(_rng("hessfd", case.name))
    numeric = central_hessian(_f(f), values, case.wrt)
    assert_close_to_fd(h.evaluate(**values), numeric, rtol=1e-5)


SCALARS = [
    ("sum[i](exp(A[i,j]*x[j]))", "x", {"A": (4, 3), "x": (3,)}),
    ("x[i]*A[i,j]*x[j]", "x", {"A": (3, 3), "x": (3,)}),
    ("softplus(A[i,j]*x[j])*b[i]", "x", {"A": (5, 3), "x": (3,), "b": (5,)}),
    ("log(1 + x[i]*x[i])*sin(c[j]*x[j])", "x", {"x": (4,), "c": (4,)}),
    ("tanh(W[i,j])*W[i,j]*B[j,i]", "W", {"W": (4, 3), "B": (3, 4)}),
    ("logdet(S)*s**2 + det(S)", "S", {"S": (3, 3), "s": ()}),
]


@pytest.mark.parametrize("expr, wrt, shapes", SCALARS, ids=[s[0] for s in SCALARS])
def test_second_derivative_of_a_scalar_is_symmetric(expr, wrt, shapes) -> None:
    f = einderiv.parse(expr, shapes=shapes)
    assert f.free == ()
    h = einderiv.diff(einderiv.diff(f, wrt, shapes=shapes), wrt, shapes=shapes)
    rng = _rng("sym", expr)
    values = {k: rng.normal(size=s) for k, s in shapes.items()}
    if "S" in values:  # well-conditioned for det/logdet
        values["S"] = values["S"] @ values["S"].T + 3 * np.eye(3)
    H = np.asarray(h.evaluate(**values))
    shape = shapes[wrt]
    assert H.shape == shape + shape
    k = int(np.prod(shape))
    M = H.reshape(k, k)
    np.testing.assert_allclose(M, M.T, rtol=1e-10, atol=1e-12)
    assert_close_to_fd(H, central_hessian(_f(f), values, wrt), rtol=1e-5)


# --------------------------------------------------------------------- flattening


def _axb():
    rng = _rng("kron")
    A, X, B = rng.normal(size=(2, 4)), rng.normal(size=(4, 3)), rng.normal(size=(3, 5))
    d = einderiv.diff("A[i,k]*X[k,l]*B[l,j]", "X",
                      shapes={"A": (2, 4), "X": (4, 3), "B": (3, 5)})
    return A, X, B, d


def test_derivative_of_AXB_by_X_has_layout_and_values() -> None:
    A, X, B, d = _axb()
    T = np.asarray(d.evaluate(A=A, X=X, B=B))
    assert T.shape == (4, 3, 2, 5)
    # d (AXB)[i,j] / d X[k,l] = A[i,k] B[l,j], stored at [k,l,i,j]
    np.testing.assert_allclose(T, np.einsum("ik,lj->klij", A, B), rtol=1e-12, atol=1e-14)
    f = einderiv.parse("A[i,k]*X[k,l]*B[l,j]")
    assert_close_to_fd(T, central_diff(_f(f), {"A": A, "X": X, "B": B}, "X"))


def test_flatten_column_major_is_the_kronecker_product() -> None:
    A, X, B, d = _axb()
    J = einderiv.flatten(d.evaluate(A=A, X=X, B=B), 2, "F")
    assert J.shape == (12, 10)
    np.testing.assert_allclose(J, np.kron(B, A.T), rtol=1e-12, atol=1e-14)
    # and it is the Jacobian of vec(Y) by vec(X) (column-major vec), transposed
    A_, B_ = A, B
    jac = np.empty((12, 10))
    for col in range(12):
        e = np.zeros(12)
        e[col] = 1.0
        jac[col] = (A_ @ e.reshape(4, 3, order="F") @ B_).reshape(-1, order="F")
    np.testing.assert_allclose(J, jac, rtol=1e-12, atol=1e-14)


def test_flatten_default_order_is_column_major() -> None:
    A, X, B, d = _axb()
    T = d.evaluate(A=A, X=X, B=B)
    np.testing.assert_array_equal(einderiv.flatten(T, 2), einderiv.flatten(T, 2, "F"))


def test_flatten_row_major_is_numpy_reshape() -> None:
    A, X, B, d = _axb()
    T = np.asarray(d.evaluate(A=A, X=X, B=B))
    J = einderiv.flatten(T, 2, "C")
    np.testing.assert_array_equal(J, T.reshape(12, 10))
    np.testing.assert_allclose(J, np.kron(A.T, B), rtol=1e-12, atol=1e-14)


def test_flatten_rejects_bad_arguments() -> None:
    T = np.zeros((4, 3, 2))
    with pytest.raises(einderiv.EinderivError, match="order"):
        einderiv.flatten(T, 1, "K")
    with pytest.raises(einderiv.EinderivError, match="n_row_axes"):
        einderiv.flatten(T, 4)
    with pytest.raises(einderiv.EinderivError, match="n_row_axes"):
        einderiv.flatten(T, -1)


# -------------------------------------------------------------------------- check()


@pytest.mark.parametrize("case", ID_PARAMS)
def test_check_accepts_correct_derivatives(case: Case) -> None:
    values = case.arrays(_rng("check", case.name))
    r = einderiv.check(case.expr, case.wrt, values, shapes=case.shapes)
    assert r.ok(), f"{case.name}: max_rel_error {r.max_rel_error}"
    assert r.max_rel_error < 1e-6
    expected = case.closed_form(values)
    assert r.symbolic.shape == expected.shape
    np.testing.assert_allclose(r.symbolic, expected, rtol=1e-10, atol=1e-12)
    f = einderiv.parse(case.expr)
    assert_close_to_fd(r.numeric, central_diff(_f(f), values, case.wrt))


def _check_module():
    # einderiv.check is the function; the module is einderiv/check.py
    return sys.modules["einderiv.tools.check"]


@pytest.mark.parametrize("wrong_text", [
    "2*A[c,a]*x[a]",              # 2 A x instead of (A + A^T) x
    "-(A[a,c] + A[c,a])*x[a]",    # wrong sign
    "A[a,c]*x[a] + A[c,a]*x[a] + 1e-3*x[c]",  # slightly off
])
def test_check_reports_a_wrong_derivative(monkeypatch, wrong_text) -> None:
    rng = _rng("wrong", wrong_text)
    values = {"x": rng.normal(size=3), "A": rng.normal(size=(3, 3))}
    wrong = einderiv.parse(wrong_text)
    assert wrong.free == ("c",)
    # Sanity: the hand-made Expr really is wrong (independent closed form).
    right = (values["A"] + values["A"].T) @ values["x"]
    assert not np.allclose(wrong.evaluate(**values), right, rtol=1e-5, atol=0)
    monkeypatch.setattr(_check_module(), "diff", lambda *a, **k: wrong)
    r = einderiv.check("x[i]*A[i,j]*x[j]", "x", values)
    assert not r.ok()
    assert r.max_rel_error > 1e-4
    np.testing.assert_allclose(r.numeric, right, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(r.symbolic, wrong.evaluate(**values), rtol=1e-12)


def test_check_reports_error_relative_to_derivative_size(monkeypatch) -> None:
    rng = _rng("relerr")
    values = {"x": rng.normal(size=4), "A": rng.normal(size=(4, 4))}
    right = (values["A"] + values["A"].T) @ values["x"]
    wrong = einderiv.parse("A[a,c]*x[a] + A[c,a]*x[a] + x[c]")  # off by x
    monkeypatch.setattr(_check_module(), "diff", lambda *a, **k: wrong)
    r = einderiv.check("x[i]*A[i,j]*x[j]", "x", values)
    expected_abs = np.max(np.abs(values["x"]))
    np.testing.assert_allclose(r.max_abs_error, expected_abs, rtol=1e-5)
    np.testing.assert_allclose(r.max_rel_error, expected_abs / np.max(np.abs(right)), rtol=1e-5)


def test_check_result_text_names_the_variable() -> None:
    rng = _rng("str")
    values = {"X": rng.normal(size=(4, 3)), "theta": rng.normal(size=3),
              "Y": rng.normal(size=4), "n": 4.0}
    r = einderiv.check("(X[a,b]*theta[b] - Y[a])*(X[a,c]*theta[c] - Y[a])/n", "theta", values)
    assert r.ok()
    np.testing.assert_allclose(
        r.symbolic, 2 / 4 * values["X"].T @ (values["X"] @ values["theta"] - values["Y"]),
        rtol=1e-12)
    assert "theta" in str(r), str(r)


def test_check_missing_variable_value_is_an_einderiv_error() -> None:
    with pytest.raises(einderiv.EinderivError, match="theta"):
        einderiv.check("x[i]*theta[i]", "theta", {"x": np.ones(3)})


# ------------------------------------------------------------- deltas and identity


def test_derivative_of_x_i_by_x_j_is_a_delta_and_the_identity() -> None:
    d = einderiv.diff("x[i]", "x[j]")
    assert "delta" in str(d)
    assert d.free == ("j", "i")
    np.testing.assert_array_equal(d.evaluate(x=np.arange(4.0)), np.eye(4))
    # with a shape instead of an array to size it
    d2 = einderiv.diff("x[i]", "x[j]", shapes={"x": (5,)})
    np.testing.assert_array_equal(d2.evaluate(x=np.ones(5)), np.eye(5))


def test_delta_contracts_with_a_vector() -> None:
    e = einderiv.parse("delta[i,j]*x[j]")
    assert str(e) == "x[i]"
    assert e == einderiv.parse("x[i]")
    x = _rng("delta").normal(size=4)
    np.testing.assert_allclose(e.evaluate(x=x), x)
    raw = einderiv.parse("delta[i,j]*x[j]", simplify=False)  # unsimplified: same values
    np.testing.assert_allclose(raw.evaluate(x=x), x)


def test_delta_chain_contracts() -> None:
    e = einderiv.parse("delta[i,j]*delta[j,k]*A[k,l]")
    assert "delta" not in str(e)
    A = _rng("chain").normal(size=(4, 3))
    np.testing.assert_allclose(e.evaluate(A=A), A)


def test_delta_transposes_a_matrix() -> None:
    e = einderiv.parse("delta[i,k]*A[l,k] -> [i,l]")
    assert "delta" not in str(e)
    A = _rng("transpose").normal(size=(4, 3))
    np.testing.assert_allclose(e.evaluate(A=A), A.T)


def test_delta_between_two_vectors_is_the_dot_product() -> None:
    e = einderiv.parse("delta[i,j]*x[i]*y[j]")
    assert e.free == ()
    assert "delta" not in str(e)
    rng = _rng("dot")
    x, y = rng.normal(size=5), rng.normal(size=5)
    np.testing.assert_allclose(e.evaluate(x=x, y=y), x @ y)


# ---------------------------------------------------------------- simplification


def test_like_terms_are_collected_into_one_term() -> None:
    e = einderiv.parse("X[a,d]*r[a] + r[b]*X[b,d]")
    text = str(e)
    assert _top_level_terms(text) == 1, text
    assert text.startswith("2*"), text
    assert e.free == ("d",)
    rng = _rng("collect")
    X, r = rng.normal(size=(4, 3)), rng.normal(size=4)
    np.testing.assert_allclose(e.evaluate(X=X, r=r), 2 * X.T @ r)
    np.testing.assert_allclose(einderiv.parse(text).evaluate(X=X, r=r), 2 * X.T @ r)


def test_collection_keeps_distinct_terms_apart() -> None:
    e = einderiv.parse("X[a,d]*r[a] + X[d,a]*r[a]")  # X^T r + X r: not like terms
    assert _top_level_terms(str(e)) == 2, str(e)
    rng = _rng("apart")
    X, r = rng.normal(size=(3, 3)), rng.normal(size=3)
    np.testing.assert_allclose(e.evaluate(X=X, r=r), X.T @ r + X @ r)


# ----------------------------------------------------------------- many index names


def test_evaluate_with_more_than_52_index_names() -> None:
    """A chain of 60 matrices has 61 distinct labels: more than einsum's 52 letters."""
    k = 60
    sizes = [2 + (j % 3) for j in range(k + 1)]  # 2, 3, 4, 2, 3, 4, ...
    text = "*".join(f"M{j}[i{j},i{j + 1}]" for j in range(k))
    e = einderiv.parse(text)
    assert e.free == ("i0", f"i{k}")
    rng = _rng("many")
    mats = {f"M{j}": rng.uniform(0.5, 1.0, size=(sizes[j], sizes[j + 1])) / 2 for j in range(k)}
    expected = np.linalg.multi_dot([mats[f"M{j}"] for j in range(k)])
    np.testing.assert_allclose(e.evaluate(**mats), expected, rtol=1e-10)


def test_evaluate_with_more_than_52_free_and_summed_labels_in_one_product() -> None:
    # 30 summed labels s0..s29 and 30 more labels t0..t29 summed in pairs
    text, arrays, expected = grouped_chain(30, _rng("many2"))
    e = einderiv.parse(text)
    assert e.free == ("z",)
    np.testing.assert_allclose(e.evaluate(**arrays), expected, rtol=1e-9)


def test_derivative_of_a_long_chain_by_one_matrix() -> None:
    k = 56
    sizes = [2 + (j % 3) for j in range(k + 1)]
    text = "a[i0]*" + "*".join(f"M{j}[i{j},i{j + 1}]" for j in range(k)) + f"*b[i{k}]"
    f = einderiv.parse(text)
    d = einderiv.diff(f, "M7")
    rng = _rng("chain-diff")
    arrays = {f"M{j}": rng.uniform(0.5, 1.0, size=(sizes[j], sizes[j + 1])) / 2
              for j in range(k)}
    arrays["a"], arrays["b"] = rng.normal(size=sizes[0]), rng.normal(size=sizes[k])
    left = arrays["a"] @ np.linalg.multi_dot([arrays[f"M{j}"] for j in range(7)])
    right = np.linalg.multi_dot([arrays[f"M{j}"] for j in range(8, k)]) @ arrays["b"]
    np.testing.assert_allclose(d.evaluate(**arrays), np.outer(left, right), rtol=1e-9)
