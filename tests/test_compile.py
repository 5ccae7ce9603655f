"""Compiled evaluation (issue 5): values against closed forms, shared subexpressions,
contraction order, memory limits, dask, hvp/jvp. Timings live in benchmarks/."""

import re
import sys
from pathlib import Path

import numpy as np
import pytest

import einderiv
from einderiv.numeric.execution import skipped

sys.path.insert(0, str(Path(__file__).parent))
from cases import HESSIANS, IDENTITIES, LOW_RANK, grouped_chain, low_rank_fit  # noqa: E402

RNG = np.random.default_rng(7)


@pytest.mark.parametrize("case", IDENTITIES + HESSIANS, ids=lambda c: c.name)
def test_compiled_derivative_equals_closed_form(case):
    d = einderiv.diff(case.expr, case.wrt, case.shapes)
    if case in HESSIANS:
        d = einderiv.diff(d, case.wrt, case.shapes)
    values = case.arrays(RNG)
    f = d.compile()
    np.testing.assert_allclose(f(**values), case.closed_form(values), atol=1e-12)
    np.testing.assert_allclose(f(**values), case.closed_form(values), atol=1e-12)  # reused plan


@pytest.mark.parametrize("case", IDENTITIES + HESSIANS, ids=lambda c: c.name)
def test_in_place_steps_and_early_release_keep_every_value(case, monkeypatch):
    """With the size thresholds at 0, every element-wise step that can write into its
    operand does, and every intermediate is let go of after its last use: values are
    unchanged, inputs untouched, a second call (reusing the plan) equal."""
    monkeypatch.setattr(einderiv.numeric.planning, "RELEASE_MIN_BYTES", 0)
    monkeypatch.setattr(einderiv.numeric.rewrites, "IN_PLACE_MIN_SIZE", 0)
    d = einderiv.diff(case.expr, case.wrt, case.shapes)
    if case in HESSIANS:
        d = einderiv.diff(d, case.wrt, case.shapes)
    values = case.arrays(RNG)
    before = {k: np.array(v, copy=True) for k, v in values.items()}
    f = d.compile()
    for _ in range(2):
        np.testing.assert_allclose(f(**values), case.closed_form(values), atol=1e-12)
    for k, v in values.items():
        np.testing.assert_array_equal(v, before[k])
    assert f.plan_for(**values).release is not None


def test_two_layer_gradient_at_size_writes_in_place_and_frees_early():
    """The two-layer network gradient (benchmark C9, sizes 30 x 40 x 5, batch 64: its
    largest array is over the release threshold): the tanh derivative is formed in
    one array; the result equals backpropagation written out."""
    g = einderiv.diff("(W2[o,h]*tanh(W1[h,i]*X[i,b]) - T[o,b])*"
                      "(W2[o,g]*tanh(W1[g,j]*X[j,b]) - T[o,b])", "W1")
    W1, W2 = RNG.normal(size=(40, 30)) / 5, RNG.normal(size=(5, 40))
    X, T = RNG.normal(size=(30, 640)), RNG.normal(size=(5, 640))
    H = np.tanh(W1 @ X)
    want = 2 * ((W2.T @ (W2 @ H - T)) * (1 - H * H)) @ X.T
    f = g.compile()
    np.testing.assert_allclose(f(W1=W1, W2=W2, X=X, T=T), want, rtol=1e-10)
    plan = f.plan_for(W1=W1, W2=W2, X=X, T=T)
    assert plan.release is not None
    written = einderiv.numeric.rewrites.in_place_steps(f.program, plan.shapes, set())
    assert {f.program.steps[k].kind for k in written} >= {"func", "scale", "add"}


