"""The cases of the benchmark suite (issue 5).

Each :class:`Case` holds everything one measurement needs:

- ``id``, ``name``, ``kind`` ("grad", "hessian" or "jacobian") and the sizes;
- ``expr`` and ``wrt``: the einderiv index expression and the variable (the Hessian is
  ``diff(diff(expr, wrt), wrt)``, the others ``diff(expr, wrt)``);
- ``data(sizes, rng)``: the inputs as float64 numpy arrays (and Python floats for
  scalars), from a fixed seed;
- ``reference(d)``: the hand-written numpy formula an expert writes, the baseline of
  every ratio;
- ``flops(sizes)``: the FLOP count of that hand-written formula (see below), set
  beside einderiv's plan estimate (``CompiledExpr.flops``);
- ``loss(xp, d)``: the function itself, written once against a numpy-like module
  ``xp`` (numpy, ``jax.numpy``, ``autograd.numpy`` or ``torch``), which JAX, torch.func
  and autograd differentiate. ``d`` maps names to arrays.

Layouts: a gradient has the variable's shape; a Hessian has the variable's axes twice
(all Hessians here are symmetric, so every framework's layout agrees); the Jacobian
of C5 is in einderiv's denominator layout ``J[k, i] = d f_i / d x_k`` (the reference
too), and the suite moves a framework's numerator-layout Jacobian into it before the
correctness check (outside the timed region).

FLOP counts follow opt_einsum's convention, the one einderiv's plan estimate uses,
so that the two compare; each ``*_flops`` function counts what the reference beside it
does, step by step:

- a product with a summed index costs 2 per multiply-add: ``(m,k) @ (k,n)`` is
  ``2*m*k*n``, a matrix-vector product ``2*m*n``; a product of several operands with
  nothing summed (an outer or element-wise product) costs (operands - 1) per output
  element (a product of 3 operands with a summed index: 3 per term, as opt_einsum);
- a symmetric product ``Z^T Z`` (numpy's ``A.T @ A``, BLAS syrk) with ``Z`` of n rows
  and d columns costs ``n*d*(d+1)`` (what einderiv's plan reports for its syrk);
- an element-wise operation or function (``+``, ``*``, ``exp``, ``tanh``,
  ``logaddexp``, ``sqrt``, an in-place ``*=``), and a sum or max over an axis, costs 1
  per element it reads; arithmetic on Python floats, reshapes, transposes and
  broadcasts are free;
- ``inv`` of a d x d matrix costs ``2*d**3`` (LU, then the inverse from it), as
  einderiv counts it;
- ``np.einsum(..., optimize=True)`` costs what opt_einsum counts for the path numpy
  picks.

``cases(quick)`` lists the variants measured: the sizes of issue 5, or small ones
for ``--quick``. ``kchain_text(k)`` is the k-chain ``x^T A1 ... Ak x``;
``kchain_flops(k, d)`` the FLOPs of its hand-written gradient.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import opt_einsum as oe

Data = dict[str, Any]
SEED = 20240605


@dataclass(frozen=True)
class Case:
    id: str                                   # "C1"
    name: str                                 # "least squares"
    kind: str                                 # "grad" | "hessian" | "jacobian"
    sizes: Mapping[str, int]                  # {"n": 1000, "d": 100}
    expr: str                                 # einderiv index expression
    wrt: str                                  # the variable
    data: Callable[[Mapping[str, int], np.random.Generator], Data]
    reference: Callable[[Data], np.ndarray]   # hand-written numpy
    loss: Callable[[Any, Data], Any]          # generic: loss(xp, d)
    flops: Callable[[Mapping[str, int]], int]  # FLOPs of reference, from the sizes
    rtol: float = 1e-6
    notes: str = ""
    # names in the data that are scalars (kept as Python floats for every framework)
    scalars: tuple[str, ...] = field(default_factory=tuple)

    @property
    def order(self) -> int:
        return 2 if self.kind == "hessian" else 1

    @property
    def label(self) -> str:
        size = ",".join(str(v) for v in self.sizes.values())
        return f"{self.id} {self.kind} ({size})"

    def make_data(self) -> Data:
        """The inputs, from a seed fixed per case id and sizes."""
        key = [SEED, int(self.id[1:]), *self.sizes.values()]
        return self.data(self.sizes, np.random.default_rng(key))


# ------------------------------------------------------------------- helpers


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)) without overflow."""
    return np.exp(-np.logaddexp(0.0, -z))


