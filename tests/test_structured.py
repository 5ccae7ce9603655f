"""Symmetric and diagonal variables (issue 17): assumptions, the derivative on the
structured space, evaluation checks and matrix forms (docs/structured.md)."""

from __future__ import annotations

import numpy as np
import pytest

import einderiv
from einderiv.cli import main
from einderiv.core.ir import Sum
from einderiv.core.structures import RTOL, STRUCTURES
from einderiv.errors import EinderivError, EvaluationError

SYM = {"S": "symmetric"}
NLL = "0.5*(x[i]-mu[i])*inv(S)[i,j]*(x[j]-mu[j]) + 0.5*logdet(S)"
NLL_P = "0.5*(x[i]-mu[i])*P[i,j]*(x[j]-mu[j]) - 0.5*logdet(P)"


def _spd(rng: np.random.Generator, n: int) -> np.ndarray:
    m = rng.normal(size=(n, n))
    return m @ m.T + n * np.eye(n)


def _values(seed: int = 0) -> dict[str, np.ndarray]:
    """Distinct sizes: S 4x4, X 3x4, A 4x4, vectors of 4, B 3x3."""
    rng = np.random.default_rng(seed)
    return {"S": _spd(rng, 4), "X": rng.normal(size=(3, 4)), "A": rng.normal(size=(4, 4)),
            "x": rng.normal(size=4), "mu": rng.normal(size=4), "y": rng.normal(size=4),
            "D": np.diag(rng.uniform(1.0, 2.0, size=4)), "B": rng.normal(size=(3, 3)),
            "s": np.array(0.7)}


def _directions(n: int, kind: str) -> list[np.ndarray]:
    """A basis of the structured space: E_pq + E_qp (p <= q), or E_pp."""
    out = []
    for p in range(n):
        for q in range(p, n):
            if kind == "diagonal" and p != q:
                continue
            e = np.zeros((n, n))
            e[p, q] = e[q, p] = 1.0
            out.append(e)
    return out


def _directional(f: einderiv.Expr, name: str, values: dict, e: np.ndarray,
                 h: float = 1e-6) -> float:
    plus, minus = dict(values), dict(values)
    plus[name], minus[name] = values[name] + h * e, values[name] - h * e
    return float((f.evaluate(**plus) - f.evaluate(**minus)) / (2 * h))


CASES = [
    (NLL, "S", "symmetric"),
    ("S[i,j]*A[j,i]", "S", "symmetric"),  # tr(S A)
    ("logdet(X[i,k]*S[k,l]*X[j,l] + s*delta[i,j])", "S", "symmetric"),
    ("x[i]*S[i,j]*A[j,k]*S[k,l]*y[l]", "S", "symmetric"),
    ("tanh(0.02*x[i]*S[i,j]*y[j])", "S", "symmetric"),
    ("x[i]*D[i,j]*A[j,k]*D[k,l]*y[l]", "D", "diagonal"),
    ("logdet(D[i,j] + A[i,k]*A[j,k])", "D", "diagonal"),
]


@pytest.mark.parametrize("text,name,kind", CASES)
def test_gradient_gives_the_change_along_structured_directions(text, name, kind):
    values = _values()
    f = einderiv.parse(text, assume={name: kind})
    g = einderiv.diff(f, name)
    grad = g.evaluate(**values)
    n = values[name].shape[0]
    assert grad.shape == (n, n)
    assert np.allclose(grad, grad.T)  # an element of the space
    if kind == "diagonal":
        assert np.allclose(grad, np.diag(np.diag(grad)))
    for e in _directions(n, kind):
        assert np.isclose(np.sum(grad * e), _directional(f, name, values, e),
                          rtol=1e-6, atol=1e-7)
    # the same from diff(text, assume=...) and from check
    again = einderiv.diff(text, name, assume={name: kind}).evaluate(**values)
    assert np.allclose(again, grad)
    assert einderiv.check(text, name, values, assume={name: kind}).ok()


@pytest.mark.parametrize("text,name,kind", CASES)
def test_structured_gradient_is_the_projection_of_the_unconstrained_one(text, name, kind):
    values = _values(1)
    free = einderiv.diff(text, name).evaluate(**values)
    structured = einderiv.diff(text, name, assume={name: kind}).evaluate(**values)
    want = (free + free.T) / 2 if kind == "symmetric" else np.diag(np.diag(free))
    assert np.allclose(structured, want)