def test_common_subexpressions_are_computed_once():
    loss = "sum[a](softplus(X[a,b]*theta[b]) - y[a]*X[a,c]*theta[c])"
    h = einderiv.diff(einderiv.diff(loss, "theta"), "theta")  # X^T diag(s .* (1 - s)) X
    steps = [s for s in h.compile().program.steps if s.kind == "func"]
    assert [s.name for s in steps] == ["sigmoid"]   # sigmoid(u) once, used twice
    X, y, th = RNG.normal(size=(6, 3)), RNG.random(6), RNG.normal(size=3)
    s = 1 / (1 + np.exp(-(X @ th)))
    np.testing.assert_allclose(h.evaluate(X=X, y=y, theta=th), X.T @ np.diag(s * (1 - s)) @ X)


def test_subexpressions_are_shared_whatever_the_order_of_their_axes():
    # tanh(W1 X) appears with its axes as [b,f] in one term and [g,j] in the other
    loss = "(W2[o,h]*tanh(W1[h,i]*X[i,b]) - T[o,b])*(W2[o,g]*tanh(W1[g,j]*X[j,b]) - T[o,b])"
    h = einderiv.diff(einderiv.diff(loss, "W1"), "W1")
    tanhs = [s for s in h.compile().program.steps if s.kind == "func" and s.name == "tanh"]
    assert len(tanhs) == 1
    # and a term equal to another one transposed is not mistaken for it
    g = einderiv.parse("c[d]*x[f] + 2*c[f]*x[d] -> [f,d]")
    c, x = RNG.normal(size=3), RNG.normal(size=3)
    np.testing.assert_allclose(g.evaluate(c=c, x=x), np.outer(x, c) + 2 * np.outer(c, x))


def test_chain_gradient_runs_as_matrix_vector_products():
    k, d = 16, 30
    text = "*".join(["x[i0]"] + [f"A{m}[i{m - 1},i{m}]" for m in range(1, k + 1)] + [f"x[i{k}]"])
    g = einderiv.diff(text, "x")
    assert len(g.terms) == 2
    mats = {f"A{m}": RNG.normal(size=(d, d)) for m in range(1, k + 1)}
    x = RNG.normal(size=d)
    B = np.linalg.multi_dot([mats[f"A{m}"] for m in range(1, k + 1)])
    f = g.compile()
    np.testing.assert_allclose(f(x=x, **mats), (B + B.T) @ x, rtol=1e-9)
    # matrix-vector products only: 2 terms x 16 products of d^2 multiply-adds each;
    # forming any matrix-matrix product would cost d^3 = 27000 alone
    assert f.flops(x=x, **mats) < 2 * k * 2 * d * d * 1.5


def test_memory_limit_refuses_huge_results():
    f = einderiv.diff("x[i]*x[j]*x[k] -> [i,j,k]", "x").compile(memory_limit=10**6)
    big = np.ones(200)
    with pytest.raises(einderiv.LimitError, match="would need .* over the memory limit"):
        f(x=big)   # 200^4 entries * 8 bytes = 12.8 GB
    assert f(x=np.ones(3)).shape == (3, 3, 3, 3)   # small sizes: fine


def test_many_factors_contract_group_by_group_not_as_outer_products():
    # 3 x 15 factors in canonical order u0..u14, v0.., w0..: contracting them in that
    # order forms a 3^15 outer product of the u's (the CI run that was killed for
    # memory). Each u_j v_j w_j group must be contracted to a number first.
    text, arrays, expected = grouped_chain(15, RNG)
    f = einderiv.parse(text).compile(memory_limit=10**4)  # 3^15 floats would be 115 MB
    info = f.plan_info(**arrays)
    assert info.largest_bytes <= 8 * 3 * 4   # nothing larger than one v_j
    np.testing.assert_allclose(f(**arrays), expected, rtol=1e-9)


def test_dask_runs_products_of_many_factors():
    import dask.array as da
    k, d = 45, 4
    text = "*".join(["x[i0]"] + [f"A{m}[i{m - 1},i{m}]" for m in range(1, k + 1)] + [f"x[i{k}]"])
    mats = {f"A{m}": RNG.normal(size=(d, d)) / 2 for m in range(1, k + 1)}
    x = RNG.normal(size=d)
    expected = x @ np.linalg.multi_dot([mats[f"A{m}"] for m in range(1, k + 1)]) @ x
    f = einderiv.parse(text).compile(backend="dask")
    lazy = f(x=da.from_array(x), **{n: da.from_array(a) for n, a in mats.items()})
    assert isinstance(lazy, da.Array)
    np.testing.assert_allclose(lazy.compute(), expected, rtol=1e-9)


