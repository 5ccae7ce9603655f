"""Losses written as papers write them (issue 14): bound sums, named broadcasting, and
no silent misreadings.

Every loss of the table is parsed as written, its value compared with a numpy closed
form, and its gradient with central finite differences (tests/fd.py), on random data
with distinct sizes: 5 samples, 3 features, 4 classes, 2 hidden units.
"""

from __future__ import annotations

import numpy as np
import pytest
from fd import assert_close_to_fd, central_diff

import einderiv
from einderiv import EinderivError, ParseError

N, D, K, H = 5, 3, 4, 2


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _logsumexp(z, axis):
    m = z.max(axis=axis, keepdims=True)
    return np.squeeze(m, axis) + np.log(np.exp(z - m).sum(axis=axis))


def _data(seed: int) -> dict[str, np.ndarray | float]:
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(D, D))
    labels = rng.integers(0, K, size=N)
    return {
        "X": rng.normal(size=(N, D)), "w": 0.5 * rng.normal(size=D),
        "y": rng.integers(0, 2, size=N).astype(float), "W": 0.5 * rng.normal(size=(D, K)),
        "Y": np.eye(K)[labels], "z": rng.normal(size=K), "t": np.eye(K)[labels[0]], "o": 0.1 * rng.normal(size=N),
        "r": rng.uniform(0.5, 2.0, size=N), "n": float(N), "lam": 0.3, "b0": 0.2,
        "pm": rng.choice([-1.0, 1.0], size=N), "counts": rng.poisson(2.0, size=N).astype(float),
        # a two-layer network on samples as columns: X1 (D, N), hidden H, outputs K
        "X1": rng.normal(size=(D, N)), "W1": 0.5 * rng.normal(size=(H, D)),
        "b1": 0.1 * rng.normal(size=H), "V": 0.5 * rng.normal(size=(K, H)),
        "c": 0.1 * rng.normal(size=K), "T": rng.normal(size=(K, N)), "Y1": np.eye(K)[labels].T,
        # attention: 4 queries, 5 keys of width 3, projections to width 2
        "Q": rng.normal(size=(4, D)), "Kk": rng.normal(size=(N, D)),
        "U": 0.5 * rng.normal(size=(D, H)), "P": 0.5 * rng.normal(size=(D, H)),
        # Gaussians
        "M": rng.normal(size=(N, D)), "v": rng.uniform(0.5, 2.0, size=D),
        "x": rng.normal(size=D), "mu": rng.normal(size=D), "S": A @ A.T + D * np.eye(D),
        # factorisations: users x items, rank 2
        "R": (rng.random(size=(N, 4)) < 0.6).astype(float), "F": rng.normal(size=(N, 4)),
        "Uf": rng.normal(size=(N, H)), "Vf": rng.normal(size=(4, H)),
        "Dec": rng.normal(size=(D, H)), "Enc": rng.normal(size=(H, D)),
    }


def _mlp_out(a):
    return a["V"] @ np.tanh(a["W1"] @ a["X1"] + a["b1"][:, None]) + a["c"][:, None]


