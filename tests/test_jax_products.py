"""The jax export's product forms (issue 20): a product summed over the leading axes of
both operands (``X^T diag(w) X``, the Hessians of least squares and logistic regression)
goes through the helper that transposes its first operand in row blocks on CPU, and a
product's scalar factors sit on an element-wise operand. Sizes large enough that the
helper takes its blocked path (blocks and a remainder), values against the closed form
written in numpy; the speed is measured in benchmarks/backends.py, never here."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import einderiv

jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402

RNG = np.random.default_rng(2020)
LOGISTIC = "sum[a](log(1 + exp(-(y[a]*X[a,b]*theta[b] -> [a]))))"
LSQ = "(X[a,b]*theta[b] - Y[a])*(X[a,c]*theta[c] - Y[a])/n"


def _logistic_hessian(X, y, theta):
    s = 1 / (1 + np.exp(-y * (X @ theta)))
    return X.T @ (X * (s * (1 - s))[:, None])


def _logistic(n, d, dtype=np.float64):
    X = RNG.normal(size=(n, d)).astype(dtype)
    y = np.where(RNG.random(n) < 0.5, -1.0, 1.0).astype(dtype)
    theta = (0.1 * RNG.normal(size=d)).astype(dtype)
    return X, y, theta


def test_logistic_hessian_in_row_blocks_equals_the_closed_form():
    """1103 rows of 520 columns: three blocks of 367 rows and a remainder of 2, in float64
    and float32."""
    H = einderiv.diff(einderiv.diff(LOGISTIC, "theta"), "theta")
    f = H.compile(backend="jax")
    for dtype, rtol in ((np.float64, 1e-10), (np.float32, 2e-4)):
        X, y, theta = _logistic(1103, 520, dtype)
        got = f(X=jnp.asarray(X), y=jnp.asarray(y), theta=jnp.asarray(theta))
        assert got.dtype == dtype
        want = _logistic_hessian(X.astype(float), y.astype(float), theta.astype(float))
        np.testing.assert_allclose(np.asarray(got), want, rtol=rtol, atol=rtol * np.abs(want).max())


# in row blocks (3 x 367 + 2); the same, split 32 + 33; one block of rows
@pytest.mark.parametrize("rows, columns", [(1103, 520), (1103, 65), (407, 65)])
def test_symmetric_gram_in_row_blocks_equals_the_closed_form(rows, columns):
    """X^T X (the least-squares Hessian 2/n X^T X, one operand on both sides): three of the
    four blocks computed in each block of rows, the fourth the transpose of one (exactly),
    and equal to the closed form."""
    H = einderiv.diff(einderiv.diff(LSQ, "theta"), "theta").compile(backend="jax")
    X = RNG.normal(size=(rows, columns))
    got = np.asarray(H(X=jnp.asarray(X), n=rows))
    want = 2 / rows * X.T @ X
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10 * np.abs(want).max())
    h = columns // 2
    assert np.array_equal(got[h:, :h], got[:h, h:].T)


def test_the_product_over_leading_axes_goes_through_the_helper():
    """The exported jax code of X^T W X calls the helper with X on both sides and W beside
    (each block of rows scaled inside it: no n x d array X W), of X^T X too; numpy and
    torch export the product as before."""
    H = einderiv.diff(einderiv.diff(LOGISTIC, "theta"), "theta")
    src = H.to_python(backend="jax", shapes={"X": (1103, 520), "y": (1103,), "theta": (520,)})
    assert re.search(r"= _leading\(X, X, 1, t\d+\)", src) and "jnp.einsum(\"ab,ac" not in src
    assert "[:, None]" not in src.split("def grad")[1]
    assert "import jax.lax as lax" in src
    gram = einderiv.diff(einderiv.diff(LSQ, "theta"), "theta")
    assert "_leading(X, X, 1)" in gram.to_python(backend="jax")
    for backend in ("numpy", "opt_einsum", "torch"):
        assert "_leading" not in H.to_python(backend=backend)


def test_helper_over_two_leading_axes_and_a_matrix_product():
    """Two summed axes that lead both operands (reshaped to one), the result's axes those
    of the first operand then the second's: a 4-axis product against numpy's einsum."""
    e = einderiv.parse("A[i,j,p,q]*B[i,j,r]")
    A, B = RNG.normal(size=(40, 30, 5, 4)), RNG.normal(size=(40, 30, 24))
    src = e.to_python(backend="jax")
    assert "_leading(A, B, 2)" in src
    got = e.compile(backend="jax")(A=jnp.asarray(A), B=jnp.asarray(B))
    want = np.einsum("ijpq,ijr->pqr", A, B)  # sums of 1200 terms: rounding by the largest
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12, atol=1e-13 * np.abs(want).max())


def test_blocked_hessian_under_the_users_jit_and_vmap():
    """The blocked path (a fori_loop) batched by vmap over two thetas inside jit."""
    H = einderiv.diff(einderiv.diff(LOGISTIC, "theta"), "theta").compile(backend="jax")
    X, y, _ = _logistic(1103, 520)
    thetas = 0.1 * RNG.normal(size=(2, 520))
    batched = jax.jit(jax.vmap(lambda th: H(X=jnp.asarray(X), y=jnp.asarray(y), theta=th)))
    got = np.asarray(batched(jnp.asarray(thetas)))
    for g, th in zip(got, thetas):
        want = _logistic_hessian(X, y, th)
        np.testing.assert_allclose(g, want, rtol=1e-10, atol=1e-10 * np.abs(want).max())


def test_scalar_factors_sit_on_an_elementwise_operand_not_on_the_product():
    """2/n of the least-squares gradient multiplies the residual, not X^T r (XLA fuses it
    into the residual's loop); the value is the closed form; numpy keeps it outside."""
    g = einderiv.diff(LSQ, "theta")
    shapes = {"X": (7, 3), "theta": (3,), "Y": (7,), "n": ()}
    src = g.to_python(backend="jax", shapes=shapes)
    assert re.search(r"t\d+ = 2\.0 \* t\d+ \* t\d+\n", src)
    assert not re.search(r"\* jnp\.einsum", src)
    assert re.search(r"2\.0 \* t\d+ \* np\.einsum", g.to_python(backend="numpy", shapes=shapes))
    X, th, Y = RNG.normal(size=(7, 3)), RNG.normal(size=3), RNG.normal(size=7)
    got = g.compile(backend="jax")(X=jnp.asarray(X), theta=jnp.asarray(th), Y=jnp.asarray(Y),
                                   n=7)
    np.testing.assert_allclose(np.asarray(got), 2 / 7 * X.T @ (X @ th - Y), rtol=1e-12)
    # a sign alone moves too (no shapes: by the operands' ranks): the logistic gradient
    # -X^T (y sigmoid(-y X theta)) negates the sigmoid, not the product
    src = einderiv.diff(LOGISTIC, "theta").to_python(backend="jax")
    assert re.search(r"t\d+ = -t\d+\n    t\d+ = jnp\.einsum\(\"ab,a,a->b\"", src)


def test_jax_entry_takes_lists_numbers_and_reports_missing_names_and_bad_shapes():
    """The jitted entry: nested lists and Python numbers trace like arrays, a missing name
    and a shape that does not fit are einderiv's errors, not JAX's."""
    g = einderiv.diff(LSQ, "theta").compile(backend="jax")
    X, th, Y = RNG.normal(size=(4, 3)), RNG.normal(size=3), RNG.normal(size=4)
    want = 2 / 4 * X.T @ (X @ th - Y)
    np.testing.assert_allclose(np.asarray(g(X=X.tolist(), theta=th.tolist(), Y=Y.tolist(), n=4)),
                               want, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(g(X=jnp.asarray(X), theta=jnp.asarray(th),
                                            Y=jnp.asarray(Y), n=4.0, unused=1.0)), want, rtol=1e-12)
    with pytest.raises(einderiv.EvaluationError, match="missing value for 'Y'"):
        g(X=jnp.asarray(X), theta=jnp.asarray(th), n=4.0)
    with pytest.raises(einderiv.ShapeError, match="index 'b' has size 5"):
        g(X=jnp.asarray(X), theta=jnp.ones(5), Y=jnp.asarray(Y), n=4.0)


@pytest.mark.parametrize("x64", [True, False])
def test_python_numbers_reach_jax_as_the_scalars_jit_makes_of_them(x64):
    """The entry hands jax.jit a Python number as a weak scalar made once (jit would
    convert it on every call): the same abstract value (dtype, weak type) as the number's,
    with and without x64; signed zeros, NaN and numbers too large pass as they are."""
    from einderiv.numeric.codegen import WeakNumbers
    numbers = WeakNumbers()
    with jax.enable_x64(x64):
        for value in (4.0, -2.5, 3, True, False, 2**20):
            made = numbers(value)
            assert not isinstance(made, type(value)) and jax.typeof(made) == jax.typeof(value)
            assert numbers(value) is made  # made once
            assert float(made) == value
        for value in (0.0, -0.0, float("nan"), 2**70):
            assert numbers(value) is value
    for k in range(3 * WeakNumbers.SIZE):  # a schedule of values keeps the cache bounded
        numbers(1.0 + k)
    assert len(numbers._made) <= WeakNumbers.SIZE


def test_a_cached_number_keeps_its_sign_its_precision_and_stays_out_of_traces():
    """d(x.x / s)/dx = 2 x / s through the jax entry with s a Python number: 0.0 and -0.0
    give infinities of opposite signs; 0.1 met without x64 (float32) and again with it
    gives float64's 2 x / 0.1; a number first met inside the user's jax.jit is not kept
    as a tracer for the calls after it."""
    f = einderiv.diff("x[i]*x[i]/s", "x").compile(backend="jax")
    x = np.array([1.0, -2.0, 3.0, 0.5])
    with np.errstate(divide="ignore"):
        for s in (0.0, -0.0, 0.0):
            np.testing.assert_array_equal(np.asarray(f(x=jnp.asarray(x), s=s)),
                                          2 * x / np.float64(s))
    with jax.enable_x64(False):
        got = np.asarray(f(x=x.astype(np.float32), s=0.1))
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, 2 * x / 0.1, rtol=1e-6)
    got = np.asarray(f(x=jnp.asarray(x), s=0.1))
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, 2 * x / 0.1, rtol=1e-15)
    inside = jax.jit(lambda x: f(x=x, s=3.0) + f(x=x, s=0.1))
    with jax.checking_leaks():  # raises where a tracer outlives its trace
        got = np.asarray(inside(jnp.asarray(x)))
    np.testing.assert_allclose(got, 2 * x / 3.0 + 2 * x / 0.1, rtol=1e-14)
    for s in (3.0, 0.1):  # after the trace: concrete values, no leaked tracer
        np.testing.assert_allclose(np.asarray(f(x=jnp.asarray(x), s=s)), 2 * x / s,
                                   rtol=1e-15)