@pytest.mark.parametrize("text, closed", [
    # w >= 0: the symmetric product (sqrt(w) X)^T (sqrt(w) X)
    ("X[a,c]*X[a,d]*u[a]*u[a] -> [c,d]", lambda X, u, s: X.T @ np.diag(u * u) @ X),
    # w of both signs: the general product, still exact
    ("X[a,c]*X[a,d]*u[a] -> [d,c]", lambda X, u, s: X.T @ np.diag(u) @ X),
    # a negative number in front must not make w negative
    ("-3*s*X[a,c]*X[a,d]*u[a]*u[a] -> [c,d]", lambda X, u, s: -3 * s * X.T @ np.diag(u * u) @ X),
    # rows and columns exchanged: X diag(w) X^T
    ("X[c,a]*X[d,a]*v[a]*v[a] -> [c,d]", lambda X, u, s: X @ np.diag(RNG_V * RNG_V) @ X.T),
])
def test_gram_products_equal_the_closed_form(text, closed):
    X, u, s = RNG.normal(size=(5, 3)), RNG.normal(size=5), 0.7
    f = einderiv.parse(text).compile()
    got = f(X=X, u=u, s=s, v=RNG_V) if "v[" in text else f(X=X, u=u, s=s)
    np.testing.assert_allclose(got, closed(X, u, s), rtol=1e-12, atol=1e-12)


def test_gram_product_of_complex_arrays_is_not_square_rooted():
    X = RNG.normal(size=(5, 3)) + 1j * RNG.normal(size=(5, 3))
    w = RNG.normal(size=5) + 1j * RNG.normal(size=5)
    f = einderiv.parse("X[a,c]*X[a,d]*w[a] -> [c,d]").compile()
    np.testing.assert_allclose(f(X=X, w=w), X.T @ np.diag(w) @ X, rtol=1e-12)


RNG_V = RNG.normal(size=3)


@pytest.mark.parametrize("text, spec, coeff", [
    # the Gauss-Newton block of the two-layer Hessian (benchmark C9): (W^T W) times a syrk
    ("2*W[a,f]*W[a,g]*X[h,b]*X[i,b]*D[b,f]*D[b,g] -> [f,i,g,h]", "af,ag,hb,ib,bf,bg->figh", 2),
    ("-3*s*W[a,f]*W[a,g]*X[h,b]*X[i,b]*D[b,f]*D[b,g] -> [f,h,g,i]", "af,ag,hb,ib,bf,bg->fhgi",
     -3 * 0.7),
    # one half of two factors, weights along the summed index, a vector beside it
    ("X[h,b]*X[i,b]*D[b,f]*D[b,g]*u[b]*u[b]*t[f] -> [g,i,f,h]", "hb,ib,bf,bg,b,b,f->gifh", 1),
    ("X[h,b]*X[i,b]*D[b,f]*D[b,g]*u[b] -> [h,f,i,g]", "hb,ib,bf,bg,b->hfig", 1),  # w of both signs
    # the second half's indices first: the Gram matrix is its own transpose (no copy);
    # mixed orders: transposed
    ("X[h,b]*X[i,b]*D[b,f]*D[b,g]*u[b]*u[b] -> [i,g,h,f]", "hb,ib,bf,bg,b,b->ighf", 1),
    ("X[h,b]*X[i,b]*D[b,f]*D[b,g]*u[b]*u[b] -> [i,f,h,g]", "hb,ib,bf,bg,b,b->ifhg", 1),
    ("D[b,f]*D[b,g]*u[b]*u[b] -> [g,f]", "bf,bg,b,b->gf", 1),
    # the same tensor twice that is no pair of halves: three times, indices kept or
    # summed apart, an index summed in one occurrence only (summed first: another array)
    ("W[a,f]*W[a,g]*W[a,e] -> [e,f,g]", "af,ag,ae->efg", 1),
    ("W[a,f]*W[c,g] -> [f,g]", "af,cg->fg", 1),
    ("D[b,f]*D[b,f]*X[h,b]*X[i,b] -> [h,i,f]", "bf,bf,hb,ib->hif", 1),
    ("V[a,e,c]*V[a,d,f] -> [c,d]", "aec,adf->cd", 1),
])
def test_symmetric_products_equal_einsum(text, spec, coeff):
    """Products whose factors pair up into two halves run as one syrk (einderiv.numeric.gram);
    look-alikes that do not pair up must not: all agree with numpy's einsum."""
    arrays = {"W": RNG.normal(size=(4, 3)), "X": RNG.normal(size=(5, 6)),
              "D": RNG.normal(size=(6, 3)), "u": RNG.normal(size=6), "t": RNG.normal(size=3),
              "V": RNG.normal(size=(4, 3, 5)), "s": 0.7}
    names = re.findall(r"([A-Za-z]\w*)\[", text)
    want = coeff * np.einsum(spec, *(arrays[n] for n in names))
    f = einderiv.parse(text, simplify=False).compile()
    for _ in range(2):
        np.testing.assert_allclose(f(**arrays), want, rtol=1e-12, atol=1e-12)


