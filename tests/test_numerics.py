"""Numerical care (issue 6): stable forms for large arguments, solve instead of inv,
slogdet. Every check compares with an independent closed form on large inputs, with
numpy warnings turned into errors (an overflow would raise)."""

import warnings

import numpy as np
import pytest

import einderiv

X_BIG = np.array([1000.0, 1001.0, 999.0, -1000.0])


@pytest.fixture(autouse=True)
def _warnings_are_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def _softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def test_logsumexp_of_large_values():
    e = einderiv.parse("log(sum[j](exp(x[j])))")
    m = X_BIG.max()
    np.testing.assert_allclose(e.evaluate(x=X_BIG), m + np.log(np.exp(X_BIG - m).sum()))


def test_softmax_gradient_and_hessian_of_large_values():
    lse = "log(sum[j](exp(x[j])))"
    g = einderiv.diff(lse, "x")
    h = einderiv.diff(g, "x")
    p = _softmax(X_BIG)
    np.testing.assert_allclose(g.evaluate(x=X_BIG), p)
    np.testing.assert_allclose(h.evaluate(x=X_BIG), np.diag(p) - np.outer(p, p), atol=1e-15)


def test_cross_entropy_gradient_and_hessian_of_large_values():
    ce = "-y[i]*(z[i] - log(sum[j](exp(z[j]))))"
    y = np.array([0.1, 0.2, 0.3, 0.4])
    g = einderiv.diff(ce, "z")
    h = einderiv.diff(g, "z")
    p = _softmax(X_BIG)
    np.testing.assert_allclose(g.evaluate(y=y, z=X_BIG), p - y)
    np.testing.assert_allclose(h.evaluate(y=y, z=X_BIG), np.diag(p) - np.outer(p, p),
                               atol=1e-15)


def test_batched_softmax_cross_entropy_is_one_softmax_step_per_row():
    """Rows of logits (b) with classes (c, k): the gradient's exp(Z) / sum exp(Z) is
    evaluated as one max-shifted softmax over the class axis, shared by the Hessian's
    two factors; large logits do not overflow. Sizes 4 x 3 (distinct)."""
    ce = "sum[b](sum[c](Y[b,c])*log(sum[k](exp(Z[b,k]))) -> [b]) - Y[b,c]*Z[b,c]"
    rng = np.random.default_rng(5)
    Z = 800.0 * rng.normal(size=(4, 3))
    Y = rng.dirichlet(np.ones(3), size=4)
    e = np.exp(Z - Z.max(axis=1, keepdims=True))
    P = e / e.sum(axis=1, keepdims=True)
    g = einderiv.diff(ce, "Z[p,q]")
    np.testing.assert_allclose(g.evaluate(Y=Y, Z=Z), Y.sum(axis=1, keepdims=True) * P - Y,
                               atol=1e-15)
    assert [s.kind for s in g.compile().program.steps].count("softmax") == 1
    h = einderiv.diff(g, "Z[r,s]")  # [r,s,p,q]: sum_c Y[r,c] (delta[r,p] (delta[s,q] P - P P))
    want = np.zeros((4, 3, 4, 3))
    for r in range(4):
        want[r, :, r, :] = Y[r].sum() * (np.diag(P[r]) - np.outer(P[r], P[r]))
    np.testing.assert_allclose(h.evaluate(Y=Y, Z=Z), want, atol=1e-15)


def test_softmax_of_all_minus_infinity_is_nan_as_numpy_gives():
    g = einderiv.diff("log(sum[j](exp(x[j])))", "x")
    x = np.full(3, -np.inf)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = np.exp(x - np.log(np.exp(x).sum()))  # nan: 0/0, never hidden
        got = g.evaluate(x=x)
    assert np.isnan(want).all() and np.isnan(got).all()