#: (name, text as a paper writes it, variable, numpy value of the loss)
LOSSES = [
    ("binary cross-entropy",
     "sum[a](-y[a]*log(sigmoid(X[a,b]*w[b])) - (1 - y[a])*log(1 - sigmoid(X[a,b]*w[b])))", "w",
     lambda a: np.sum(-a["y"] * np.log(_sigmoid(a["X"] @ a["w"]))
                      - (1 - a["y"]) * np.log(1 - _sigmoid(a["X"] @ a["w"])))),
    ("logistic GLM (softplus)", "sum[a](softplus(X[a,b]*w[b]) - y[a]*X[a,c]*w[c])", "w",
     lambda a: np.sum(np.logaddexp(0, a["X"] @ a["w"]) - a["y"] * (a["X"] @ a["w"]))),
    ("logistic, labels +-1", "sum[a](log(1 + exp(-pm[a]*X[a,b]*w[b])))", "w",
     lambda a: np.sum(np.log1p(np.exp(-a["pm"] * (a["X"] @ a["w"]))))),
    ("softmax cross-entropy",
     "-sum[a,k](Y[a,k]*(X[a,b]*W[b,k] - log(sum[j](exp(X[a,c]*W[c,j])))))", "W",
     lambda a: -np.sum(a["Y"] * (a["X"] @ a["W"] - _logsumexp(a["X"] @ a["W"], 1)[:, None]))),
    ("softmax cross-entropy, one sample", "-t[k]*(z[k] - log(sum[j](exp(z[j]))))", "z",
     lambda a: -np.sum(a["t"] * (a["z"] - _logsumexp(a["z"], 0)))),
    ("Poisson GLM", "sum[a](exp(X[a,b]*w[b]) - counts[a]*X[a,c]*w[c])", "w",
     lambda a: np.sum(np.exp(a["X"] @ a["w"]) - a["counts"] * (a["X"] @ a["w"]))),
    ("Poisson GLM with offsets",
     "sum[a](exp(X[a,b]*w[b] + o[a]) - counts[a]*(X[a,c]*w[c] + o[a]))", "w",
     lambda a: np.sum(np.exp(a["X"] @ a["w"] + a["o"])
                      - a["counts"] * (a["X"] @ a["w"] + a["o"]))),
    ("least squares", "sum[a]((X[a,b]*w[b] - y[a])**2)/n", "w",
     lambda a: np.sum((a["X"] @ a["w"] - a["y"]) ** 2) / a["n"]),
    ("weighted least squares", "sum[a](r[a]*(X[a,b]*w[b] - y[a])**2)", "w",
     lambda a: np.sum(a["r"] * (a["X"] @ a["w"] - a["y"]) ** 2)),
    ("ridge", "sum[a]((X[a,b]*w[b] - y[a])**2) + lam*w[b]*w[b]", "w",
     lambda a: np.sum((a["X"] @ a["w"] - a["y"]) ** 2) + a["lam"] * a["w"] @ a["w"]),
    ("L2-regularised logistic",
     "sum[a](log(1 + exp(-pm[a]*X[a,b]*w[b]))) + lam/2*w[b]*w[b]", "w",
     lambda a: np.sum(np.log1p(np.exp(-a["pm"] * (a["X"] @ a["w"]))))
     + a["lam"] / 2 * a["w"] @ a["w"]),
    ("softplus GLM, by the bias",
     "sum[a](softplus(X[a,b]*w[b] + b0) - y[a]*(X[a,c]*w[c] + b0))", "b0",
     lambda a: np.sum(np.logaddexp(0, a["X"] @ a["w"] + a["b0"])
                      - a["y"] * (a["X"] @ a["w"] + a["b0"]))),
    ("squared hinge", "sum[a](relu(1 - pm[a]*X[a,b]*w[b])**2)", "w",
     lambda a: np.sum(np.maximum(1 - a["pm"] * (a["X"] @ a["w"]), 0) ** 2)),
    ("mean absolute error", "sum[a](abs(X[a,b]*w[b] - y[a]))/n", "w",
     lambda a: np.sum(np.abs(a["X"] @ a["w"] - a["y"])) / a["n"]),
    ("lasso", "sum[a]((X[a,b]*w[b] - y[a])**2) + lam*sum[b](abs(w[b]))", "w",
     lambda a: np.sum((a["X"] @ a["w"] - a["y"]) ** 2) + a["lam"] * np.abs(a["w"]).sum()),
    ("MLP with biases, by W1",
     "sum[a,o]((V[o,h]*tanh(W1[h,i]*X1[i,a] + b1[h]) + c[o] - T[o,a])**2)", "W1",
     lambda a: np.sum((_mlp_out(a) - a["T"]) ** 2)),
    ("MLP with biases, by b1",
     "sum[a,o]((V[o,h]*tanh(W1[h,i]*X1[i,a] + b1[h]) + c[o] - T[o,a])**2)", "b1",
     lambda a: np.sum((_mlp_out(a) - a["T"]) ** 2)),
    ("MLP with biases, by c",
     "sum[a,o]((V[o,h]*tanh(W1[h,i]*X1[i,a] + b1[h]) + c[o] - T[o,a])**2)", "c",
     lambda a: np.sum((_mlp_out(a) - a["T"]) ** 2)),
    ("two-layer softmax classifier",
     "-sum[a,k](Y1[k,a]*(V[k,h]*tanh(W1[h,i]*X1[i,a] + b1[h]) + c[k]"
     " - log(sum[j](exp(V[j,g]*tanh(W1[g,e]*X1[e,a] + b1[g]) + c[j])))))", "W1",
     lambda a: -np.sum(a["Y1"] * (_mlp_out(a) - _logsumexp(_mlp_out(a), 0)[None, :]))),
    ("attention logits, log-sum-exp over keys",
     "sum[t](log(sum[s](exp(Q[t,i]*U[i,d]*Kk[s,e]*P[e,d]))))", "U",
     lambda a: np.sum(_logsumexp((a["Q"] @ a["U"]) @ (a["Kk"] @ a["P"]).T, 1))),
    ("Gaussian NLL, diagonal variance",
     "sum[a,j]((X[a,j] - M[a,j])**2/(2*v[j]) + log(v[j])/2)", "v",
     lambda a: np.sum((a["X"] - a["M"]) ** 2 / (2 * a["v"]) + np.log(a["v"]) / 2)),
    ("Mahalanobis distance", "(x[i] - mu[i])*inv(S)[i,j]*(x[j] - mu[j])", "mu",
     lambda a: (a["x"] - a["mu"]) @ np.linalg.solve(a["S"], a["x"] - a["mu"])),
    ("Gaussian NLL, by the covariance",
     "logdet(S)/2 + (x[i] - mu[i])*inv(S)[i,j]*(x[j] - mu[j])/2", "S",
     lambda a: np.linalg.slogdet(a["S"])[1] / 2
     + (a["x"] - a["mu"]) @ np.linalg.solve(a["S"], a["x"] - a["mu"]) / 2),
    ("matrix factorisation, masked", "sum[u,m](R[u,m]*(Uf[u,k]*Vf[m,k] - F[u,m])**2)", "Uf",
     lambda a: np.sum(a["R"] * (a["Uf"] @ a["Vf"].T - a["F"]) ** 2)),
    ("linear autoencoder", "sum[i,a]((Dec[i,h]*Enc[h,j]*X1[j,a] - X1[i,a])**2)", "Enc",
     lambda a: np.sum((a["Dec"] @ a["Enc"] @ a["X1"] - a["X1"]) ** 2)),
]


