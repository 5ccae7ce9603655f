"""Issue 18: a result has the dtype numpy's promotion gives the arrays, Python numbers
weak (NEP 50): float32 in, float32 out (also with ``n=100``), float16 kept, integer
arrays promoted as numpy promotes them, complex kept; in ``evaluate``, ``compile``,
the exported code of every dialect and every backend (dask, jax, torch). Each value
is checked against a closed form computed in float64 (complex128) from the same
arrays, with a tolerance for the dtype; the dtype is asserted."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import einderiv
from einderiv import EvaluationError

RNG = np.random.default_rng(18)
LINREG = "(X[a,b]*theta[b] - Y[a])*(X[a,c]*theta[c] - Y[a])/n"


def _softmax(u):
    e = np.exp(u - u.max())
    return e / e.sum()


# name -> (text, wrt, order, array shapes, Python numbers, closed form in float64)
CASES = {
    "linreg gradient": (LINREG, "theta", 1, {"X": (4, 3), "theta": (3,), "Y": (4,)}, {"n": 4},
                        lambda v: 2 / v["n"] * v["X"].T @ (v["X"] @ v["theta"] - v["Y"])),
    "tanh Jacobian": ("tanh(W[i,j]*x[j])", "x", 1, {"W": (5, 3), "x": (3,)}, {},
                      lambda v: v["W"].T * (1 - np.tanh(v["W"] @ v["x"]) ** 2)),
    "Hessian with an identity": ("s*x[i]*x[i]", "x", 2, {"x": (3,)}, {"s": 3},
                                 lambda v: 2 * v["s"] * np.eye(3)),
    "logdet gradient": ("logdet(M)", "M", 1, {"M": (3, 3)}, {},
                        lambda v: np.linalg.inv(v["M"]).T),
    "log-sum-exp gradient": ("logsumexp[k](W[k,j]*x[j])", "x", 1, {"W": (5, 3), "x": (3,)}, {},
                             lambda v: v["W"].T @ _softmax(v["W"] @ v["x"])),
}
REAL_ONLY = {"log-sum-exp gradient"}  # refused for complex input
TOL = {np.float16: 5e-2, np.float32: 2e-4, np.float64: 1e-10, np.int64: 1e-10,
       np.complex64: 2e-4, np.complex128: 1e-10}
EXPECTED = {np.float16: np.float16, np.float32: np.float32, np.float64: np.float64,
            np.int64: np.float64, np.complex64: np.complex64, np.complex128: np.complex128}


def _derivative(name):
    text, wrt, order = CASES[name][:3]
    d = einderiv.parse(text)
    for _ in range(order):
        d = einderiv.diff(d, wrt)
    return d


def _arrays(name, dtype):
    shapes, numbers = CASES[name][3], CASES[name][4]
    out = {}
    for var, shape in shapes.items():
        if np.dtype(dtype).kind == "i":
            a = RNG.integers(-2, 3, size=shape).astype(dtype)
        else:
            a = RNG.normal(size=shape) * 0.5
            if np.dtype(dtype).kind == "c":
                a = a + 0.5j * RNG.normal(size=shape)
            a = a.astype(dtype)
        if var == "M":  # well conditioned: a dominant diagonal
            a = a + np.asarray(4 * np.eye(shape[0]), dtype=dtype)
        out[var] = a
    return {**out, **numbers}


def _closed(name, values):
    wide = {k: (v.astype(np.complex128 if v.dtype.kind == "c" else np.float64)
                if isinstance(v, np.ndarray) else v) for k, v in values.items()}
    return CASES[name][5](wide)


def _exported(backend):
    def run(d, values):
        namespace: dict = {}
        exec(d.to_python("f", backend=backend), namespace)  # noqa: S102 - einderiv's export
        f = namespace["f"]
        return f(**{k: values[k] for k in inspect.signature(f).parameters})
    return run


def _compiled_twice(d, values):
    f = d.compile()
    first = f(**values)
    second = f(**values)  # the straight-line fast path, where it applies
    assert second.dtype == first.dtype
    return second


PATHS = {
    "evaluate": lambda d, values: d.evaluate(**values),
    "compile": _compiled_twice,
    "compile numpy": lambda d, values: d.compile(backend="numpy")(**values),
    "to_python numpy": _exported("numpy"),
    "to_python opt_einsum": _exported("opt_einsum"),
}
DTYPES = [np.float16, np.float32, np.float64, np.int64, np.complex64, np.complex128]


def _applies(name, dtype, path=""):
    """Complex input to a real-only function is refused (tested below); exported code
    leaves float16 linear algebra to numpy, which refuses it."""
    return not (np.dtype(dtype).kind == "c" and name in REAL_ONLY) and \
        not (dtype == np.float16 and name == "logdet gradient" and path.startswith("to_python"))


@pytest.mark.parametrize("name, dtype, path", [
    (name, dtype, path) for name in CASES for dtype in DTYPES for path in PATHS
    if _applies(name, dtype, path)],
    ids=lambda x: np.dtype(x).name if isinstance(x, type) else x)
def test_the_result_keeps_the_promoted_dtype(name, dtype, path):
    d = _derivative(name)
    values = _arrays(name, dtype)
    got = PATHS[path](d, values)
    assert got.dtype == EXPECTED[dtype], (name, path, got.dtype)
    np.testing.assert_allclose(np.asarray(got, dtype=np.complex128), _closed(name, values),
                               rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("path", list(PATHS))
def test_float32_arrays_and_a_python_number_give_float32(path):
    """The issue's example: ``n=100`` (a Python int) no longer makes the result float64."""
    d = einderiv.diff(LINREG, "theta")
    v = {k: a.astype(np.float32) for k, a in _arrays("linreg gradient", np.float64).items()
         if k != "n"}
    for n in (100, 100.0, True):
        got = PATHS[path](d, {**v, "n": n})
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, _closed("linreg gradient", {**v, "n": float(n)}),
                                   rtol=2e-4, atol=1e-5)


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("kinds, want", [
    ((np.int8, np.float32), np.float32),      # int8 fits float32: numpy keeps float32
    ((np.int64, np.float32), np.float64),     # int64 does not
    ((np.float32, np.float64), np.float64),
    ((np.float16, np.float32), np.float32),
    ((np.int32, np.int64), np.float64),       # integers alone compute in float64
    ((np.bool_, np.float32), np.float32),
    ((np.float32, np.complex64), np.complex64),
])
def test_mixed_arrays_promote_as_numpy(path, kinds, want):
    d = einderiv.diff("x[i]*A[i,j]*x[j]", "x")
    A = RNG.integers(0, 2 if kinds[0] == np.bool_ else 4, size=(3, 3)).astype(kinds[0])
    x = RNG.integers(-3, 4, size=3).astype(kinds[1])
    assert np.result_type(A, x) == want or np.result_type(A, x).kind in "biu"  # the table is numpy's
    got = PATHS[path](d, {"A": A, "x": x})
    assert got.dtype == want
    Af, xf = A.astype(np.complex128), x.astype(np.complex128)
    np.testing.assert_allclose(got, (Af + Af.T) @ xf, rtol=1e-6)