def test_an_outer_product_is_no_symmetric_product():
    """p[c] p[d] pairs up but sums over nothing: it stays an outer product (a matrix
    product with an inner dimension of 1 is several times slower)."""
    from einderiv.numeric.gram import symmetric_plan
    assert symmetric_plan(((0, ("c",)), (0, ("d",))), ("c", "d"), {"c": 3, "d": 3}) is None
    assert symmetric_plan(((0, ("a", "c")), (0, ("a", "d"))), ("c", "d"),
                          {"a": 4, "c": 3, "d": 3}) is not None


@pytest.mark.parametrize("text, spec", [
    ("p[c]*q[d] -> [d,c]", "c,d->dc"),                   # p p^T of a softmax Hessian
    ("-2*p[c]*q[d]*r[e] -> [e,c,d]", "c,d,e->ecd"),      # three vectors, numbers in front
    ("A[i,j]*q[d] -> [d,j,i]", "ij,d->dji"),             # a matrix times a vector
    ("A[i,j]*q[d]*B[i,k] -> [d,j,k]", "ij,d,ik->djk"),   # a contraction, then an outer
])
@pytest.mark.parametrize("scale", [1, 20], ids=["small", "large"])
def test_outer_products_equal_einsum(text, spec, scale):
    # Small ones run as np.multiply.outer, large ones (>= OUTER_EINSUM_MIN entries) as
    # np.einsum's outer-product loop: both in the output's axis order.
    m, n, k = 4 * scale, 3 * scale, 5
    arrays = {"p": RNG.normal(size=m), "q": RNG.normal(size=n), "r": RNG.normal(size=k),
              "A": RNG.normal(size=(k, m)), "B": RNG.normal(size=(k, 3))}
    copies = {name: a.copy() for name, a in arrays.items()}
    names = [name for name in arrays if f"{name}[" in text]
    want = np.einsum(spec, *(arrays[name] for name in _order_in(text, names)))
    want = -2 * want if text.startswith("-2") else want
    f = einderiv.parse(text).compile()
    got = f(**{name: arrays[name] for name in names})
    if scale > 1:
        assert got.size >= einderiv.numeric.direct_products.OUTER_EINSUM_MIN
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    single = {name: arrays[name].astype(np.float32) if name == names[0] else arrays[name]
              for name in names}   # mixed precision: promoted as numpy promotes
    got = f(**single)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, np.einsum(spec, *(single[x] for x in _order_in(text, names)))
                               * (-2 if text.startswith("-2") else 1), rtol=1e-6)
    for name, a in arrays.items():
        np.testing.assert_array_equal(a, copies[name])