SCALED = einderiv.diff("x[i]*x[i]/s", "x").compile(backend="jax")  # one cache for all


@settings(deadline=None, derandomize=True, database=None, max_examples=150)
@given(st.lists(st.tuples(st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64),
                                    st.integers(-2**40, 2**40), st.booleans(),
                                    st.sampled_from([0.0, -0.0, 0.1, 1.0, 1, True])),
                          st.booleans()), min_size=1, max_size=6))
def test_any_sequence_of_python_numbers_gives_what_jit_gives_them(calls):
    """Python numbers through one compiled function, x64 on and off in any order (the
    cache outlives each call): every result is bit-identical to jax.jit's own on the
    number itself, and equals 2 x / s (numpy, in the same precision) where finite."""
    x = np.array([1.0, -2.0, 3.0, 0.5])
    for value, x64 in calls:
        with jax.enable_x64(x64), np.errstate(all="ignore"):
            dtype = np.float64 if x64 else np.float32
            xs = jnp.asarray(x.astype(dtype))
            if type(value) is int and not x64 and abs(value) >= 2**31:
                with pytest.raises(OverflowError, match="overflow"):  # jax.jit's error
                    SCALED(x=xs, s=value)
                with pytest.raises(OverflowError, match="overflow"):
                    SCALED._jitted(xs, value)
                continue
            got = np.asarray(SCALED(x=xs, s=value))
            plain = np.asarray(SCALED._jitted(xs, value))  # jax.jit converting it itself
            assert got.dtype == plain.dtype == dtype
            np.testing.assert_array_equal(got, plain)
            want = 2 * x.astype(dtype) / dtype(value)
            np.testing.assert_allclose(got, want, rtol=1e-6 if dtype is np.float32 else 1e-15)