@pytest.mark.parametrize("name, text, wrt, value", LOSSES, ids=[t[0] for t in LOSSES])
@pytest.mark.parametrize("seed", [0, 1])
def test_losses_as_papers_write_them(name: str, text: str, wrt: str, value, seed: int) -> None:
    arrays = _data(seed)
    loss = einderiv.parse(text)
    assert loss.free == ()
    np.testing.assert_allclose(loss.evaluate(**arrays), value(arrays), rtol=1e-10)
    grad = einderiv.diff(text, wrt)
    got = grad.evaluate(**arrays)
    assert np.shape(got) == np.shape(arrays[wrt])  # a gradient has the variable's shape
    numeric = central_diff(lambda a: value(a), arrays, wrt)
    assert_close_to_fd(got, numeric, rtol=1e-5)
    assert einderiv.parse(str(grad)) == grad  # the printed gradient reads back


# ------------------------------------------------------------- named broadcasting


def test_bias_add_and_tables_of_differences() -> None:
    rng = np.random.default_rng(3)
    W1, X1, b1 = rng.normal(size=(2, 3)), rng.normal(size=(3, 5)), rng.normal(size=2)
    e = einderiv.parse("W1[h,i]*X[i,n] + b1[h]")
    assert e.free == ("h", "n")
    np.testing.assert_allclose(e.evaluate(W1=W1, X=X1, b1=b1), W1 @ X1 + b1[:, None], rtol=1e-12)
    x, y = rng.normal(size=3), rng.normal(size=4)
    e = einderiv.parse("x[i] - y[j]")
    assert e.free == ("i", "j")
    np.testing.assert_allclose(e.evaluate(x=x, y=y), x[:, None] - y[None, :], rtol=1e-12)
    e = einderiv.parse("x[i] - y[j] -> [j,i]")
    np.testing.assert_allclose(e.evaluate(x=x, y=y), (x[:, None] - y[None, :]).T, rtol=1e-12)
    d = einderiv.diff("x[i] - y[j]", "y")  # d/dy_k (x_i - y_j) = -delta[k,j], constant in i
    numeric = central_diff(lambda a: a["x"][:, None] - a["y"][None, :], {"x": x, "y": y}, "y")
    assert_close_to_fd(d.evaluate(x=x, y=y), numeric)