def _sigmoid_flops(n: int) -> int:
    """``_sigmoid`` of n entries: the negation, logaddexp, negation and exp."""
    return 4 * n


def _syrk_scaled(X: np.ndarray, w: np.ndarray) -> np.ndarray:
    """X^T diag(w) X (w >= 0) as one symmetric product: numpy hands ``A.T @ A`` to
    BLAS syrk, half the flops of a general product."""
    Xs = X * np.sqrt(w)[:, None]
    return Xs.T @ Xs


def _syrk_flops(n: int, d: int) -> int:
    """``Z.T @ Z`` for Z of n rows and d columns, by syrk (einderiv's count)."""
    return n * d * (d + 1)


def _syrk_scaled_flops(n: int, d: int) -> int:
    """``_syrk_scaled`` of an (n, d) matrix: sqrt(w), the row scaling, the syrk."""
    return n + n * d + _syrk_flops(n, d)


def _einsum_flops(spec: str, *shapes: tuple[int, ...]) -> int:
    """``np.einsum(spec, ..., optimize=True)`` on operands of these shapes: the path
    numpy picks, costed by opt_einsum (zero-stride operands: no memory)."""
    operands = [np.broadcast_to(0.0, sh) for sh in shapes]
    path = np.einsum_path(spec, *operands, optimize=True)[0][1:]  # drop "einsum_path"
    return int(oe.contract_path(spec, *shapes, shapes=True, optimize=path)[1].opt_cost)


# ------------------------------------------------------------ C1 least squares

C1_EXPR = "(X[a,b]*theta[b] - Y[a])*(X[a,c]*theta[c] - Y[a])/n"


def c1_data(s, rng):
    n, d = s["n"], s["d"]
    X = rng.normal(size=(n, d))
    theta = rng.normal(size=d)
    Y = X @ theta + rng.normal(size=n)
    return {"X": X, "theta": rng.normal(size=d), "Y": Y, "n": float(n)}


def c1_grad(d):
    X = d["X"]
    return (2.0 / d["n"]) * (X.T @ (X @ d["theta"] - d["Y"]))


def c1_grad_flops(s):
    n, d = s["n"], s["d"]
    return 2 * n * d + n + 2 * n * d + d  # X theta, - Y, X^T r, scaling


def c1_hess(d):
    X = d["X"]
    H = X.T @ X  # syrk
    H *= 2.0 / d["n"]
    return H


def c1_hess_flops(s):
    n, d = s["n"], s["d"]
    return _syrk_flops(n, d) + d * d  # X^T X, scaling


def c1_loss(xp, d):
    r = d["X"] @ d["theta"] - d["Y"]
    return xp.sum(r * r) / d["n"]


# --------------------------------------------------------------- C2 x^T A x

C2_EXPR = "x[i]*A[i,j]*x[j]"


def c2_data(s, rng):
    d = s["d"]
    return {"A": rng.normal(size=(d, d)), "x": rng.normal(size=d)}


def c2_grad(d):
    A, x = d["A"], d["x"]
    return A @ x + x @ A


def c2_grad_flops(s):
    d = s["d"]
    return 2 * d * d + 2 * d * d + d  # A x, x A, the sum


def c2_hess(d):
    A = d["A"]
    return A + A.T


def c2_hess_flops(s):
    return s["d"] ** 2  # A + A^T


def c2_loss(xp, d):
    x = d["x"]
    return x @ (d["A"] @ x)


# ------------------------------------------------------- C3 / C13 logistic loss

C3_EXPR = "sum[a](log(1 + exp(-(y[a]*X[a,b]*theta[b] -> [a]))))"


def c3_data(s, rng):
    n, d = s["n"], s["d"]
    X = rng.normal(size=(n, d)) / np.sqrt(d)
    y = np.where(rng.random(n) < 0.5, -1.0, 1.0)  # labels in {-1, +1}
    return {"X": X, "y": y, "theta": rng.normal(size=d)}


def c3_grad(d):
    X, y = d["X"], d["y"]
    z = y * (X @ d["theta"])
    return X.T @ (-y * _sigmoid(-z))


def c3_grad_flops(s):
    n, d = s["n"], s["d"]
    # X theta, y *, negation, sigmoid, -y, the product, X^T
    return 2 * n * d + n + n + _sigmoid_flops(n) + n + n + 2 * n * d


