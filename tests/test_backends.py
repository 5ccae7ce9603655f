"""The dask, jax and torch backends against numpy (issue 20): every identity and every
Hessian of the suite (tests/cases.py), compiled for each backend, equals the case's
closed form (written in numpy from the notes, never by einderiv) and the numpy
backend's value. dask is in the test extra and CI installs jax (.ci/run); torch runs
where it is installed (``importorskip``). Small sizes, CPU; timings are in
benchmarks/backends.py and benchmarks/outofcore.py, never here. On a machine with a GPU
(benchmarks/gpu.sh) JAX puts the arrays on it by default, and ``EINDERIV_TORCH_DEVICE=cuda``
moves the identities' torch tensors there; nothing here needs one."""

from __future__ import annotations

import inspect
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest

import einderiv

sys.path.insert(0, str(Path(__file__).parent))
from cases import HESSIANS, IDENTITIES
from fd import central_diff

ALL = IDENTITIES + HESSIANS
RNG = np.random.default_rng(20)
LOGISTIC = "sum[a](log(1 + exp(-(y[a]*X[a,b]*theta[b] -> [a]))))"


def _derivative(case):
    d = einderiv.diff(case.expr, case.wrt, case.shapes)
    return einderiv.diff(d, case.wrt, case.shapes) if case in HESSIANS else d


def _dask(values):
    da = pytest.importorskip("dask.array")
    # chunks of 2 along every axis: each product sums over more than one chunk
    return {k: da.from_array(v, chunks=2) if np.ndim(v) else v for k, v in values.items()}, \
        lambda out: out.compute()  # a lazy dask array out, a constant too


def _jax(values):
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    return {k: jnp.asarray(v) for k, v in values.items()}, np.asarray


def _torch(values):
    torch = pytest.importorskip("torch")
    device = os.environ.get("EINDERIV_TORCH_DEVICE", "cpu")
    return {k: torch.from_numpy(np.array(v)).to(device) for k, v in values.items()}, \
        lambda out: out.cpu().numpy()


CONVERT = {"dask": _dask, "jax": _jax, "torch": _torch}