@pytest.mark.parametrize("text,name,kind", CASES[:4] + CASES[5:6])
def test_hvp_and_jvp_along_structured_directions(text, name, kind):
    values = _values(2)
    n = values[name].shape[0]
    rng = np.random.default_rng(3)
    v = rng.normal(size=(n, n))
    v = v + v.T if kind == "symmetric" else np.diag(np.diag(v))
    g = einderiv.diff(text, name, assume={name: kind})
    h = einderiv.hvp(text, name, "V", assume={name: kind})
    got = h.evaluate(V=v, **values)
    eps = 1e-6
    plus, minus = dict(values), dict(values)
    plus[name], minus[name] = values[name] + eps * v, values[name] - eps * v
    fd = (g.evaluate(**plus) - g.evaluate(**minus)) / (2 * eps)
    assert np.allclose(got, fd, rtol=1e-5, atol=1e-6)
    j = einderiv.jvp(text, name, "V", assume={name: kind})
    assert np.isclose(float(j.evaluate(V=v, **values)), np.sum(g.evaluate(**values) * v))
    with pytest.raises(EvaluationError, match="'V' is assumed"):
        j.evaluate(V=rng.normal(size=(n, n)) + 5 * np.eye(n), **values)


# ------------------------------------------------------------------ printed forms


def test_gaussian_nll_by_mean_covariance_precision():
    assert str(einderiv.diff(NLL, "mu", assume=SYM).to_matrix()) == "-S^-1 (x - mu)"
    assert str(einderiv.diff(NLL, "x", assume=SYM).to_matrix()) == "S^-1 (x - mu)"
    assert str(einderiv.diff(NLL, "S", assume=SYM).to_matrix()) == \
        "(S^-1 - S^-1 (x - mu) (x - mu)^T S^-1)/2"
    prec = {"P": "symmetric"}
    assert str(einderiv.diff(NLL_P, "P", assume=prec).to_matrix()) == \
        "((x - mu) (x - mu)^T - P^-1)/2"
    assert str(einderiv.diff(NLL_P, "mu", assume=prec).to_matrix()) == "-P (x - mu)"
    # without the assumption: right for any square S, and both S^-1 and S^-T
    assert "S^-T" in str(einderiv.diff(NLL, "mu").to_matrix())


def test_printed_forms_evaluate_to_the_derivative():
    values = _values(4)
    for text, name in ((NLL, "S"), (NLL, "mu")):
        d = einderiv.diff(text, name, assume=SYM)
        m = d.to_matrix()
        assert np.allclose(m.evaluate(**values), d.evaluate(**values))


def test_trace_and_logdet_forms():
    assert str(einderiv.diff("S[i,j]*A[j,i]", "S", assume=SYM).to_matrix()) == "(A + A^T)/2"
    both = {"S": "symmetric", "A": "symmetric"}
    assert str(einderiv.diff("S[i,j]*A[j,i]", "S", assume=both).to_matrix()) == "A"
    assert str(einderiv.diff("logdet(S)", "S", assume=SYM).to_matrix()) == "S^-1"
    # logdet(X X^T + s I): the inverse of a symmetric sum is symmetric in matrix form
    assert str(einderiv.diff("logdet(X[i,k]*X[j,k] + s*delta[i,j])", "X").to_matrix()) == \
        "2 (s I + X X^T)^-1 X"
    assert str(einderiv.diff("x[i]*S[i,j]*x[j]", "x", assume=SYM).to_matrix()) == "2 S x"
    assert str(einderiv.diff("x[i]*S[i,j]*x[j]", "S", assume=SYM).to_matrix()) == "x x^T"
    d = einderiv.diff("x[i]*D[i,j]*y[j]", "D", assume={"D": "diagonal"})
    assert str(d.to_matrix()) == "diag(x .* y)"


