"""The straight-line fast path of compiled evaluation (einderiv.numeric.straightline, issue 5):
it computes what the loop over the bound steps computes, takes only the calls it
can, and leaves everything else (conversions, errors, new shapes) to the general way."""

import sys
from pathlib import Path

import numpy as np
import pytest

import einderiv
from einderiv.errors import EvaluationError

sys.path.insert(0, str(Path(__file__).parent))
from cases import HESSIANS, IDENTITIES  # noqa: E402

RNG = np.random.default_rng(11)


def _derivative(case):
    d = einderiv.diff(case.expr, case.wrt, case.shapes)
    return einderiv.diff(d, case.wrt, case.shapes) if case in HESSIANS else d


@pytest.mark.parametrize("small_thresholds", [False, True], ids=["default", "in-place+release"])
@pytest.mark.parametrize("case", IDENTITIES + HESSIANS, ids=lambda c: c.name)
def test_straight_line_equals_the_loop_and_the_closed_form(case, small_thresholds, monkeypatch):
    """Every identity and Hessian of the suite, with the in-place and release
    thresholds as they are and at 0: the generated function gives the closed form,
    the loop over the closures (straight-line code switched off) gives the same
    numbers, and the inputs are untouched."""
    if small_thresholds:
        monkeypatch.setattr(einderiv.numeric.planning, "RELEASE_MIN_BYTES", 0)
        monkeypatch.setattr(einderiv.numeric.rewrites, "IN_PLACE_MIN_SIZE", 0)
    values = case.arrays(RNG)
    before = {k: np.array(v, copy=True) for k, v in values.items()}
    fast = _derivative(case).compile()
    got = [fast(**values) for _ in range(2)]
    assert fast.straight_lines == 1  # the plan was written out and used
    monkeypatch.setattr(einderiv.numeric.straightline, "MAX_STEPS", 0)
    loop = _derivative(case).compile()
    want = loop(**values)
    assert loop.straight_lines == 0
    for g in got:
        np.testing.assert_allclose(g, case.closed_form(values), atol=1e-12)
        np.testing.assert_allclose(g, want, rtol=1e-14, atol=1e-14)
    for k, v in values.items():
        np.testing.assert_array_equal(v, before[k])
        for g in got:
            assert not np.may_share_memory(g, v), k


def test_generated_code_calls_blas_directly():
    """The gradient of x^T A x runs as two matrix-vector products and one sum written
    as Python (no closure between the call and BLAS)."""
    f = einderiv.diff("x[i]*A[i,j]*x[j]", "x").compile()
    A, x = RNG.normal(size=(4, 4)), RNG.normal(size=4)
    np.testing.assert_allclose(f(A=A, x=x), (A + A.T) @ x, rtol=1e-12)
    run = f.plan_for(A=A, x=x).run
    assert run.source.count(" @ ") == 2 and "(v, inputs, dtype)" not in run.source


def test_inputs_the_fast_path_does_not_take_go_the_general_way():
    """Python floats and ints for scalars are taken as 0-d arrays; integer arrays and lists
    are converted; extra names are ignored; a missing name, a wrong rank and new
    shapes get the general path's answer (an error or a new plan)."""
    g = einderiv.diff("(X[a,b]*theta[b] - Y[a])*(X[a,c]*theta[c] - Y[a])/n", "theta")
    f = g.compile()
    X, th, Y = RNG.normal(size=(4, 3)), RNG.normal(size=3), RNG.normal(size=4)
    want = 2 / 4 * X.T @ (X @ th - Y)
    np.testing.assert_allclose(f(X=X, theta=th, Y=Y, n=4.0), want, rtol=1e-12)
    np.testing.assert_allclose(f(X=X, theta=th, Y=Y, n=4), want, rtol=1e-12)
    # beyond int64: the general way takes it as numpy does (a float of the arrays' dtype)
    np.testing.assert_allclose(f(X=X, theta=th, Y=Y, n=10**30), want * 4 / 1e30, rtol=1e-12)
    with pytest.raises(EvaluationError, match="'n' = 10*.* is beyond the range of float64"):
        f(X=X, theta=th, Y=Y, n=10**400)
    np.testing.assert_allclose(f(X=X, theta=th, Y=Y, n=np.array(4.0), extra="ignored"), want,
                               rtol=1e-12)
    Xi = RNG.integers(-3, 4, size=(4, 3))
    np.testing.assert_allclose(f(X=Xi, theta=th.tolist(), Y=Y, n=4),
                               2 / 4 * Xi.T @ (Xi @ th - Y), rtol=1e-12)
    assert f.straight_lines == 1  # one shape signature so far
    X5, Y5 = RNG.normal(size=(5, 3)), RNG.normal(size=5)
    np.testing.assert_allclose(f(X=X5, theta=th, Y=Y5, n=5.0), 2 / 5 * X5.T @ (X5 @ th - Y5),
                               rtol=1e-12)
    assert f.straight_lines == 2
    with pytest.raises(EvaluationError, match="missing value for 'Y'"):
        f(X=X, theta=th, n=4.0)
    with pytest.raises(EvaluationError, match="'theta' is used with 1 indices"):
        f(X=X, theta=X, Y=Y, n=4.0)


def test_a_result_that_is_an_input_is_copied():
    """d(a[i] * x[j]) / d x carries ``a`` unchanged on a diagonal; ``x[i]`` itself
    evaluates to a copy: the generated code never hands back an input."""
    x = RNG.normal(size=3)
    got = einderiv.parse("x[i]").compile()(x=x)
    assert not np.may_share_memory(got, x)
    np.testing.assert_array_equal(got, x)


def test_no_inputs():
    """An expression of numbers only has an empty shape signature."""
    f = einderiv.parse("2*3").compile()
    assert float(f()) == 6.0 and float(f()) == 6.0