def test_softmax_cross_entropy_broadcasts_the_normaliser() -> None:
    """Y[a,k]*(Z[a,k] - log(sum[j](exp(Z[a,j])))): the log-normaliser has free a only
    and broadcasts along k (was: 'the terms of a sum must have the same free indices')."""
    rng = np.random.default_rng(4)
    Y, Z = np.eye(4)[rng.integers(0, 4, size=5)], rng.normal(size=(5, 4))
    e = einderiv.parse("-Y[a,k]*(Z[a,k] - log(sum[j](exp(Z[a,j]))))")
    want = -np.sum(Y * (Z - _logsumexp(Z, 1)[:, None]))
    np.testing.assert_allclose(e.evaluate(Y=Y, Z=Z), want, rtol=1e-12)
    g = einderiv.diff(e, "Z")  # softmax(Z) - Y, row by row
    softmax = np.exp(Z - _logsumexp(Z, 1)[:, None])
    np.testing.assert_allclose(g.evaluate(Y=Y, Z=Z), softmax - Y, atol=1e-12)


# ----------------------------------------------------------------- bound sums


def test_a_sum_binds_its_index_at_any_depth() -> None:
    """sum[a](softplus(X[a,b]*w[b]) - y[a]*X[a,c]*w[c]): the second term was read as
    n y^T X w (a summed inside the product, then broadcast over the n samples)."""
    a = _data(5)
    text = "sum[a](softplus(X[a,b]*w[b]) - y[a]*X[a,c]*w[c])"
    z = a["X"] @ a["w"]
    got = einderiv.parse(text).evaluate(**a)
    np.testing.assert_allclose(got, np.sum(np.logaddexp(0, z) - a["y"] * z), rtol=1e-12)
    assert not np.isclose(got, np.sum(np.logaddexp(0, z)) - N * a["y"] @ z)  # the old reading
    g = einderiv.diff(text, "w")
    assert "delta[d,d]" not in str(g)
    np.testing.assert_allclose(g.evaluate(**a), a["X"].T @ (_sigmoid(z) - a["y"]), rtol=1e-10)


@pytest.mark.parametrize("text", ["sum[i](x[i]*y[i])", "x[i]*y[i]", "sum[i](x[i]*y[i] -> [i])"])
def test_a_bound_dot_product_keeps_its_meaning(text: str) -> None:
    x, y = np.arange(1.0, 4.0), np.arange(2.0, 5.0)
    assert float(einderiv.parse(text).evaluate(x=x, y=y)) == pytest.approx(x @ y)


def test_diagonal_under_a_bound_sum_is_the_trace() -> None:
    A = np.arange(9.0).reshape(3, 3)
    for text in ("sum[a](A[a,a])", "A[a,a]", "sum[a](exp(A[a,a]))"):
        want = np.exp(np.diag(A)).sum() if "exp" in text else np.trace(A)
        np.testing.assert_allclose(einderiv.parse(text).evaluate(A=A), want, rtol=1e-12)


@pytest.mark.parametrize("text, pattern", [
    ("sum[a](sum[a](x[a]))", r"sum\[a\] inside another sum\[a\] \(at position 4\)"),
    ("sum[a](x[a]*y[a] -> [])", r"'->' inside the argument sums it"),
    ("sum[i](x[j])", r"does not occur"),
])
def test_bound_sum_errors(text: str, pattern: str) -> None:
    with pytest.raises(EinderivError, match=pattern):
        einderiv.parse(text)