def test_symmetric_terms_collect():
    e = einderiv.parse("x[i]*S[i,j]*y[j] + y[i]*S[i,j]*x[j]", assume=SYM)
    assert str(e) == "2*S[a,b]*x[a]*y[b]"
    assert str(einderiv.parse("S[i,j] + S[j,i]", assume=SYM)) == "2*S[i,j]"
    zero = einderiv.parse("inv(S)[i,j] - inv(S)[j,i]", assume=SYM)
    assert "inv" not in str(zero) and not zero.evaluate(S=np.eye(3)).any()
    # not without the assumption
    assert str(einderiv.parse("S[i,j] + S[j,i]")) == "S[i,j] + S[j,i]"
    shapes = {"S": (3, 3), "x": (3,)}
    m = einderiv.parse_matrix("S^T + S", shapes, assume=SYM)
    assert str(m.to_matrix()) == "2 S"
    m = einderiv.parse_matrix("x' S^-T x", shapes, assume=SYM)
    assert "S^-T" not in str(einderiv.diff(m, "x").to_matrix())


def test_assumption_travels_on_the_expression():
    e = einderiv.parse(NLL, assume=SYM)
    assert "symmetric" not in str(e) and "symmetric" not in repr(e)  # not in the text
    assert einderiv.parse(str(e), assume=SYM) == e  # the text reads back, with assume
    assert e != einderiv.parse(NLL)  # but part of the expression
    assert np.allclose(einderiv.diff(e, "S").evaluate(**_values()),
                       einderiv.diff(NLL, "S", assume=SYM).evaluate(**_values()))


# ------------------------------------------------------------------------ errors


def test_unknown_kind_lists_the_valid_ones():
    with pytest.raises(EinderivError) as err:
        einderiv.parse("S[i,j]", assume={"S": "hermitian"})
    for kind in STRUCTURES:
        assert kind in str(err.value)


@pytest.mark.parametrize("text,shapes", [
    ("x[i]*S[i]", None),
    ("S[i,j,k]", None),
    ("S", None),
    ("S[i,j]", {"S": (3, 4)}),
])
def test_only_square_matrices_can_be_structured(text, shapes):
    with pytest.raises(EinderivError, match="square matrix"):
        einderiv.parse(text, shapes, assume=SYM)


def test_structured_variable_of_the_wrong_rank_in_diff():
    with pytest.raises(EinderivError, match="square matrix"):
        einderiv.diff("x[i]*y[i]", "S[p]", assume=SYM)
    with pytest.raises(EinderivError, match="square matrix"):
        einderiv.parse_matrix("x' S y", {"x": (3,), "y": (4,), "S": (3, 4)}, assume=SYM)


def test_evaluation_refuses_unstructured_arrays():
    values = _values()
    rng = np.random.default_rng(5)
    f = einderiv.parse(NLL, assume=SYM)
    bad = values["S"] + 1e-3 * rng.normal(size=(4, 4))
    with pytest.raises(EvaluationError, match="'S' is assumed symmetric"):
        f.evaluate(**{**values, "S": bad})
    with pytest.raises(EvaluationError):
        einderiv.diff(f, "mu").evaluate(**{**values, "S": bad})
    # within the documented tolerance: accepted
    s = values["S"].copy()
    s[0, 1] += 0.1 * RTOL * np.max(np.abs(s))
    f.evaluate(**{**values, "S": s})
    d = einderiv.parse("x[i]*D[i,j]*y[j]", assume={"D": "diagonal"})
    with pytest.raises(EvaluationError, match="'D' is assumed diagonal"):
        d.evaluate(**{**values, "D": values["D"] + 0.01})
    with pytest.raises(EvaluationError, match="square"):
        d.evaluate(**{**values, "D": np.ones((4, 3))})


def test_check_refuses_a_non_symmetric_point():
    values = _values()
    values["S"] = values["A"]
    with pytest.raises(EvaluationError):
        einderiv.check(NLL, "S", values, assume=SYM)


def test_cli_assume(capsys):
    assert main(["diff", NLL, "--wrt", "S", "--assume", "S=symmetric"]) == 0
    out = capsys.readouterr().out
    assert "(S^-1 - S^-1 (x - mu) (x - mu)^T S^-1)/2" in out
    assert main(["diff", "x[i]*S[i]", "--wrt", "x", "--assume", "S=symmetric"]) != 0
    assert main(["diff", "S[i,j]", "--wrt", "S", "--assume", "S"]) != 0


