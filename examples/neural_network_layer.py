"""One layer of a neural network, notes 003_* X.20-X.23.

Z = W^T A (pre-activation), A_out = tanh(Z). The weight derivative dZ/dW is a
3-tensor that is zero off a diagonal and repeats A on it (X.20); dZ/dA = W (X.21);
the activation Jacobian dA_out/dZ is diagonal, diag(1 - tanh(Z)^2) (X.22), so in a
chain rule it acts by element-wise multiplication (X.23).

Run: python examples/neural_network_layer.py
"""

import numpy as np

import einderiv

rng = np.random.default_rng(1)
m, k = 4, 3                      # inputs, neurons: distinct sizes
W, A = rng.normal(size=(m, k)), rng.normal(size=m)
Z = "W[j,i]*A[j]"                # Z_i = sum_j W[j,i] A[j]

dZ_dW = einderiv.diff(Z, "W")    # axes: W's (p, q), then Z's (i)
print("dZ/dW  =", dZ_dW, "  free:", dZ_dW.free)
T = dZ_dW.evaluate(W=W, A=A)
assert T.shape == (m, k, k)
assert np.allclose(T, np.einsum("p,qi->pqi", A, np.eye(k)))   # A on the diagonal q == i

dZ_dA = einderiv.diff(Z, "A")
print("dZ/dA  =", dZ_dA)
assert np.allclose(dZ_dA.evaluate(W=W, A=A), W)                # X.21

z = rng.normal(size=k)
dact = einderiv.diff("tanh(z[i])", "z")
print("dA/dZ  =", dact)
J = dact.evaluate(z=z)
assert np.allclose(J, np.diag(1 - np.tanh(z) ** 2))            # X.22

# X.23: applying the diagonal Jacobian is element-wise multiplication.
g = rng.normal(size=k)
assert np.allclose(J @ g, (1 - np.tanh(z) ** 2) * g)

# The whole layer: d tanh(W^T A) / dW, checked against finite differences.
r = einderiv.check("tanh(W[j,i]*A[j])", "W", {"W": W, "A": A})
print(f"d tanh(W^T A)/dW: max relative error vs finite differences {r.max_rel_error:.1e}")
assert r.ok()
