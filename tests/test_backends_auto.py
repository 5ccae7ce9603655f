"""Issue 18: ``evaluate`` and ``compile()`` with no backend named follow the arrays
(opt_einsum's ``backend="auto"``): numpy arrays run here, dask arrays stay lazy
(nothing is computed until ``.compute()``), jax arrays and torch tensors run the plan
exported as their library's code. Arrays of two libraries in one call are an
EvaluationError naming them; a named backend refuses another library's arrays
instead of pulling them into memory. Values against the closed form in numpy."""

from __future__ import annotations

import numpy as np
import pytest

import einderiv
from einderiv import EinderivError, EvaluationError

RNG = np.random.default_rng(1818)
LINREG = "(X[a,b]*theta[b] - Y[a])*(X[a,c]*theta[c] - Y[a])/n"
X, TH, Y = RNG.normal(size=(40, 3)), RNG.normal(size=3), RNG.normal(size=40)
WANT = 2 / 40 * X.T @ (X @ TH - Y)


def _never_compute(dsk, keys, **kwargs):
    raise AssertionError("a dask graph was computed")


@pytest.fixture
def da():
    return pytest.importorskip("dask.array")


def _lazy(da):
    return {"X": da.from_array(X, chunks=(10, 3)), "theta": da.from_array(TH),
            "Y": da.from_array(Y, chunks=10)}


@pytest.mark.parametrize("how", ["evaluate", "compile", "compile twice"])
def test_dask_arrays_stay_lazy(da, how):
    import dask
    g = einderiv.diff(LINREG, "theta")
    f = g.compile()
    with dask.config.set(scheduler=_never_compute):   # any compute here fails the test
        if how == "evaluate":
            lazy = g.evaluate(**_lazy(da), n=40)
        else:
            lazy = f(**_lazy(da), n=40)
            if how == "compile twice":
                lazy = f(**_lazy(da), n=40)
        assert isinstance(lazy, da.Array)
        assert lazy.shape == (3,) and lazy.dtype == np.float64
    np.testing.assert_allclose(lazy.compute(scheduler="sync"), WANT, rtol=1e-12)


def test_dask_with_numpy_arrays_and_numbers_is_dask(da):
    """numpy arrays and Python numbers go with any backend: one dask array makes it dask."""
    import dask
    g = einderiv.diff(LINREG, "theta")
    with dask.config.set(scheduler=_never_compute):
        lazy = g.evaluate(X=da.from_array(X, chunks=(10, 3)), theta=TH, Y=Y, n=40)
    assert isinstance(lazy, da.Array)
    np.testing.assert_allclose(lazy.compute(scheduler="sync"), WANT, rtol=1e-12)
    # and a float32 dask array stays float32 with a Python number (NEP 50)
    lazy32 = g.evaluate(X=da.from_array(X.astype(np.float32)), theta=TH.astype(np.float32),
                        Y=Y.astype(np.float32), n=40)
    assert lazy32.dtype == np.float32
    np.testing.assert_allclose(lazy32.compute(scheduler="sync"), WANT, rtol=1e-4, atol=1e-5)


def test_numpy_arrays_still_run_here():
    g = einderiv.diff(LINREG, "theta")
    f = g.compile()
    got = f(X=X, theta=TH, Y=Y, n=40)
    assert type(got) is np.ndarray
    np.testing.assert_allclose(got, WANT, rtol=1e-12)
    assert f.straight_lines == 1   # the numpy fast path as before
    assert repr(f) == f"CompiledExpr({str(g)!r}, backend='auto')"


def test_a_named_numpy_backend_refuses_a_dask_array(da):
    """Named ``backend="numpy"`` no longer pulls a dask array into memory silently."""
    import dask
    f = einderiv.diff(LINREG, "theta").compile(backend="numpy")
    with dask.config.set(scheduler=_never_compute):
        with pytest.raises(EvaluationError, match=r"'X' is a dask array \(dask\.array\.core\.Array\) "
                                                  r"but backend='numpy' was asked for.*backend='dask'"):
            f(**_lazy(da), n=40)


def test_a_named_dask_backend_still_works(da):
    f = einderiv.diff(LINREG, "theta").compile(backend="dask")
    lazy = f(**_lazy(da), n=40)
    assert isinstance(lazy, da.Array)
    np.testing.assert_allclose(lazy.compute(), WANT, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(f(X=X, theta=TH, Y=Y, n=40)), WANT, rtol=1e-12)


def test_unknown_backend_lists_the_valid_names():
    with pytest.raises(EinderivError, match=r"unknown backend 'cupy'; valid backends: 'auto' .*"
                                            r"'numpy' .*'dask' .*'jax' .*'torch'"):
        einderiv.diff(LINREG, "theta").compile(backend="cupy")