def test_matrix_form_evaluation_refuses_unstructured_arrays():
    values = _values(6)
    m = einderiv.diff(NLL, "S", assume=SYM).to_matrix()
    assert np.allclose(m.evaluate(**values), einderiv.diff(NLL, "S").evaluate(**values) / 2
                       + einderiv.diff(NLL, "S").evaluate(**values).T / 2)
    with pytest.raises(EvaluationError, match="'S' is assumed symmetric"):
        m.evaluate(**{**values, "S": values["A"]})


def test_matrix_terms_that_cancel_give_zero_not_a_term():
    """Collecting like matrix terms (needed for A + A^T -> 2 A) must give a zero where
    they cancel: inv(M) and inv(M)^T print alike once M = I + X X^T is seen symmetric."""
    rng = np.random.default_rng(7)
    X, y = rng.normal(size=(3, 2)), rng.normal(size=3)
    m = "inv(X[i,k]*X[j,k] + delta[i,j])"
    for text in (f"{m}[a,b]*y[b] - {m}[b,a]*y[b]", f"{m}[a,b] - {m}[b,a]",
                 f"2*{m}[a,b]*y[b] - {m}[b,a]*y[b] - {m}[a,b]*y[b]"):
        e = einderiv.parse(text)
        got = e.to_matrix().evaluate(X=X, y=y)
        assert np.allclose(got, e.evaluate(X=X, y=y))
        assert np.allclose(got, 0)


# ------------------------------------------- symmetry derived from the expression


def test_inverse_of_a_gram_sum_is_symmetric_in_index_form():
    """inv(X X^T + s I) is symmetric whatever X is (its key is the same with its two
    labels swapped), so the two terms of d logdet(X X^T + s I)/dX are one."""
    text = "logdet(X[i,k]*X[j,k] + s*delta[i,j])"
    d = einderiv.diff(text, "X")
    assert not isinstance(d, Sum)  # one term
    rng = np.random.default_rng(7)
    X, s = rng.normal(size=(4, 3)), np.array(0.7)
    want = 2 * np.linalg.solve(X @ X.T + s * np.eye(4), X)  # closed form
    assert np.allclose(d.evaluate(X=X, s=s), want)
    y, A = rng.normal(size=3), rng.normal(size=(5, 3))
    g = einderiv.diff("y[i]*inv(A[a,i]*A[a,j])[i,j]*y[j]", "y")
    assert str(g.to_matrix()) == "2 (A^T A)^-1 y" and not isinstance(g, Sum)
    assert np.allclose(g.evaluate(y=y, A=A), 2 * np.linalg.solve(A.T @ A, y))
    # not for a matrix that is not symmetric
    assert isinstance(einderiv.diff("y[i]*inv(A[i,a]*B[a,j])[i,j]*y[j]", "y"), Sum)


def test_hvp_by_a_symmetric_matrix_collects_the_halves():
    h = einderiv.hvp("logdet(S)", "S", "V", assume=SYM)
    assert str(h.to_matrix()) == "-S^-1 V S^-1"
    values = _values(5)
    rng = np.random.default_rng(6)
    v = rng.normal(size=(4, 4))
    v = v + v.T
    inv = np.linalg.inv(values["S"])
    assert np.allclose(h.evaluate(V=v, S=values["S"]), -inv @ v @ inv)
    g = einderiv.diff("logdet(S)", "S", assume=SYM)
    eps = 1e-6
    fd = (g.evaluate(S=values["S"] + eps * v) - g.evaluate(S=values["S"] - eps * v)) / (2 * eps)
    assert np.allclose(h.evaluate(V=v, S=values["S"]), fd, atol=1e-7)


def test_derive_steps_takes_the_assumption():
    steps = einderiv.derive_steps(NLL, "S", assume=SYM)
    assert "projected onto symmetric matrices" in steps[1].detail
    assert str(steps[-1].matrix) == "(S^-1 - S^-1 (x - mu) (x - mu)^T S^-1)/2"
    values = _values(8)
    assert np.allclose(steps.result.evaluate(**values),
                       einderiv.diff(NLL, "S", assume=SYM).evaluate(**values))