def test_a_scalar_is_not_folded_onto_an_operand_that_is_a_factor_twice():
    """2 (u+v)^2 X^T X: the sum u+v is a factor twice; 2 multiplied onto it would count
    twice (4 (u+v)^2). The value is the closed form, and the tanh network Hessian's
    block too (its 2 (1 - tanh^2) is a factor twice)."""
    e = einderiv.parse("2*(u[a]+v[a])*(u[a]+v[a])*X[a,b]*X[a,c]")
    u, v, X = RNG.normal(size=6), RNG.normal(size=6), RNG.normal(size=(6, 4))
    got = e.compile(backend="jax")(u=jnp.asarray(u), v=jnp.asarray(v), X=jnp.asarray(X))
    np.testing.assert_allclose(np.asarray(got), 2 * X.T @ (X * ((u + v) ** 2)[:, None]),
                               rtol=1e-12)
    g = einderiv.parse("2*(1 - tanh(W[h,i]*X[i,b] -> [h,b])**2)"
                       "*(1 - tanh(W[k,j]*X[j,b] -> [k,b])**2)*X[p,b]*X[q,b]")
    W, X = RNG.normal(size=(3, 5)), RNG.normal(size=(5, 4))
    D = 1 - np.tanh(W @ X) ** 2
    got = g.compile(backend="jax")(W=jnp.asarray(W), X=jnp.asarray(X))
    want = 2 * np.einsum("hb,kb,pb,qb->hkpq", D, D, X, X)
    np.testing.assert_allclose(np.transpose(np.asarray(got), [g.free.index(i) for i in "hkpq"]),
                               want, rtol=1e-12)


