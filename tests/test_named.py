"""Definitions kept as names in the IR (einderiv/core/named.py) and differentiated by
backpropagation on the named program (einderiv/symbolic/backprop.py), issue 22's
"derivation time grows at most linearly":

* a deep chain and a residual network: gradients against central finite differences
  of independent numpy losses, every layer's weights, on distinct axis sizes;
* the printed derivative reads in the names, with the adjoints of X.23 as definitions
  of its own where they are long or shared, and parses back to the same values;
* each body is one node however often it is used (walks, shape checks, variables and
  printing visit it once: the residual network's uses double per layer);
* second derivatives and Hessian-vector products through the names.
"""

from __future__ import annotations

import numpy as np
import pytest

import einderiv
from einderiv.core.ir import walk
from einderiv.core.named import Named, definitions_in
from fd import assert_close_to_fd, central_diff
from test_definitions import _network_arrays, _network_loss, network


def residual(depth: int) -> str:
    """``A_k = A_{k-1} + tanh(W_k A_{k-1})``: each layer uses the one before twice."""
    lines = ["A0[i,n] = X[i,n]"]
    for k in range(1, depth + 1):
        lines.append(f"A{k}[i,n] = A{k - 1}[i,n] + tanh(W{k}[i,j]*A{k - 1}[j,n])")
    lines.append(f"L = sum[i,n](A{depth}[i,n]**2)")
    return "\n".join(lines)