def c3_hess(d):
    X, y = d["X"], d["y"]
    s = _sigmoid(y * (X @ d["theta"]))
    return _syrk_scaled(X, s * (1.0 - s))  # y**2 == 1


def c3_hess_flops(s):
    n, d = s["n"], s["d"]
    # X theta, y *, sigmoid, 1 - s, s (1 - s), the scaled syrk
    return 2 * n * d + n + _sigmoid_flops(n) + 2 * n + _syrk_scaled_flops(n, d)


def c3_loss(xp, d):
    return xp.sum(xp.log(1 + xp.exp(-d["y"] * (d["X"] @ d["theta"]))))


# ---------------------------------------------------------- C5 tanh Jacobian

C5_EXPR = "tanh(W[i,j]*x[j])"


def c5_data(s, rng):
    d = s["d"]
    return {"W": rng.normal(size=(d, d)) / np.sqrt(d), "x": rng.normal(size=d)}


def c5_jac(d):
    W = d["W"]
    t = np.tanh(W @ d["x"])
    return W.T * (1.0 - t * t)  # J[k, i] = W[i, k] (1 - t_i^2)


def c5_jac_flops(s):
    d = s["d"]
    return 2 * d * d + 3 * d + d * d  # W x, tanh, t t, 1 - t t, the scaled W^T


def c5_fun(xp, d):
    return xp.tanh(d["W"] @ d["x"])


# -------------------------------------------------------------- C6 logdet

C6_EXPR = "logdet(X)"


def c6_data(s, rng):
    d = s["d"]
    # 3 I + G / sqrt(d): eigenvalues in the disk |z - 3| <~ 1 (circular law), so the
    # determinant is positive and the condition number small; not symmetric, so a
    # missing transpose is caught.
    return {"X": 3.0 * np.eye(d) + rng.normal(size=(d, d)) / np.sqrt(d)}


def c6_grad(d):
    return np.linalg.inv(d["X"]).T


def c6_grad_flops(s):
    return 2 * s["d"] ** 3  # inv


def c6_loss(xp, d):
    return xp.linalg.slogdet(d["X"])[1]


# ------------------------------------------------------------ C8 ||M - U V^T||^2

C8_EXPR = "(M[i,j] - U[i,k]*V[j,k])*(M[i,j] - U[i,l]*V[j,l])"


def c8_data(s, rng):
    m, n, r = s["m"], s["n"], s["r"]
    return {"M": rng.normal(size=(m, n)), "U": rng.normal(size=(m, r)) / np.sqrt(r),
            "V": rng.normal(size=(n, r)) / np.sqrt(r)}


def c8_grad(d):
    U, V = d["U"], d["V"]
    G = U @ (V.T @ V) - d["M"] @ V  # expanded: no m x n temporary
    G *= 2.0
    return G


def c8_grad_flops(s):
    m, n, r = s["m"], s["n"], s["r"]
    # V^T V (syrk), U (V^T V), M V, the difference, * 2
    return _syrk_flops(n, r) + 2 * m * r * r + 2 * m * n * r + 2 * m * r


def c8_loss(xp, d):
    R = d["M"] - d["U"] @ d["V"].T
    return xp.sum(R * R)


# --------------------------------------------------------- C9 two-layer network

C9_EXPR = ("(W2[o,h]*tanh(W1[h,i]*X[i,b]) - T[o,b])"
           "*(W2[o,g]*tanh(W1[g,j]*X[j,b]) - T[o,b])")


def c9_data(s, rng):
    n_in, n_hid, n_out, b = s["in"], s["hidden"], s["out"], s["batch"]
    return {"W1": rng.normal(size=(n_hid, n_in)) / np.sqrt(n_in),
            "W2": rng.normal(size=(n_out, n_hid)) / np.sqrt(n_hid),
            "X": rng.normal(size=(n_in, b)), "T": rng.normal(size=(n_out, b))}


def c9_grad(d):
    W1, W2, X = d["W1"], d["W2"], d["X"]
    H = np.tanh(W1 @ X)
    R = W2 @ H - d["T"]
    B = W2.T @ R
    B *= 1.0 - H * H
    G = B @ X.T
    G *= 2.0
    return G