@pytest.mark.slow
def test_torch_tensors_give_a_torch_tensor():
    torch = pytest.importorskip("torch")
    g = einderiv.diff(LINREG, "theta")
    t = {"X": torch.from_numpy(X), "theta": torch.from_numpy(TH), "Y": torch.from_numpy(Y)}
    for got in (g.evaluate(**t, n=40), g.compile()(**t, n=40)):
        assert isinstance(got, torch.Tensor) and got.dtype == torch.float64
        np.testing.assert_allclose(got.numpy(), WANT, rtol=1e-12)
    # numpy arrays next to a torch tensor: torch
    got = g.evaluate(X=torch.from_numpy(X), theta=TH, Y=Y, n=40)
    assert isinstance(got, torch.Tensor)
    np.testing.assert_allclose(got.numpy(), WANT, rtol=1e-12)


@pytest.mark.slow
def test_jax_arrays_give_a_jax_array():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    g = einderiv.diff(LINREG, "theta")
    j = {"X": jnp.asarray(X, jnp.float32), "theta": jnp.asarray(TH, jnp.float32),
         "Y": jnp.asarray(Y, jnp.float32)}
    for got in (g.evaluate(**j, n=40), g.compile()(**j, n=40)):
        assert isinstance(got, jax.Array) and got.dtype == jnp.float32
        np.testing.assert_allclose(np.asarray(got), WANT, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_mixing_two_libraries_names_the_arrays_and_their_types(da):
    torch = pytest.importorskip("torch")
    g = einderiv.diff(LINREG, "theta")
    with pytest.raises(EvaluationError) as info:
        g.evaluate(X=da.from_array(X), theta=torch.from_numpy(TH), Y=Y, n=40)
    message = str(info.value)
    assert "arrays of different libraries" in message
    assert "'X' is a dask array (dask.array.core.Array)" in message
    assert "'theta' is a torch array (torch.Tensor)" in message


def test_mixing_is_detected_without_torch(da):
    """The same check, with a stand-in type from a module named like another library
    (runs where torch is not installed)."""
    class Fake:
        __module__ = "torch"
        shape = (3,)
        dtype = np.dtype(np.float64)
    g = einderiv.diff(LINREG, "theta")
    with pytest.raises(EvaluationError, match=r"'X' is a dask array .*'theta' is a torch array"):
        g.evaluate(X=da.from_array(X), theta=Fake(), Y=Y, n=40)


def test_a_structured_variable_does_not_compute_a_dask_array(da):
    """The symmetric-matrix check reads the array: a dask one is left lazy."""
    import dask
    g = einderiv.diff("x[i]*S[i,j]*x[j]", "x", assume={"S": "symmetric"})
    M = RNG.normal(size=(3, 3))
    S, x = M + M.T, RNG.normal(size=3)
    with dask.config.set(scheduler=_never_compute):
        lazy = g.evaluate(S=da.from_array(S), x=da.from_array(x))
    assert isinstance(lazy, da.Array)
    np.testing.assert_allclose(lazy.compute(scheduler="sync"), 2 * S @ x, rtol=1e-12)


def test_plan_info_of_dask_arrays_plans_lazily(da):
    """plan_info / plan_for with dask arrays (no backend named) plan on dask and
    compute nothing."""
    import dask
    g = einderiv.diff(LINREG, "theta")
    f = g.compile()
    with dask.config.set(scheduler=_never_compute):
        info = f.plan_info(**_lazy(da), n=40)
    assert info.flops == f.plan_info(X=X, theta=TH, Y=Y, n=40).flops
    assert info.result_shape == (3,)


def test_det_and_logdet_of_a_dask_matrix_stay_lazy(da):
    """dask has no det: numpy's would compute the graph (with a FutureWarning)."""
    import warnings

    import dask
    A = RNG.normal(size=(4, 4)) + 4 * np.eye(4)
    B = RNG.normal(size=(4, 4)) + 4 * np.eye(4)
    e = einderiv.parse("det(A[i,j]) + logdet(B[i,j])")
    g = einderiv.diff("det(A[i,j])", "A")
    with dask.config.set(scheduler=_never_compute), warnings.catch_warnings():
        warnings.simplefilter("error")
        value = e.evaluate(A=da.from_array(A, chunks=2), B=da.from_array(B, chunks=2))
        grad = g.evaluate(A=da.from_array(A, chunks=2))
        assert isinstance(value, da.Array) and isinstance(grad, da.Array)
    assert np.isclose(float(value.compute(scheduler="sync")),
                      np.linalg.det(A) + np.linalg.slogdet(B)[1])
    np.testing.assert_allclose(grad.compute(scheduler="sync"),
                               np.linalg.det(A) * np.linalg.inv(A).T)  # Jacobi's formula