@pytest.mark.parametrize("text, spec", [
    ("X[a,c]*y[a]*s[a] -> [c]", "ac,a,a->c"),            # (y s) @ X: a GLM gradient
    ("-X[a,b]*t[b]*y[a] -> [a]", "ab,b,a->a"),           # (X @ t) * y
    ("X[a,c]*y[a]*t[c]", "ac,a,c->"),                    # y @ X @ t
    ("X[a,c]*y[a]*t[c]*s[a] -> [c,a]", "ac,a,c,a->ca"),  # both axes stay: scaling
    ("2*k*X[a,c]*y[a]*s[a] -> [c]", "ac,a,a->c"),        # numbers in front
])
def test_a_matrix_scaled_by_vectors_equals_einsum(text, spec):
    X, y, s, t = RNG.normal(size=(5, 3)), RNG.normal(size=5), RNG.normal(size=5), RNG.normal(size=3)
    arrays = {"X": X, "y": y, "s": s, "t": t, "k": 0.3}
    names = [n for n in ("X", "y", "t", "s") if f"{n}[" in text]
    by_letter = {"X": X, "y": y, "s": s, "t": t}
    expected = np.einsum(spec, *(by_letter[n] for n in _order_in(text, names)))
    coeff = {"-": -1.0, "2": 0.6}.get(text[0], 1.0)
    got = einderiv.parse(text).evaluate(**{k: v for k, v in arrays.items()})
    np.testing.assert_allclose(got, coeff * expected, rtol=1e-12)


def _order_in(text, names):
    return sorted(names, key=lambda n: text.index(f"{n}["))


@pytest.mark.parametrize("text, closed", [
    ("A[i,j] + (delta[i,j]*s[i] -> [i,j])", lambda A, s, p: A + np.diag(s)),
    ("A[j,i] - (delta[i,j]*s[i] -> [i,j])", lambda A, s, p: A.T - np.diag(s)),
    ("(delta[i,j]*s[i] -> [i,j]) - p[i]*p[j]", lambda A, s, p: np.diag(s) - np.outer(p, p)),
    ("2*(delta[j,i]*s[i] -> [j,i]) + 3*(p[i]*s[j] -> [i,j])",
     lambda A, s, p: 2 * np.diag(s) + 3 * np.outer(p, s)),
])
@pytest.mark.parametrize("release", [False, True], ids=["as-planned", "release-all"])
def test_a_diagonal_term_is_added_onto_the_rest(text, closed, release, monkeypatch):
    if release:  # every intermediate let go of after its last use, however small
        monkeypatch.setattr(einderiv.numeric.planning, "RELEASE_MIN_BYTES", 0)
    A, s, p = RNG.normal(size=(4, 4)), RNG.normal(size=4), RNG.normal(size=4)
    A0 = A.copy()
    f = einderiv.parse(text).compile()
    for _ in range(2):   # twice: a result updated in place must not leak into the next
        np.testing.assert_allclose(f(A=A, s=s, p=p), closed(A, s, p), rtol=1e-12)
    np.testing.assert_array_equal(A, A0)   # the input is never the one written to
    # the diagonal term costs its n additions, not n^2
    assert f.flops(A=A, s=s, p=p) <= 4 * 4 + 2 * 4
    z = s + 1j * p   # a complex diagonal onto a real rest: promoted, as numpy adds
    if "A[" in text:
        np.testing.assert_allclose(f(A=A, s=z, p=p), closed(A, z, p), rtol=1e-12)


