"""Issue 18: a misspelt array keyword (``thetaa=``) or variable (``diff(e, "thetaa")``)
is reported as misspelt, naming the closest name (difflib), not only as a missing
value; :func:`einderiv.errors.did_you_mean` is the shared helper (the CLI uses it too)."""

from __future__ import annotations

import numpy as np
import pytest

import einderiv
from einderiv import EinderivError, EvaluationError, IndexMismatchError

RNG = np.random.default_rng(7)
LINREG = "(X[a,b]*theta[b] - Y[a])*(X[a,c]*theta[c] - Y[a])/n"
VALUES = {"X": RNG.normal(size=(4, 3)), "theta": RNG.normal(size=3), "Y": RNG.normal(size=4),
          "n": 4}


def test_the_helper():
    from einderiv.errors import did_you_mean  # new in issue 18
    assert did_you_mean("thetaa", ["X", "theta", "Y", "n"]) == "did you mean 'theta'?"
    assert did_you_mean("W", ["W1", "W2", "b1"]) == "did you mean 'W1' or 'W2'?"
    assert did_you_mean("Theta", ["theta"]) == "did you mean 'theta'?"
    assert did_you_mean("q", ["X", "theta"]) == ""
    assert did_you_mean("x", []) == ""


def _misspelt():
    values = dict(VALUES)
    values["thetaa"] = values.pop("theta")
    return values


@pytest.mark.parametrize("how", ["evaluate", "compile", "compile twice", "diff evaluate"])
def test_a_misspelt_array_keyword(how):
    e = einderiv.parse(LINREG)
    if how == "diff evaluate":
        e = einderiv.diff(e, "theta")
    f = e.compile()
    if how == "compile twice":
        f(**VALUES)   # a plan exists: the fast path must still say it
    call = e.evaluate if how == "evaluate" else f
    with pytest.raises(EvaluationError, match=r"^unknown array 'thetaa'; did you mean 'theta'\? "
                                              r"\(the expression uses X, theta, Y, n\)$"):
        call(**_misspelt())


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["dask", "jax", "torch"])
def test_a_misspelt_array_keyword_on_other_backends(backend):
    pytest.importorskip("dask.array" if backend == "dask" else backend)
    f = einderiv.diff(LINREG, "theta").compile(backend=backend)
    with pytest.raises(EvaluationError, match=r"unknown array 'thetaa'; did you mean 'theta'\?"):
        f(**_misspelt())


def test_a_missing_array_with_no_close_name_says_missing():
    values = dict(VALUES)
    del values["theta"]
    with pytest.raises(EvaluationError, match=r"missing value for 'theta'; the expression uses "
                                              r"X, theta, Y, n"):
        einderiv.parse(LINREG).evaluate(**values, zzz=1.0)


def test_an_extra_name_is_still_ignored_when_nothing_is_missing():
    """Names the expression does not use are ignored (documented), also a close one."""
    got = einderiv.diff(LINREG, "theta").evaluate(**VALUES, thetaa=np.zeros(3))
    X, th, Y = VALUES["X"], VALUES["theta"], VALUES["Y"]
    np.testing.assert_allclose(got, 2 / 4 * X.T @ (X @ th - Y), rtol=1e-12)


@pytest.mark.parametrize("fn", [einderiv.diff, einderiv.jvp, einderiv.hvp])
def test_a_misspelt_variable_to_differentiate_by(fn):
    with pytest.raises(IndexMismatchError, match=r"'thetaa' does not occur in the expression; "
                                                 r"did you mean 'theta'\?"):
        fn(LINREG, "thetaa")


def test_a_misspelt_variable_in_check():
    with pytest.raises(EinderivError, match=r"values has no entry for the variable 'thetaa'; "
                                            r"did you mean 'theta'\?"):
        einderiv.check(LINREG, "thetaa", VALUES)


def test_no_hint_where_nothing_is_close():
    with pytest.raises(IndexMismatchError) as info:
        einderiv.diff(LINREG, "q")
    assert "did you mean" not in str(info.value) and "rank is unknown" in str(info.value)