def test_det_argument_is_not_reached_by_an_outer_sum() -> None:
    """inside sum[a], the a of det(M[a,b]) is the det's own index."""
    rng = np.random.default_rng(6)
    M, x = rng.normal(size=(3, 3)) + 3 * np.eye(3), rng.normal(size=2)
    e = einderiv.parse("sum[a](x[a]*det(M[a,b]))")
    np.testing.assert_allclose(e.evaluate(M=M, x=x), x.sum() * np.linalg.det(M), rtol=1e-12)


# ----------------------------------------------------- no misreading by juxtaposition


@pytest.mark.parametrize("text, pattern, column", [
    # logsumexp[k](...) is a word of the language since issue 15 (tests/test_softmax.py);
    # another name in its place is still refused
    ("lse[k](W[k,j]*x[j])", r"lse\[k\] followed by '\(' .* lse\[k\]\*\(\.\.\.\)", 6),
    ("foo(x[i])", r"unknown function 'foo' .* write foo\*\(\.\.\.\)", 0),
    ("n (x + 1)", r"unknown function 'n' .* write n\*\(\.\.\.\)", 0),
    ("x[i] (y[i])", r"x\[i\] followed by '\('", 5),
    ("delta[i,j](x[j])", r"delta\[i,j\] followed by '\(' .* delta\[i,j\]\*\(\.\.\.\)", 10),
    ("inv(M)[i,j](x[j])", r"inv\(\.\.\.\)\[i,j\] followed by '\('", 11),
    ("2 3", r"two numbers in a row: write 2\*3 for their product, or 23", 2),
    ("1..2", r"malformed number '1\.\.2'", 2),
    ("1.2.3*x", r"malformed number '1\.2\.3'", 3),
    ("1e", r"malformed number '1e': an exponent needs digits.* 1\*e", 1),
    ("3E+x", r"malformed number '3E\+'", 1),
    ("x 2", r"a number right after an operand", 2),
])
def test_former_misreadings_are_errors_that_say_what_to_write(text: str, pattern: str,
                                                             column: int) -> None:
    """Read before issue 14 as logsumexp[k] * (...), 2*3, 1*0.2, 1*e, x*2."""
    with pytest.raises(ParseError, match=pattern) as info:
        einderiv.parse(text)
    lines = str(info.value).splitlines()
    assert lines[-2] == "  " + text and lines[-1].index("^") - 2 == column, str(info.value)


@pytest.mark.parametrize("text, want", [
    ("2 x", 6.0), ("2(x + 1)", 8.0), ("1e3 x", 3000.0), (".5x", 1.5), ("2.5e-1*x", 0.75),
    ("X[a,b] y[b]", None),
])
def test_juxtaposition_that_stays(text: str, want) -> None:
    if want is None:
        X, y = np.arange(6.0).reshape(2, 3), np.ones(3)
        np.testing.assert_allclose(einderiv.parse(text).evaluate(X=X, y=y), X @ y)
    else:
        assert float(einderiv.parse(text).evaluate(x=3.0)) == pytest.approx(want)


@pytest.mark.parametrize("text", [
    "delta[d1,d2] + relu(q[i,d1])", "relu(q[i,d1]) - (-delta[d1,d2])",
    "relu(q[i,d1]) - (-(2*delta[d1,d2]/2))",
])
@pytest.mark.parametrize("simplify", [False, True])
def test_a_diagonal_term_broadcasts_along_an_axis_it_lacks(text: str, simplify: bool) -> None:
    """fuzz --seed 14, input 770: the unsimplified sum added the identity only at i = 0
    (a diagonal term was written onto the diagonal of the rest, which has an axis the
    term lacks), and with the delta inside a product 'cannot tell the size of d2'
    (the delta ties d2 to d1 from inside its product). Against numpy, every path."""
    q = np.random.default_rng(14).normal(size=(2, 3))
    want = np.eye(3)[:, :, None] + np.maximum(q, 0).T[:, None, :]
    e = einderiv.parse(text, simplify=simplify)
    assert e.free == ("d1", "d2", "i")
    namespace: dict = {}
    exec(e.to_python("f"), namespace)  # noqa: S102 - einderiv's own export
    for got in (e.evaluate(q=q), e.compile()(q=q), namespace["f"](q=q)):
        np.testing.assert_allclose(got, want, rtol=1e-12)
