"""Issue 18: ``diff(loss, ["W1", "b1", "W2"])`` gives the derivatives in order (a
tuple), and ``compile`` (``to_python``) of several expressions makes one plan (one
function) that computes their common work once and returns all results. Values
against central finite differences of the loss written in numpy (tests/fd.py);
sharing shown by step counts of the plans."""

from __future__ import annotations

import numpy as np
import pytest

import einderiv
from einderiv import EinderivError, ParseError
from einderiv.numeric.program import Func

from fd import assert_close_to_fd, central_diff

RNG = np.random.default_rng(2018)
#: a two-layer network's squared error with a bias (tutorial's network, docs/tutorial.md)
NET = ("(W2[o,h]*tanh(W1[h,i]*X[i,b] + b1[h]) - T[o,b])*"
       "(W2[o,g]*tanh(W1[g,j]*X[j,b] + b1[g]) - T[o,b])")
WRT = ["W1", "b1", "W2"]


def _values():
    return {"W1": RNG.normal(size=(4, 3)), "b1": RNG.normal(size=4),
            "W2": RNG.normal(size=(2, 4)), "X": RNG.normal(size=(3, 5)),
            "T": RNG.normal(size=(2, 5))}


def _loss(v):
    r = v["W2"] @ np.tanh(v["W1"] @ v["X"] + v["b1"][:, None]) - v["T"]
    return np.sum(r * r)


def _tanh_steps(program) -> int:
    return sum(1 for s in program.steps if isinstance(s, Func) and s.name == "tanh")


def test_diff_by_a_list_gives_the_derivatives_in_order():
    grads = einderiv.diff(NET, WRT)
    assert isinstance(grads, tuple) and len(grads) == 3
    for g, w in zip(grads, WRT):
        assert g == einderiv.diff(NET, w)
    v = _values()
    for g, w in zip(grads, WRT):
        assert_close_to_fd(g.evaluate(**v), central_diff(_loss, v, w))
    assert einderiv.diff(NET, ("b1",)) == (einderiv.diff(NET, "b1"),)


@pytest.mark.parametrize("wrt", [[], ["W1", 3], 3, None])
def test_a_bad_list_of_variables(wrt):
    with pytest.raises(ParseError, match="wrt must be a variable name or a non-empty list"):
        einderiv.diff(NET, wrt)


def test_compile_of_several_shares_one_plan():
    grads = einderiv.diff(NET, WRT)
    together = einderiv.compile_expr(grads)
    alone = [einderiv.compile_expr(g) for g in grads]
    steps_together = len(together.program.steps)
    steps_alone = [len(f.program.steps) for f in alone]
    # the forward pass (W1 X + b1, tanh, the residual) is computed once for all three
    assert steps_together < sum(steps_alone), (steps_together, steps_alone)
    assert steps_together < sum(steps_alone) - min(steps_alone)  # saves more than one plan
    assert _tanh_steps(together.program) == 1
    v = _values()
    for _ in range(2):  # the first call plans, the second takes the fast path
        results = together(**v)
        assert isinstance(results, tuple) and len(results) == 3
        for got, w in zip(results, WRT):
            assert got.shape == v[w].shape
            assert_close_to_fd(got, central_diff(_loss, v, w))
    assert together.straight_lines == 1
    assert einderiv.compile_expr(list(grads)).program.steps == together.program.steps


def test_a_broadcast_bias_is_shared_within_one_derivative():
    """Before issue 18, ``tanh(W1 X + b1)`` (its bias broadcast by a ones-marker) was
    never shared: the gradient by W1 computed it twice."""
    g = einderiv.diff(NET, "W1")
    assert _tanh_steps(einderiv.compile_expr(g).program) == 1
    v = _values()
    assert_close_to_fd(g.evaluate(**v), central_diff(_loss, v, "W1"))


def test_equal_results_are_distinct_arrays():
    """Two equal expressions: one slot, two arrays (modifying one leaves the other)."""
    g = einderiv.diff("x[i]*a[i]", "x")     # = a: an input
    f = einderiv.compile_expr([g, g])
    a, x = RNG.normal(size=3), RNG.normal(size=3)
    for _ in range(2):
        r1, r2 = f(a=a, x=x)
        assert r1 is not r2 and not np.may_share_memory(r1, r2)
        assert not np.may_share_memory(r1, a) and not np.may_share_memory(r2, a)
        np.testing.assert_array_equal(r1, a)
        r1[0] += 1.0
        np.testing.assert_array_equal(r2, a)


def test_to_python_of_several_returns_a_tuple():
    grads = einderiv.diff(NET, WRT)
    shapes = {"W1": (4, 3), "b1": (4,), "W2": (2, 4), "X": (3, 5), "T": (2, 5)}
    for with_shapes in (None, shapes):
        src = einderiv.to_python(grads, "grads", shapes=with_shapes)
        assert src.count("np.tanh(") == 1
        assert "def grads(*, W2, X, W1, b1, T):" in src
        namespace: dict = {}
        exec(src, namespace)  # noqa: S102 - einderiv's own export
        v = _values()
        results = namespace["grads"](**v)
        assert isinstance(results, tuple) and len(results) == 3
        for got, w in zip(results, WRT):
            assert_close_to_fd(got, central_diff(_loss, v, w))


def test_compile_of_a_bad_list():
    with pytest.raises(EinderivError, match="expected an expression or a non-empty list"):
        einderiv.compile_expr([])
    with pytest.raises(EinderivError, match="expected an expression or a non-empty list"):
        einderiv.compile_expr([einderiv.parse("x[i]"), "y[i]"])


@pytest.mark.slow
def test_several_on_dask_stay_lazy():
    da = pytest.importorskip("dask.array")
    grads = einderiv.diff(NET, WRT)
    v = _values()
    results = einderiv.compile_expr(grads)(**{k: da.from_array(a) for k, a in v.items()})
    assert all(isinstance(r, da.Array) for r in results)
    for got, w in zip(results, WRT):
        assert_close_to_fd(got.compute(), central_diff(_loss, v, w))


@pytest.mark.slow
@pytest.mark.parametrize("library", ["torch", "jax"])
def test_several_on_torch_and_jax(library):
    lib = pytest.importorskip(library)
    convert = lib.from_numpy if library == "torch" else lib.numpy.asarray
    grads = einderiv.diff(NET, WRT)
    v = _values()
    arrays = {k: convert(a.astype(np.float32)) for k, a in v.items()}
    results = einderiv.compile_expr(grads)(**arrays)
    assert isinstance(results, tuple) and len(results) == 3
    for got, w in zip(results, WRT):
        got = np.asarray(got.numpy() if library == "torch" else got)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, central_diff(_loss, v, w), rtol=2e-3, atol=2e-3)