def c9_grad_flops(s):
    i, h, o, b = s["in"], s["hidden"], s["out"], s["batch"]
    # W1 X, tanh, W2 H, - T, W2^T R, H H, 1 - H H, B *=, B X^T, * 2
    return (2 * h * i * b + h * b + 2 * o * h * b + o * b + 2 * h * o * b + 3 * h * b
            + 2 * h * b * i + h * i)


def c9_hess(d):
    """d^2 L / dW1[h,i] dW1[g,j] for L = ||W2 tanh(W1 X) - T||^2 (small sizes only)."""
    W1, W2, X = d["W1"], d["W2"], d["X"]
    H = np.tanh(W1 @ X)                    # (h, b)
    D = 1.0 - H * H                        # tanh'
    R = W2 @ H - d["T"]                    # (o, b)
    nh, ni = W1.shape
    # Gauss-Newton part: 2 (W2^T W2)[h,g] sum_b D[h,b] X[i,b] D[g,b] X[j,b]
    A = (D[:, None, :] * X[None, :, :]).reshape(nh * ni, -1)   # (h i, b)
    P = (A @ A.T).reshape(nh, ni, nh, ni)                       # syrk
    P *= 2.0 * (W2.T @ W2)[:, None, :, None]
    # second-order part, on the diagonal h == g: 2 (W2^T R)[h,b] (-2 H D)[h,b] X[i,b] X[j,b]
    C = -4.0 * (W2.T @ R) * H * D                               # (h, b)
    Q = np.einsum("hb,ib,jb->hij", C, X, X, optimize=True)
    idx = np.arange(nh)
    P[idx, :, idx, :] += Q
    return P


def c9_hess_flops(s):
    i, h, o, b = s["in"], s["hidden"], s["out"], s["batch"]
    forward = 2 * h * i * b + h * b + 2 * h * b + 2 * o * h * b + o * b  # H, D, R
    gauss_newton = (h * i * b + _syrk_flops(b, h * i)                    # A, A A^T
                    + _syrk_flops(o, h) + h * h + (h * i) ** 2)           # W2^T W2, P *=
    diagonal = (2 * h * o * b + 3 * h * b                                 # C
                + _einsum_flops("hb,ib,jb->hij", (h, b), (i, b), (i, b))  # Q
                + h * i * i)                                              # P[...] += Q
    return forward + gauss_newton + diagonal


def c9_loss(xp, d):
    R = d["W2"] @ xp.tanh(d["W1"] @ d["X"]) - d["T"]
    return xp.sum(R * R)


# ---------------------------------------------------- C10 softmax cross-entropy

C10_EXPR = "-y[i]*(z[i] - log(sum[j](exp(z[j]))))"


def c10_data(s, rng):
    d = s["d"]
    y = rng.random(d)
    return {"z": rng.normal(size=d), "y": y / y.sum()}  # y: a probability vector


def _softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def _softmax_flops(d: int) -> int:
    """``_softmax`` of d entries: max, subtraction, exp, sum, division."""
    return 5 * d


def c10_grad(d):
    y = d["y"]
    return y.sum() * _softmax(d["z"]) - y


def c10_grad_flops(s):
    d = s["d"]
    return d + _softmax_flops(d) + 2 * d  # sum(y), softmax, * sum(y), - y


def c10_hess(d):
    sy = d["y"].sum()
    p = _softmax(d["z"])
    # np.einsum's outer-product loop: 1.3-2x faster than np.multiply.outer at d=1000
    H = np.einsum("i,j->ij", -sy * p, p)
    H.flat[:: p.size + 1] += sy * p   # sum(y) (diag(p) - p p^T)
    return H


def c10_hess_flops(s):
    d = s["d"]
    # sum(y), softmax, -sy p, the outer product, sy p and += on the diagonal
    return d + _softmax_flops(d) + d + d * d + 2 * d


def c10_loss(xp, d):
    z = d["z"]
    return -xp.sum(d["y"] * (z - xp.log(xp.sum(xp.exp(z)))))


# ------------------------------------------------------------------ the table


def _variants(id, name, kind, expr, wrt, data, reference, flops, loss, full, quick,
              quick_mode, **kw):
    return [Case(id, name, kind, dict(s), expr, wrt, data, reference, loss, flops, **kw)
            for s in (quick if quick_mode else full)]


