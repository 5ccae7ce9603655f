"""Linear regression, notes 001_* A.4-A.5: gradient and Hessian of
J(theta) = (X theta - Y)^T (X theta - Y) / n, derived index by index.

Run: python examples/linear_regression.py
"""

import numpy as np

import einderiv

loss = "(X[a,b]*theta[b] - Y[a])*(X[a,c]*theta[c] - Y[a])/n"   # eq. A.17
grad = einderiv.diff(loss, "theta")                             # eq. A.20: one term, 2/n
hess = einderiv.diff(grad, "theta")
print("J             =", einderiv.parse(loss))
print("dJ/dtheta     =", grad, "   free:", grad.free)   # ASCII: any console shows it
print("d2J/dtheta2   =", hess, "   free:", hess.free)

rng = np.random.default_rng(0)
n, d = 50, 3
X, Y, theta = rng.normal(size=(n, d)), rng.normal(size=n), rng.normal(size=d)
values = dict(X=X, Y=Y, theta=theta, n=n)

g = grad.evaluate(**values)
H = hess.evaluate(**values)
assert np.allclose(g, 2 / n * X.T @ (X @ theta - Y))     # eq. A.16 / A.22
assert np.allclose(H, 2 / n * X.T @ X)
# One Newton step solves least squares exactly.
theta_star = theta - np.linalg.solve(H, g)
assert np.allclose(theta_star, np.linalg.lstsq(X, Y, rcond=None)[0])
print("Newton step reaches the least-squares solution:", theta_star)