@pytest.mark.parametrize("backend", sorted(CONVERT))
@pytest.mark.parametrize("case", ALL, ids=lambda c: c.name)
def test_backend_equals_numpy_and_the_closed_form(case, backend):
    d = _derivative(case)
    values = case.arrays(RNG)
    arrays, back = CONVERT[backend](values)
    got = back(d.compile(backend=backend)(**arrays))
    want = case.closed_form(values)
    assert got.shape == np.shape(want)
    np.testing.assert_allclose(got, want, atol=1e-12)
    np.testing.assert_allclose(got, d.compile()(**values), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("case", ALL, ids=lambda c: c.name)
def test_torch_code_keeps_to_the_tensors_device(case):
    """No tensor the torch code makes lands on another device than the inputs': on torch's
    ``meta`` device (shapes only, no data), where mixing in a CPU tensor that is not a
    0-d scalar is an error, as it is on a GPU. A stand-in for a GPU in every CI run."""
    torch = pytest.importorskip("torch")
    d = _derivative(case)
    values = case.arrays(RNG)
    tensors = {k: torch.from_numpy(np.array(v)).to("meta") if np.ndim(v) else v
               for k, v in values.items()}
    got = d.compile(backend="torch")(**tensors)
    assert got.device.type == "meta" and tuple(got.shape) == np.shape(case.closed_form(values))


@pytest.mark.parametrize("text, wrt, shapes", [
    ("x[i]*x[i]", "x", {"x": (4,)}),                                  # 2 delta: a new diagonal
    ("-y[i]*(z[i] - log(sum[j](exp(z[j]))))", "z", {"z": (5,), "y": (5,)}),   # diag + outer
    ("sum[a](log(1 + exp(-y[a]*X[a,b]*w[b])))", "w", {"X": (4, 3), "y": (4,), "w": (3,)}),
])
def test_torch_hessians_with_deltas_keep_to_the_tensors_device(text, wrt, shapes):
    torch = pytest.importorskip("torch")
    h = einderiv.diff(einderiv.diff(text, wrt), wrt)
    tensors = {k: torch.ones(v, dtype=torch.float64, device="meta") for k, v in shapes.items()}
    got = h.compile(backend="torch")(**tensors)
    assert got.device.type == "meta" and tuple(got.shape) == shapes[wrt] * 2


def _two_layer_gradient(a):
    """d ||W2 tanh(W1 X) - T||^2 / d W1, written in numpy: 2 ((W2^T R) * (1 - H^2)) X^T."""
    H = np.tanh(a["W1"] @ a["X"])
    return 2 * ((a["W2"].T @ (a["W2"] @ H - a["T"])) * (1 - H * H)) @ a["X"].T


def _softmax_hessian(a):
    p = np.exp(a["z"] - a["z"].max())
    p /= p.sum()
    return a["y"].sum() * (np.diag(p) - np.outer(p, p))


#: Hessians whose torch code adds a diagonal term onto a dense one in place (a view made
#: with ``.diagonal``), with an independent reference: (text, variable, shapes, reference).
DIAGONAL_HESSIANS = [
    ("-y[i]*(z[i] - log(sum[j](exp(z[j]))))", "z", {"z": (5,), "y": (5,)}, _softmax_hessian),
    ("A[i,j]*x[j]*x[i] + x[i]*x[i]", "x", {"A": (3, 3), "x": (3,)},
     lambda a: 2 * np.eye(3) + a["A"] + a["A"].T),
    ("(W2[o,h]*tanh(W1[h,i]*X[i,b]) - T[o,b])*(W2[o,g]*tanh(W1[g,j]*X[j,b]) - T[o,b])", "W1",
     {"W1": (5, 3), "W2": (2, 5), "X": (3, 4), "T": (2, 4)},
     lambda a: central_diff(_two_layer_gradient, a, "W1")),
]


def _dynamo():
    pytest.importorskip("torch")
    import torch._dynamo as dynamo
    return dynamo


@pytest.mark.parametrize("case", ALL, ids=lambda c: c.name)
def test_torch_code_is_one_graph_for_torch_compile(case):
    """``torch.compile`` of einderiv's torch code (the exported function; the compiled
    object once its first call has written the code) captures it whole: no graph break
    (``torch._dynamo.explain``). A device lookup written ``max(..., key=...)`` and a
    diagonal written with ``as_strided`` broke it."""
    torch, dynamo = pytest.importorskip("torch"), _dynamo()
    d = _derivative(case)
    values = case.arrays(RNG)
    tensors = {k: torch.from_numpy(np.array(v)) for k, v in values.items()}
    namespace: dict = {}
    exec(d.to_python("f", backend="torch"), namespace)  # noqa: S102 - einderiv's own export
    kw = {p: tensors[p] for p in inspect.signature(namespace["f"]).parameters}
    compiled = d.compile(backend="torch")
    compiled(**kw)  # the first call writes the code for these shapes
    for fn in (namespace["f"], compiled):
        dynamo.reset()
        report = dynamo.explain(fn)(**kw)
        assert report.graph_break_count == 0, report.break_reasons
        assert report.graph_count == 1


@pytest.mark.slow
@pytest.mark.parametrize("text, wrt, shapes, reference", DIAGONAL_HESSIANS,
                         ids=["softmax", "quadratic", "two-layer"])
def test_torch_compile_of_the_diagonal_hessians_gives_the_reference(text, wrt, shapes, reference):
    """The diagonal added in place onto a view, run as torch.compile runs it
    (``aot_eager``: the graph functionalized, views and in-place adds rewritten, as
    inductor receives it), and eagerly: the independent reference, inputs unchanged."""
    torch, dynamo = pytest.importorskip("torch"), _dynamo()
    h = einderiv.diff(einderiv.diff(text, wrt), wrt)
    values = {k: RNG.normal(size=v) for k, v in shapes.items()}
    want = reference(values)
    tensors = {k: torch.from_numpy(v.copy()) for k, v in values.items()}
    src = h.to_python("f", backend="torch")
    assert ".diagonal(" in src and ".add_(" in src, src
    namespace: dict = {}
    exec(src, namespace)  # noqa: S102 - einderiv's own export
    dynamo.reset()
    for fn in (h.compile(backend="torch"), namespace["f"],
               torch.compile(namespace["f"], backend="aot_eager")):
        got = fn(**{p: tensors[p] for p in inspect.signature(namespace["f"]).parameters})
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-6, atol=1e-8)
    for k, v in values.items():
        assert np.array_equal(tensors[k].numpy(), v)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", ALL, ids=lambda c: c.name)
def test_torch_and_numpy_leave_their_inputs_bit_identical(case, dtype):
    """The torch code adds diagonals in place and converts dtypes: neither may touch an
    input tensor or array (jax arrays are immutable; dask is covered in
    tests/test_inputs_unchanged.py). Values still equal the closed form."""
    d = _derivative(case)
    values = {k: np.asarray(v, dtype=dtype) if np.ndim(v) else v
              for k, v in case.arrays(RNG).items()}
    kept = {k: np.array(v, copy=True) for k, v in values.items() if np.ndim(v)}
    tol = 1e-10 if dtype == np.float64 else 2e-3
    for run in (d.evaluate, d.compile()):
        got = run(**values)
        np.testing.assert_allclose(got, case.closed_form(values), rtol=tol, atol=tol)
    for k, v in kept.items():
        assert np.array_equal(values[k], v), f"{k} was changed by numpy"
    torch = pytest.importorskip("torch")
    tensors = {k: torch.from_numpy(np.array(v)) if np.ndim(v) else v for k, v in values.items()}
    for run in (d.evaluate, d.compile(backend="torch")):
        got = run(**tensors).numpy()
        np.testing.assert_allclose(got, case.closed_form(values), rtol=tol, atol=tol)
    for k, v in kept.items():
        assert np.array_equal(tensors[k].numpy(), v), f"{k} was changed by torch"