def cases(quick: bool = False) -> list[Case]:
    """Every case variant of issue 5 (``quick``: small sizes for smoke tests)."""
    nd = lambda *pairs: [{"n": n, "d": d} for n, d in pairs]  # noqa: E731
    dd = lambda *ds: [{"d": d} for d in ds]  # noqa: E731
    out: list[Case] = []
    for kind, ref, fl in (("grad", c1_grad, c1_grad_flops), ("hessian", c1_hess, c1_hess_flops)):
        out += _variants("C1", "least squares", kind, C1_EXPR, "theta", c1_data, ref, fl,
                         c1_loss, nd((1000, 100), (10000, 500)), nd((200, 40)), quick)
    for kind, ref, fl in (("grad", c2_grad, c2_grad_flops), ("hessian", c2_hess, c2_hess_flops)):
        out += _variants("C2", "x^T A x", kind, C2_EXPR, "x", c2_data, ref, fl, c2_loss,
                         dd(100, 1000), dd(100), quick)
    for kind, ref, fl in (("grad", c3_grad, c3_grad_flops), ("hessian", c3_hess, c3_hess_flops)):
        out += _variants("C3", "logistic loss", kind, C3_EXPR, "theta", c3_data, ref, fl,
                         c3_loss, nd((1000, 100), (10000, 500)), nd((200, 40)), quick)
    out += _variants("C5", "tanh(W x) Jacobian", "jacobian", C5_EXPR, "x", c5_data, c5_jac,
                     c5_jac_flops, c5_fun, dd(1000), dd(200), quick)
    out += _variants("C6", "logdet", "grad", C6_EXPR, "X", c6_data, c6_grad, c6_grad_flops,
                     c6_loss, dd(100, 500), dd(50), quick)
    out += _variants("C8", "||M - U V^T||^2", "grad", C8_EXPR, "U", c8_data, c8_grad,
                     c8_grad_flops, c8_loss, [{"m": 1000, "n": 1000, "r": 50}],
                     [{"m": 200, "n": 150, "r": 10}], quick)
    net = lambda i, h, o, b: {"in": i, "hidden": h, "out": o, "batch": b}  # noqa: E731
    out += _variants("C9", "two-layer net", "grad", C9_EXPR, "W1", c9_data, c9_grad,
                     c9_grad_flops, c9_loss, [net(256, 512, 10, 128)], [net(32, 64, 5, 16)],
                     quick)
    out += _variants("C9", "two-layer net", "hessian", C9_EXPR, "W1", c9_data, c9_hess,
                     c9_hess_flops, c9_loss, [net(10, 20, 10, 32)], [net(5, 8, 4, 8)], quick)
    for kind, ref, fl in (("grad", c10_grad, c10_grad_flops),
                          ("hessian", c10_hess, c10_hess_flops)):
        out += _variants("C10", "softmax cross-entropy", kind, C10_EXPR, "z", c10_data, ref,
                         fl, c10_loss, dd(1000), dd(200), quick)
    out += _variants("C13", "logistic Hessian", "hessian", C3_EXPR, "theta", c3_data, c3_hess,
                     c3_hess_flops, c3_loss, nd((2000, 1000), (4000, 2000)), nd((400, 200)),
                     quick)
    return out


# ------------------------------------------------------------------- k-chain


def kchain_text(k: int) -> str:
    """f_k = x^T A1 A2 ... Ak x as an index expression."""
    factors = ["x[i0]"] + [f"A{m}[i{m - 1},i{m}]" for m in range(1, k + 1)] + [f"x[i{k}]"]
    return "*".join(factors)


def kchain_reference(k: int, arrays: Data) -> np.ndarray:
    """The gradient (P + P^T) x with P = A1 ... Ak, as two chains of k matrix-vector
    products: P x = A1 (A2 (... (Ak x))) and x^T P = ((x^T A1) A2) ... Ak."""
    x = arrays["x"]
    px, xp = x, x
    for m in range(1, k + 1):
        px = arrays[f"A{k + 1 - m}"] @ px
        xp = xp @ arrays[f"A{m}"]
    return px + xp


def kchain_flops(k: int, d: int) -> int:
    """FLOPs of ``kchain_reference`` at size d: 2 k matrix-vector products and the sum."""
    return 2 * k * 2 * d * d + d


def kchain_data(k: int, d: int = 3) -> Data:
    rng = np.random.default_rng([SEED, 99, k])
    arrays: Data = {f"A{m}": rng.normal(size=(d, d)) / np.sqrt(d) for m in range(1, k + 1)}
    arrays["x"] = rng.normal(size=d)
    return arrays
