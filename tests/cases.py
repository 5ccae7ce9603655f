"""The identities of the reference notes as data, shared by the test modules.

Each case has an expression, the variable, shapes with distinct axis sizes (so a
transposition bug cannot hide), an independent closed form written directly in
numpy from the notes (never produced by einderiv), the index form where the notes
print one, and the textbook matrix form (denominator layout) where one exists.

Sources: 001_* = MIT 6.390 Appendix A; 002_* = Sharif slides; 003_* = 6.390
explanatory notes X.20-X.23; 000_* = the same notes X.14-X.15.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

Arrays = dict[str, np.ndarray]


@dataclass(frozen=True)
class Case:
    name: str
    source: str
    expr: str
    wrt: str
    shapes: dict[str, tuple[int, ...]]
    closed_form: Callable[[Arrays], np.ndarray]
    index_text: str | None = None   # printed index form, where the notes give one
    textbook: str | None = None     # denominator-layout matrix form (issue 3)
    spd: frozenset[str] = field(default_factory=frozenset)  # well-conditioned matrices

    def arrays(self, rng: np.random.Generator) -> Arrays:
        out: Arrays = {}
        for name, shape in self.shapes.items():
            if name in self.spd:
                a = rng.normal(size=shape)
                out[name] = a @ a.T + shape[0] * np.eye(shape[0])
            elif shape == ():
                out[name] = np.array(rng.uniform(0.5, 1.5))
            else:
                out[name] = rng.normal(size=shape)
        return out


def _dtanh(u: np.ndarray) -> np.ndarray:
    return 1 - np.tanh(u) ** 2


N, D, M = 4, 3, 5  # distinct sizes used throughout

IDENTITIES: list[Case] = [
    Case("A.1 constant vector", "001_* A.1", "a[j]", "x",
         {"a": (M,), "x": (D,)}, lambda v: np.zeros((D, M)), textbook="0"),
    Case("A.2 identity", "001_* A.2", "x[i]", "x",
         {"x": (D,)}, lambda v: np.eye(D), textbook="I"),
    Case("A.4 d(Ax)/dx = A^T", "001_* A.4; 002_*", "A[i,j]*x[j]", "x",
         {"A": (N, D), "x": (D,)}, lambda v: v["A"].T, textbook="A^T"),
    Case("A.5 d(x^T A)/dx = A", "001_* A.5", "x[i]*A[i,j]", "x",
         {"x": (N,), "A": (N, D)}, lambda v: v["A"], textbook="A"),
    Case("A.6 linearity", "001_* A.6", "A[i,j]*x[j] + B[i,j]*x[j]", "x",
         {"A": (N, D), "B": (N, D), "x": (D,)}, lambda v: v["A"].T + v["B"].T,
         textbook="A^T + B^T"),
    Case("A.7 scalar constant", "001_* A.7", "alpha*A[i,j]*x[j]", "x",
         {"alpha": (), "A": (N, D), "x": (D,)}, lambda v: v["alpha"] * v["A"].T,
         textbook="alpha A^T"),
    Case("A.8 d(v a)/dx = dv/dx a^T", "001_* A.8", "b[k]*x[k]*a[j]", "x",
         {"b": (D,), "x": (D,), "a": (M,)}, lambda v: np.outer(v["b"], v["a"]),
         textbook="b a^T"),
    Case("A.9 d(A u)/dx = du/dx A^T", "001_* A.9", "A[i,k]*B[k,j]*x[j]", "x",
         {"A": (M, N), "B": (N, D), "x": (D,)}, lambda v: v["B"].T @ v["A"].T,
         textbook="B^T A^T"),
    Case("A.10 product rule", "001_* A.10", "b[k]*x[k]*C[i,j]*x[j]", "x",
         {"b": (D,), "x": (D,), "C": (M, D)},
         lambda v: (v["b"] @ v["x"]) * v["C"].T + np.outer(v["b"], v["C"] @ v["x"]),
         textbook="b^T x C^T + b (C x)^T"),
    Case("A.11 chain rule", "001_* A.11; 003_* X.22", "tanh(A[i,j]*x[j])", "x",
         {"A": (N, D), "x": (D,)},
         lambda v: v["A"].T @ np.diag(_dtanh(v["A"] @ v["x"])),
         textbook="A^T diag(1 - tanh(A x)^2)"),
    Case("A.12 chain of three", "001_* A.12", "sum[i](exp(tanh(A[i,j]*x[j])))", "x",
         {"A": (N, D), "x": (D,)},
         lambda v: v["A"].T @ (_dtanh(v["A"] @ v["x"]) * np.exp(np.tanh(v["A"] @ v["x"])))),
    Case("A.13 d(u^T v)/dx", "001_* A.13", "A[i,j]*x[j]*B[i,k]*x[k]", "x",
         {"A": (N, D), "B": (N, D), "x": (D,)},
         lambda v: v["A"].T @ v["B"] @ v["x"] + v["B"].T @ v["A"] @ v["x"],
         textbook="A^T B x + B^T A x"),
    Case("A.14 vector by scalar", "001_* A.14, A.1", "s*a[i] + s**2*b[i]", "s",
         {"s": (), "a": (M,), "b": (M,)}, lambda v: v["a"] + 2 * v["s"] * v["b"],
         textbook="a^T + 2 s b^T"),
    Case("A.4 linear regression gradient", "001_* A.4, A.15-A.22",
         "(X[a,b]*theta[b] - Y[a])*(X[a,c]*theta[c] - Y[a])/n", "theta",
         {"X": (N, D), "theta": (D,), "Y": (N,), "n": ()},
         lambda v: 2 / v["n"] * v["X"].T @ (v["X"] @ v["theta"] - v["Y"]),
         index_text="2*X[a,d]*(X[a,b]*theta[b] - Y[a])/n",
         textbook="2/n X^T (X theta - Y)"),
    Case("x^T a", "002_*", "x[i]*a[i]", "x", {"x": (D,), "a": (D,)},
         lambda v: v["a"], textbook="a"),
    Case("x^T A x", "002_*", "x[i]*A[i,j]*x[j]", "x", {"x": (D,), "A": (D, D)},
         lambda v: (v["A"] + v["A"].T) @ v["x"], textbook="(A + A^T) x"),
    Case("d|X|/dX", "002_*", "det(X)", "X", {"X": (D, D)},
         lambda v: np.linalg.det(v["X"]) * np.linalg.inv(v["X"]).T,
         textbook="det(X) X^-T", spd=frozenset({"X"})),
    Case("d ln|X|/dX", "002_*", "logdet(X)", "X", {"X": (D, D)},
         lambda v: np.linalg.inv(v["X"]).T, textbook="X^-T", spd=frozenset({"X"})),
    Case("X.20 dZ/dW, Z = W^T A", "003_* X.20", "W[j,i]*A[j]", "W",
         {"W": (M, D), "A": (M,)},
         lambda v: np.einsum("p,qi->pqi", v["A"], np.eye(D))),
    Case("X.21 dZ/dA = W", "003_* X.21", "W[j,i]*A[j]", "A",
         {"W": (M, D), "A": (M,)}, lambda v: v["W"], textbook="W"),
    Case("X.22 activation Jacobian", "003_* X.22", "tanh(z[i])", "z", {"z": (N,)},
         lambda v: np.diag(_dtanh(v["z"])), textbook="diag(1 - tanh(z)^2)"),
    Case("X.14 matrix by scalar", "000_* X.14", "s*B[i,j] + s**2*C[i,j]", "s",
         {"s": (), "B": (N, D), "C": (N, D)}, lambda v: v["B"] + 2 * v["s"] * v["C"],
         textbook="B + 2 s C"),
    Case("X.15 scalar by matrix", "000_* X.15", "a[i]*X[i,j]*b[j]", "X",
         {"a": (N,), "X": (N, D), "b": (D,)}, lambda v: np.outer(v["a"], v["b"]),
         textbook="a b^T"),
]

HESSIANS: list[Case] = [
    Case("linear regression Hessian", "001_* A.5",
         "(X[a,b]*theta[b] - Y[a])*(X[a,c]*theta[c] - Y[a])/n", "theta",
         {"X": (N, D), "theta": (D,), "Y": (N,), "n": ()},
         lambda v: 2 / v["n"] * v["X"].T @ v["X"], textbook="2/n X^T X"),
    Case("x^T A x Hessian", "002_*", "x[i]*A[i,j]*x[j]", "x", {"x": (D,), "A": (D, D)},
         lambda v: v["A"] + v["A"].T, textbook="A + A^T"),
]


def grouped_chain(k: int, rng: np.random.Generator) -> tuple[str, dict, np.ndarray]:
    """``u_j[s_j] v_j[s_j,t_j] w_j[t_j]`` for j < k, times ``y[z]``: k groups that each
    contract to a number (u_j v_j w_j, sizes 3 and 4), and a free axis of size 5. The
    text, random arrays, and the product written out in numpy."""
    text = "*".join(f"u{j}[s{j}]*v{j}[s{j},t{j}]*w{j}[t{j}]" for j in range(k)) + "*y[z]"
    arrays, expected = {}, 1.0
    for j in range(k):
        u, v, w = rng.normal(size=3), rng.normal(size=(3, 4)), rng.normal(size=4)
        arrays.update({f"u{j}": u, f"v{j}": v, f"w{j}": w})
        expected *= u @ v @ w
    arrays["y"] = rng.normal(size=5)
    return text, arrays, expected * arrays["y"]


#: The low-rank fit ||M - U V^T||^2 (its gradient by U is a product with a sum factor).
LOW_RANK = "(M[i,j] - U[i,k]*V[j,k])*(M[i,j] - U[i,l]*V[j,l])"


def low_rank_fit(m: int, n: int, r: int, rng: np.random.Generator) -> tuple[dict, np.ndarray]:
    """Random ``M`` (m x n), ``U`` (m x r), ``V`` (n x r), and the gradient of
    :data:`LOW_RANK` by U written in numpy, ``-2 (M - U V^T) V``."""
    arrays = {"M": rng.normal(size=(m, n)), "U": rng.normal(size=(m, r)),
              "V": rng.normal(size=(n, r))}
    return arrays, -2 * (arrays["M"] - arrays["U"] @ arrays["V"].T) @ arrays["V"]