@pytest.mark.parametrize("layout", ["numerator", "denominator"])
def test_a_diagonal_added_onto_an_input_leaves_the_input_alone(layout):
    """d(A x + x.^2/2)/dx in numerator layout is A + diag(x): the dense term is the
    input A itself, which the torch code must not add the diagonal into."""
    d = einderiv.diff("A[i,j]*x[j] + x[i]**2/2", "x", layout=layout)
    A, x = RNG.normal(size=(3, 3)), RNG.normal(size=3)  # square: A x + x.^2 needs it
    want = A + np.diag(x) if layout == "numerator" else A.T + np.diag(x)
    np.testing.assert_allclose(d.evaluate(A=A, x=x), want, rtol=1e-12)
    torch = pytest.importorskip("torch")
    At, xt = torch.from_numpy(A.copy()), torch.from_numpy(x.copy())
    for run in (d.evaluate, d.compile(backend="torch"), d.compile(backend="torch")):
        np.testing.assert_allclose(run(A=At, x=xt).numpy(), want, rtol=1e-12)
    assert np.array_equal(At.numpy(), A) and np.array_equal(xt.numpy(), x)


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_a_call_after_the_first_takes_the_fast_entry_and_still_checks(backend):
    """Python numbers, new shapes and missing names after the first call: each goes the
    general way and gives the closed form or the error, never a stale function."""
    CONVERT[backend]({})  # skipped where the library is not installed
    d = einderiv.diff("(X[a,b]*theta[b] - Y[a])*(X[a,c]*theta[c] - Y[a])/n", "theta")
    f = d.compile(backend=backend)
    for n, k in ((4, 3), (4, 3), (5, 2)):  # the same shapes twice, then new ones
        X, th, Y = RNG.normal(size=(n, k)), RNG.normal(size=k), RNG.normal(size=n)
        arrays, back = CONVERT[backend]({"X": X, "theta": th, "Y": Y})
        for scale in (float(n), n):  # a float, then an int
            got = back(f(**arrays, n=scale))
            np.testing.assert_allclose(got, 2 / n * X.T @ (X @ th - Y), atol=1e-12)
    assert len(f._fns) == 2  # one loaded function per input shapes
    with pytest.raises(einderiv.EvaluationError, match="missing value for 'n'"):
        f(**arrays)


def test_jax_diagonals_are_a_select_not_a_scatter():
    """A delta with both indices free (the softmax Hessian's diag(p)) is written as
    ``jnp.where`` on compared index ranges, which XLA fuses with the sum that reads it."""
    d = einderiv.diff(einderiv.diff("-y[i]*(z[i] - log(sum[j](exp(z[j]))))", "z"), "z")
    src = d.to_python(backend="jax")
    assert ".at[" not in src and re.search(r"jnp\.where\(t\d+, t\d+\[None, :\], 0\.0\)", src)
    _jax({})
    z, y = RNG.normal(size=5), RNG.random(5)
    p = np.exp(z - z.max())
    p /= p.sum()
    want = y.sum() * (np.diag(p) - np.outer(p, p))
    got = np.asarray(d.compile(backend="jax")(z=z, y=y))
    np.testing.assert_allclose(got, want, atol=1e-12)


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_a_value_written_twice_is_computed_once(backend):
    """The logistic Hessian's program keeps ``-(y X theta)`` and ``y X theta`` apart;
    the exported code computes ``X theta`` once (one contraction of X with theta)."""
    h = einderiv.diff(einderiv.diff(LOGISTIC, "theta"), "theta")
    shapes = {"X": (5, 3), "y": (5,), "theta": (3,)}
    src = h.to_python(backend=backend, shapes=shapes)
    with_theta = [line for line in src.splitlines()
                  if ("einsum(" in line or " @ " in line) and "theta" in line]
    assert len(with_theta) == 1, src
    X, y, th = RNG.normal(size=(5, 3)), np.where(RNG.random(5) < 0.5, -1.0, 1.0), RNG.normal(size=3)
    s = 1 / (1 + np.exp(-y * (X @ th)))
    want = X.T @ (X * (s * (1 - s))[:, None])
    arrays, back = CONVERT[backend]({"X": X, "y": y, "theta": th})
    namespace: dict = {}
    exec(compile(src, "<export>", "exec"), namespace)  # noqa: S102 - the code under test
    np.testing.assert_allclose(back(namespace["grad"](**arrays)), want, atol=1e-12)


