"""Gradients of det and logdet (notes 002_*): d|X|/dX = |X| X^-T, d ln|X|/dX = X^-T.

Run: python examples/determinants.py
"""

import numpy as np

import einderiv

rng = np.random.default_rng(2)
B = rng.normal(size=(4, 4))
X = B @ B.T + 4 * np.eye(4)

g_det = einderiv.diff("det(X)", "X")
g_logdet = einderiv.diff("logdet(X)", "X")
print("d det(X)/dX    =", g_det)
print("d logdet(X)/dX =", g_logdet)
assert np.allclose(g_det.evaluate(X=X), np.linalg.det(X) * np.linalg.inv(X).T)
assert np.allclose(g_logdet.evaluate(X=X), np.linalg.inv(X).T)

# A Gaussian log-likelihood term: logdet(S) + x^T S^-1 x, by S.
nll = "logdet(S) + x[i]*inv(S)[i,j]*x[j]"
g = einderiv.diff(nll, "S")
print("d/dS (logdet S + x^T S^-1 x) =", g)
x = rng.normal(size=4)
Si = np.linalg.inv(X)
assert np.allclose(g.evaluate(S=X, x=x), Si.T - Si.T @ np.outer(x, x) @ Si.T)
assert einderiv.check(nll, "S", {"S": X, "x": x}).ok()