@pytest.mark.parametrize("path", list(PATHS))
def test_a_0d_numpy_array_is_strong_as_in_numpy(path):
    """A 0-d float64 array (not a Python number) promotes float32 arrays, as numpy does."""
    d = einderiv.diff(LINREG, "theta")
    v = {k: a.astype(np.float32) for k, a in _arrays("linreg gradient", np.float64).items()
         if k != "n"}
    got = PATHS[path](d, {**v, "n": np.array(4.0)})
    want = _closed("linreg gradient", {**v, "n": 4.0})
    assert got.dtype == np.float64 == np.result_type(v["X"], np.array(4.0))
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_python_numbers_alone_compute_in_float64():
    e = einderiv.parse("s*t")
    for s, t in ((2, 3), (2.5, 4), (True, 3)):
        got = e.evaluate(s=s, t=t)
        assert got.dtype == np.float64 and float(got) == float(s) * t


@pytest.mark.parametrize("path", list(PATHS)[:3])
def test_complex_input_to_a_real_only_function_is_refused_clearly(path):
    d = einderiv.diff("softplus(W[i,j]*x[j])", "x")
    values = {"W": RNG.normal(size=(5, 3)).astype(np.complex64), "x": RNG.normal(size=3)}
    with pytest.raises(EvaluationError, match=r"sigmoid\(\.\.\.\) is defined for real input only"):
        PATHS[path](d, values)


def test_a_number_beyond_the_dtype_range_is_an_evaluation_error():
    e = einderiv.parse("s*x[i]")
    with pytest.raises(EvaluationError, match=r"'s' = 1000.* is beyond the range of float64"):
        e.evaluate(s=10**400, x=np.ones(3))