def _residual_arrays(depth: int, seed: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {"X": rng.normal(size=(4, 5))}  # 4 features, 5 samples
    for k in range(1, depth + 1):
        arrays[f"W{k}"] = rng.normal(size=(4, 4)) / 3
    return arrays


def _residual_loss(a: dict[str, np.ndarray], depth: int) -> np.ndarray:
    A = a["X"]
    for k in range(1, depth + 1):
        A = A + np.tanh(a[f"W{k}"] @ A)
    return np.asarray(np.sum(A ** 2))


@pytest.mark.parametrize("wrt", ["W1", "W2", "W3", "X"])
def test_residual_gradients_match_finite_differences(wrt):
    a = _residual_arrays(3)
    g = einderiv.diff(residual(3), wrt)
    assert_close_to_fd(g.evaluate(**a), central_diff(lambda b: _residual_loss(b, 3), a, wrt))


def test_shared_adjoint_is_a_definition_of_the_derivative():
    g = einderiv.diff(residual(3), "W1")
    text = str(g)
    # dA2 is used twice (A2 feeds A3 twice): one definition, the X.23 form
    assert "dA2[i,n] = " in text and "dA3[i,n] = 2*A3[i,n]" in text
    assert "tanh(A0" in text.split("; ")[-1]
    matrix = str(g.to_matrix())
    assert "dA2 = dA3 + W3^T (dA3 .* (1 - tanh(W3 A2).^2))" in matrix


@pytest.mark.parametrize("text, arrays, wrt", [
    (residual(3), _residual_arrays(3), "W1"),
    (network(5), _network_arrays(5), "W1"),
    (network(5), _network_arrays(5), "V"),
])
def test_printed_derivative_parses_back_to_the_same_values(text, arrays, wrt):
    g = einderiv.diff(text, wrt)
    again = einderiv.parse(str(g))
    np.testing.assert_allclose(again.evaluate(**arrays), g.evaluate(**arrays), rtol=1e-12)
    # and its matrix form evaluates to them too
    np.testing.assert_allclose(g.to_matrix().evaluate(**arrays), g.evaluate(**arrays),
                               rtol=1e-10)


def test_deep_chain_gradient_matches_finite_differences_and_reads_by_layer():
    depth = 5
    a = _network_arrays(depth)
    g = einderiv.diff(network(depth), "W1")
    assert_close_to_fd(g.evaluate(**a), central_diff(lambda b: _network_loss(b, depth), a, "W1"))
    names = [n.name for n in definitions_in(g)]
    assert names[: 2 * depth + 1] == ["A0", *[f"{p}{k}" for k in range(1, depth + 1)
                                             for p in "ZA"]]
    assert "tanh" not in str(g).split("; ")[-1]


def test_a_variable_named_like_an_adjoint_is_not_taken():
    text = residual(2).replace("X[i,n]", "dA1[i,n]")  # the input is called dA1
    a = _residual_arrays(2)
    a["dA1"] = a.pop("X")
    g = einderiv.diff(text, "W1")
    assert_close_to_fd(g.evaluate(**a), central_diff(lambda b: _residual_loss(
        {**b, "X": b["dA1"]}, 2), a, "W1"))
    np.testing.assert_allclose(einderiv.parse(str(g)).evaluate(**a), g.evaluate(**a),
                               rtol=1e-12)


def test_each_body_is_one_node_however_often_it_is_used():
    depth = 14  # written out, the last layer's text would hold 2**14 copies of X
    e = einderiv.parse(residual(depth))
    nodes = sum(1 for _ in walk(e))
    assert nodes < 40 * depth
    assert len(str(e)) < 80 * depth
    g = einderiv.diff(e, "W1")
    assert sum(1 for _ in walk(g)) < 80 * depth
    assert e.variables == frozenset({"X", *(f"W{k}" for k in range(1, depth + 1))})


def test_printed_derivative_grows_linearly_with_depth():
    chars = {d: len(str(einderiv.diff(network(d), "W1"))) for d in (8, 16, 32)}
    assert chars[32] - chars[16] < 2.3 * (chars[16] - chars[8])
    res = {d: len(str(einderiv.diff(residual(d), "W1"))) for d in (8, 16, 32)}
    assert res[32] - res[16] < 2.3 * (res[16] - res[8])


def test_equal_texts_give_equal_expressions():
    e1, e2 = einderiv.parse(residual(3)), einderiv.parse(residual(3))
    assert e1 == e2 and hash(e1) == hash(e2)
    assert len({e1, e2}) == 1
    uses = [n for n in walk(e1) if isinstance(n, Named)]
    assert uses and all(hash(n) == hash(n) for n in uses)
    written = einderiv.parse(residual(3), expand=True)
    assert not any(isinstance(n, Named) for n in walk(written))
    a = _residual_arrays(3)
    np.testing.assert_allclose(e1.evaluate(**a), written.evaluate(**a), rtol=1e-12)


def test_shapes_are_checked_through_the_names():
    shapes = {"X": (4, 5), "W1": (4, 4), "W2": (4, 3)}  # W2 is not square
    with pytest.raises(einderiv.EinderivError, match="size"):
        einderiv.parse(residual(2), shapes=shapes)
    einderiv.parse(residual(2), shapes={"X": (4, 5), "W1": (4, 4), "W2": (4, 4)})


def test_second_derivative_and_hvp_through_the_names():
    text = """
    Z[i,n] = W[j,i]*X[j,n]
    A[i,n] = tanh(Z[i,n])
    L = sum[o,n]((V[o,i]*A[i,n] - T[o,n])**2)
    """
    rng = np.random.default_rng(9)
    a = {"W": rng.normal(size=(4, 3)), "X": rng.normal(size=(4, 5)),
         "V": rng.normal(size=(2, 3)), "T": rng.normal(size=(2, 5)),
         "U": rng.normal(size=(4, 3))}
    grad = einderiv.diff(text, "W")
    hess = einderiv.diff(grad, "W")
    assert_close_to_fd(hess.evaluate(**a), central_diff(lambda b: grad.evaluate(**b), a, "W"))
    hv = einderiv.hvp(text, "W", "U")
    np.testing.assert_allclose(hv.evaluate(**a),
                               np.einsum("abcd,ab->cd", hess.evaluate(**a), a["U"]),
                               rtol=1e-9, atol=1e-12)


def test_inputs_are_not_changed():
    a = _residual_arrays(3)
    copies = {k: v.copy() for k, v in a.items()}
    einderiv.diff(residual(3), "W2").evaluate(**a)
    einderiv.evaluate_named(residual(3), **a)
    for k in a:
        np.testing.assert_array_equal(a[k], copies[k])


def test_the_plan_computes_each_definition_once_under_its_name():
    a = _residual_arrays(2)
    g = einderiv.diff(residual(2), "W1")
    source = g.to_python("grad")
    body = source[source.index("    X, W1, W2 = "):]
    for name in ("A1", "A2", "dA2"):  # the definitions, and the derivative's own
        assert body.count(f"    {name} = ") == 1, name
    assert body.count("np.tanh(") == 2  # one per layer, shared by the value and dA
    namespace: dict = {}
    exec(source, namespace)
    assert_close_to_fd(namespace["grad"](**a), central_diff(lambda b: _residual_loss(b, 2),
                                                            a, "W1"))


def test_a_deep_residual_network_through_every_entry_point():
    """Depth 30: written out, the loss would hold 2**30 copies of X; every entry point
    reads each body once (each of these took exponential time when one pass did not)."""
    depth = 30
    text = residual(depth)
    a = _residual_arrays(depth, seed=5)
    a = {k: v / 2 if k.startswith("W") else v for k, v in a.items()}  # tame 30 layers
    g = einderiv.diff(text, "W30")
    assert_close_to_fd(g.evaluate(**a), central_diff(lambda b: _residual_loss(b, depth), a,
                                                     "W30"))
    assert einderiv.check(text, "W30", a).ok
    u = np.random.default_rng(1).normal(size=(4, 4))
    np.testing.assert_allclose(einderiv.jvp(text, "W30", "U").evaluate(**a, U=u),
                               np.sum(g.evaluate(**a) * u), rtol=1e-10)
    marked = einderiv.parse(text, assume={"W1": "symmetric"})
    assert any(isinstance(n, Named) for n in walk(marked))  # the names kept
    g1 = einderiv.diff(text, "W1")  # through all 30 layers, dA2..dA30 shared
    assert_close_to_fd(g1.evaluate(**a), central_diff(lambda b: _residual_loss(b, depth), a,
                                                      "W1"))
    assert "dA2[i,n] = " in str(g1) and "dA30 = " in str(g1.to_matrix())
    assert einderiv.parse(text, shapes={k: v.shape for k, v in a.items()}).free == ()


def test_jacobian_through_shared_adjoints():
    """A vector output (one loss per sample n): the adjoints carry f's index too, and
    their own indices avoid it (dC[i,j,n], not dC[i,n,n])."""
    text = """
    A[i,n] = tanh(W[i,j]*X[j,n])
    B[i,n] = A[i,n] + tanh(U[i,j]*A[j,n])
    C[i,n] = B[i,n] + tanh(U[i,j]*B[j,n])
    C[i,n]*C[i,n] -> [n]
    """
    rng = np.random.default_rng(6)
    a = {"W": rng.normal(size=(4, 3)), "X": rng.normal(size=(3, 5)),
         "U": rng.normal(size=(4, 4)) / 2}

    def per_sample(b):
        A = np.tanh(b["W"] @ b["X"])
        B = A + np.tanh(b["U"] @ A)
        C = B + np.tanh(b["U"] @ B)
        return np.sum(C * C, axis=0)

    for wrt in ("W", "U", "X"):
        g = einderiv.diff(text, wrt)
        assert_close_to_fd(g.evaluate(**a), central_diff(per_sample, a, wrt))
        np.testing.assert_allclose(einderiv.parse(str(g)).evaluate(**a), g.evaluate(**a),
                                   rtol=1e-12)
    assert "dC[i,j,n] = " in str(einderiv.diff(text, "W"))


@pytest.mark.parametrize("shape", [(3, 4), (4, 4)])  # square: the wrong axis order fits
def test_a_transposed_use_keeps_its_axes_in_the_derivative(shape):
    """``A[a,b] = tanh(Z[b,a])``: the tanh rule's ``1 - tanh(Z[c,d])**2`` is ``1 - A[d,c]**2``
    (found by the fuzzer: it was written ``A[c,d]``, an error for a 3 x 4 ``W`` and a
    silently wrong value for a square one)."""
    text = """
    Z[a,b] = W[a,b]*V[c]*X[c]
    A[a,b] = tanh(Z[b,a])
    sum[x,y](A[x,y]*T[x,y])
    """
    rng = np.random.default_rng(8)
    a = {"W": rng.normal(size=shape), "V": rng.normal(size=5), "X": rng.normal(size=5) / 3,
         "T": rng.normal(size=shape[::-1])}

    def loss(b):
        Z = b["W"] * (b["V"] @ b["X"])
        return np.asarray(np.sum(np.tanh(Z.T) * b["T"]))

    g = einderiv.diff(text, "W")
    assert_close_to_fd(g.evaluate(**a), central_diff(loss, a, "W"))
    assert_close_to_fd(einderiv.diff(text, "Z").evaluate(**a),
                       (1 - np.tanh(a["W"] * (a["V"] @ a["X"])) ** 2) * a["T"].T)


@pytest.mark.parametrize("text, wrt, want", [
    ("Z[a,b] = W[a,b]\nsum[a](sum[b](Z[a,b]))", "W", lambda W: np.ones_like(W)),
    ("Z[a,b] = W[b,c]*W[a,c]\nsum[b](Z[a,b]) -> [a]", "Z",
     lambda W: np.einsum("ca,d->cda", np.eye(3), np.ones(3))),
    ("Z[a] = sum[b](W[a,b]**2); sum[b](Z[b])*0 + sum[a,b](W[a,b])", "Z",
     lambda W: np.zeros(3)),  # Z gone from the expression: its size from W
])
def test_sizes_of_a_name_gone_from_the_derivative_come_from_the_variables(text, wrt, want):
    """A derivative that no longer uses a name, or is by one, sizes its axes from the
    variables (found by the fuzzer: evaluation and exported code asked for an array 'Z')."""
    W = np.random.default_rng(2).normal(size=(3, 4))
    g = einderiv.diff(text, wrt)
    np.testing.assert_allclose(g.evaluate(W=W), want(W))
    source = g.to_python("grad")
    assert "def grad(*, W):" in source
    namespace: dict = {}
    exec(source, namespace)
    np.testing.assert_allclose(namespace["grad"](W=W), want(W))


def test_a_diagonal_use_of_a_definition_as_weights():
    """``H[a,a]`` beside ``D[a,b]*D[a,c]``: a weighted Gram product whose weights are a
    diagonal (found by the fuzzer: numpy's broadcast_to raised ValueError; the same
    for an input ``M[a,a]``)."""
    rng = np.random.default_rng(4)
    D, C, M = rng.normal(size=(5, 3)) / 2, rng.normal(size=(3, 3)) / 2, rng.normal(size=(5, 5))
    g = einderiv.diff("H[a,b] = exp(D[a,c]*D[b,d]*C[c,d]); H[a,a]", "C")
    assert_close_to_fd(g.evaluate(D=D, C=C), central_diff(
        lambda b: np.asarray(np.trace(np.exp(b["D"] @ b["C"] @ b["D"].T))), {"D": D, "C": C}, "C"))
    np.testing.assert_allclose(einderiv.parse("D[a,b]*D[a,c]*M[a,a]").evaluate(D=D, M=M),
                               D.T @ np.diag(np.diag(M)) @ D, rtol=1e-12)


def test_a_column_sum_is_not_read_as_a_row_sum():
    """``A[a] = sum[b](Y[a,b])`` beside ``sum[b](Y[b,a])`` (found by the fuzzer: the
    derivative wrote the column sum as A)."""
    rng = np.random.default_rng(3)
    X, Y, s = rng.normal(size=(4, 4)), rng.normal(size=(4, 4)), 0.7
    g = einderiv.diff("A[a] = sum[b](Y[a,b]); s*sum[b](X[b,a] + Y[b,a]) + A[a] -> [a]", "s")
    np.testing.assert_allclose(g.evaluate(X=X, Y=Y, s=s), (X + Y).sum(axis=0), rtol=1e-12)
    assert "A[" not in str(g)


@pytest.mark.parametrize("backend", ["numpy", "jax", "torch", "dask"])
def test_every_backend_leaves_inputs_bit_identical_through_names(backend):
    """Each definition is now a value of its own in the plan (a slot other steps read):
    no backend may write into it or into an input. Values against the independent
    numpy loss's finite differences, inputs compared bit for bit after two calls."""
    a = _residual_arrays(3, seed=11)
    kept = {k: v.copy() for k, v in a.items()}
    g = einderiv.diff(residual(3), "W2")
    want = central_diff(lambda b: _residual_loss(b, 3), a, "W2")
    if backend == "numpy":
        arrays, back = a, np.asarray
    elif backend == "jax":
        jax = pytest.importorskip("jax")
        jax.config.update("jax_enable_x64", True)
        arrays, back = {k: jax.numpy.asarray(v) for k, v in a.items()}, np.asarray
    elif backend == "torch":
        torch = pytest.importorskip("torch")
        arrays = {k: torch.from_numpy(v) for k, v in a.items()}  # shares memory with a
        back = lambda out: out.numpy()  # noqa: E731
    else:
        da = pytest.importorskip("dask.array")
        arrays, back = {k: da.from_array(v, chunks=2) for k, v in a.items()}, \
            lambda out: np.asarray(out.compute())
    for run in (g.compile(backend=backend), g.compile(backend=backend)):
        assert_close_to_fd(back(run(**arrays)), want)
    assert_close_to_fd(back(g.evaluate(**arrays)), want)
    for k, v in kept.items():
        assert np.array_equal(a[k], v), f"{k} was changed by {backend}"
