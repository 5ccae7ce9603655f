"""Issue 17, layout choice: ``layout="denominator"`` (default) or ``"numerator"``.

In numerator layout ``d f / d x`` has f's axes first, then x's: the same tensor as
in denominator layout with its axes permuted. Checked for every case of
tests/cases.py (notes 001_* A.1-A.14 and the rest) on random data with distinct
sizes (4, 3, 5), against numpy closed forms and finite differences; the matrix forms
of A.1-A.14 in numerator layout as text and by value; the options of flatten,
to_matrix, derive_steps, structure, jvp/hvp and the command line.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import einderiv
from cases import HESSIANS, IDENTITIES, Case
from einderiv.api import with_axes
from einderiv.cli import main
from einderiv.core.ir import DerivativeOf
from einderiv.core.layouts import LAYOUTS
from fd import central_diff

N, D, M = 4, 3, 5
LSQ = "(X[a,b]*theta[b] - Y[a])*(X[a,c]*theta[c] - Y[a])/n"


def _var_rank(case: Case) -> int:
    return len(case.shapes[case.wrt])


def _numerator(t: np.ndarray, var_rank: int) -> np.ndarray:
    """A denominator-layout array with its variable's axes moved last."""
    return np.moveaxis(t, list(range(var_rank)), list(range(t.ndim - var_rank, t.ndim)))


def _values(case: Case, seed: int = 17) -> dict[str, np.ndarray]:
    return case.arrays(np.random.default_rng(seed))


# ------------------------------------------------- the two layouts are permutations