# --------------------------------------------------------------- other backends

@pytest.mark.slow
@pytest.mark.parametrize("name, dtype", [
    (name, dtype) for name in CASES for dtype in (np.float32, np.float64, np.int64, np.complex64)
    if _applies(name, dtype)], ids=lambda x: np.dtype(x).name if isinstance(x, type) else x)
def test_dask_keeps_the_dtype(name, dtype):
    da = pytest.importorskip("dask.array")
    d = _derivative(name)
    values = _arrays(name, dtype)
    lazy = {k: da.from_array(v) if isinstance(v, np.ndarray) else v for k, v in values.items()}
    for f in (d.compile(backend="dask"), d.compile()):
        got = f(**lazy)
        assert isinstance(got, da.Array) and got.dtype == EXPECTED[dtype]
        computed = got.compute()
        assert computed.dtype == EXPECTED[dtype]
        np.testing.assert_allclose(np.asarray(computed, dtype=np.complex128),
                                   _closed(name, values), rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.slow
@pytest.mark.parametrize("name, dtype", [
    (name, dtype) for name in CASES for dtype in (np.float32, np.float64, np.int64, np.complex64)
    if _applies(name, dtype)], ids=lambda x: np.dtype(x).name if isinstance(x, type) else x)
def test_torch_keeps_the_dtype(name, dtype):
    torch = pytest.importorskip("torch")
    d = _derivative(name)
    values = _arrays(name, dtype)
    tensors = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v
               for k, v in values.items()}
    want = np.dtype(EXPECTED[dtype])
    for got in (d.compile(backend="torch")(**tensors), d.compile()(**tensors),
                _exported("torch")(d, tensors)):
        assert isinstance(got, torch.Tensor)
        assert np.dtype(str(got.dtype).removeprefix("torch.")) == want
        np.testing.assert_allclose(got.numpy().astype(np.complex128), _closed(name, values),
                                   rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.slow
def test_torch_promotes_a_0d_float64_tensor_as_numpy_does():
    """torch alone keeps a float32 tensor float32 next to a 0-d float64 one; the exported
    code promotes as numpy does."""
    torch = pytest.importorskip("torch")
    d = einderiv.diff(LINREG, "theta")
    v = {k: a.astype(np.float32) for k, a in _arrays("linreg gradient", np.float64).items()
         if k != "n"}
    t = {k: torch.from_numpy(a) for k, a in v.items()}
    got = d.compile(backend="torch")(**t, n=torch.tensor(4.0, dtype=torch.float64))
    assert got.dtype == torch.float64
    got = d.compile(backend="torch")(**t, n=4)
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), _closed("linreg gradient", {**v, "n": 4.0}),
                               rtol=2e-4, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name, dtype", [
    (name, dtype) for name in CASES for dtype in (np.float32, np.complex64)
    if _applies(name, dtype)], ids=lambda x: np.dtype(x).name if isinstance(x, type) else x)
def test_jax_keeps_the_dtype(name, dtype):
    jnp = pytest.importorskip("jax.numpy")
    d = _derivative(name)
    values = _arrays(name, dtype)
    arrays = {k: jnp.asarray(v) if isinstance(v, np.ndarray) else v for k, v in values.items()}
    for got in (d.compile(backend="jax")(**arrays), d.compile()(**arrays),
                _exported("jax")(d, arrays)):
        assert got.dtype == EXPECTED[dtype], got.dtype
        np.testing.assert_allclose(np.asarray(got).astype(np.complex128), _closed(name, values),
                                   rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix
@pytest.mark.parametrize("convert", [np.ma.masked_array, np.asmatrix], ids=["masked", "matrix"])
def test_ndarray_subclasses_are_read_as_numpy_asarray_reads_them(convert):
    # documented: anything numpy.asarray accepts. A masked array reached the Gram
    # product (A @ A.T inside, numpy's masked @ fails for a non-square A) as a masked
    # array and let a ValueError out (benchmarks/fuzz.py --mode mixed --seed 50)
    A = np.random.default_rng(50).normal(size=(3, 4))
    want = np.linalg.slogdet(A @ A.T + np.eye(3))[1]
    e = einderiv.parse("logdet(A[i,k]*A[j,k] + delta[i,j])")
    for run in (e.evaluate, e.compile()):
        got = run(A=convert(A))
        assert type(got) is np.ndarray
        np.testing.assert_allclose(got, want, rtol=1e-12)