@pytest.mark.parametrize("release", [False, True], ids=["as-planned", "release-all"])
def test_low_rank_residual_is_multiplied_out_when_cheaper(release, monkeypatch):
    # d/dU ||M - U V^T||^2 = -2 (M - U V^T) V: for m, n >> r the plan computes
    # 2 (U (V^T V) - M V) and never forms the m x n residual (issue 5, C8).
    if release:  # every intermediate let go of after its last use, however small
        monkeypatch.setattr(einderiv.numeric.planning, "RELEASE_MIN_BYTES", 0)
    g = einderiv.diff("(M[i,j] - U[i,k]*V[j,k])*(M[i,j] - U[i,l]*V[j,l])", "U")
    m, n, r = 40, 30, 2
    M, U, V = RNG.normal(size=(m, n)), RNG.normal(size=(m, r)), RNG.normal(size=(n, r))
    f = g.compile()
    np.testing.assert_allclose(f(M=M, U=U, V=V), 2 * (U @ (V.T @ V) - M @ V), rtol=1e-10)
    runners = f.plan_for(M=M, U=U, V=V).bound
    residual = [k for k, s in enumerate(f.program.steps) if s.kind == "add"]
    assert residual and all(runners[k] is skipped for k in residual)
    # the FLOP estimate is that of the plan as it runs: M V and U (V^T V), 2 m n r + ...,
    # not the residual's U V^T and (M - U V^T) V (4 m n r)
    assert f.flops(M=M, U=U, V=V) < 2 * m * n * r + 2 * (n * r * r + m * r * r) + 4 * m * r
    # square factors (r = n): multiplying out would cost more, the residual stays
    M, U, V = RNG.normal(size=(5, 4)), RNG.normal(size=(5, 4)), RNG.normal(size=(4, 4))
    np.testing.assert_allclose(f(M=M, U=U, V=V), 2 * (U @ (V.T @ V) - M @ V), rtol=1e-10)
    runners = f.plan_for(M=M, U=U, V=V).bound
    assert all(runners[k] is not skipped for k in residual)


@pytest.mark.parametrize("backend", ["auto", "dask"])
def test_multiply_out_false_keeps_the_low_rank_residual(backend):
    # compile(multiply_out=False): -2 (M - U V^T) V as derived (near an exact fit it
    # rounds 10-30x better), the residual made however cheap multiplying out would be
    import dask.array as da
    g = einderiv.diff(LOW_RANK, "U")
    m, n, r = 40, 30, 2
    arrays, want = low_rank_fit(m, n, r, RNG)
    if backend == "dask":
        arrays = {k: da.from_array(v, chunks=10) for k, v in arrays.items()}
    f = g.compile(backend=backend, multiply_out=False)
    got = f(**arrays)
    np.testing.assert_allclose(got.compute() if backend == "dask" else got, want, rtol=1e-10)
    runners = f.plan_for(**arrays).bound
    residual = [k for k, s in enumerate(f.program.steps) if s.kind == "add"]
    assert residual and all(runners[k] is not skipped for k in residual)
    assert f.flops(**arrays) > 4 * m * n * r  # U V^T and (M - U V^T) V
    # the default multiplies it out at these sizes (the test above)
    default = g.compile(backend=backend).plan_for(**arrays).bound
    assert all(default[k] is skipped for k in residual)
    for wrong in ("no", 0, None):  # not a bool: refused, never read as its truth
        with pytest.raises(einderiv.EinderivError, match="multiply_out must be True or False"):
            g.compile(backend=backend, multiply_out=wrong)
        with pytest.raises(einderiv.EinderivError, match="multiply_out must be True or False"):
            g.to_python(multiply_out=wrong)


def test_dask_multiplies_the_low_rank_residual_out_too():
    # on dask the product is multiplied out as on numpy, chunk by chunk: half the FLOPs
    # of -2 (M - U V^T) V, no m x n residual (the out-of-core low-rank fit)
    import dask.array as da
    g = einderiv.diff("(M[i,j] - U[i,k]*V[j,k])*(M[i,j] - U[i,l]*V[j,l])", "U")
    m, n, r = 400, 300, 3
    M, U, V = RNG.normal(size=(m, n)), RNG.normal(size=(m, r)), RNG.normal(size=(n, r))
    lazy = {"M": da.from_array(M, chunks=(100, 150)), "U": da.from_array(U, chunks=(100, r)),
            "V": da.from_array(V, chunks=(150, r))}
    f = g.compile(backend="dask")
    got = f(**lazy)
    assert isinstance(got, da.Array)
    np.testing.assert_allclose(got.compute(), -2 * (M - U @ V.T) @ V, rtol=1e-10)
    runners = f.plan_for(**lazy).bound
    residual = [k for k, s in enumerate(f.program.steps) if s.kind == "add"]
    assert residual and all(runners[k] is skipped for k in residual)
    assert f.flops(**lazy) < 2 * m * n * r + 2 * (n * r * r + m * r * r) + 4 * m * r