@pytest.mark.parametrize("backend", ["torch"])
def test_matrix_products_are_written_as_matmul(backend):
    """On torch, two-operand products of matrices and vectors are ``a @ b`` on
    transposed views (torch.einsum permutes and copies), the coefficient outside: the
    two-layer network's gradient ``2 ((W2^T (W2 H - T)) * (1 - H^2)) X^T``. (On JAX
    they stay ``jnp.einsum``: one dot_general, where XLA on CPU copied ``X.T``.)"""
    text = "(W2[o,h]*tanh(W1[h,i]*X[i,b]) - T[o,b])*(W2[o,g]*tanh(W1[g,j]*X[j,b]) - T[o,b])"
    g = einderiv.diff(text, "W1")
    shapes = {"W1": (4, 3), "W2": (5, 4), "X": (3, 6), "T": (5, 6)}
    src = g.to_python(backend=backend, shapes=shapes)
    assert "einsum(" not in src and src.count(" @ ") == 4, src
    assert re.search(r"2\.0 \* \(t\d+ @ X\.T\)", src)
    v = {k: RNG.normal(size=s) for k, s in shapes.items()}
    H = np.tanh(v["W1"] @ v["X"])
    want = 2 * ((v["W2"].T @ (v["W2"] @ H - v["T"])) * (1 - H * H)) @ v["X"].T
    arrays, back = CONVERT[backend](v)
    np.testing.assert_allclose(back(g.compile(backend=backend)(**arrays)), want, atol=1e-12)


def test_torch_adds_a_diagonal_in_place_onto_the_dense_term():
    """The softmax Hessian ``sum(y) (diag(p) - p p^T)`` on torch: the dense term is
    computed once and ``sum(y) p`` added onto its diagonal in place (no zeros, no second
    pass); a dense term that something else reads too is copied first, never changed."""
    torch = pytest.importorskip("torch")
    d = einderiv.diff(einderiv.diff("-y[i]*(z[i] - log(sum[j](exp(z[j]))))", "z"), "z")
    src = d.to_python(backend="torch")
    assert "zeros(" not in src and "arange(" not in src, src  # a view, no index arrays
    assert re.search(r"t\d+\.diagonal\(0, 0, 1\)\.add_\(t\d+\)", src), src
    z, y = RNG.normal(size=5), RNG.random(5)
    p = np.exp(z - z.max())
    p /= p.sum()
    want = y.sum() * (np.diag(p) - np.outer(p, p))
    got = d.compile(backend="torch")(z=torch.from_numpy(z), y=torch.from_numpy(y))
    np.testing.assert_allclose(got.numpy(), want, atol=1e-12)
    # J[k, i] = delta[k, i] sum(z) + z[i]: the dense term is a broadcast view of z, copied
    J = einderiv.diff("z[i]*sum[j](z[j])", "z")
    assert ".clone()" in J.to_python(backend="torch")
    z = RNG.normal(size=4)
    zt = torch.from_numpy(z.copy())
    got = J.compile(backend="torch")(z=zt).numpy()
    np.testing.assert_allclose(got, z.sum() * np.eye(4) + z[None, :], atol=1e-12)
    assert np.array_equal(zt.numpy(), z)  # the input is unchanged
    # the Hessian 2 I + A + A^T of x^T A x + x^T x: the diagonal added onto A + A^T
    H = einderiv.diff(einderiv.diff("A[i,j]*x[j]*x[i] + x[i]*x[i]", "x"), "x")
    A, x = RNG.normal(size=(3, 3)), RNG.normal(size=3)
    At = torch.from_numpy(A.copy())
    got = H.compile(backend="torch")(A=At, x=torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, 2 * np.eye(3) + A + A.T, atol=1e-12)
    assert np.array_equal(At.numpy(), A)


def test_jax_compiled_derivative_composes_with_jit_and_vmap():
    """The compiled jax derivative called on tracers (inside the user's jax.jit, under
    jax.vmap over a batch of theta) gives the closed form for every example."""
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    g = einderiv.diff(LOGISTIC, "theta").compile(backend="jax")
    X, y = RNG.normal(size=(5, 3)), np.where(RNG.random(5) < 0.5, -1.0, 1.0)
    thetas = RNG.normal(size=(4, 3))
    batched = jax.jit(jax.vmap(lambda th: g(X=jnp.asarray(X), y=jnp.asarray(y), theta=th)))
    got = np.asarray(batched(jnp.asarray(thetas)))
    want = np.stack([X.T @ (-y / (1 + np.exp(y * (X @ th)))) for th in thetas])
    np.testing.assert_allclose(got, want, atol=1e-12)