def test_logistic_loss_and_derivatives_of_large_margins():
    loss = "sum[a](log(1 + exp(-(y[a]*X[a,b]*theta[b] -> [a]))))"
    X = np.array([[1.0, 2.0, 0.5], [-3.0, 1.0, 2.0], [0.5, -1.0, 1.0], [2.0, 0.0, -1.0]])
    y = np.array([1.0, -1.0, 1.0, -1.0])
    theta = np.array([400.0, -300.0, 200.0])   # margins of several hundred
    u = -y * (X @ theta)
    f = np.logaddexp(0, u).sum()
    s = 1 / (1 + np.exp(-np.clip(u, -700, 700)))
    # s (1 - s) = sigmoid(u) sigmoid(-u), without the cancellation of 1 - s near s = 1
    ds = np.exp(-np.logaddexp(0, u) - np.logaddexp(0, -u))
    np.testing.assert_allclose(einderiv.parse(loss).evaluate(X=X, y=y, theta=theta), f)
    g = einderiv.diff(loss, "theta")
    np.testing.assert_allclose(g.evaluate(X=X, y=y, theta=theta), X.T @ (-y * s))
    h = einderiv.diff(g, "theta")
    np.testing.assert_allclose(h.evaluate(X=X, y=y, theta=theta),
                               X.T @ np.diag(y * y * ds) @ X, rtol=1e-10, atol=1e-300)
    assert "1 - sigmoid" not in str(h)  # sigmoid(-u) sigmoid(u): accurate in both tails


def test_sigmoid_and_softplus_of_large_arguments():
    x = np.array([-800.0, -30.0, 0.0, 30.0, 800.0])
    np.testing.assert_allclose(einderiv.parse("sigmoid(x[i])").evaluate(x=x),
                               [0.0, 1 / (1 + np.exp(30)), 0.5, 1 / (1 + np.exp(-30)), 1.0])
    np.testing.assert_allclose(einderiv.parse("softplus(x[i])").evaluate(x=x),
                               np.logaddexp(0, x))


def test_inverse_times_vector_uses_solve():
    rng = np.random.default_rng(3)
    B = rng.normal(size=(4, 4))
    A = B @ B.T + 4 * np.eye(4)
    x, b = rng.normal(size=4), rng.normal(size=4)
    for text, want in [("x[i]*inv(A)[i,j]*b[j]", x @ np.linalg.solve(A, b)),
                       ("inv(A)[i,j]*b[j]", np.linalg.solve(A, b)),
                       ("x[i]*inv(A)[i,j]", np.linalg.solve(A.T, x))]:
        f = einderiv.parse(text).compile()
        np.testing.assert_allclose(f(A=A, x=x, b=b), want)
        kinds = [s.kind for s in f.program.steps]
        assert "solve" in kinds and "inv" not in kinds, (text, kinds)


def test_logdet_uses_slogdet_for_large_determinants():
    A = np.diag(np.full(400, 10.0))   # det = 1e400 overflows; logdet does not
    e = einderiv.parse("logdet(A)")
    np.testing.assert_allclose(e.evaluate(A=A), 400 * np.log(10.0))


def test_chained_inverses_with_solve():
    """Regression: two inverses contracted with each other, the first rewritten as a
    solve, the second must not be rewritten again (the trace of an inverse by S)."""
    rng = np.random.default_rng(1)
    B = rng.normal(size=(3, 3))
    S = B @ B.T + 3 * np.eye(3)
    x, V = rng.normal(size=3), rng.normal(size=(3, 3))
    Si = np.linalg.inv(S)
    np.testing.assert_allclose(einderiv.parse("inv(A)[i,k]*inv(A)[k,j]*x[j]").evaluate(A=S, x=x),
                               Si @ Si @ x)
    jv = einderiv.jvp("inv(S)[k,k]", "S", "v").evaluate(S=S, v=V)
    np.testing.assert_allclose(jv, -np.trace(Si @ V @ Si))   # d tr(S^-1) = -tr(S^-1 dS S^-1)


def test_sigmoid_over_the_whole_float_range_without_warnings():
    x = np.array([-1000.0, -745.0, -700.0, -30.0, -1.0, 0.0, 2.5, 40.0, 800.0, np.inf, -np.inf])
    got = einderiv.parse("sigmoid(x[i])").evaluate(x=x)
    want = np.exp(-np.logaddexp(0.0, -x))  # the log-domain form, independent of the code
    np.testing.assert_allclose(got[2:-2], want[2:-2], rtol=1e-14)
    np.testing.assert_array_equal(got[[0, 1, -2, -1]], [0.0, 0.0, 1.0, 0.0])
    assert np.isnan(einderiv.parse("sigmoid(x[i])").evaluate(x=np.array([np.nan])))[0]