def test_unknown_backend_lists_the_valid_ones():
    with pytest.raises(einderiv.EinderivError, match="'numpy'.*'dask'"):
        einderiv.parse("x[i]").compile(backend="cupyy")


def test_dask_arrays_in_lazy_dask_array_out():
    import dask.array as da  # in the test extra
    g = einderiv.diff("(X[a,b]*theta[b] - Y[a])*(X[a,c]*theta[c] - Y[a])/n", "theta")
    X, th, Y = RNG.normal(size=(40, 3)), RNG.normal(size=3), RNG.normal(size=40)
    f = g.compile(backend="dask")
    lazy = f(X=da.from_array(X, chunks=(10, 3)), theta=da.from_array(th), Y=da.from_array(Y, chunks=10),
             n=40.0)
    assert isinstance(lazy, da.Array)
    np.testing.assert_allclose(lazy.compute(), 2 / 40 * X.T @ (X @ th - Y))
    J = einderiv.diff("tanh(z[i])", "z").compile(backend="dask")
    z = RNG.normal(size=5)
    out = J(z=da.from_array(z))
    assert isinstance(out, da.Array)
    np.testing.assert_allclose(out.compute(), np.diag(1 - np.tanh(z) ** 2))


def test_jvp_and_hvp_match_dense_derivatives():
    f = "sum[a](log(1 + exp(-(y[a]*X[a,b]*theta[b] -> [a]))))"
    X, y = RNG.normal(size=(7, 4)), RNG.choice([-1.0, 1.0], 7)
    th, v = RNG.normal(size=4), RNG.normal(size=4)
    H = einderiv.diff(einderiv.diff(f, "theta"), "theta").evaluate(X=X, y=y, theta=th)
    hv = einderiv.hvp(f, "theta", "v").evaluate(X=X, y=y, theta=th, v=v)
    np.testing.assert_allclose(hv, H @ v)
    J = einderiv.diff("tanh(W[i,j]*x[j])", "x").evaluate(W=X, x=th)   # (x axes, f axes)
    jv = einderiv.jvp("tanh(W[i,j]*x[j])", "x", "v").evaluate(W=X, x=th, v=v)
    np.testing.assert_allclose(jv, J.T @ v)


def test_many_factors_on_one_index_plan_without_exponential_search() -> None:
    """Issue 21 D: evaluating a few hundred characters with sizes <= 5 took 28.8 s.
    Dynamic programming over the path visits every connected set of operands: 16
    vectors on one index (all connected) took 195 s to plan. It now plans only
    products that link up as chains (x^T A1 ... A16 x); others go greedy. Values
    against numpy; the strategy is read from path_strategy, not timed."""
    from einderiv.numeric.paths import path_strategy
    rng = np.random.default_rng(16)
    names = [f"v{k}" for k in range(16)]
    arrays = {v: rng.normal(size=3) for v in names}
    assert path_strategy("auto", [("i",)] * 16) == "greedy"
    e = einderiv.parse("*".join(f"{v}[i]" for v in names))
    np.testing.assert_allclose(e.evaluate(**arrays), np.prod(list(arrays.values()), axis=0).sum(),
                               rtol=1e-12)
    chain = [("i",)] + [(f"a{k}", f"a{k + 1}") for k in range(16)] + [("a16",)]
    assert path_strategy("auto", chain) == "dp"  # a chain: n**2 connected sets
    star = [tuple("abcdefghij")] + [(c,) for c in "abcdefghij"]
    assert path_strategy("auto", star) == "greedy"  # a star: 2**10 connected sets