@pytest.mark.parametrize("text, spec", [
    ("w[a]*X[a,b]*X[a,c]", "a,ab,ac->bc"),
    ("w[a]*w[a]*X[a,b]*X[a,c]", "a,a,ab,ac->bc"),
    ("w[a]*X[a,b]*Z[a,c]", "a,ab,ac->bc"),
    ("w[a]*Z[a,c]*X[a,b]", "a,ac,ab->cb"),
])
def test_rows_scaled_inside_the_helper_equal_the_closed_form(text, spec):
    """A vector over the summed axis goes into the helper beside the operands (scaled per
    block of rows): once, squared, with two different operands, in either order; 300 rows
    of 40 columns (the helper's path), against numpy's einsum of the same factors."""
    e = einderiv.parse(text)
    w, X, Z = RNG.random(300), RNG.normal(size=(300, 40)), RNG.normal(size=(300, 40))
    values = {"w": w, "X": X, "Z": Z}
    names = re.findall(r"([wXZ])\[", text)
    assert "_leading(" in e.to_python(backend="jax", shapes={k: v.shape for k, v in values.items()})
    got = np.asarray(e.compile(backend="jax")(**{k: jnp.asarray(v) for k, v in values.items()}))
    want = np.einsum(spec, *(values[n] for n in names))
    out = spec.split("->")[1]
    np.testing.assert_allclose(np.transpose(got, [e.free.index(i) for i in out]), want,
                               rtol=1e-11, atol=1e-11)
