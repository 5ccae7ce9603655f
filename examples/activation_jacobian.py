"""The activation Jacobian and the element-wise chain rule, notes 003_* X.22-X.23.

A = tanh(Z) element-wise, so dA/dZ is diagonal with f'(Z) = 1 - tanh(Z)**2 on the
diagonal (Notation 31). It compresses to that vector (eq. 88), and a chain rule
applies it by element-wise multiplication instead of a matrix product (Concept 32).

Run: python examples/activation_jacobian.py
"""

import numpy as np

import einderiv

n = 5
rng = np.random.default_rng(22)
z = rng.normal(size=n)

J_expr = einderiv.diff("tanh(z[i])", "z")
report = J_expr.structure("z", shapes={"z": (n,)}, function="A")
print(report)

J = J_expr.evaluate(z=z)
assert report.deltas == (("a", "i"),)                      # diagonal
assert str(report.compressed) == "1 - tanh(z[i])**2"       # eq. 88
assert report.nonzeros == n and report.dense_size == n * n
fprime = report.compressed.evaluate(z=z)
assert np.allclose(fprime, 1 - np.tanh(z) ** 2)
assert np.allclose(report.expand(fprime), J)               # rebuilds diag(f'(z))
assert np.allclose(J, np.diag(fprime))

# X.23: the chain rule dL/dz = (dA/dz) dL/dA is an element-wise product.
G = rng.normal(size=n)                                     # some upstream dL/dA
print("chain rule:", report.chain)
assert np.allclose(J @ G, fprime * G)
assert np.allclose(report.chain.evaluate(z=z, G=G), fprime * G)

# The same holds for every element-wise activation: the report says "element-wise".
for f in ("sigmoid", "softplus", "exp"):
    r = einderiv.diff(f"{f}(z[i])", "z").structure("z")
    assert r.deltas == (("a", "i"),) and "element-wise" in str(r), f
    print(f"{f}: compressed {r.compressed}")