@pytest.mark.parametrize("case", IDENTITIES, ids=lambda c: c.name)
def test_numerator_is_the_denominator_tensor_with_its_axes_permuted(case: Case) -> None:
    den = einderiv.diff(case.expr, case.wrt, case.shapes)
    num = einderiv.diff(case.expr, case.wrt, case.shapes, layout="numerator")
    k = _var_rank(case)
    assert num.free == den.free[k:] + den.free[:k]
    assert den.derivative_of == DerivativeOf(case.wrt, den.free[:k], "denominator")
    assert num.derivative_of == DerivativeOf(case.wrt, den.free[:k], "numerator")
    v = _values(case)
    d_val, n_val = den.evaluate(**v), num.evaluate(**v)
    np.testing.assert_allclose(n_val, _numerator(d_val, k), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(n_val, _numerator(case.closed_form(v), k), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("case", IDENTITIES, ids=lambda c: c.name)
def test_numerator_values_match_finite_differences(case: Case) -> None:
    num = einderiv.diff(case.expr, case.wrt, case.shapes, layout="numerator")
    f = einderiv.parse(case.expr)
    v = _values(case, 3)
    fd = central_diff(lambda a: f.evaluate(**a), v, case.wrt, accuracy=4)
    np.testing.assert_allclose(num.evaluate(**v), _numerator(fd, _var_rank(case)),
                               rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("case", HESSIANS, ids=lambda c: c.name)
def test_hessians_agree_in_both_layouts(case: Case) -> None:
    v = _values(case)
    values = []
    for layout in LAYOUTS:
        g = einderiv.diff(case.expr, case.wrt, case.shapes, layout=layout)
        h = einderiv.diff(g, with_axes(g, case.wrt, 1), case.shapes, layout=layout)
        values.append(h.evaluate(**v))
        assert str(h.to_matrix()) == case.textbook  # symmetric: the same matrix
    np.testing.assert_allclose(values[1], values[0].T, rtol=1e-10)
    np.testing.assert_allclose(values[1], case.closed_form(v), rtol=1e-10)


# ----------------------------------------------- numerator-layout matrix forms A.x

#: The matrix forms in numerator layout, and numpy closed forms written from the
#: notes (the transposes of A.1-A.14; a gradient of a scalar is a row).
NUMERATOR_FORMS = {
    "A.1 constant vector": ("0", lambda v: np.zeros((M, D))),
    "A.2 identity": ("I", lambda v: np.eye(D)),
    "A.4 d(Ax)/dx = A^T": ("A", lambda v: v["A"]),
    "A.5 d(x^T A)/dx = A": ("A^T", lambda v: v["A"].T),
    "A.6 linearity": ("A + B", lambda v: v["A"] + v["B"]),
    "A.7 scalar constant": ("alpha A", lambda v: v["alpha"] * v["A"]),
    "A.8 d(v a)/dx = dv/dx a^T": ("a b^T", lambda v: np.outer(v["a"], v["b"])),
    "A.9 d(A u)/dx = du/dx A^T": ("A B", lambda v: v["A"] @ v["B"]),
    "A.10 product rule": ("b^T x C + C x b^T",
                          lambda v: (v["b"] @ v["x"]) * v["C"] + np.outer(v["C"] @ v["x"], v["b"])),
    "A.11 chain rule": ("diag(1 - tanh(A x)^2) A",
                        lambda v: np.diag(1 - np.tanh(v["A"] @ v["x"]) ** 2) @ v["A"]),
    "A.13 d(u^T v)/dx": ("x^T (A^T B + B^T A)",
                         lambda v: v["x"] @ (v["A"].T @ v["B"] + v["B"].T @ v["A"])),
    "A.14 vector by scalar": ("a + 2 s b", lambda v: v["a"] + 2 * v["s"] * v["b"]),
    "A.4 linear regression gradient": (
        "2/n (X theta - Y)^T X", lambda v: 2 / v["n"] * (v["X"] @ v["theta"] - v["Y"]) @ v["X"]),
    "x^T a": ("a^T", lambda v: v["a"]),
}

_BY_NAME = {c.name: c for c in IDENTITIES}


@pytest.mark.parametrize("name", sorted(NUMERATOR_FORMS))
def test_numerator_matrix_forms_as_text_and_by_value(name: str) -> None:
    case = _BY_NAME[name]
    text, closed = NUMERATOR_FORMS[name]
    num = einderiv.diff(case.expr, case.wrt, case.shapes, layout="numerator")
    m = num.to_matrix()
    assert str(m) == text
    v = _values(case, 5)
    np.testing.assert_allclose(m.evaluate(**v), closed(v), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(num.evaluate(**v), closed(v), rtol=1e-10, atol=1e-12)


def test_a12_chain_of_three_is_a_row_in_numerator_layout() -> None:
    case = _BY_NAME["A.12 chain of three"]
    m = einderiv.diff(case.expr, case.wrt, case.shapes, layout="numerator").to_matrix()
    assert m.kind == "row" and str(m).endswith("^T A")
    v = _values(case)
    np.testing.assert_allclose(m.evaluate(**v), case.closed_form(v), rtol=1e-10)


def test_gradients_print_as_rows_and_columns() -> None:
    col = einderiv.diff(LSQ, "theta").to_matrix()
    row = einderiv.diff(LSQ, "theta", layout="numerator").to_matrix()
    assert (str(col), col.kind) == ("2/n X^T (X theta - Y)", "column")
    assert (str(row), row.kind) == ("2/n (X theta - Y)^T X", "row")
    # a vector by a scalar is the other way round (notes 001_* A.1)
    assert einderiv.diff("s*a[i]", "s", layout="numerator").to_matrix().kind == "column"
    # the layout may be given to to_matrix explicitly, with the variable's rank
    d = einderiv.diff("x[i]*a[i]", "x")
    assert str(einderiv.to_matrix(d, wrt_rank=1, layout="numerator")) == "a^T"


def test_kronecker_forms_in_both_layouts() -> None:
    """vec(A X B) = (B^T kron A) vec(X): numerator layout, column-major (Magnus &
    Neudecker); its transpose kron(B, A^T) in denominator layout."""
    rng = np.random.default_rng(4)
    A, X, B = rng.normal(size=(N, D)), rng.normal(size=(D, M)), rng.normal(size=(M, 2))
    f = "A[i,k]*X[k,l]*B[l,j]"
    den = einderiv.diff(f, "X")
    num = einderiv.diff(f, "X", layout="numerator")
    T_den, T_num = den.evaluate(A=A, X=X, B=B), num.evaluate(A=A, X=X, B=B)
    assert T_den.shape == (D, M, N, 2) and T_num.shape == (N, 2, D, M)
    expected = {("denominator", "F"): np.kron(B, A.T), ("denominator", "C"): np.kron(A.T, B),
                ("numerator", "F"): np.kron(B.T, A), ("numerator", "C"): np.kron(A, B.T)}
    for (layout, order), want in expected.items():
        d, T = (den, T_den) if layout == "denominator" else (num, T_num)
        flat = einderiv.flatten(T, 2, order, layout=layout)
        np.testing.assert_allclose(flat, want, rtol=1e-12)
        m = d.to_matrix(wrt_rank=2, flatten=order)
        np.testing.assert_allclose(m.evaluate(A=A, B=B), want, rtol=1e-12)
    assert str(num.to_matrix(flatten="F")) == "kron(B^T, A)"
    np.testing.assert_allclose(einderiv.flatten(T_num, 2, "F", layout="numerator"),
                               einderiv.flatten(T_den, 2, "F").T)


def test_flatten_numerator_rows_are_the_functions_entries() -> None:
    rng = np.random.default_rng(8)
    A, x = rng.normal(size=(N, D)), rng.normal(size=D)
    J = einderiv.diff("A[i,j]*x[j]", "x", layout="numerator").evaluate(A=A, x=x)
    assert einderiv.flatten(J, 1, layout="numerator").shape == (N, D)
    g = einderiv.diff("x[i]*x[i]", "x", layout="numerator").evaluate(x=x)
    assert einderiv.flatten(g, 0, layout="numerator").shape == (1, D)  # a row


# --------------------------------------------------------------- jvp, hvp, errors


def test_hvp_and_jvp_in_numerator_layout() -> None:
    rng = np.random.default_rng(9)
    W, x, v = rng.normal(size=(N, D)), rng.normal(size=D), rng.normal(size=D)
    f = "tanh(W[i,j]*x[j])"
    h_den = einderiv.hvp(f, "x")
    h_num = einderiv.hvp(f, "x", layout="numerator")
    assert h_num.free == h_den.free[1:] + h_den.free[:1]
    np.testing.assert_allclose(h_num.evaluate(W=W, x=x, v=v), h_den.evaluate(W=W, x=x, v=v).T)
    j_num = einderiv.jvp(f, "x", layout="numerator")
    assert str(j_num) == str(einderiv.jvp(f, "x"))  # f's axes only: the same either way


@pytest.mark.parametrize("call", [
    lambda bad: einderiv.diff("x[i]", "x", layout=bad),
    lambda bad: einderiv.jvp("x[i]", "x", layout=bad),
    lambda bad: einderiv.hvp("x[i]*x[i]", "x", layout=bad),
    lambda bad: einderiv.flatten(np.ones((2, 3)), 1, layout=bad),
    lambda bad: einderiv.derive_steps("x[i]", "x", layout=bad),
    lambda bad: einderiv.structure(einderiv.diff("x[i]", "x"), "x", layout=bad),
    lambda bad: einderiv.diff("x[i]", "x").to_matrix(layout=bad),
], ids=["diff", "jvp", "hvp", "flatten", "derive_steps", "structure", "to_matrix"])
@pytest.mark.parametrize("bad", ["Numerator", "row", 3])  # None: the recorded one
def test_bad_layout_names_list_the_valid_ones(call, bad) -> None:
    with pytest.raises(einderiv.LayoutError) as info:
        call(bad)
    assert isinstance(info.value, ValueError) and isinstance(info.value, einderiv.EinderivError)
    message = str(info.value)
    assert repr(bad) in message and "'denominator'" in message and "'numerator'" in message


# ------------------------------------------------------ derive_steps and structure


def test_derive_steps_in_numerator_layout() -> None:
    steps = einderiv.derive_steps(LSQ, "theta", layout="numerator")
    assert steps[-1].rule == "matrix form" and steps[-1].detail == "numerator layout"
    assert str(steps[-1].matrix) == "2/n (X theta - Y)^T X"
    assert steps.result == einderiv.diff(LSQ, "theta", layout="numerator")
    jac = einderiv.derive_steps("A[i,j]*x[j]", "x", layout="numerator")
    assert str(jac[-1].matrix) == "A" and jac.result.free == ("i", "b")
    for step in jac[1:]:  # every step shows f's axis first
        assert step.expr.free == ("i", "b")
    assert r"\partial x_{b}" in jac.to_latex()


def test_structure_in_numerator_layout() -> None:
    shapes = {"W": (M, D), "A": (M,)}
    d = einderiv.diff("W[j,i]*A[j]", "W", layout="numerator")  # Z = W^T A, X.20
    s = d.structure("W", shapes=shapes, function="Z")  # the layout diff recorded
    assert s.layout == "numerator"
    assert s.shape == (D, M, D) and s.var_axes == ("b", "c") and s.fun_axes == ("i",)
    assert s.row_axes == ("i",) and s.col_axes == ("b", "c")
    assert str(s.compressed) == "A[b]" and s.nonzeros == M * D
    assert str(s.chain) == str(einderiv.diff("W[j,i]*A[j]", "W").structure("W").chain)
    view = s.flatten_view("F")
    assert (view["rows"], view["cols"]) == (D, M * D)
    assert view["row_entry"] == "Z[i]" and view["col_entry"] == "W[b,c]"
    text = str(s)
    assert "numerator layout" in text and 'flatten(T, 1, order="F")' in text
    # given explicitly, and by var_axes: the variable's axes trail
    s2 = einderiv.structure(d, var_axes=2, layout="numerator")
    assert s2.var_axes == ("b", "c")
    values = {"W": np.ones((M, D)), "A": np.arange(1.0, M + 1)}
    np.testing.assert_array_equal(s.expand(s.compressed.evaluate(**values), **values),
                                  d.evaluate(**values))
    with pytest.raises(einderiv.IndexMismatchError, match="last"):
        einderiv.structure(d, "W[i,b]", layout="numerator")


# ------------------------------------------------------------------ command line


def _cli(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_cli_layout_numerator(capsys) -> None:
    out = _cli(capsys, ["diff", "A[i,j]*x[j]", "--wrt", "x", "--shape", "A=4,3",
                        "--layout", "numerator"])
    lines = out.splitlines()
    assert lines[0] == "layout: f's axes first, then x's (numerator layout)"
    assert "matrix form: A" in lines
    assert re.search(r"shape:\s*\(4, 3\)", out)
    printed = next(s for s in lines if s.startswith("d f / d x = ")).split(" = ", 1)[1]
    d = einderiv.parse(printed)
    A = np.random.default_rng(1).normal(size=(N, D))
    np.testing.assert_allclose(d.evaluate(A=A, x=np.ones(D)), A)


def test_cli_header_names_the_default_layout(capsys) -> None:
    out = _cli(capsys, ["diff", LSQ, "--wrt", "theta"])
    assert out.splitlines()[0] == "layout: theta's axes first, then f's (denominator layout)"
    out = _cli(capsys, ["diff", LSQ, "--wrt", "theta", "--latex", "--layout", "numerator"])
    assert out.splitlines()[0] == "% layout: f's axes first, then theta's (numerator layout)"
    assert "% matrix form, numerator layout" in out


def test_cli_steps_emit_inspect_and_order_two_with_numerator(capsys) -> None:
    out = _cli(capsys, ["diff", LSQ, "--wrt", "theta", "--steps", "--layout", "numerator"])
    assert out.splitlines()[0].startswith("layout: f's axes first")
    assert "matrix form: numerator layout" in out and "2/n (X theta - Y)^T X" in out
    out = _cli(capsys, ["diff", "A[i,j]*x[j]", "--wrt", "x", "--emit", "latex",
                        "--layout", "numerator"])
    assert out.splitlines()[0] == "% d f / d x, numerator layout"
    out = _cli(capsys, ["diff", "x[i]*A[i,j]*x[j]", "--wrt", "x", "--order", "2",
                        "--layout", "numerator"])
    assert "matrix form: A + A^T" in out
    out = _cli(capsys, ["inspect", "W[j,i]*A[j]", "--wrt", "W", "--shape", "W=5,3",
                        "--layout", "numerator"])
    assert "numerator layout" in out and "row i is f[i]" in out


def test_cli_rejects_an_unknown_layout(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["diff", "x[i]", "--wrt", "x", "--layout", "row"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "'denominator'" in err and "'numerator'" in err


def test_cli_emit_python_in_numerator_layout_returns_the_jacobian(capsys) -> None:
    out = _cli(capsys, ["diff", "tanh(A[i,j]*x[j])", "--wrt", "x", "--emit", "python",
                        "--layout", "numerator"])
    namespace: dict = {}
    exec(out, namespace)
    rng = np.random.default_rng(2)
    A, x = rng.normal(size=(N, D)), rng.normal(size=D)
    np.testing.assert_allclose(namespace["jacobian"](A=A, x=x),
                               np.diag(1 - np.tanh(A @ x) ** 2) @ A, rtol=1e-12)


def test_exported_code_names_the_layout_it_returns():
    num = einderiv.diff("A[i,j]*x[j]", "x", layout="numerator").to_python()
    den = einderiv.diff("A[i,j]*x[j]", "x").to_python()
    assert "Layout: numerator layout -- a derivative d f / d x has the axes of f" in num
    assert "Layout: denominator layout" in den and "numerator" not in den
    assert "Layout:" not in einderiv.parse("A[i,j]*x[j]").to_python()  # no derivative
